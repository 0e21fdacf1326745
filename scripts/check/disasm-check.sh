#!/usr/bin/env bash
# SPDX-License-Identifier: GPL-2.0
# Instruction-level checks, one case each (a KTAP document, see ktap_begin in lib.sh). On x86_64: per-CPU adds in a
# module (dynamic, static, a field of a shared struct) compile to one `add %reg, %gs:(...)` and
# no call; xchg/cmpxchg have no lock prefix; SpinLockIrqSave calls only C's irqsave pair. On
# arm64 and riscv64 (VARIANT=arm64-rt|riscv64-kasan|riscv64-up): the same adds are no longer than C's
# this_cpu_add() compiled with the kernel's flags and call nothing C's does not. Everywhere:
# every C helper is inlined, and the DeferredPerCpuNum work function is in the kernel crate,
# not in the module.
. "$(dirname "$0")/../lib.sh"
obj=$B/samples/rust/rust_percpu_lockdep.o
[ -f "$obj" ] || die "$obj not built"
ok=1
ktap_begin disasm
result() { # case pass|fail detail
	case_result disasm "$1" "$2" "$3"
	[ "$2" = pass ] || ok=0
}

disasm() { # symbol substring: the function's body, without its symbol line
	local sym
	sym=$(llvm-nm-19 --defined-only "$obj" | awk -v s="$1" '$3 ~ s && !f { print $3; f = 1 }')
	[ -n "$sym" ] || return 0
	llvm-objdump-19 -d --no-show-raw-insn --no-leading-addr --disassemble-symbols="$sym" "$obj" |
		sed -n "/<$sym>:/,/^\$/p" | grep -vE "<$sym>:|^\$"
}

# A per-CPU update in a module: one add with a %gs: operand (plus at most one load of the
# per-CPU address), no call.
check_add() { # case symbol-substring what
	local dis body n gsadd calls
	dis=$(disasm "$2")
	echo "$3:"
	echo "$dis" | sed 's/^/    /'
	body=$(echo "$dis" | grep -vE '^\s*(endbr64|nop|int3|ret|jmp\s.*__x86_return_thunk)' |
		grep -vE '^\s*$' || true)
	n=$(echo "$body" | grep -c . || true)
	gsadd=$(echo "$body" | grep -cE '^\s*(add|inc)[bwlq]?\s.*%gs:' || true)
	calls=$(echo "$dis" | grep -cE '^\s*call' || true)
	if [ -n "$dis" ] && [ "$gsadd" = 1 ] && [ "$calls" = 0 ] && [ "$n" -le 2 ]; then
		result "$1" pass "($n instructions, one %gs: add, no call)"
	else
		result "$1" fail "($n instructions, $gsadd %gs: adds, $calls calls)"
	fi
}

# this_cpu_xchg/cmpxchg: a cmpxchg with a %gs: operand and no lock prefix (C's this_cpu_*() is
# atomic only with respect to the current CPU), no call.
check_cmpxchg() { # case symbol-substring what
	local dis gs locked calls
	dis=$(disasm "$2")
	echo "$3:"
	echo "$dis" | sed 's/^/    /'
	gs=$(echo "$dis" | grep -cE '^\s*cmpxchg[bwlq]?\s.*%gs:' || true)
	locked=$(echo "$dis" | grep -cE '^\s*lock\b|^\s*xchg[bwlq]?\s.*\(' || true)
	calls=$(echo "$dis" | grep -cE '^\s*call' || true)
	if [ -n "$dis" ] && [ "$gs" -ge 1 ] && [ "$locked" = 0 ] && [ "$calls" = 0 ]; then
		result "$1" pass "($gs %gs: cmpxchg, no locked instruction, no call)"
	else
		result "$1" fail "($gs %gs: cmpxchg, $locked locked instructions, $calls calls)"
	fi
}

# The kernel's C this_cpu_add() on a u64: the helper compiled as C with the flags the kernel used
# for helpers_module.bc (object code instead of bitcode), in $B/c-helpers.o; without helper
# inlining, the helpers' own object file.
c_helpers() {
	local cmd
	if [ ! -f "$B/rust/helpers/.helpers_module.bc.cmd" ]; then
		cp "$B/rust/helpers/helpers.o" "$B/c-helpers.o"
		return
	fi
	cmd=$(sed -n 's/^savedcmd_[^ ]* := //p' "$B/rust/helpers/.helpers_module.bc.cmd" |
		sed -e 's/ -emit-llvm//' -e 's/ -Wp,-MMD,[^ ]*//' -e 's/ -o [^ ]*/ -o c-helpers.o/')
	[ -n "$cmd" ] && (cd "$B" && eval "$cmd") 2>/dev/null
}

# Other architectures: a per-CPU add in a module against C's this_cpu_add(): at most as many
# instructions (but for two) and no call that C does not make (with CONFIG_PREEMPT, C's
# preempt_enable_notrace() has one: preempt_schedule_notrace()).
insns() { # object symbol: "COUNT CALLS BRANCHES", CALLS the sorted call relocation targets
	local a sz dis
	# By address range: on riscv64 local labels (.Lpcrel_hi*) split a function into "symbols".
	read -r a sz < <(llvm-nm-19 -S --defined-only "$1" | awk -v s="$2" '$4 == s { print $1, $2; exit }')
	[ -n "$a" ] || { echo "0 - 0"; return; }
	dis=$(llvm-objdump-19 -d -r --no-show-raw-insn --start-address="0x$a" \
		--stop-address="$((16#$a + 16#$sz))" "$1" | grep -E '^\s+[0-9a-f]+:' |
		sed -E 's/^\s*[0-9a-f]+:\s*//')
	echo "$dis" | grep -vE '^R_' | sed 's/^/    /' >&2
	printf '%s %s %s\n' \
		"$(echo "$dis" | grep -vE '^R_|^\s*(nop|ret|paciasp|autiasp|hint|bti)\b' | grep -c .)" \
		"$(echo "$dis" | grep -oE '^R_(AARCH64_(CALL26|JUMP26)|RISCV_(CALL|CALL_PLT|JAL))\s+\S+' |
			awk '{ print $2 }' | sort -u | paste -sd, - | grep . || echo -)" \
		"$(echo "$dis" | grep -cE '^\s*(b\.[a-z]+|cbn?z|tbn?z|beqz?|bnez?|bltu?|bgeu?|blez|bgez|bltz|bgtz)\s' || true)"
}
check_like_c() { # case symbol-substring what
	local sym rn rc rb cn cc extra
	sym=$(llvm-nm-19 --defined-only "$obj" | awk -v s="$2" '$3 ~ s && !f { print $3; f = 1 }')
	# insns prints its listing on stderr (with stdout, the check's output) and its summary here.
	echo "$3:"
	read -r rn rc rb < <(insns "$obj" "$sym")
	echo "C this_cpu_add() on a u64:"
	read -r cn cc _ < <(insns "$B/c-helpers.o" rust_helper_this_cpu_add_u64)
	[ "$rc" != - ] || rc=
	[ "$cc" != - ] || cc=
	# KASAN (riscv64-kasan) instruments every memory access of Rust and C alike with a call:
	# those calls are not part of the comparison.
	rc=$(echo "$rc" | tr , '\n' | grep -vE '^__asan_' | paste -sd, - || true)
	cc=$(echo "$cc" | tr , '\n' | grep -vE '^__asan_' | paste -sd, - || true)
	extra=$(comm -23 <(echo "$rc" | tr , '\n' | grep . | sort) <(echo "$cc" | tr , '\n' | grep . | sort) |
		paste -sd, -)
	if ! grep -qx CONFIG_RUST_INLINE_HELPERS=y "$B/.config"; then
		# Without helper inlining (7.3 has it only on arm64 and x86_64) the add is straight-line
		# code that ends in one call of C's helper, whose body is C's this_cpu_add().
		if [ -n "$sym" ] && [[ $rc =~ ^rust_helper_this_cpu_add_u(32|64)$ ]] && [ "$rb" = 0 ]; then
			result "$1" pass "($rn instructions, no branch, one call: $rc; C's body $cn)"
		else
			result "$1" fail "($rn instructions, $rb branches, calls: ${rc:-none})"
		fi
	elif [ -n "$sym" ] && [ "${rn:-0}" -gt 0 ] && [ "$rn" -le $((cn + 2)) ] && [ -z "$extra" ]; then
		result "$1" pass "($rn instructions, C $cn; calls: ${rc:-none}, C: ${cc:-none})"
	else
		result "$1" fail "($rn instructions, C $cn; calls not in C: ${extra:-none})"
	fi
}

if [ "$KARCH" != x86 ]; then
	c_helpers || die "could not compile the C helpers for comparison"
	check_like_c percpu_num_add_like_c rust_percpu_lockdep_add_u64 'PerCpuNum::<u64>::add'
	check_like_c static_percpu_add_like_c rust_percpu_lockdep_static_add_u64 \
		'StaticPerCpuNum::<u64>::add (a static per-CPU variable of the module)'
	check_like_c shared_percpu_field_add_like_c rust_percpu_lockdep_shared_add_u32 \
		'SharedPerCpu::add(|c| &c.a, v)'
	rm -f "$B/c-helpers.o"
else
check_add percpu_num_add_one_gs_add rust_percpu_lockdep_add_u64 'PerCpuNum::<u64>::add'
check_add static_percpu_add_one_gs_add rust_percpu_lockdep_static_add_u64 \
	'StaticPerCpuNum::<u64>::add (a static per-CPU variable of the module)'
check_add shared_percpu_field_add_one_gs_add rust_percpu_lockdep_shared_add_u32 \
	'SharedPerCpu::add(|c| &c.a, v)'
check_cmpxchg percpu_num_xchg_no_lock rust_percpu_lockdep_xchg_u64 'PerCpuNum::<u64>::xchg'
check_cmpxchg percpu_num_cmpxchg_no_lock rust_percpu_lockdep_cmpxchg_u64 'PerCpuNum::<u64>::cmpxchg'

# SpinLockIrqSave: lock + increment + unlock must call exactly C's irqsave/irqrestore pair on the
# fast path; the only other calls are the kernel crate's out-of-line paths for a refcounted
# interrupt-disabled region (lock_joined on entry, unlock_slow on exit).
sym=$(llvm-nm-19 --defined-only "$obj" | awk '/rust_percpu_lockdep_irqsave_inc/ && !f { print $3; f = 1 }')
dis=$(llvm-objdump-19 -d -r --no-show-raw-insn --no-leading-addr --disassemble-symbols="$sym" "$obj" |
	sed -n "/<$sym>:/,/^\$/p" | grep -vE "<$sym>:|^\$")
echo "SpinLockIrqSave lock; *g += 1; unlock:"
echo "$dis" | grep -vE 'R_X86_64' | sed 's/^/    /'
targets=$(echo "$dis" | grep -A1 -E '^\s*(call|jmp)' | grep -oE 'R_X86_64_PLT32\s+\S+' | awk '{ print $2 }' |
	sed 's/-0x4$//' | grep -vE '^__(x86_return_thunk|x86_indirect)' |
	grep -vx lock_is_held_type | paste -sd' ' || true)
slow=$(echo "$targets" | tr ' ' '\n' | grep -cE '7irqsave7section(11lock_joined|11unlock_slow)' || true)
targets=$(echo "$targets" | tr ' ' '\n' | grep -vE '7irqsave7section(11lock_joined|11unlock_slow)' | paste -sd' ' || true)
# (lock_is_held_type is lockdep's assertion in Guard::new(); it exists only with CONFIG_LOCKDEP.)
if [ "$targets" = "_raw_spin_lock_irqsave _raw_spin_unlock_irqrestore" ] && [ "$slow" -le 2 ]; then
	result irqsave_calls_c_pair_only pass "(calls: $targets; $slow out-of-line refcounted-region paths)"
else
	result irqsave_calls_c_pair_only fail "(calls: $targets)"
fi
fi
# With CONFIG_RUST_INLINE_HELPERS every C helper is inlined into the kernel crate.
if grep -qx CONFIG_RUST_INLINE_HELPERS=y "$B/.config"; then
	left=$(llvm-nm-19 -u "$B/rust/kernel.o" | grep -c rust_helper || true)
	if [ "$left" = 0 ]; then
		result helpers_all_inlined pass "(0 rust_helper_* calls left in rust/kernel.o)"
	else
		result helpers_all_inlined fail "($left rust_helper_* calls left in rust/kernel.o)"
	fi
fi
# DeferredPerCpuNum: the work function and everything its worker runs must be defined in the
# kernel crate, never in the module that queued the work (which may be unloaded by then).
run=$(llvm-nm-19 --defined-only "$B/rust/kernel.o" | grep '8deferred4Core' |
	grep 'WorkItemPointer' | grep -c '3run' || true)
inmod=$(llvm-nm-19 --defined-only "$obj" | grep -cE '8deferred(4Core|8RawBytes|10test_hooks)' || true)
if [ "$run" = 1 ] && [ "$inmod" = 0 ]; then
	result deferred_work_fn_in_kernel_crate pass "(DeferredPerCpuNum work function in rust/kernel.o, none of its code in the module)"
else
	result deferred_work_fn_in_kernel_crate fail "($run work functions in rust/kernel.o, $inmod deferred core symbols in the module)"
fi
ktap_end
[ "$ok" = 1 ] || exit 1

# For comparison: C's this_cpu_add() on a u64.
if [ "$KARCH" = x86 ] && c_helpers; then
	echo "C this_cpu_add() (rust_helper_this_cpu_add_u64 compiled as C):"
	llvm-objdump-19 -d --no-show-raw-insn --no-leading-addr \
		--disassemble-symbols=rust_helper_this_cpu_add_u64 "$B/c-helpers.o" |
		sed -n '/<rust_helper_this_cpu_add_u64>:/,/^$/p' | grep -vE '>:|^$' | sed 's/^/    /'
	rm -f "$B/c-helpers.o"
fi
