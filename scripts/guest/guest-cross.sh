#!/bin/sh
# SPDX-License-Identifier: GPL-2.0
# Runs inside the cross-architecture test VM (busybox sh, from the initramfs of scripts/launch/xvm.sh).
#   guest-cross.sh BOOT OUTDIR MODDIR
# BOOT: clean | detect-N. The clean boot does what guest.sh's does but rnull's block I/O from
# every CPU (which needs bash): KUnit results, possible/online CPUs, the sample, the selftests.
set -u
boot=$1 out=$2 mods=$3
. "$(dirname "$0")/guest-common.sh"

# The KASAN + kmemleak stress (riscv64-kasan): 100 load/unload cycles of the sample, 20 of the
# selftests, 20 more of each while CPU 2 goes offline and online in a loop, then a kmemleak scan.
# Each result is a case; KASAN reports and kmemleak's own messages also fail the boot's verdict.
guest_stress() {
	ok=pass i=0
	while [ $i -lt 100 ]; do
		{ insmod "$sample" ops=100 && rmmod rust_percpu; } || ok=fail
		i=$((i + 1))
	done
	res stress_sample_load_unload_x100 $ok
	ok=pass i=0
	while [ $i -lt 20 ]; do
		{ insmod "$selftest" && rmmod rust_percpu_lockdep; } || ok=fail
		i=$((i + 1))
	done
	res stress_selftest_load_unload_x20 $ok
	cpu=/sys/devices/system/cpu/cpu2/online
	rm -f /tmp/stop
	(
		n=0
		while [ ! -e /tmp/stop ]; do
			echo 0 >$cpu && sleep 0.2 && echo 1 >$cpu && n=$((n + 1))
			sleep 0.2
		done
		echo $n >/tmp/hotplug-cycles
	) &
	ok=pass i=0
	while [ $i -lt 20 ]; do
		{ insmod "$sample" ops=100 && rmmod rust_percpu; } || ok=fail
		{ insmod "$selftest" && rmmod rust_percpu_lockdep; } || ok=fail
		i=$((i + 1))
	done
	touch /tmp/stop
	wait
	cycles=$(cat /tmp/hotplug-cycles 2>/dev/null || echo 0)
	log "stress: $cycles offline/online cycles of CPU 2 during 20 load/unload cycles"
	[ "$cycles" -gt 0 ] && [ "$(cat $cpu)" = 1 ] || ok=fail
	res stress_load_unload_x20_during_cpu_hotplug $ok
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
	if grep -q xup=1 /proc/cmdline; then
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
	! grep -q xstress=1 /proc/cmdline || guest_stress
	;;
detect-*)
	guest_detect "${boot#detect-}"
	;;
esac
guest_finish
exit 0
