#!/bin/sh
# SPDX-License-Identifier: GPL-2.0
# Runs inside the cross-architecture test VM (busybox sh, from the initramfs of scripts/launch/xvm.sh).
#   guest-cross.sh BOOT OUTDIR MODDIR
# BOOT: clean | detect-N. The clean boot does what guest.sh's does but rnull's block I/O from
# every CPU (which needs bash): KUnit results, possible/online CPUs, the sample, the selftests.
set -u
boot=$1 out=$2 mods=$3
. "$(dirname "$0")/guest-common.sh"
: >"$out/cases"

# The stress (riscv64-kasan, under KASAN, kmemleak and lockdep): for SECONDS (xduration= on the
# command line; make check 90, make stress DURATION=...), all at once: load/unload cycles of the
# sample and of the selftests (their safe scenarios include the deferred allocation), CPUs 1 and 2
# taken offline and online in turn, direct I/O on an rnull disk, and its statistics by
# position, in-flight limit and power toggled live (stats_enabled flipped while it is off).
# A line per minute; then each part's result, a kmemleak scan and the KASAN count are cases.
guest_stress() { # SECONDS
	end=$(($(date +%s) + $1)) minute=$(($(date +%s) + 60)) cycles=0 ok=pass
	rm -f /tmp/stop /tmp/hotplug /tmp/io /tmp/toggles
	stress_rnull_setup || res stress_rnull_setup fail
	stress_hotplug &
	stress_io &
	stress_toggles &
	while [ "$(date +%s)" -lt $end ]; do
		{ insmod "$sample" ops=100 && rmmod rust_percpu; } || ok=fail
		{ insmod "$selftest" && rmmod rust_percpu_lockdep; } || ok=fail
		cycles=$((cycles + 1))
		if [ "$(date +%s)" -ge $minute ]; then
			minute=$((minute + 60))
			log "stress: $cycles load/unload cycles, $(cat /tmp/hotplug 2>/dev/null) CPU" \
				"transitions, $(cat /tmp/io 2>/dev/null) I/O runs, $(cat /tmp/toggles 2>/dev/null) toggles"
		fi
	done
	touch /tmp/stop
	wait
	stress_results
}

# rnull: a 64 MiB disk with completions in softirq (irqmode=1).
stress_rnull_setup() {
	grep -q " /sys/kernel/config " /proc/mounts || mount -t configfs none /sys/kernel/config
	insmod "$mods/drivers/block/rnull/rnull_mod.ko" && mkdir /sys/kernel/config/rnull/stress &&
		echo 64 >/sys/kernel/config/rnull/stress/size &&
		echo 1 >/sys/kernel/config/rnull/stress/irqmode &&
		echo 1 >/sys/kernel/config/rnull/stress/power
}

# Every CPU but 0 that was online at boot (1 and 2) offline, then online, in turn; counts
# transitions in /tmp/hotplug. CPU 3, offline at boot (maxcpus=3), stays the possible CPU that
# was never online; the KUnit hotplug suites bring it up and down once.
stress_hotplug() {
	n=0
	while [ ! -e /tmp/stop ]; do
		for c in /sys/devices/system/cpu/cpu[12]/online; do
			echo 0 >"$c" && n=$((n + 1))
			echo 1 >"$c" && n=$((n + 1))
			echo $n >/tmp/hotplug
		done
	done
}

# Direct reads and writes of the rnull disk while it exists; counts runs in /tmp/io.
# The disk's node is made in /tmp from its device number: a write to /dev/stress while the disk
# is off would create a regular file there, which devtmpfs then cannot replace.
stress_node() {
	dev=$(cat /sys/block/stress/dev 2>/dev/null) || return 1
	node=/tmp/stress-${dev%:*}-${dev#*:}
	[ -b "$node" ] || mknod "$node" b "${dev%:*}" "${dev#*:}"
}

stress_io() {
	n=0 f=0 w=0
	while [ ! -e /tmp/stop ]; do
		if stress_node; then
			dd if="$node" of=/dev/null bs=4k count=64 iflag=direct 2>/dev/null &&
				n=$((n + 1)) || f=$((f + 1))
			dd if=/dev/zero of="$node" bs=4k count=64 oflag=direct 2>/dev/null &&
				n=$((n + 1)) || f=$((f + 1))
		else
			w=$((w + 1))
			sleep 0.1
		fi
		echo "$n ($f failed, $w waits for the disk)" >/tmp/io
	done
}

# The disk's settings changed under I/O: statistics by position on and off, the in-flight limit
# 1, 4 and 0, and every 8th round a power cycle with stats_enabled flipped while off.
stress_toggles() {
	d=/sys/kernel/config/rnull/stress n=0
	while [ ! -e /tmp/stop ]; do
		echo $((n % 2)) >$d/position_stats
		echo 1 >$d/inflight_limit
		sleep 0.1
		echo 4 >$d/inflight_limit
		sleep 0.1
		echo 0 >$d/inflight_limit
		if [ $((n % 8)) = 7 ]; then
			echo 0 >$d/power
			echo $(((n / 8) % 2)) >$d/stats_enabled
			echo 1 >$d/power
		fi
		n=$((n + 1))
		echo $n >/tmp/toggles
	done
}

stress_results() {
	log "stress: $cycles load/unload cycles, $(cat /tmp/hotplug 2>/dev/null) CPU transitions," \
		"$(cat /tmp/io) I/O runs, $(cat /tmp/toggles) toggles"
	res stress_load_unload $ok
	ok=pass
	[ "$(cat /tmp/hotplug 2>/dev/null || echo 0)" -gt 0 ] || ok=fail
	for c in /sys/devices/system/cpu/cpu[12]/online; do [ "$(cat "$c")" = 1 ] || ok=fail; done
	res stress_cpu_hotplug $ok
	ok=pass
	d=/sys/kernel/config/rnull/stress
	[ "$(cut -d' ' -f1 /tmp/io 2>/dev/null || echo 0)" -gt 0 ] || ok=fail
	echo 1 >$d/stats_enabled 2>/dev/null
	echo 1 >$d/power || ok=fail
	{ stress_node && dd if="$node" of=/dev/null bs=4k count=64 iflag=direct 2>/dev/null; } || ok=fail
	# Quiet: the per-CPU sums of the statistics equal their totals.
	for f in read_ops read_bytes write_ops write_bytes; do
		t=$(awk -v f=$f '$1 == f { print $2 }' $d/stats)
		c=$(awk -v f=$f '$1 ~ /^cpu[0-9]+$/ && $2 == f { s += $3 } END { print s + 0 }' $d/stats)
		[ -n "$t" ] && [ "$t" = "$c" ] || { ok=fail; log "stress: rnull $f total $t, per-CPU $c"; }
	done
	echo 0 >$d/power && rmdir $d && rmmod rnull_mod || ok=fail
	res stress_rnull_io_toggles $ok
	# kmemleak reports objects unreferenced for 5 s or more: wait, then scan twice.
	sleep 6
	echo scan >/sys/kernel/debug/kmemleak
	echo scan >/sys/kernel/debug/kmemleak
	cat /sys/kernel/debug/kmemleak >"$out/kmemleak"
	leaks=$(grep -c '^unreferenced object' "$out/kmemleak")
	log "kmemleak: $leaks unreferenced objects"
	if [ "$leaks" = 0 ]; then res kmemleak_no_leaks pass; else res kmemleak_no_leaks fail; fi
	kasan=$(dmesg | grep -c 'BUG: KASAN')
	log "KASAN: $kasan reports"
	if [ "$kasan" = 0 ]; then res kasan_no_reports pass; else res kasan_no_reports fail; fi
}

case $boot in
clean)
	guest_ktap
	p=$(cat /sys/devices/system/cpu/possible) o=$(cat /sys/devices/system/cpu/online)
	log "possible CPUs $p, online $o"
	if [ "$(xparam xup)" = 1 ]; then
		# riscv64-up: one CPU, and no hotplug.
		if [ "$p" = 0 ] && [ "$o" = 0 ]; then
			res uniprocessor_one_cpu pass
		else
			res uniprocessor_one_cpu fail
		fi
	# 4 CPUs, 3 brought up at boot (maxcpus=3): the KUnit hotplug suite found CPU 3 possible
	# but offline.
	elif [ "$p" = 0-3 ] && [ "$o" = 0-2 ] && dmesg | grep -q " 0 CPU numbers absent, 1 offline"; then
		res possible_cpu_offline_at_boot pass
	else
		res possible_cpu_offline_at_boot fail
	fi
	guest_modules
	if [ "$(xparam xstress)" = 1 ]; then
		guest_params
		guest_faults
		# rnull's allocation failure and hostile-input cases, as on x86_64 (bash and Python
		# from Debian, shared over 9p by scripts/launch/xvm.sh).
		if command -v bash >/dev/null && command -v python3 >/dev/null; then
			bash "$(dirname "$0")/rnull-failure.sh" "$out" "$mods"
		else
			res rnull_failure_userland fail
		fi
	fi
	if [ "$(xparam xstress)" = 1 ]; then
		guest_stress "$(xparam xduration)"
	fi
	;;
detect-*)
	guest_detect "${boot#detect-}"
	;;
esac
guest_finish
exit 0
