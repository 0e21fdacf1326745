#!/usr/bin/env bash
# SPDX-License-Identifier: GPL-2.0
# make check: every configuration of the matrix, each case a row tagged with its configuration;
# ends with "N passed, N failed, N skipped".
#   x86_64  the debug kernel: disassembly, compile-fail cases, a clean boot (KUnit suites,
#           doctests, sample, safe selftests, rnull) and one boot per must-detect scenario
#   prod    the production kernel: Rust against C by instruction count (scripts/bench.sh)
#   arm64-rt, riscv64-kasan, riscv64-up
#           the debug kernel cross-built, each with one more dimension (PREEMPT_RT; KASAN and
#           kmemleak with a load/unload stress under CPU hotplug; no SMP): disassembly, clean
#           and must-detect boots under QEMU
#   lint    the upstream gates (rustfmt, clippy, rustdoc, checkpatch, git am of the series)
#   MATRIX="x86_64 arm64-rt"     run only these configurations (default: all)
#   BOOTS="clean detect-1 ..."   run only these boots (default: all)
#   NOBUILD=1                    reuse the existing builds
#   NOBOOT=1                     only re-evaluate the results of the last boots
#   NOBENCH=1, NOLINT=1          drop prod, lint from the matrix

. "$(dirname "$0")/lib.sh"
. "$TOP/scripts/vm.sh"
. "$TOP/scripts/verdict.sh"

MATRIX=${MATRIX:-x86_64 prod arm64-rt riscv64-kasan riscv64-up lint}
[ -z "${NOBENCH:-}" ] || MATRIX=${MATRIX//prod/}
[ -z "${NOLINT:-}" ] || MATRIX=${MATRIX//lint/}
in_matrix() { [[ " $MATRIX " == *" $1 "* ]]; }
for c in $MATRIX; do
	case $c in x86_64 | prod | arm64-rt | riscv64-kasan | riscv64-up | lint) ;; *) die "unknown configuration '$c' in MATRIX" ;; esac
done

[ -n "${NOBUILD:-}" ] || "$TOP/scripts/setup.sh"
mkdir -p "$ART"

pass=0 fail=0 skip=0 CONFIG=x86_64
rows=()
declare -A cpass cfail cskip ctime
record() { # suite case pass|fail|skip [detail], in configuration $CONFIG
	rows+=("$(printf '%-13s %-28s %-44s %s %s' "$CONFIG" "$1" "$2" "$3" "${4:-}")")
	case $3 in
	pass) pass=$((pass + 1)) cpass[$CONFIG]=$((${cpass[$CONFIG]:-0} + 1)) ;;
	skip) skip=$((skip + 1)) cskip[$CONFIG]=$((${cskip[$CONFIG]:-0} + 1)) ;;
	*) fail=$((fail + 1)) cfail[$CONFIG]=$((${cfail[$CONFIG]:-0} + 1)) ;;
	esac
}
started=$(date +%s)
config_done() { ctime[$CONFIG]=$(( $(date +%s) - started )); started=$(date +%s); }

if in_matrix x86_64; then
	CONFIG=x86_64
	[ -n "${NOBUILD:-}" ] || "$TOP/scripts/build.sh"
	[ -f "$B/arch/x86/boot/bzImage" ] || die "no kernel in $B"
	"$TOP/scripts/disasm-check.sh" >"$ART/disasm.txt" 2>&1 || true
	cat "$ART/disasm.txt"
	n=0
	while read -r _ c st detail; do
		record disasm "$c" "$st" "$detail"; n=$((n + 1))
	done < <(grep -E '^case [a-z0-9_]+ (pass|fail)' "$ART/disasm.txt")
	[ "$n" -ge 8 ] || record disasm cases fail "$n cases ran, see results/disasm.txt"

	# Compile-fail cases: each "does not compile" claim, and a control that must build.
	"$TOP/scripts/compile-fail.sh" >"$ART/compile-fail.txt" 2>&1 || true
	n=0
	while read -r c st detail; do
		record compile_fail "$c" "$st" "$detail"; n=$((n + 1))
	done < <(grep -E '^cf_[a-z0-9_]+ (pass|fail)' "$ART/compile-fail.txt")
	want=$(find "$TOP/scripts/compile-fail" -name 'cf_*.rs' | wc -l)
	[ "$n" = "$want" ] || record compile_fail cases fail "$n of $want cases ran, see $ART/compile-fail.txt"

	for boot in ${BOOTS:-clean detect-1 detect-2 detect-3 detect-4 detect-5 detect-6 detect-rnull}; do
		[ -n "${NOBOOT:-}" ] || vm "$boot"
		dir=$ART/$boot
		verdict "$boot" "$dir"
	done
	config_done
fi

# Rust against C by instruction count on the production kernel (scripts/bench.sh).
if in_matrix prod; then
	CONFIG=prod
	. "$TOP/scripts/bench.sh"
	n=0
	while read -r c st detail; do
		record bench "$c" "$st" "$detail"; n=$((n + 1))
	done < <(bench_cases)
	[ "$n" -gt 0 ] || record bench rows fail "no benchmark row, see $ART/bench"
	config_done
fi

# The debug kernel on the other architectures (scripts/check-cross.sh).
for a in arm64-rt riscv64-kasan riscv64-up; do
	in_matrix $a || continue
	CONFIG=$a
	say "$a: build, disassembly, boots (log: $ART/$a.log)"
	n=0
	while read -r _ suite c st detail; do
		record "$suite" "$c" "$st" "$detail"; n=$((n + 1))
	done < <(B= VARIANT=$a "$TOP/scripts/check-cross.sh" 2> >(tee "$ART/$a.log" >&2) |
		grep -E '^row ')
	[ "$n" -gt 0 ] || record "$a" cases fail "no case ran, see $ART/$a.log"
	config_done
done

# The upstream gates (make lint), each a case.
if in_matrix lint; then
	CONFIG=lint
	say "lint gates (rustfmt, WERROR, clippy, rustdoc, checkpatch, git am of the series)"
	NOBUILD=1 "$TOP/scripts/lint.sh" >"$ART/lint.txt" 2>&1 || true
	n=0
	while read -r g st detail; do
		record lint "$g" "$st" "$detail"; n=$((n + 1))
	done < <(grep -E '^[a-z_]+ +(pass|fail)' "$ART/lint.txt")
	[ "$n" -gt 0 ] || record lint gates fail "no gate ran, see $ART/lint.txt"
	config_done
fi

printf '\n%-13s %-28s %-44s %s\n' CONFIG SUITE CASE RESULT
printf '%s\n' "${rows[@]}"
echo
for c in $MATRIX; do
	printf '%-13s %4d passed, %d failed, %d skipped in %ds\n' "$c" "${cpass[$c]:-0}" \
		"${cfail[$c]:-0}" "${cskip[$c]:-0}" "${ctime[$c]:-0}"
done
echo "$pass passed, $fail failed, $skip skipped"
[ "$fail" = 0 ] && [ "$pass" -gt 0 ]
