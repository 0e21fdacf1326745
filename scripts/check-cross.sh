#!/usr/bin/env bash
# SPDX-License-Identifier: GPL-2.0
# The cross-architecture part of make check, for VARIANT=arm64-rt, riscv64-kasan or riscv64-up:
# build the test kernel of that configuration, check the per-CPU add's instructions, boot it
# clean and once per must-detect scenario (scripts/xvm.sh), and give each boot's verdict as make
# check does on x86_64. Prints one "row SUITE CASE pass|fail|skip [DETAIL]" line per case for check.sh.
#   NOBUILD=1, NOBOOT=1, BOOTS="..." as for check.sh

. "$(dirname "$0")/lib.sh"
. "$TOP/scripts/xvm.sh"
. "$TOP/scripts/verdict.sh"

record() { echo "row $1 $2 $3 ${4:-}"; }

if [ -z "${NOBUILD:-}" ]; then
	"$TOP/scripts/build.sh" >&2 || { record build "$VARIANT" fail "see $B/build.log"; exit 0; }
fi
[ -f "$(kimage)" ] || { record build "$VARIANT" fail "no kernel at $(kimage)"; exit 0; }
mkdir -p "$ART"

"$TOP/scripts/disasm-check.sh" >"$ART/$VARIANT-disasm.txt" 2>&1 || true
cat "$ART/$VARIANT-disasm.txt" >&2
n=0
while read -r _ c st detail; do
	record disasm "$c" "$st" "$detail"; n=$((n + 1))
done < <(grep -E '^case [a-z0-9_]+ (pass|fail)' "$ART/$VARIANT-disasm.txt")
[ "$n" -ge 3 ] || record disasm cases fail "$n cases ran, see $ART/$VARIANT-disasm.txt"

# rnull's boot needs the bash guest of x86_64 (block I/O from every CPU at once): not here.
for boot in ${BOOTS:-clean detect-1 detect-2 detect-3 detect-4 detect-5 detect-6}; do
	[ -n "${NOBOOT:-}" ] || xvm "$boot" >&2
	verdict "$boot" "$ART/$VARIANT-$boot"
done
