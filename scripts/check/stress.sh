#!/usr/bin/env bash
# SPDX-License-Identifier: GPL-2.0
# make stress DURATION=SECONDS (default 600): the riscv64-kasan clean boot (KASAN, kmemleak,
# lockdep) with its stress running for DURATION seconds: module load/unload, CPU hotplug of every
# CPU but 0, rnull direct I/O with its statistics, limit and power toggled live, and the
# deferred allocation of the selftests (scripts/guest/guest-cross.sh, guest_stress). Prints the
# guest's line per minute, then the boot's verdict as make check gives it, and
# "N passed, N failed". Results in results/stress/. NOBUILD=1 reuses the kernel.
export VARIANT=riscv64-kasan
export ART=${ART:-$(cd "$(dirname "$0")/../.." && pwd)/results/stress}
. "$(dirname "$0")/../lib.sh"
. "$TOP/scripts/launch/xvm.sh"
. "$TOP/scripts/check/verdict.sh"

DURATION=${DURATION:-600}
[[ $DURATION =~ ^[0-9]+$ ]] && [ "$DURATION" -ge 10 ] || die "DURATION=$DURATION: seconds, at least 10"
if [ -z "${NOBUILD:-}" ]; then
	"$TOP/scripts/host/setup.sh"
	"$TOP/scripts/host/build.sh" || die "build failed, see $B/build.log"
fi
mkdir -p "$ART"
dir=$ART/$VARIANT-clean
say "stress: riscv64-kasan, $DURATION s after the clean boot's tests (console: $dir/console)"
rm -rf "$dir"
(
	until [ -e "$dir/console" ]; do sleep 1; done
	tail -n +1 -F "$dir/console" 2>/dev/null | grep --line-buffered -E '^guest: (stress|kmemleak|KASAN)'
) &
follower=$!
FORCE=1 STRESS_SECONDS=$DURATION xvm clean || true
kill "$follower" 2>/dev/null || true
verdict clean "$dir" | tee "$ART/verdict.txt"
awk '$3 == "pass" { p++ } $3 == "fail" { f++ } $3 == "skip" { s++ }
	END { printf "%d passed, %d failed, %d skipped\n", p, f, s; exit f > 0 }' "$ART/verdict.txt"
