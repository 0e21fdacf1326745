# SPDX-License-Identifier: GPL-2.0
# The verdict of a test boot, shared by every configuration; sourced after lib.sh by check.sh
# and check-cross.sh, which define case_result SUITE CASE pass|fail|skip [DETAIL].

# Must-detect scenarios: boot name, report strings (all must appear), lock class of the scenario.
declare -A EXPECT=(
	[detect-1]='possible circular locking dependency|fs_reclaim|lockdep_percpu_alloc_fs_lock'
	[detect-2]='inconsistent lock state|IN-HARDIRQ-W|lockdep_cond_lock_outer'
	[detect-3]='sleeping function called from invalid context|lockdep_atomic_path_queue'
	[detect-4]='possible recursive locking detected|fs_reclaim|lockdep_io_path_loop_lock'
	[detect-5]='inconsistent lock state|IN-HARDIRQ-W|lockdep_order_b'
	[detect-6]='inconsistent lock state|IN-HARDIRQ-W|lockdep_local_lock'
	[detect-rnull]='sleeping function called from invalid context|queue_rq_callback|rnull_mod'
)
declare -A NAME=(
	[detect-1]=detect_percpu_alloc_reclaim_cycle
	[detect-2]=detect_cond_lock_irq_reenabled
	[detect-3]=detect_percpu_alloc_in_atomic
	[detect-4]=detect_percpu_alloc_reclaim_recursion
	[detect-5]=detect_irqsave_out_of_order
	[detect-6]=detect_local_lock_irq_inconsistent
	[detect-rnull]=detect_rnull_percpu_alloc_in_queue_rq
)
# PREEMPT_RT (arm64-rt): spinlock_t and local_lock_t leave the interrupt state alone and an
# irq_work runs in a thread, so the bugs of scenarios 2, 5 and 6 (interrupts re-enabled, or a lock
# taken both in task and in hard interrupt context) do not exist there: those boots must stay
# silent, the scenario having run (its module loaded).
declare -A RT_SILENT=([detect-2]=1 [detect-5]=1 [detect-6]=1)
rt_kernel() { grep -qx CONFIG_PREEMPT_RT=y "$B/.config" 2>/dev/null; }
BAD_RE='possible circular locking dependency|inconsistent lock state|irq lock inversion|-safe -> .*-unsafe lock order|possible recursive locking|Invalid wait context|bad unlock balance|held lock freed|still has locks held|non-static key|DEBUG_LOCKS_WARN_ON|turning off the locking correctness validator|sleeping function called from invalid context|scheduling while atomic|in preemptible \[|called with IRQs enabled|cut here|Kernel panic|Oops|BUG: |ODEBUG|WARNING:|enqueued on deprecated workqueue|suspected memory leak'

# KUnit cases allowed to report SKIP (suite.case); any other skip fails.
EXPECTED_SKIPS=${EXPECTED_SKIPS:-rust_kernel_kunit.rust_test_kunit_always_disabled_test}
boot_ok() { # dir: did the guest script run to the end?
	[ "$(cat "$1/rc" 2>/dev/null)" = 0 ] && [ -s "$1/dmesg" ]
}

verdict() { # BOOT DIR: the boot's cases, as a KTAP document named after the boot
	ktap_begin "$1"
	verdict_cases "$@"
	ktap_end
}

verdict_cases() { # BOOT DIR
	if ! boot_ok "$2"; then
		case_result "$1" boot fail "exit $(cat "$2/rc"), see $2/console"
	elif [ "$1" = clean ]; then
		verdict_clean "$2"
	elif rt_kernel && [ -n "${RT_SILENT[$1]:-}" ]; then
		verdict_silent_on_rt "$1" "$2"
	else
		verdict_detect "$1" "$2"
	fi
}

verdict_clean() { # DIR: the KUnit suites, the guest's steps, no report, debug_locks still 1
	local dir=$1 n=0 k s st c hits
	for k in "$dir"/ktap/*.ktap; do
		[ -e "$k" ] || continue
		s=$(basename "$k" .ktap)
		python3 "$S/tools/testing/kunit/kunit.py" parse --json="$dir/ktap/$s.json" \
			"$k" >"$dir/ktap/$s.parse" 2>&1 || true
		if [ ! -s "$dir/ktap/$s.json" ]; then
			case_result "$s" parse fail "kunit.py parse failed"
			continue
		fi
		while read -r st c; do
			n=$((n + 1))
			if [ "$st" = skip ] && ! [[ " $EXPECTED_SKIPS " == *" $s.$c "* ]]; then
				case_result "$s" "$c" fail "unexpected SKIP"
			else
				case_result "$s" "$c" "$st"
			fi
		done < <(python3 "$TOP/scripts/ktap.py" kunit-cases "$dir/ktap/$s.json")
	done
	[ "$n" -gt 0 ] || case_result kunit "any test case" fail "no KUnit results"
	while read -r c st; do case_result selftest "$c" "$st"; done <"$dir/cases"
	hits=$(grep -E "$BAD_RE" "$dir/dmesg" | head -3 || true)
	if [ -n "$hits" ]; then
		case_result lockdep clean_boot_no_reports fail "$(echo "$hits" | head -1)"
	else
		case_result lockdep clean_boot_no_reports pass
	fi
	if grep -Eq '^ *debug_locks: +1$' "$dir/lockdep_stats"; then
		case_result lockdep clean_boot_debug_locks_1 pass
	else
		case_result lockdep clean_boot_debug_locks_1 fail "$(cat "$dir/lockdep_stats")"
	fi
}

verdict_silent_on_rt() { # BOOT DIR: the scenario ran, and lockdep stayed silent
	local hits
	hits=$(grep -E "$BAD_RE" "$2/dmesg" | head -1 || true)
	if [ "$(cat "$2/insmod" 2>/dev/null)" != insmod=0 ]; then
		case_result lockdep "${NAME[$1]}_silent_on_rt" fail "(the scenario did not run: $(cat "$2/insmod" 2>/dev/null))"
	elif [ -n "$hits" ]; then
		case_result lockdep "${NAME[$1]}_silent_on_rt" fail "$hits"
	else
		case_result lockdep "${NAME[$1]}_silent_on_rt" pass
	fi
}

verdict_detect() { # BOOT DIR: the expected report, and a call chain that reaches the module
	local ok=pass missing= w n want
	IFS='|' read -ra want <<<"${EXPECT[$1]}"
	for w in "${want[@]}"; do
		grep -q -- "$w" "$2/dmesg" || { ok=fail; missing+="'$w' "; }
	done
	case_result lockdep "${NAME[$1]}" $ok "${missing:+missing $missing}"
	# The report's call chain is one a developer can trust: the unwinder (ORC on x86_64,
	# frame records on arm64, frame pointers on riscv64) reaches the scenario's module
	# with reliable entries (x86_64 marks the others, stale stack words, with "? ").
	n=$(awk '/Call [Tt]race:/ { f = 1; next } f && ++k > 80 { exit } f' "$2/dmesg" |
		grep -cE '^\[ *[0-9.]+\] +[^ ?].*\[(rust_percpu_lockdep|rnull_mod)\]$' || true)
	if [ "$n" -gt 0 ]; then
		case_result lockdep "${NAME[$1]}_reliable_chain" pass "($n reliable frames in the module)"
	else
		case_result lockdep "${NAME[$1]}_reliable_chain" fail "(no reliable frame in the module)"
	fi
}
