// SPDX-License-Identifier: GPL-2.0

//! Per-CPU, percpu_counter, irqsave lock and memalloc scope microbenchmarks: the Rust side of a
//! pair with `samples/percpu_bench/percpu_bench.c`.
//!
//! Both modules run the same operations with the same loop structure: each operation is an
//! `#[inline(never)]` function, called through a function pointer from one timing loop, and the
//! same loop calling an empty function is the baseline. Every repetition times both; the median of
//! each over the repetitions is taken and the baseline subtracted, so what remains is the cost of
//! the operation's function body. Results are printed one per line:
//!
//! ```text
//! rust_percpu_bench: lang=rust op=NAME cpus=P iters=N reps=R ps_per_op=X op_ns=A empty_ns=B
//! ```
//!
//! where `P` is the number of possible CPUs and `X = (A - B) * 1000 / N`. Under QEMU's
//! `-icount shift=0` the guest clock advances 1 ns per executed instruction, so `ps_per_op` is
//! thousandths of an instruction per operation.

use core::hint::black_box;
use kernel::{
    alloc::memalloc::{self, NoFs},
    define_per_cpu,
    local_lock::LocalLock,
    new_local_lock, new_percpu_counter, per_cpu_cells,
    percpu::{
        possible_cpus, DeferredPerCpuNum, PerCpu, PerCpuCell, PerCpuNum, SharedPerCpu,
        StaticPerCpuNum,
    },
    percpu_counter::PercpuCounter,
    prelude::*,
    sync::{
        atomic::{ordering::Relaxed, Atomic},
        new_spinlock_irq, new_spinlock_irqsave, SpinLockIrq, SpinLockIrqSave,
    },
    time::{Instant, Monotonic},
};

module! {
    type: RustPercpuBench,
    name: "rust_percpu_bench",
    authors: ["Rust for Linux Contributors"],
    description: "Per-CPU, percpu_counter and irqsave lock microbenchmarks (Rust)",
    license: "GPL",
    params: {
        iters: u32 {
            default: 20000,
            description: "Iterations per timed loop (1000-10000000)",
        },
        reps: u32 {
            default: 7,
            description: "Repetitions per operation, the median is reported (1-31)",
        },
        sum_only: bool {
            default: false,
            description: "Only run the operations that visit every CPU",
        },
    },
}

const MAX_REPS: usize = 31;

/// The calls of the APIs under test whose signatures are in flux, in one place.
mod api {
    use super::*;
    use kernel::sync::CondIrqSaveGuard;

    /// The lock of the writeback cookie.
    pub(super) type WbLock = SpinLockIrq<u64>;

    /// Creates the lock of the writeback cookie.
    pub(super) fn new_wb_lock() -> impl PinInit<WbLock> {
        new_spinlock_irq!(0u64, "rust_percpu_bench_wb")
    }

    /// One critical section of a [`SpinLockIrqSave`].
    #[inline(always)]
    pub(super) fn irqsave_add(l: &SpinLockIrqSave<u64>, v: u64) {
        l.lock_irqsave(|g| **g = g.wrapping_add(v));
    }

    /// One writeback cookie: takes `l` if `cond` is non-zero.
    #[inline(always)]
    pub(super) fn cookie_add(l: &WbLock, cond: &Atomic<i32>, v: u64) {
        let mut c = CondIrqSaveGuard::begin(l, || cond.load(Relaxed) != 0);
        if let Some(x) = c.data() {
            *x = x.wrapping_add(v);
        }
        c.end();
    }

    /// Allocates the [`PerCpu`] of `local_modify`.
    pub(super) fn new_local() -> Result<PerCpu<u64>> {
        PerCpu::new_zeroed(GFP_KERNEL)
    }
}

define_per_cpu! {
    /// The static per-CPU variable of `static_add`.
    static BENCH_STATIC: StaticPerCpuNum<u64> = 0;
}

per_cpu_cells! {
    /// The per-CPU struct of `shared_add`.
    struct BenchCells {
        a: PerCpuCell<u32>,
        b: PerCpuCell<u64>,
    }
}

#[pin_data]
struct Bench {
    num: PerCpuNum<u64>,
    cells: SharedPerCpu<BenchCells>,
    ll: LocalLock<u64>,
    local: PerCpu<u64>,
    deferred: DeferredPerCpuNum<u64>,
    #[pin]
    pcc: PercpuCounter,
    #[pin]
    irqsave_lock: SpinLockIrqSave<u64>,
    #[pin]
    irq_lock: SpinLockIrq<u64>,
    #[pin]
    wb_lock: api::WbLock,
    yes: Atomic<i32>,
    no: Atomic<i32>,
    near: Atomic<i64>,
    sink: Atomic<u64>,
}

/// An operation under test: called with the benchmark state and the loop index.
type Op = fn(&Bench, u64);

#[inline(never)]
fn op_empty(_b: &Bench, _i: u64) {}

#[inline(never)]
fn op_num_add(b: &Bench, i: u64) {
    b.num.add(i);
}

#[inline(never)]
fn op_num_inc(b: &Bench, _i: u64) {
    b.num.inc();
}

#[inline(never)]
fn op_num_sum(b: &Bench, _i: u64) {
    b.sink.store(b.num.sum(), Relaxed);
}

#[inline(never)]
fn op_local_modify(b: &Bench, i: u64) {
    if let Some(mut v) = b.local.local() {
        *v = v.wrapping_add(i);
    }
}

#[inline(never)]
fn op_pcc_add(b: &Bench, _i: u64) {
    b.pcc.add(1);
}

#[inline(never)]
fn op_pcc_read(b: &Bench, _i: u64) {
    b.sink.store(b.pcc.read() as u64, Relaxed);
}

#[inline(never)]
fn op_pcc_sum(b: &Bench, _i: u64) {
    b.sink.store(b.pcc.sum() as u64, Relaxed);
}

#[inline(never)]
fn op_pcc_compare(b: &Bench, _i: u64) {
    b.sink
        .store(u64::from(b.pcc.compare(1 << 40).is_lt()), Relaxed);
}

#[inline(never)]
fn op_pcc_compare_near(b: &Bench, _i: u64) {
    let lt = b.pcc.compare(b.near.load(Relaxed)).is_lt();
    b.sink.store(u64::from(lt), Relaxed);
}

#[inline(never)]
fn op_pcc_limited_add(b: &Bench, _i: u64) {
    b.sink
        .store(u64::from(b.pcc.limited_add(1 << 40, 1)), Relaxed);
}

#[inline(never)]
fn op_irqsave(b: &Bench, i: u64) {
    api::irqsave_add(&b.irqsave_lock, i);
}

#[inline(never)]
fn op_cookie_true(b: &Bench, i: u64) {
    api::cookie_add(&b.wb_lock, &b.yes, i);
}

#[inline(never)]
fn op_cookie_false(b: &Bench, i: u64) {
    api::cookie_add(&b.wb_lock, &b.no, i);
}

#[inline(never)]
fn op_irq_disable(b: &Bench, i: u64) {
    let mut g = b.irq_lock.lock();
    *g = g.wrapping_add(i);
}

#[inline(never)]
fn op_memalloc_nofs(_b: &Bench, _i: u64) {
    memalloc::scope::<NoFs, _>(|| black_box(()));
}

#[inline(never)]
fn op_num_new_drop(_b: &Bench, _i: u64) {
    drop(PerCpuNum::<u64>::new(GFP_KERNEL));
}

#[inline(never)]
fn op_static_add(_b: &Bench, i: u64) {
    BENCH_STATIC.add(i);
}

#[inline(never)]
fn op_shared_add(b: &Bench, i: u64) {
    b.cells.add(|c| &c.b, i);
}

#[inline(never)]
fn op_num_xchg(b: &Bench, i: u64) {
    b.sink.store(b.num.xchg(i), Relaxed);
}

#[inline(never)]
fn op_num_cmpxchg(b: &Bench, i: u64) {
    b.sink.store(b.num.cmpxchg(i, i.wrapping_add(1)), Relaxed);
}

#[inline(never)]
fn op_num_add_return(b: &Bench, i: u64) {
    b.sink.store(b.num.add_return(i), Relaxed);
}

#[inline(never)]
fn op_local_lock(b: &Bench, i: u64) {
    if let Some(mut v) = b.ll.lock() {
        *v = v.wrapping_add(i);
    }
}

#[inline(never)]
fn op_local_lock_irqsave(b: &Bench, i: u64) {
    let _ = b.ll.lock_irqsave(|v| *v = v.wrapping_add(i));
}

#[inline(never)]
fn op_deferred_add(b: &Bench, i: u64) {
    b.deferred.add(i);
}

/// An operation, its name, the divisor of its iterations, and whether it visits every CPU.
struct BenchOp {
    name: &'static str,
    op: Op,
    div: u32,
    all_cpus: bool,
}

const fn op(name: &'static str, op: Op, div: u32, all_cpus: bool) -> BenchOp {
    BenchOp {
        name,
        op,
        div,
        all_cpus,
    }
}

/// The operations, with the names and divisors of the C module.
const OPS: [BenchOp; 24] = [
    op("num_add", op_num_add, 1, false),
    op("num_inc", op_num_inc, 1, false),
    op("num_sum", op_num_sum, 1, true),
    op("local_modify", op_local_modify, 1, false),
    op("static_add", op_static_add, 1, false),
    op("shared_add", op_shared_add, 1, false),
    op("num_xchg", op_num_xchg, 1, false),
    op("num_cmpxchg", op_num_cmpxchg, 1, false),
    op("num_add_return", op_num_add_return, 1, false),
    op("local_lock", op_local_lock, 1, false),
    op("local_lock_irqsave", op_local_lock_irqsave, 1, false),
    op("pcc_add", op_pcc_add, 1, false),
    op("pcc_read", op_pcc_read, 1, false),
    op("pcc_sum", op_pcc_sum, 1, true),
    op("pcc_compare", op_pcc_compare, 1, false),
    op("pcc_compare_near", op_pcc_compare_near, 1, true),
    op("pcc_limited_add", op_pcc_limited_add, 1, false),
    op("irqsave", op_irqsave, 1, false),
    op("cookie_true", op_cookie_true, 1, false),
    op("cookie_false", op_cookie_false, 1, false),
    op("irq_disable", op_irq_disable, 1, false),
    op("memalloc_nofs", op_memalloc_nofs, 1, false),
    op("num_new_drop", op_num_new_drop, 20, false),
    op("deferred_add", op_deferred_add, 1, false),
];

#[inline(never)]
fn bench_loop(b: &Bench, op: Op, n: u64) -> u64 {
    let t0 = Instant::<Monotonic>::now();
    for i in 0..n {
        op(b, i);
    }
    t0.elapsed().as_nanos() as u64
}

/// Returns the median of `v` (the upper one for an even length), or 0 if `v` is empty.
fn median(v: &[u64]) -> u64 {
    let k = v.len() / 2;
    v.iter()
        .copied()
        .find(|&x| {
            let below = v.iter().filter(|&&y| y < x).count();
            let up_to = v.iter().filter(|&&y| y <= x).count();
            below <= k && k < up_to
        })
        .unwrap_or(0)
}

fn bench_run(b: &Bench, op: &BenchOp, iters: u32, reps: usize) {
    let n = u64::from(iters / op.div.max(1)).max(1);
    let reps = reps.clamp(1, MAX_REPS);
    let (mut t_op, mut t_empty) = ([0u64; MAX_REPS], [0u64; MAX_REPS]);
    for (o, e) in t_op.iter_mut().zip(t_empty.iter_mut()).take(reps) {
        *e = bench_loop(b, op_empty, n);
        *o = bench_loop(b, op.op, n);
    }
    let a = median(t_op.get(..reps).unwrap_or(&[]));
    let e = median(t_empty.get(..reps).unwrap_or(&[]));
    let ps = (a as i64)
        .wrapping_sub(e as i64)
        .wrapping_mul(1000)
        .checked_div(n as i64)
        .unwrap_or(0);
    pr_info!(
        "lang=rust op={} cpus={} iters={} reps={} ps_per_op={} op_ns={} empty_ns={}\n",
        op.name,
        possible_cpus().count(),
        n,
        reps,
        ps,
        a,
        e
    );
}

struct RustPercpuBench;

impl kernel::Module for RustPercpuBench {
    fn init(_module: &'static ThisModule) -> Result<Self> {
        let iters = module_parameters::iters.value();
        let reps = module_parameters::reps.value();
        let sum_only = module_parameters::sum_only.value();
        if !(1000..=10_000_000).contains(&iters) || !(1..=MAX_REPS as u32).contains(&reps) {
            pr_err!("invalid iters={} or reps={}\n", iters, reps);
            return Err(EINVAL);
        }
        let deferred = DeferredPerCpuNum::<u64>::new(GFP_KERNEL)?;
        deferred.populate(GFP_KERNEL)?;
        let b = KBox::pin_init(
            try_pin_init!(Bench {
                num: PerCpuNum::new(GFP_KERNEL)?,
                cells: SharedPerCpu::new(GFP_KERNEL)?,
                ll <- new_local_lock!(GFP_KERNEL, |_| 0u64, "rust_percpu_bench_ll"),
                local: api::new_local()?,
                deferred,
                pcc <- new_percpu_counter!(0, GFP_KERNEL),
                irqsave_lock <- new_spinlock_irqsave!(0u64, "rust_percpu_bench_irqsave"),
                irq_lock <- new_spinlock_irq!(0u64, "rust_percpu_bench_irq"),
                wb_lock <- api::new_wb_lock(),
                yes: Atomic::new(1),
                no: Atomic::new(0),
                near: Atomic::new(0),
                sink: Atomic::new(0),
            }? Error),
            GFP_KERNEL,
        )?;
        for op in OPS.iter().filter(|op| !sum_only || op.all_cpus) {
            b.near.store(b.pcc.sum(), Relaxed);
            bench_run(&b, op, iters, reps as usize);
        }
        pr_info!("done\n");
        Ok(RustPercpuBench)
    }
}
