#!/usr/bin/env bash
# SPDX-License-Identifier: GPL-2.0
# The cross-architecture part of make check, for VARIANT=arm64-rt, riscv64-kasan or riscv64-up:
# build the test kernel of that configuration, check the per-CPU add's instructions, boot it
# clean and once per must-detect scenario (scripts/launch/xvm.sh), and give each boot's verdict as make
# check does on x86_64. Each step writes its KTAP document (ktap_begin in lib.sh).
#   NOBUILD=1, NOBOOT=1, BOOTS="..." as for check.sh

. "$(dirname "$0")/../lib.sh"
. "$TOP/scripts/launch/xvm.sh"
. "$TOP/scripts/check/verdict.sh"

mkdir -p "$ART"
ktap_begin build 1
if [ -z "${NOBUILD:-}" ] && ! "$TOP/scripts/host/build.sh" >&2; then
	case_result build "$VARIANT" fail "see $B/build.log"
elif [ ! -f "$(kimage)" ]; then
	case_result build "$VARIANT" fail "no kernel at $(kimage)"
else
	case_result build "$VARIANT" pass
fi
ktap_end
[ -f "$(kimage)" ] || exit 0

"$TOP/scripts/check/disasm-check.sh" >"$ART/$VARIANT-disasm.txt" 2>&1 || true

# rnull's boot needs the bash guest of x86_64 (block I/O from every CPU at once): not here.
for boot in ${BOOTS:-clean detect-1 detect-2 detect-3 detect-4 detect-5 detect-6}; do
	[ -n "${NOBOOT:-}" ] || xvm "$boot" >&2
	verdict "$boot" "$ART/$VARIANT-$boot"
done
