#!/bin/sh
# SPDX-License-Identifier: GPL-2.0
# Runs inside the cross-architecture test VM (busybox sh, from the initramfs of scripts/xvm.sh).
#   guest-cross.sh BOOT OUTDIR MODDIR
# BOOT: clean | detect-N. The clean boot does what guest.sh's does but rnull's block I/O from
# every CPU (which needs bash): KUnit results, possible/online CPUs, the sample, the selftests.
set -u
boot=$1 out=$2 mods=$3
. "$(dirname "$0")/guest-common.sh"

case $boot in
clean)
	guest_ktap
	# 4 CPUs, 3 brought up at boot (maxcpus=3): the KUnit hotplug suite found CPU 3 possible
	# but offline.
	p=$(cat /sys/devices/system/cpu/possible) o=$(cat /sys/devices/system/cpu/online)
	log "possible CPUs $p, online $o"
	if [ "$p" = 0-3 ] && [ "$o" = 0-2 ] && dmesg | grep -q " 0 CPU numbers absent, 1 offline"; then
		res possible_cpu_offline_at_boot pass
	else
		res possible_cpu_offline_at_boot fail
	fi
	guest_modules
	;;
detect-*)
	guest_detect "${boot#detect-}"
	;;
esac
guest_finish
exit 0
