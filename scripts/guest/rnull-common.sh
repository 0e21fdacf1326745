# SPDX-License-Identifier: GPL-2.0
# rnull's helpers and its allocation failure, hostile-input and teardown cases (bash), shared by
# guest.sh (x86_64) and rnull-failure.sh (riscv64-kasan). Sourced after guest-common.sh.
rnull=$mods/drivers/block/rnull/rnull_mod.ko
CFG=/sys/kernel/config/rnull

# rnull_node NAME: print the block device node of the powered disk NAME (made in /tmp if devtmpfs
# has none).
rnull_node() {
	local dev=/dev/$1
	if [ ! -b "$dev" ]; then
		dev=/tmp/$1
		rm -f "$dev"
		mknod "$dev" b $(tr ':' ' ' <"/sys/block/$1/dev") || return 1
	fi
	echo "$dev"
}
# rnull_stat NAME FIELD: the total of FIELD in the stats attribute of NAME.
rnull_stat() { awk -v f="$2" '$1 == f { print $2; n++ } END { if (n != 1) exit 1 }' "$CFG/$1/stats"; }
# rnull_cpu_sum NAME FIELD: the sum of the per-CPU lines of FIELD.
rnull_cpu_sum() { awk -v f="$2" '$1 ~ /^cpu[0-9]+$/ && $2 == f { s += $3 } END { print s + 0 }' "$CFG/$1/stats"; }
# delta A B: B - A if both are integers, else "?".
delta() { [[ $1 =~ ^[0-9]+$ && $2 =~ ^[0-9]+$ ]] && echo $(($2 - $1)) || echo "?"; }
# rnull_set NAME ATTR VALUE: write VALUE to the attribute ATTR of NAME.
rnull_set() { echo "$3" >"$CFG/$1/$2"; }

# rnull_fail_each CASE NAME ATTR VALUE UNCHANGED UNDO [ERRORS]: write VALUE to ATTR of NAME with
# its 1st, 2nd, ... fault point failed in turn (fail_nth_write) until the write succeeds without a
# fault. Each failed write must fail with ENOMEM (or an error of the regular expression ERRORS)
# and leave the command UNCHANGED true; a write that succeeded although a fault was injected (in
# an allocation with a fallback) is undone with the command UNDO before the next one.
# RNULL_FAULT_STRIDE=S fails the 1st, (1+S)-th, (1+2S)-th, ... point instead (riscv64-kasan,
# where each attempt is slow).
rnull_fail_each() {
	local case=$1 name=$2 attr=$3 value=$4 unchanged=$5 undo=$6 errors=${7:-"Cannot allocate memory"}
	local n=1 failed=0 absorbed=0 ok=pass stride=${RNULL_FAULT_STRIDE:-1}
	while [ $n -le 4000 ]; do
		fail_nth_write "$CFG/$name/$attr" "$value" $n || { ok=fail; break; }
		if [ "$FNW_RC" = 0 ]; then
			[ "$FNW_INJECTED" = 0 ] && break
			absorbed=$((absorbed + 1))
			$undo || { ok=fail; log "$case: undo after fault $n failed"; }
		else
			[ "$FNW_INJECTED" = 1 ] || { ok=fail; log "$case: failed without a fault: $FNW_ERR"; }
			[[ $FNW_ERR =~ $errors ]] ||
				{ ok=fail; log "$case: fault $n: $FNW_ERR"; }
			$unchanged || { ok=fail; log "$case: fault $n changed the state"; }
			failed=$((failed + 1))
		fi
		n=$((n + stride))
	done
	[ $n -le 4000 ] && [ $failed -gt 0 ] || ok=fail
	if [ "$stride" = 1 ]; then
		log "$case: $((n - 1)) allocation points failed: $failed with ENOMEM, $absorbed absorbed"
	else
		log "$case: $((n - stride)) to $((n - 1)) allocation points, every ${stride}th of them" \
			"failed ($((failed + absorbed))): $failed with ENOMEM, $absorbed absorbed"
	fi
	res "$case" $ok
}
rnull4_off() {
	local p
	read -r p <"$CFG/rnull4/power" && [ "$p" = 0 ] && [ ! -e /sys/block/rnull4 ]
}
rnull4_no_limit() {
	[ "$(cat "$CFG/rnull4/inflight_limit")" = 0 ] && [ "$(rnull_stat rnull4 inflight_limit)" = 0 ]
}
rnull4_read() { dd if="$1" of=/dev/null bs=4k count="$2" iflag=direct status=none; }

# rnull4: power on with statistics, and the first in-flight limit (allocated with the queue
# frozen), with each allocation failed in turn; then the per-CPU allocation of the statistics by
# position failing in the worker. The device works after each.
rnull_faults() {
	local ok dev4 v
	[ -d /sys/kernel/debug/fail_percpu ] || return 0
	mkdir "$CFG/rnull4" && rnull_set rnull4 size 16 && rnull_set rnull4 irqmode 1 ||
		{ res rnull_faults_setup fail; return; }
	fault_knobs N
	# Power on: the block layer's __add_disk() ignores a failed dev_set_name(), and device_add()
	# then fails with EINVAL: that error is the block layer's, passed on.
	rnull_fail_each rnull_faults_power_on rnull4 power 1 rnull4_off "rnull_set rnull4 power 0" \
		"Cannot allocate memory|Invalid argument"
	rnull_fail_each rnull_faults_first_inflight_limit rnull4 inflight_limit 1 rnull4_no_limit \
		"rnull_set rnull4 inflight_limit 0"
	ok=pass
	dev4=$(rnull_node rnull4) || ok=fail
	rnull4_read $dev4 16 || ok=fail
	# The worker's per-CPU allocation for the statistics by position: the next per-CPU
	# allocation of any task fails, once. No process is created while that is armed (fork
	# allocates per-CPU memory): the request is a bash write to the disk's page cache, written
	# back when the disk is closed, and the wait is a read timeout.
	rm -f /tmp/rnull4.wait && mkfifo /tmp/rnull4.wait && exec 5<>/tmp/rnull4.wait || ok=fail
	echo 1 >/sys/kernel/debug/fail_percpu/times
	echo 100 >/sys/kernel/debug/fail_percpu/probability
	rnull_set rnull4 position_stats 1 || ok=fail
	{ exec 4>$dev4 && echo x >&4 && exec 4>&-; } || ok=fail
	read -r -t 2 -u 5 v
	read -r v </sys/kernel/debug/fail_percpu/times
	echo 0 >/sys/kernel/debug/fail_percpu/probability
	echo 1 >/sys/kernel/debug/fail_percpu/times
	exec 5>&-
	[ "$v" = 0 ] || { ok=fail; log "rnull4: the position statistics' allocation did not fail"; }
	# The update was missed, none counted.
	[ "$(rnull_stat rnull4 position_0)" = 0 ] && [ "$(rnull_stat rnull4 position_missed)" -ge 1 ] ||
		{ ok=fail; log "rnull4: position statistics counted without their allocation"; }
	# Not allocated: the updates are missed, and the next one queues the allocation again.
	rnull4_read $dev4 1 || ok=fail
	sleep 1
	v=$(rnull_stat rnull4 position_0)
	rnull4_read $dev4 100 || ok=fail
	v=$(delta "$v" "$(rnull_stat rnull4 position_0)")
	[ "$v" = 100 ] || { ok=fail; log "rnull4 position_0 after a failed allocation: +$v"; }
	res rnull_faults_position_stats_worker $ok
	fault_knobs Y
}

# rnull5: hostile input to every configfs attribute while I/O runs (scripts/guest/rnull_fuzz.py),
# from a seeded generator: the seed is xseed= on the kernel command line (make check
# FUZZ_SEED=N), 1 by default; RNULL_FUZZ_WRITES checked writes (3000 by default).
rnull_fuzz() {
	local seed line n=0
	seed=$(xparam xseed)
	seed=${seed:-1}
	while read -r line; do
		case $line in
		case\ *) res ${line#case }; n=$((n + 1)) ;;
		log\ *) log "${line#log }" ;;
		*) log "rnull fuzz: $line" ;; # a traceback, for instance
		esac
	done < <(python3 "$(dirname "$0")/rnull_fuzz.py" "$CFG" rnull5 "$seed" "${RNULL_FUZZ_WRITES:-3000}" 2>&1)
	[ $n = 4 ] || res rnull_fuzz_complete fail
}

# Power off, remove, unload: nothing left behind.
rnull_teardown() {
	local ok i
	ok=pass
	for i in rnull0 rnull1 rnull2 rnull3 rnull4 rnull5; do
		[ -d "$CFG/$i" ] || continue
		echo 0 >"$CFG/$i/power" || ok=fail
		[ -e "/sys/block/$i" ] && { ok=fail; log "$i still exists after power off"; }
		rnull_stat "$i" write_ops >/dev/null || ok=fail # readable after power off
		rmdir "$CFG/$i" || ok=fail
	done
	sleep 1 # let a pending statistics allocation work item run before the module goes
	rmmod rnull_mod || ok=fail
	grep -q '^rnull_mod ' /proc/modules && ok=fail
	[ -e "$CFG" ] && { ok=fail; log "$CFG left behind"; }
	ls /sys/block | grep -q rnull && ok=fail
	res rnull_teardown $ok
}
