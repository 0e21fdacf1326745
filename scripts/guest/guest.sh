#!/bin/bash
# SPDX-License-Identifier: GPL-2.0
# Runs inside the test VM (as root; the host's file system is visible read-only).
#   guest.sh BOOT OUTDIR MODDIR
# BOOT: clean | detect-N | run
set -u
boot=$1 out=$2 mods=$3
mkdir -p "$out"
mountpoint -q /sys/kernel/debug || mount -t debugfs none /sys/kernel/debug
# virtme-ng-init starts the host's udevd. Nothing here needs it (devtmpfs makes the device nodes,
# the modules are loaded by hand), and under TCG its rule processing of every uevent (each module
# load, each rnull power-on and power-off, each CPU going on- or offline) costs more than the
# events themselves. The cross-architecture boots have no udevd either.
udevadm control --exit 2>/dev/null
. "$(dirname "$0")/guest-common.sh"
. "$(dirname "$0")/rnull-common.sh"
: >"$out/cases"

# rnull helpers. rnull_on NAME [ATTR=VALUE...]: create and power on a device, print its node.
rnull_on() {
	local name=$1 d=$CFG/$1 kv dev
	shift
	mkdir "$d" || return 1
	for kv in "$@"; do echo "${kv#*=}" >"$d/${kv%%=*}" || return 1; done
	echo 1 >"$d/power" || return 1
	[ -e "/sys/block/$name/dev" ] || return 1
	# No merging: one request per direct I/O, so that operations can be counted exactly.
	echo 2 >"/sys/block/$name/queue/nomerges"
	rnull_node "$name"
}
# rnull_reader NAME STOPFILE: read the stats attribute until STOPFILE exists; print "reads errors".
rnull_reader() {
	local n=0 e=0
	while [ ! -e "$2" ]; do
		if cat "$CFG/$1/stats" >/dev/null; then n=$((n + 1)); else e=$((e + 1)); fi
	done
	echo "$n $e"
}
# rnull_sectors_read NAME: sectors read from NAME, by the block layer's own counters.
rnull_sectors_read() { awk '{ print $3 }' "/sys/block/$1/stat"; }
# rnull_round DEV [CMD...]: 16 MiB of 1 MiB direct reads from DEV on each of the first $ncpu CPUs
# at once (each read is several requests, in flight together with irqmode=1); CMD, if given,
# runs 0.2 s after they start. Fails if a read or CMD fails.
rnull_round() {
	local dev=$1 i pids= rc=0
	shift
	for i in $(seq 0 $((ncpu - 1))); do
		taskset -c "$i" dd if="$dev" of=/dev/null bs=1M count=16 skip=$((i * 16)) \
			iflag=direct status=none &
		pids+=" $!"
	done
	if [ $# -gt 0 ]; then
		sleep 0.2
		"$@" || rc=1
	fi
	for i in $pids; do wait "$i" || rc=1; done
	return $rc
}
# rnull_refused NAME ATTR VALUE MESSAGE: writing VALUE to ATTR of NAME fails with MESSAGE (the
# errno's text).
rnull_refused() {
	local err
	if err=$({ echo "$3" >"$CFG/$1/$2"; } 2>&1); then
		log "$1: $2=$3 accepted, expected $4"
		return 1
	fi
	[[ $err == *"$4"* ]] || { log "$1: $2=$3: $err, expected $4"; return 1; }
}
# rnull_zero NAME FIELD...: every FIELD of the stats of NAME is 0.
rnull_zero() {
	local name=$1 f v rc=0
	shift
	for f in "$@"; do
		v=$(rnull_stat "$name" "$f")
		[ "$v" = 0 ] || { rc=1; log "$name $f: $v, expected 0"; }
	done
	return $rc
}

# Whether NAME's sectors read grew since BEFORE by exactly ROUNDS rounds (16 MiB per CPU each).
rnull_read_exactly() { # NAME BEFORE ROUNDS
	local v
	v=$(delta "$2" "$(rnull_sectors_read "$1")")
	[ "$v" = $(($3 * ncpu * 16 << 11)) ] || { log "$1: +$v sectors read"; return 1; }
}

# The end state of a device with stats_enabled=0 after rounds under inflight_limit=1: requests
# were refused, none is left in flight, the limit is kept and the statistics are untouched.
rnull_limited_end_state() { # NAME
	local v rc=0
	v=$(rnull_stat "$1" busy)
	log "$1: $v requests refused with inflight_limit=1, stats_enabled=0"
	[[ $v =~ ^[0-9]+$ ]] && [ "$v" -gt 0 ] || rc=1
	[ "$(rnull_stat "$1" inflight)" = 0 ] || { rc=1; log "$1: requests left in flight"; }
	[ "$(rnull_stat "$1" inflight_limit)" = 1 ] || rc=1
	rnull_zero "$1" read_ops read_bytes write_ops other_ops size_le_128k || rc=1
	return $rc
}

# rnull: load it, create devices through configfs, run direct I/O from every CPU at once and
# check the per-CPU statistics against what was submitted; the in-flight limit set while I/O
# runs, with the statistics enabled and disabled; optional statistics enabled while I/O runs;
# refused attribute values; teardown.
# rnull's cases run in one boot, in this order, sharing the variables of rnull_tests (bash
# scoping is dynamic): ncpu, the devices, the before/after snapshots, n and e (reads of stats
# during I/O, failed ones).
rnull_tests() {
	local ncpu dev dev1 dev2 dev3 n e
	declare -A before after
	mountpoint -q /sys/kernel/config || mount -t configfs none /sys/kernel/config
	if ! insmod "$rnull"; then res rnull_load fail; return; fi
	res rnull_load pass
	ncpu=$(nproc)
	[ "$ncpu" -le 4 ] || ncpu=4
	if ! dev=$(rnull_on rnull0 size=64 blocksize=4096); then res rnull_power_on fail; return; fi
	res rnull_power_on pass
	rnull_statistics_under_io
	rnull_position_statistics
	rnull_inflight_limit_live
	rnull_stats_disabled
	rnull_stats_disabled_limit_at_power_on
	rnull_attribute_errors
	rnull_faults
	rnull_fuzz
	log "rnull: $n reads of stats during I/O, $e failed"
	[ "$n" -gt 0 ] && [ "$e" = 0 ] && res rnull_stats_read_during_io pass ||
		res rnull_stats_read_during_io fail
	rnull_teardown
}

# rnull0: parallel direct I/O from every CPU, statistics exact, in total and per CPU, while a
# reader reads the stats attribute.
rnull_statistics_under_io() {
	local i W=128 R=1024 f ok pids v want
	sleep 1 # partition scan done; counted in the baseline
	for f in read_ops read_bytes write_ops write_bytes other_ops busy size_le_4k size_le_64k; do
		before[$f]=$(rnull_stat rnull0 $f) || before[$f]=x
	done
	rm -f /tmp/rnull.stop
	rnull_reader rnull0 /tmp/rnull.stop >/tmp/rnull.reads &
	local reader=$!
	pids=
	for i in $(seq 0 $((ncpu - 1))); do
		# CPU i writes W x 64 KiB at 8 MiB * i and reads R x 4 KiB at 32 MiB + 4 MiB * i.
		taskset -c "$i" dd if=/dev/zero of="$dev" bs=64k count=$W seek=$((i * 128)) \
			oflag=direct status=none &
		pids+=" $!"
		taskset -c "$i" dd if="$dev" of=/dev/null bs=4k count=$R skip=$((8192 + i * 1024)) \
			iflag=direct status=none &
		pids+=" $!"
	done
	ok=pass
	for i in $pids; do wait "$i" || ok=fail; done
	touch /tmp/rnull.stop
	wait "$reader"
	res rnull_parallel_direct_io $ok
	cat "$CFG/rnull0/stats" >"$out/rnull0.stats"
	for f in "${!before[@]}"; do after[$f]=$(rnull_stat rnull0 $f) || after[$f]=y; done
	ok=pass
	for f in read_ops:$((ncpu * R)) read_bytes:$((ncpu * R * 4096)) \
		write_ops:$((ncpu * W)) write_bytes:$((ncpu * W * 65536)) other_ops:0 busy:0 \
		size_le_4k:$((ncpu * R)) size_le_64k:$((ncpu * W)); do
		want=${f#*:} f=${f%%:*}
		v=$(delta "${before[$f]}" "${after[$f]}")
		[ "$v" = "$want" ] || { ok=fail; log "rnull0 $f: +$v, expected +$want"; }
	done
	res rnull_stats_exact $ok
	ok=pass
	for f in read_ops read_bytes write_ops write_bytes; do
		[ "$(rnull_cpu_sum rnull0 $f)" = "${after[$f]}" ] || { ok=fail; log "rnull0 $f: per-CPU sum differs"; }
	done
	# Every CPU submitted: each has writes of its own.
	v=$(awk '$1 ~ /^cpu[0-9]+$/ && $2 == "write_ops" && $3 > 0 { n++ } END { print n + 0 }' \
		"$CFG/rnull0/stats")
	[ "$v" -ge "$ncpu" ] || { ok=fail; log "rnull0: writes on $v CPUs, expected $ncpu"; }
	res rnull_stats_per_cpu $ok
	read -r n e </tmp/rnull.reads
}

# rnull0: optional statistics enabled while I/O runs: the first updates allocate (in a worker),
# the ones after that are exact.
rnull_position_statistics() {
	local i v
	taskset -c 0 dd if="$dev" of=/dev/null bs=4k count=2000 iflag=direct status=none &
	i=$!
	echo 1 >"$CFG/rnull0/position_stats"
	wait "$i"
	dd if="$dev" of=/dev/null bs=4k count=1 iflag=direct status=none
	sleep 1
	before[p]=$(rnull_stat rnull0 position_0)
	dd if="$dev" of=/dev/null bs=4k count=100 iflag=direct status=none
	after[p]=$(rnull_stat rnull0 position_0)
	v=$(delta "${before[p]}" "${after[p]}")
	[ "$v" = 100 ] && res rnull_position_stats_enabled_live pass ||
		{ res rnull_position_stats_enabled_live fail; log "position_0: +$v, expected +100"; }
}

# rnull1: the in-flight limit, first set while I/O runs (the queue is frozen to start counting).
rnull_inflight_limit_live() {
	local ok round reader pids i v f
	if ! dev1=$(rnull_on rnull1 size=64 blocksize=4096 irqmode=1); then
		res rnull_inflight_limit fail
	else
		ok=pass
		sleep 1
		before[rb]=$(rnull_stat rnull1 read_bytes)
		rm -f /tmp/rnull.stop
		rnull_reader rnull1 /tmp/rnull.stop >/tmp/rnull.reads &
		reader=$!
		for round in 1 2; do
			pids=
			for i in $(seq 0 $((ncpu - 1))); do
				taskset -c "$i" dd if="$dev1" of=/dev/null bs=1M count=16 skip=$((i * 16)) \
					iflag=direct status=none &
				pids+=" $!"
			done
			if [ $round = 1 ]; then
				sleep 0.2
				echo 1 >"$CFG/rnull1/inflight_limit" || ok=fail
			fi
			for i in $pids; do wait "$i" || ok=fail; done
		done
		touch /tmp/rnull.stop
		wait "$reader"
		read -r v f </tmp/rnull.reads
		n=$((${n:-0} + ${v:-0})) e=$((${e:-1} + ${f:-1}))
		cat "$CFG/rnull1/stats" >"$out/rnull1.stats"
		v=$(delta "${before[rb]}" "$(rnull_stat rnull1 read_bytes)")
		[ "$v" = $((2 * ncpu * 16 << 20)) ] || { ok=fail; log "rnull1 read_bytes: +$v"; }
		v=$(rnull_stat rnull1 busy)
		[ "$v" -gt 0 ] || { ok=fail; log "rnull1: no request refused with inflight_limit=1"; }
		log "rnull1: $v requests refused with inflight_limit=1"
		[ "$(rnull_stat rnull1 inflight)" = 0 ] || { ok=fail; log "rnull1: requests left in flight"; }
		[ "$(rnull_stat rnull1 inflight_limit)" = 1 ] || ok=fail
		res rnull_inflight_limit $ok
	fi
}

# rnull2: stats_enabled=0 without a limit, then with a limit set while I/O runs.
rnull_stats_disabled() {
	local ok v
	# With stats_enabled=0, no limit: every read completes (the block layer's counters say so)
	# and the I/O path leaves the statistics untouched.
	local zero="read_ops read_bytes write_ops write_bytes other_ops busy inflight size_le_128k"
	if ! dev2=$(rnull_on rnull2 size=64 blocksize=4096 irqmode=1 stats_enabled=0); then
		res rnull_stats_disabled_no_limit fail
		res rnull_inflight_limit_stats_disabled fail
	else
		ok=pass
		sleep 1
		before[s]=$(rnull_sectors_read rnull2)
		rnull_round "$dev2" || ok=fail
		rnull_read_exactly rnull2 "${before[s]}" 1 || ok=fail
		rnull_zero rnull2 $zero inflight_limit || ok=fail
		res rnull_stats_disabled_no_limit $ok

		# The same with a limit of 1: set while I/O runs (the queue is frozen to start
		# counting), in place from the start of the next round (which must see refusals),
		# then set to 0 and back to 1 while I/O runs. The limit is enforced, the count of
		# requests in flight ends at 0 (none leaked or uncounted twice), the statistics stay 0.
		ok=pass
		before[s]=$(rnull_sectors_read rnull2)
		rnull_round "$dev2" rnull_set rnull2 inflight_limit 1 || ok=fail
		before[busy]=$(rnull_stat rnull2 busy)
		rnull_round "$dev2" || ok=fail
		v=$(delta "${before[busy]}" "$(rnull_stat rnull2 busy)")
		[[ $v =~ ^[0-9]+$ ]] && [ "$v" -gt 0 ] ||
			{ ok=fail; log "rnull2: no request refused with inflight_limit=1 (+$v)"; }
		rnull_set rnull2 inflight_limit 0 || ok=fail
		rnull_round "$dev2" rnull_set rnull2 inflight_limit 1 || ok=fail
		cat "$CFG/rnull2/stats" >"$out/rnull2.stats"
		rnull_read_exactly rnull2 "${before[s]}" 3 || ok=fail
		rnull_limited_end_state rnull2 || ok=fail
		res rnull_inflight_limit_stats_disabled $ok
	fi
}

# rnull3: stats_enabled=0 and the limit set before power on, so that requests are counted in
# flight from the first one.
rnull_stats_disabled_limit_at_power_on() {
	local ok
	if ! dev3=$(rnull_on rnull3 size=64 blocksize=4096 irqmode=1 stats_enabled=0 \
		inflight_limit=1); then
		res rnull_inflight_limit_stats_disabled_power_on fail
	else
		ok=pass
		sleep 1
		before[s]=$(rnull_sectors_read rnull3)
		rnull_round "$dev3" || ok=fail
		cat "$CFG/rnull3/stats" >"$out/rnull3.stats"
		rnull_read_exactly rnull3 "${before[s]}" 1 || ok=fail
		rnull_limited_end_state rnull3 || ok=fail
		res rnull_inflight_limit_stats_disabled_power_on $ok
	fi
}

# rnull3: refused values. inflight_limit takes 0 to 4294967295; stats_enabled a boolean, and only
# while powered off. A refused write leaves the value as it was.
rnull_attribute_errors() {
	local ok
	ok=pass
	rnull_refused rnull3 inflight_limit -1 "Invalid argument" || ok=fail
	rnull_refused rnull3 inflight_limit 4294967296 "Invalid argument" || ok=fail
	rnull_refused rnull3 inflight_limit many "Invalid argument" || ok=fail
	[ "$(cat "$CFG/rnull3/inflight_limit")" = 1 ] || { ok=fail; log "rnull3: inflight_limit changed"; }
	rnull_refused rnull3 stats_enabled 1 "Device or resource busy" || ok=fail
	rnull_refused rnull3 stats_enabled maybe "Invalid argument" || ok=fail
	[ "$(cat "$CFG/rnull3/stats_enabled")" = 0 ] || { ok=fail; log "rnull3: stats_enabled changed"; }
	res rnull_attribute_errors $ok
}

case $boot in
clean)
	guest_ktap
	# This boot has 4 vCPUs, 3 brought up at boot (maxcpus=3), and QEMU could hot-add 4 more:
	# the KUnit hotplug suite found CPU 3 possible but offline and brought it online and
	# offline again, and CPUs 4-7 possible but absent (no CPU device), for which add_cpu() and
	# remove_cpu() gave ENODEV.
	p=$(cat /sys/devices/system/cpu/possible) o=$(cat /sys/devices/system/cpu/online)
	log "possible CPUs $p, present $(cat /sys/devices/system/cpu/present), online $o"
	ok=fail
	[ "$p" = 0-7 ] && [ "$o" = 0-2 ] && ok=pass
	res possible_cpu_offline_at_boot $ok
	ok=fail
	dmesg | grep -q " 4 CPU numbers absent, 1 offline" && ok=pass
	res possible_cpus_absent_enodev $ok
	guest_modules
	guest_params
	guest_faults
	rnull_tests
	;;
detect-rnull)
	# Scenario 3 of the selftests (percpu_alloc_in_atomic) in rnull's shape: a GFP_KERNEL per-CPU
	# allocation in queue_rq().
	mountpoint -q /sys/kernel/config || mount -t configfs none /sys/kernel/config
	insmod "$rnull"
	dev=$(rnull_on rnull0 size=16)
	echo 1 >"$CFG/rnull0/debug_alloc_in_queue_rq"
	dd if="$dev" of=/dev/null bs=4k count=4 iflag=direct status=none
	echo "dd=$?" >"$out/insmod"
	sleep 1
	;;
detect-*)
	guest_detect "${boot#detect-}"
	;;
run)
	log "insmod rust_percpu.ko"
	insmod "$sample" && dmesg | grep -E 'rust_percpu' | sed 's/^/  /'
	log "rmmod rust_percpu"
	rmmod rust_percpu && dmesg | grep -E 'rust_percpu.*exit' | sed 's/^/  /'
	;;
esac
guest_finish
[ "$boot" = run ] && { echo "lockdep: $(cat "$out/lockdep_stats")"; }
exit 0
