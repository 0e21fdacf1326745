#!/usr/bin/env bash
# SPDX-License-Identifier: GPL-2.0
# Instruction-level check: PerCpuNum::<u64>::add in a module must compile to one
# `add %reg, %gs:(...)` (plus the load of the per-CPU pointer) and no call.
. "$(dirname "$0")/lib.sh"
obj=$B/samples/rust/rust_percpu_lockdep.o
[ -f "$obj" ] || die "$obj not built"
sym=$(llvm-nm-19 --defined-only "$obj" | awk '/rust_percpu_lockdep_add_u64/ && !f { print $3; f = 1 }')
[ -n "$sym" ] || die "no rust_percpu_lockdep_add_u64 in $obj"
dis=$(llvm-objdump-19 -d --no-show-raw-insn --no-leading-addr --disassemble-symbols=$sym "$obj" |
	sed -n "/<$sym>:/,/^\$/p" | grep -vE "<$sym>:|^\$")
echo "$dis" | sed 's/^/    /'
body=$(echo "$dis" | grep -vE '^\s*(endbr64|nop|int3|ret|jmp\s.*__x86_return_thunk)' |
	grep -vE '^\s*$' || true)
n=$(echo "$body" | grep -c . || true)
gsadd=$(echo "$body" | grep -cE '^\s*(add|inc)[bwlq]?\s.*%gs:' || true)
calls=$(echo "$dis" | grep -cE '^\s*call' || true)
if [ "$gsadd" = 1 ] && [ "$calls" = 0 ] && [ "$n" -le 2 ]; then
	echo "disasm: PASS ($n instructions, one %gs: add, no call)"
else
	echo "disasm: FAIL ($n instructions, $gsadd %gs: adds, $calls calls)"
	exit 1
fi

# For comparison: C's this_cpu_add() on a u64, i.e. the helper compiled as C with the same
# flags the kernel used for helpers_module.bc (object code instead of bitcode).
cmd=$(sed -n 's/^savedcmd_[^ ]* := //p' "$B/rust/helpers/.helpers_module.bc.cmd" |
	sed -e 's/ -emit-llvm//' -e 's/ -Wp,-MMD,[^ ]*//' -e 's/ -o [^ ]*/ -o c-helpers.o/')
if [ -n "$cmd" ] && (cd "$B" && eval "$cmd") 2>/dev/null; then
	echo "C this_cpu_add() (rust_helper_this_cpu_add_u64 compiled as C):"
	llvm-objdump-19 -d --no-show-raw-insn --no-leading-addr \
		--disassemble-symbols=rust_helper_this_cpu_add_u64 "$B/c-helpers.o" |
		sed -n '/<rust_helper_this_cpu_add_u64>:/,/^$/p' | grep -vE '>:|^$' | sed 's/^/    /'
	rm -f "$B/c-helpers.o"
fi
