#!/bin/bash
# SPDX-License-Identifier: GPL-2.0
# Runs inside the riscv64-kasan VM (guest-cross.sh, before the stress): rnull's allocation
# failure and hostile-input cases of guest.sh, under KASAN and kmemleak. Its cases join the boot's.
#   rnull-failure.sh OUTDIR MODDIR
set -u
out=$1 mods=$2
. "$(dirname "$0")/guest-common.sh"
. "$(dirname "$0")/rnull-common.sh"

# Power on reaches some 760 fault points here (KASAN's and kmemleak's own allocations too), each
# attempt taking seconds: make check fails every 8th (x86_64 fails each of its some 390), make
# stress each (xstride=1 on the command line, scripts/launch/xvm.sh).
stride=$(xparam xstride)
export RNULL_FAULT_STRIDE=${stride:-8}
# Python runs slowly there too: 600 checked writes and 2 x 150 concurrent (x86_64: 3000).
export RNULL_FUZZ_WRITES=600
# (busybox-static has no mountpoint applet)
grep -q ' /sys/kernel/config ' /proc/mounts || mount -t configfs none /sys/kernel/config
if ! insmod "$rnull"; then
	res rnull_load fail
	exit 0
fi
rnull_faults
rnull_fuzz
rnull_teardown
