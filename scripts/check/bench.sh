#!/usr/bin/env bash
# SPDX-License-Identifier: GPL-2.0
# make bench: Rust against C, by instruction count. Builds the production kernel (VARIANT=prod:
# no lock debugging, PREEMPT, inlined helpers, in $CACHE/build-prod), boots it under QEMU's
# "-icount shift=0" (the guest clock advances 1 ns per executed instruction), runs the C and the
# Rust benchmark of the same operations in the same boot, and prints
#   operation | C | Rust | Rust/C | budget
# in instructions per operation, plus a disassembly table of the same functions. Results go to
# results/bench/ (bench.txt, bench.json, disasm.txt, one directory per boot).
#   scripts/check/bench.sh            build (unless NOBUILD=1), boot (unless NOBOOT=1), print the tables
#   scripts/check/bench.sh cases      the same, then each row a case of a KTAP document (results/ktap/)
#   BENCH_CPUS="2 4 8"          boots: the first runs every operation, the others the operations
#                               that visit every CPU (the sum-scaling rows)
#   BENCH_ITERS=20000 BENCH_REPS=7

BENCH_SH=$(readlink -f "${BASH_SOURCE[0]}")

# Row specification: id, label, C op, Rust op, budget ("-": for information only), reason.
# The budget is 1.05 where Rust does what C does; a larger one names what Rust adds by design.
# "@N" in an op selects the boot with N CPUs (default: the first boot).
bench_rows() {
	cat <<'ROWS'
num_add|PerCpuNum<u64>::add / this_cpu_add|num_add|num_add|1.05|
num_inc|PerCpuNum<u64>::inc / this_cpu_inc|num_inc|num_inc|1.05|
num_sum_2|PerCpuNum::sum / for_each_possible_cpu, 2 CPUs|num_sum@2|num_sum@2|1.05|
num_sum_4|PerCpuNum::sum / for_each_possible_cpu, 4 CPUs|num_sum@4|num_sum@4|1.05|
num_sum_8|PerCpuNum::sum / for_each_possible_cpu, 8 CPUs|num_sum@8|num_sum@8|1.05|
local_modify|PerCpu::local()+modify / get_cpu_ptr+put_cpu_ptr|local_modify|local_modify|1.70|reentrancy flag: tested and set on entry, cleared on exit (cmp, jne, 2 movs; no locked instruction)
static_add|StaticPerCpuNum<u64>::add (module) / this_cpu_add on DEFINE_PER_CPU (built-in)|static_add|static_add|1.05|
shared_add|SharedPerCpu::add(field) / this_cpu_add on a struct field|shared_add|shared_add|1.05|
num_xchg|PerCpuNum<u64>::xchg / this_cpu_xchg|num_xchg|num_xchg|1.05|
num_cmpxchg|PerCpuNum<u64>::cmpxchg / this_cpu_cmpxchg|num_cmpxchg|num_cmpxchg|1.05|
num_add_return|PerCpuNum<u64>::add_return / this_cpu_add_return|num_add_return|num_add_return|1.05|
local_lock|LocalLock::lock()+modify / local_trylock+this_cpu_ptr+local_unlock|local_trylock|local_lock|1.05|
local_lock_vs_c_lock|LocalLock::lock()+modify / local_lock (no reentrancy check)|local_lock|local_lock|-|reference: C's local_lock() on a local_lock_t trusts the caller; Rust tests C's local_trylock_t flag so that an interrupted holder is never aliased
local_lock_irqsave|LocalLock::lock_irqsave(closure)+modify / local_trylock_irqsave+this_cpu_ptr+local_unlock_irqrestore|local_trylock_irqsave|local_lock_irqsave|1.05|
local_lock_irqsave_vs_c_lock|LocalLock::lock_irqsave(closure)+modify / local_lock_irqsave (no reentrancy check)|local_lock_irqsave|local_lock_irqsave|-|reference: C's local_lock_irqsave() trusts the caller (sets the flag without testing it); Rust runs C's local_trylock_irqsave(), whose test gives None, not a second owner, to an interrupt or NMI handler that interrupted the holder
pcc_add|PercpuCounter::add / percpu_counter_add|pcc_add|pcc_add|1.05|
pcc_read|PercpuCounter::read / percpu_counter_read|pcc_read|pcc_read|1.05|
pcc_sum_2|PercpuCounter::sum / percpu_counter_sum, 2 CPUs|pcc_sum@2|pcc_sum@2|1.05|
pcc_sum_4|PercpuCounter::sum / percpu_counter_sum, 4 CPUs|pcc_sum@4|pcc_sum@4|1.05|
pcc_sum_8|PercpuCounter::sum / percpu_counter_sum, 8 CPUs|pcc_sum@8|pcc_sum@8|1.05|
pcc_compare|PercpuCounter::compare, far / percpu_counter_compare|pcc_compare|pcc_compare|1.25|computed in Rust from read()/sum() with a bound that cannot overflow (C multiplies batch by num_online_cpus() in 32 bits): 7 more instructions
pcc_compare_near|PercpuCounter::compare, near (sums) / percpu_counter_compare|pcc_compare_near|pcc_compare_near|1.20|the same overflow-free bound, then sum() as in C
pcc_limited_add|PercpuCounter::limited_add / percpu_counter_limited_add|pcc_limited_add|pcc_limited_add|1.05|
irqsave|SpinLockIrqSave lock/unlock / spin_lock_irqsave+restore|irqsave|irqsave|1.20|reads the refcounted irq-disable depth from the preempt count on entry and exit (load, test, branch each): 6 instructions
cookie_true|CondIrqSaveGuard begin/end, cond true / wb_lock_cookie (irqsave)|cookie_true|cookie_true|-|reference: the guard is on SpinLockIrq (refcounted), C's cookie on spin_lock_irqsave
cookie_false|CondIrqSaveGuard begin/end, cond false / wb_lock_cookie (irqsave)|cookie_false|cookie_false|-|reference: the guard is on SpinLockIrq (refcounted), C's cookie on spin_lock_irqsave
cookie_true_irq_disable|CondIrqSaveGuard, cond true / spin_lock_irq_disable sequence|cookie_irq_disable_true|cookie_true|1.05|
cookie_false_irq_disable|CondIrqSaveGuard, cond false / spin_lock_irq_disable sequence|cookie_irq_disable_false|cookie_false|1.05|
irq_disable|SpinLockIrq lock/unlock / spin_lock_irq_disable+enable|irq_disable|irq_disable|1.05|
spin_lock_irq|SpinLockIrq lock/unlock / spin_lock_irq+unlock_irq|spin_lock_irq|irq_disable|-|reference: C's non-refcounted form
memalloc_nofs|memalloc NOFS scope / memalloc_nofs_save+restore|memalloc_nofs|memalloc_nofs|1.05|
num_new_drop|PerCpuNum<u64>::new+drop / alloc_percpu_gfp+free_percpu|num_new_drop|num_new_drop|-|not judged: the cost of an allocation depends on the per-CPU allocator's state (chunk population, balance work on the other vCPU), which differs between the two runs; 1.00 to 1.19 over four boots of one build. The disassembly case bench_num_new_drop_calls judges it instead
deferred_add|DeferredPerCpuNum::add, published / load_acquire+this_cpu_add|deferred_add|deferred_add|1.80|the allocation lives in a kernel-crate core reached through an Arc (so that the queued work can outlive the caller's module), and SetOnce keeps its state apart from the value: 3 loads and a compare
deferred_vs_add|DeferredPerCpuNum::add / this_cpu_add (cost of deferral)|num_add|deferred_add|-|reference: PerCpuNum::add is the num_add row
ROWS
}

# Rows judged from the disassembly of the production build, where a timed row cannot be (its cost
# depends on state outside the operation): id, op, instructions Rust may add to C's, reason. The
# Rust function must make exactly C's calls (same targets, same number) and have at most C's
# instruction count plus the allowance.
bench_disasm_rows() {
	cat <<'ROWS'
num_new_drop_calls|num_new_drop|4|PerCpuNum<u64>::new+drop makes C's two calls (allocate, free) and no other: the allocator's own cost is C's
ROWS
}

# In the guest: run both benchmarks, keep the log.
bench_guest() { # OUTDIR MODDIR ALL(1)|SUMS(2) ITERS REPS
	local out=$1 mods=$2 mode=$3 iters=$4 reps=$5 sum_only=0 p=/sys/module/percpu_bench/parameters
	[ "$mode" = 2 ] && sum_only=1
	mkdir -p "$out"
	cat /sys/devices/system/cpu/possible >"$out/possible"
	echo "$iters" >$p/iters
	echo "$reps" >$p/reps
	echo "$mode" >$p/run; echo "c=$?" >"$out/status"
	insmod "$mods/samples/rust/rust_percpu_bench.ko" sum_only=$sum_only iters="$iters" reps="$reps"
	echo "rust=$?" >>"$out/status"
	rmmod rust_percpu_bench
	[ "$mode" = 1 ] && rnull_guest "$out" "$mods"
	dmesg >"$out/dmesg"
	sync
}

# In the guest: rnull's instructions per request, with and without its per-CPU statistics.
# Two 128 MiB devices (stats_enabled=1 and 0), completion in queue_rq (irqmode=0), no merging;
# each repetition times RNULL_N (at most 32768) 4 KiB direct reads by dd on CPU 1 for each
# device. The guest clock counts the instructions of every vCPU, so background work on the other
# CPU only ever adds: the minimum over the repetitions is the estimate, and (with - without) /
# RNULL_N is the cost of the statistics per request (the whole dd process is in both).
rnull_guest() { # OUTDIR MODDIR
	local out=$1 mods=$2 cfg=/sys/kernel/config/rnull n=${RNULL_N:-20000} st rep t0 t1 ops
	insmod "$mods/drivers/block/rnull/rnull_mod.ko" || return 0
	mountpoint -q /sys/kernel/config || mount -t configfs none /sys/kernel/config
	for st in 1 0; do
		mkdir "$cfg/rb$st" && echo 128 >"$cfg/rb$st/size" && echo 0 >"$cfg/rb$st/irqmode" &&
			echo "$st" >"$cfg/rb$st/stats_enabled" && echo 1 >"$cfg/rb$st/power" || return 0
		echo 2 >"/sys/block/rb$st/queue/nomerges"
		taskset -c 1 dd if="/dev/rb$st" of=/dev/null bs=4k count=1000 iflag=direct status=none
	done
	ops=$(awk '$1 == "read_ops" { print $2 }' "$cfg/rb1/stats")
	for rep in 1 2 3 4 5 6 7 8 9 10 11; do
		for st in 1 0; do
			t0=$(date +%s%N)
			taskset -c 1 dd if="/dev/rb$st" of=/dev/null bs=4k count="$n" iflag=direct status=none
			t1=$(date +%s%N)
			echo "rnull stats=$st rep=$rep requests=$n ns=$((t1 - t0))" >>"$out/rnull.txt"
		done
	done
	echo "rnull read_ops_counted=$(( $(awk '$1 == "read_ops" { print $2 }' "$cfg/rb1/stats") - ops ))" \
		"expected=$((11 * n))" >>"$out/rnull.txt"
	for st in 1 0; do
		echo 0 >"$cfg/rb$st/power"
		rmdir "$cfg/rb$st"
	done
	rmmod rnull_mod
}

# One boot with N CPUs under icount; results in $BENCH_ART/boot-N.
bench_boot() { # N MODE
	local n=$1 mode=$2 dir=$BENCH_ART/boot-$1 rc start key
	key=$(boot_key "bench-$n" "$mode" "$BENCH_ITERS" "$BENCH_REPS")
	boot_unchanged "$dir" "$key" && return 0
	rm -rf "$dir"; mkdir -p "$dir"
	start=$(date +%s)
	set +e
	timeout -k 10 "${VM_TIMEOUT:-600}" vng -r "$B/arch/x86/boot/bzImage" \
		--disable-kvm --force-9p --cpus "$n" --memory 1G -v \
		--append root=/dev/root --append loglevel=7 \
		--rwdir="$BENCH_ART" --qemu-opts="-icount shift=0" \
		-- "bash $BENCH_SH guest $dir $B $mode $BENCH_ITERS $BENCH_REPS" \
		</dev/null >"$dir/out" 2>"$dir/console"
	rc=$?
	set -e
	echo "$rc" >"$dir/rc"
	echo "$(( $(date +%s) - start ))" >"$dir/seconds"
	say "bench boot with $n CPUs: exit $rc in $(cat "$dir/seconds")s"
	[ "$rc" = 0 ] || tail -15 "$dir/console" >&2
	echo "$key" >"$dir/key"
}

# Disassembly of the op_* functions of both modules: instructions, calls, locked instructions.
bench_disasm() {
	python3 "$(dirname "$BENCH_SH")/../bench.py" disasm "$B" "$BENCH_ART/disasm.json"
}

# Parse both logs, print the tables, write bench.txt/bench.json; print case lines if asked.
bench_report() { # CASES(0|1)
	bench_rows >"$BENCH_ART/rows"
	bench_disasm_rows >"$BENCH_ART/disasm-rows"
	python3 "$(dirname "$BENCH_SH")/../bench.py" report "$BENCH_ART" "$1"
}

bench_main() {
	. "$(dirname "$BENCH_SH")/../lib.sh"
	[ "$VARIANT" = prod ] || die "bench needs VARIANT=prod (it is set by default)"
	BENCH_ART=$ART/bench
	mkdir -p "$BENCH_ART"
	local cases=0
	[ "${1:-}" = cases ] && cases=1
	if [ -z "${NOBUILD:-}" ]; then
		"$TOP/scripts/host/setup.sh" >&2
		"$TOP/scripts/host/build.sh" >&2
	fi
	[ -f "$B/arch/x86/boot/bzImage" ] || die "no production kernel in $B"
	if [ -z "${NOBOOT:-}" ]; then
		local start=$(date +%s) mode=1 n
		BENCH_ITERS=${BENCH_ITERS:-20000} BENCH_REPS=${BENCH_REPS:-7}
		for n in ${BENCH_CPUS:-2 4 8}; do
			bench_boot "$n" "$mode" >&2
			mode=2
		done
		say "bench boots: $(( $(date +%s) - start ))s" >&2
	fi
	bench_disasm
	if [ "$cases" = 1 ]; then
		# Each row a case of the KTAP document of the bench (ktap_begin in lib.sh).
		ktap_begin bench
		bench_report 1 | while read -r c st detail; do case_result bench "$c" "$st" "$detail"; done
		ktap_end
	else
		bench_report 0
	fi
}

if [ "${BASH_SOURCE[0]}" = "$0" ]; then
	case ${1:-} in
	guest)
		shift
		bench_guest "$@"
		;;
	*)
		export VARIANT=${VARIANT:-prod}
		bench_main "$@"
		;;
	esac
fi
