#!/usr/bin/env bash
# SPDX-License-Identifier: GPL-2.0
# make check: every configuration of the matrix, each case a row tagged with its configuration;
# ends with "N passed, N failed, N skipped".
#   x86_64  the debug kernel: disassembly, compile-fail cases, a clean boot (KUnit suites,
#           doctests, sample, safe selftests, rnull) and one boot per must-detect scenario
#   prod    the production kernel: Rust against C by instruction count (scripts/check/bench.sh)
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

. "$(dirname "$0")/../lib.sh"
. "$TOP/scripts/launch/vm.sh"
. "$TOP/scripts/launch/xvm.sh"
. "$TOP/scripts/check/verdict.sh"

MATRIX=${MATRIX:-x86_64 prod arm64-rt riscv64-kasan riscv64-up lint}
[ -z "${NOBENCH:-}" ] || MATRIX=${MATRIX//prod/}
[ -z "${NOLINT:-}" ] || MATRIX=${MATRIX//lint/}
in_matrix() { [[ " $MATRIX " == *" $1 "* ]]; }
for c in $MATRIX; do
	case $c in x86_64 | prod | arm64-rt | riscv64-kasan | riscv64-up | lint) ;; *) die "unknown configuration '$c' in MATRIX" ;; esac
done

[ -n "${NOBUILD:-}" ] || "$TOP/scripts/host/setup.sh"
mkdir -p "$ART"

declare -A ctime expect
started=$(date +%s)
nconf=$(echo $MATRIX | wc -w) iconf=0
# What each configuration does, and how long it took from a fresh clone on 2 cores (README).
declare -A WHAT=([x86_64]="build, disassembly, compile-fail, 8 boots, kunit.py" [prod]="build, 3 bench boots"
	[arm64-rt]="build, disassembly, 7 boots" [riscv64-kasan]="build, disassembly, 7 boots"
	[riscv64-up]="build, disassembly, 7 boots" [lint]="clippy build, rustdoc, htmldocs, series")
declare -A FRESH=([x86_64]=24 [prod]=15 [arm64-rt]=13 [riscv64-kasan]=23 [riscv64-up]=11 [lint]=4)
config_begin() { # CONFIG STEPS...: the KTAP documents the configuration must leave
	export CONFIG=$1
	shift
	expect[$CONFIG]="$*"
	rm -rf "$ART/ktap/$CONFIG"
	mkdir -p "$ART/ktap/$CONFIG"
	started=$(date +%s)
	[ -n "${WHAT[$CONFIG]:-}" ] || return 0
	iconf=$((iconf + 1))
	local last
	last=$(cat "$CACHE/timings/$CONFIG" 2>/dev/null || true)
	say "[$iconf/$nconf] $CONFIG: ${WHAT[$CONFIG]} (about ${FRESH[$CONFIG]} min on 2 cores from scratch${last:+; ${last}s here last time})"
}
config_done() {
	ctime[$CONFIG]=$(( $(date +%s) - started ))
	mkdir -p "$CACHE/timings"
	echo "${ctime[$CONFIG]}" >"$CACHE/timings/$CONFIG"
}
x86_boots=${BOOTS:-clean detect-1 detect-2 detect-3 detect-4 detect-5 detect-6 detect-rnull}
cross_boots=${BOOTS:-clean detect-1 detect-2 detect-3 detect-4 detect-5 detect-6}

if in_matrix x86_64; then
	config_begin x86_64 build disasm compile-fail $x86_boots kunit-py-config kunit-py
	ktap_begin build 1
	if [ -z "${NOBUILD:-}" ] && ! "$TOP/scripts/host/build.sh"; then
		case_result build x86_64 fail "see $B/build.log"
	elif [ -f "$B/arch/x86/boot/bzImage" ]; then
		case_result build x86_64 pass
	else
		case_result build x86_64 fail "no kernel in $B"
	fi
	ktap_end
	if [ -f "$B/arch/x86/boot/bzImage" ]; then
		"$TOP/scripts/check/disasm-check.sh" >"$ART/disasm.txt" 2>&1 || true
		cat "$ART/disasm.txt"
		# Compile-fail cases: each "does not compile" claim, and a control that must build.
		"$TOP/scripts/check/compile-fail.sh" >"$ART/compile-fail.txt" 2>&1 || true
		# The clean boot and rnull's must-detect boot need the host's programs (virtme-ng);
		# the selftests' must-detect boots do not, and boot as the cross boots do (xvm.sh).
		for boot in $x86_boots; do
			if [ -z "${NOBOOT:-}" ]; then
				case $boot in detect-[0-9]*) xvm "$boot" ;; *) vm "$boot" ;; esac
			fi
			verdict "$boot" "$ART/$boot"
		done
		# The kunit.py path of the README: its config step and its exec on this kernel.
		"$TOP/scripts/check/kunit-py.sh" || true
	fi
	config_done
fi

# Rust against C by instruction count on the production kernel (scripts/check/bench.sh).
if in_matrix prod; then
	config_begin prod bench
	(unset B VARIANT; VARIANT=prod "$TOP/scripts/check/bench.sh" cases) || true
	config_done
fi

# The debug kernel on the other architectures (scripts/check/check-cross.sh).
for a in arm64-rt riscv64-kasan riscv64-up; do
	in_matrix $a || continue
	config_begin $a build disasm $cross_boots
	say "  log: $ART/$a.log"
	B= VARIANT=$a "$TOP/scripts/check/check-cross.sh" 2>&1 | tee "$ART/$a.log" |
		grep --line-buffered -E '^==> ' || true
	config_done
done

# The upstream gates (make lint), each a case.
if in_matrix lint; then
	config_begin lint lint
	# The gates need the x86_64 test kernel: built above, or here.
	if in_matrix x86_64; then
		NOBUILD=1 "$TOP/scripts/check/lint.sh" >"$ART/lint.txt" 2>&1 || true
	else
		"$TOP/scripts/check/lint.sh" >"$ART/lint.txt" 2>&1 || true
	fi
	config_done
fi

# results/index.html, one self-contained page of the results, parsed back: its own step.
KPY=$S/tools/testing/kunit/kunit.py
config_begin report report
python3 "$TOP/scripts/report.py" write "$ART" "$KPY" $MATRIX || true
ktap_begin report 1
python3 "$TOP/scripts/report.py" check "$ART" $MATRIX |
	while IFS=$'\t' read -r s c st d; do case_result "$s" "$c" "$st" "$d"; done
ktap_end
config_done
say "results: $ART/index.html"

# One loop over every KTAP document, each parsed by kunit.py: the table, the counts per
# configuration and the closing line.
pass=0 fail=0 skip=0
rows=()
declare -A cpass cfail cskip
while IFS=$'\t' read -r c suite case st detail; do
	rows+=("$(printf '%-13s %-28s %-44s %s %s' "$c" "$suite" "$case" "$st" "$detail")")
	case $st in
	pass) pass=$((pass + 1)) cpass[$c]=$((${cpass[$c]:-0} + 1)) ;;
	skip) skip=$((skip + 1)) cskip[$c]=$((${cskip[$c]:-0} + 1)) ;;
	*) fail=$((fail + 1)) cfail[$c]=$((${cfail[$c]:-0} + 1)) ;;
	esac
done < <(for c in $MATRIX report; do
	for step in ${expect[$c]}; do
		doc=$ART/ktap/$c/$step.ktap
		if [ -s "$doc" ]; then
			python3 "$TOP/scripts/ktap.py" rows "$KPY" "$c" "$doc"
		else
			printf '%s\t%s\tktap_document\tfail\tthe step left no KTAP document (%s)\n' \
				"$c" "$step" "$doc"
		fi
	done
done)

printf '\n%-13s %-28s %-44s %s\n' CONFIG SUITE CASE RESULT
printf '%s\n' "${rows[@]}"
echo
for c in $MATRIX report; do
	printf '%-13s %4d passed, %d failed, %d skipped in %ds\n' "$c" "${cpass[$c]:-0}" \
		"${cfail[$c]:-0}" "${cskip[$c]:-0}" "${ctime[$c]:-0}"
	# For hosted CI, whose jobs run one configuration each (scripts/merge.py).
	printf '%s\t%d\t%d\t%d\t%d\n' "$c" "${cpass[$c]:-0}" "$(( ${cfail[$c]:-0} + ${cfail[report]:-0} ))" \
		"${cskip[$c]:-0}" "${ctime[$c]:-0}" >"$ART/summary-$c.tsv"
done
rm -f "$ART/summary-report.tsv"
echo "$pass passed, $fail failed, $skip skipped"
[ "$fail" = 0 ] && [ "$pass" -gt 0 ]
