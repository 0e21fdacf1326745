#!/usr/bin/env bash
# SPDX-License-Identifier: GPL-2.0
# make check: build, then boot once clean (KUnit suites, doctests, sample, safe selftests) and
# once per must-detect scenario; a lockdep verdict per boot. Ends with "N passed, N failed".
#   BOOTS="clean detect-1 ..."   run only these boots (default: all)
#   NOBUILD=1                    reuse the existing build
#   NOBOOT=1                     only re-evaluate the results of the last boots
#   NOLINT=1                     skip the upstream gates (rustfmt, clippy, rustdoc, checkpatch)

. "$(dirname "$0")/lib.sh"
. "$TOP/scripts/vm.sh"

[ -n "${NOBUILD:-}" ] || { "$TOP/scripts/setup.sh"; "$TOP/scripts/build.sh"; }
[ -f "$B/arch/x86/boot/bzImage" ] || die "no kernel in $B"
mkdir -p "$ART"

# Must-detect scenarios: boot name, report strings (all must appear), lock class of the scenario.
declare -A EXPECT=(
	[detect-1]='possible circular locking dependency|fs_reclaim|lockdep_seed000_fs_lock'
	[detect-2]='inconsistent lock state|IN-HARDIRQ-W|lockdep_seed001_outer'
	[detect-3]='sleeping function called from invalid context|lockdep_seed002_queue'
	[detect-4]='possible recursive locking detected|fs_reclaim|lockdep_seed004_loop_lock'
	[detect-5]='inconsistent lock state|IN-HARDIRQ-W|lockdep_order_b'
	[detect-6]='inconsistent lock state|IN-HARDIRQ-W|lockdep_local_lock'
	[detect-rnull]='sleeping function called from invalid context|queue_rq_callback|rnull_mod'
)
declare -A NAME=(
	[detect-1]=detect_seed000_reclaim_cycle
	[detect-2]=detect_seed001_irq_reenabled
	[detect-3]=detect_seed002_atomic_alloc
	[detect-4]=detect_seed004_io_reclaim_recursion
	[detect-5]=detect_irqsave_out_of_order
	[detect-6]=detect_local_lock_irq_inconsistent
	[detect-rnull]=detect_seed002_rnull_queue_rq_alloc
)
BAD_RE='possible circular locking dependency|inconsistent lock state|irq lock inversion|-safe -> .*-unsafe lock order|possible recursive locking|Invalid wait context|bad unlock balance|held lock freed|still has locks held|non-static key|DEBUG_LOCKS_WARN_ON|turning off the locking correctness validator|sleeping function called from invalid context|scheduling while atomic|in preemptible \[|called with IRQs enabled|cut here|Kernel panic|Oops|BUG: |ODEBUG|WARNING:|enqueued on deprecated workqueue'

BOOTS=${BOOTS:-clean detect-1 detect-2 detect-3 detect-4 detect-5 detect-6 detect-rnull}
# KUnit cases allowed to report SKIP (suite.case); any other skip fails.
EXPECTED_SKIPS=${EXPECTED_SKIPS:-rust_kernel_kunit.rust_test_kunit_always_disabled_test}
pass=0 fail=0 skip=0
rows=()
record() { # suite case pass|fail|skip [detail]
	rows+=("$(printf '%-28s %-44s %s %s' "$1" "$2" "$3" "${4:-}")")
	case $3 in
	pass) pass=$((pass + 1)) ;;
	skip) skip=$((skip + 1)) ;;
	*) fail=$((fail + 1)) ;;
	esac
}

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

boot_ok() { # dir: did the guest script run to the end?
	[ "$(cat "$1/rc" 2>/dev/null)" = 0 ] && [ -s "$1/dmesg" ]
}

for boot in $BOOTS; do
	[ -n "${NOBOOT:-}" ] || vm "$boot"
	dir=$ART/$boot
	if ! boot_ok "$dir"; then
		record "$boot" boot fail "exit $(cat "$dir/rc"), see $dir/console"
		continue
	fi
	if [ "$boot" = clean ]; then
		n=0
		for k in "$dir"/ktap/*.ktap; do
			[ -e "$k" ] || continue
			s=$(basename "$k" .ktap)
			python3 "$S/tools/testing/kunit/kunit.py" parse --json="$dir/ktap/$s.json" \
				"$k" >"$dir/ktap/$s.parse" 2>&1 || true
			if [ ! -s "$dir/ktap/$s.json" ]; then
				record "$s" parse fail "kunit.py parse failed"
				continue
			fi
			while read -r st c; do
				n=$((n + 1))
				if [ "$st" = skip ] && ! [[ " $EXPECTED_SKIPS " == *" $s.$c "* ]]; then
					record "$s" "$c" fail "unexpected SKIP"
				else
					record "$s" "$c" "$st"
				fi
			done < <(python3 - "$dir/ktap/$s.json" <<'PY'
import json, sys
d = json.load(open(sys.argv[1]))
def walk(t):
    sub = t.get("sub_groups") or []
    for g in sub:
        yield from walk(g)
    for c in t.get("test_cases") or []:
        st = c.get("status")
        yield ({"PASS": "pass", "SKIP": "skip"}.get(st, "fail"), c.get("name"))
for st, name in walk(d):
    print(st, name)
PY
)
		done
		[ "$n" -gt 0 ] || record kunit "any test case" fail "no KUnit results"
		while read -r c st; do record selftest "$c" "$st"; done <"$dir/cases"
		hits=$(grep -E "$BAD_RE" "$dir/dmesg" | head -3 || true)
		if [ -n "$hits" ]; then
			record lockdep clean_boot_no_reports fail "$(echo "$hits" | head -1)"
		else
			record lockdep clean_boot_no_reports pass
		fi
		if grep -Eq '^ *debug_locks: +1$' "$dir/lockdep_stats"; then
			record lockdep clean_boot_debug_locks_1 pass
		else
			record lockdep clean_boot_debug_locks_1 fail "$(cat "$dir/lockdep_stats")"
		fi
	else
		ok=pass missing=
		IFS='|' read -ra want <<<"${EXPECT[$boot]}"
		for w in "${want[@]}"; do
			grep -q -- "$w" "$dir/dmesg" || { ok=fail; missing+="'$w' "; }
		done
		record lockdep "${NAME[$boot]}" $ok "${missing:+missing $missing}"
	fi
done

# Rust against C by instruction count on the production kernel (scripts/bench.sh).
if [ -z "${NOBENCH:-}" ]; then
	. "$TOP/scripts/bench.sh"
	n=0
	while read -r c st detail; do
		record bench "$c" "$st" "$detail"; n=$((n + 1))
	done < <(bench_cases)
	[ "$n" -gt 0 ] || record bench rows fail "no benchmark row, see $ART/bench"
fi

# The upstream gates (make lint), each a case.
if [ -z "${NOLINT:-}" ]; then
	say "lint gates (rustfmt, WERROR, clippy, rustdoc, checkpatch, git am of the series)"
	NOBUILD=1 "$TOP/scripts/lint.sh" >"$ART/lint.txt" 2>&1 || true
	n=0
	while read -r g st detail; do
		record lint "$g" "$st" "$detail"; n=$((n + 1))
	done < <(grep -E '^[a-z_]+ +(pass|fail)' "$ART/lint.txt")
	[ "$n" -gt 0 ] || record lint gates fail "no gate ran, see $ART/lint.txt"
fi

printf '\n%-28s %-44s %s\n' SUITE CASE RESULT
printf '%s\n' "${rows[@]}"
echo
echo "$pass passed, $fail failed, $skip skipped"
[ "$fail" = 0 ] && [ "$pass" -gt 0 ]
