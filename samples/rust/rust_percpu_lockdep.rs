// SPDX-License-Identifier: GPL-2.0

//! Lockdep selftests for the Rust per-CPU, memalloc scope and irqsave APIs.
//!
//! `scenario=0` (default) runs every scenario written with the safe API: lockdep must stay
//! silent. `scenario=N` (1-6) writes scenario N the unsafe, C way, and lockdep must report it.
//! Lockdep reports only the first problem of a boot, so each of 1-6 needs a boot of its own.
//!
//! 1. A `GFP_KERNEL` per-CPU counter init under a mutex that filesystem reclaim also takes
//!    (circular dependency with `fs_reclaim`), as in the btrfs deadlock of 2020 that made
//!    `pcpu_alloc()` honour the task's NOFS scope. Safe: inside a `NoFs` scope.
//! 2. `spin_unlock_irq()` inside an irqsave region of a lock used from hard interrupts
//!    (inconsistent lock state), as in the writeback lock nesting fix of 2018 (`wb_lock_cookie`).
//!    Safe: `CondIrqSaveGuard`.
//! 3. A `GFP_KERNEL` per-CPU allocation on an atomic submission path (sleeping function called
//!    from invalid context), as in the blk-throttle deadlock of 2011 whose fix moved the
//!    allocation to a worker. Safe: `GFP_NOWAIT` and `DeferredPerCpuNum`.
//! 4. A `GFP_KERNEL` allocation from the I/O path that serves reclaim (recursive `fs_reclaim`),
//!    as in the loop worker deadlock of 2019 that made loop workers run in a NOIO scope. Safe:
//!    inside a `NoIo` scope.
//! 5. Two irqsave regions ended out of order, the inner lock used from hard interrupts
//!    (inconsistent lock state). Safe: the inner lock borrows the outer guard.
//!
//! 6. A `LocalLock` taken with `lock()` in task context, interrupts enabled, and with `lock()` in
//!    hard interrupt context (inconsistent lock state). Safe: `lock_irqsave()` everywhere. The
//!    types cannot see this bug (the two halves are correct on their own, and the value is never
//!    reachable twice: an interrupt that finds the lock held gets `None`), so this scenario uses
//!    the safe API, and lockdep is what reports it.
//!
//! Scenarios 1-5 call the C functions directly on purpose, to reproduce the bugs.
//!
//! `deferred_unload=1` then `deferred_unload=2` (with `CONFIG_RUST_PERCPU_KUNIT_TEST`) check that
//! a `DeferredPerCpuNum` allocation work item queued by this module runs safely after the module
//! is unloaded: load 1 holds the allocation worker inside the work function and drops the last
//! handle, the module is unloaded, and load 2 releases the worker and checks that it finished and
//! freed everything.

use core::pin::Pin;
use kernel::{
    alloc::memalloc::{
        self,
        NoFs,
        NoIo, //
    },
    bindings,
    c_str,
    define_per_cpu,
    interrupt::irqs_disabled,
    irq_work,
    new_local_lock,
    new_mutex,
    new_percpu_counter,
    new_spinlock,
    new_spinlock_irq,
    per_cpu_cells,
    percpu::{
        DeferredPerCpuNum,
        PerCpuCell,
        PerCpuNum,
        SharedPerCpu,
        StaticPerCpuNum, //
    },
    prelude::*,
    static_lock_class,
    sync::{
        new_spinlock_irqsave,
        CondIrqSaveGuard,
        Mutex,
        SpinLockIrqSave, //
    },
    types::Opaque, //
};

module! {
    type: RustPercpuLockdep,
    name: "rust_percpu_lockdep",
    authors: ["Rust for Linux Contributors"],
    description: "Lockdep selftests for Rust per-CPU, memalloc and irqsave APIs",
    license: "GPL",
    params: {
        scenario: u32 {
            default: 0,
            description: "0: all scenarios with the safe API; 1-6: provoke one lockdep report",
        },
        deferred_unload: u32 {
            default: 0,
            description: "1: leave a held DeferredPerCpuNum worker; 2: release it, check it",
        },
    },
}

struct RustPercpuLockdep;

/// Makes `fs_reclaim -> lock` known to lockdep: what filesystem reclaim does when it takes
/// a filesystem lock, without needing memory pressure.
fn prime_reclaim_takes(lock: &Mutex<()>) {
    // SAFETY: Balanced with the release below; only lockdep state is affected.
    unsafe { bindings::fs_reclaim_acquire(bindings::GFP_KERNEL) };
    drop(lock.lock());
    // SAFETY: Balances the acquire above.
    unsafe { bindings::fs_reclaim_release(bindings::GFP_KERNEL) };
}

fn percpu_alloc_under_fs_lock(safe: bool) -> Result {
    let fs_lock = KBox::pin_init(new_mutex!((), "lockdep_percpu_alloc_fs_lock"), GFP_KERNEL)?;
    prime_reclaim_takes(&fs_lock);
    let _g = fs_lock.lock();
    if safe {
        // Reclaim takes `fs_lock`: it must not re-enter the filesystem while we hold it.
        let c = memalloc::scope::<NoFs, _>(|| {
            KBox::pin_init(new_percpu_counter!(0, GFP_KERNEL), GFP_KERNEL)
        })?;
        c.inc();
    } else {
        // Only a per-CPU allocation (no kmalloc): the report comes from its annotation.
        PerCpuNum::<u64>::new(GFP_KERNEL)?.inc();
    }
    Ok(())
}

/// A raw `spinlock_t`, used the C way.
struct RawLock(Pin<KBox<Opaque<bindings::spinlock_t>>>);

// SAFETY: A `spinlock_t` is meant to be shared between CPUs.
unsafe impl Sync for RawLock {}

impl RawLock {
    fn new(name: &'static CStr, key: Pin<&'static kernel::sync::LockClassKey>) -> Result<Self> {
        let l = KBox::pin_init(Opaque::<bindings::spinlock_t>::uninit(), GFP_KERNEL)?;
        // SAFETY: `l` is valid memory for a spinlock; `name` and `key` are static.
        unsafe { bindings::__spin_lock_init(l.get(), name.as_char_ptr(), key.as_ptr()) };
        Ok(Self(l))
    }

    fn ptr(&self) -> *mut bindings::spinlock_t {
        self.0.get()
    }

    /// Takes and releases the lock from interrupt context (an irq_work) on every CPU.
    fn use_in_hardirq(&self) -> Result {
        irq_work::run_on_each_cpu(&|| {
            // SAFETY: The lock is initialised; balanced lock and unlock.
            unsafe {
                bindings::spin_lock(self.ptr());
                bindings::spin_unlock(self.ptr());
            }
        })
    }
}

fn cond_lock_in_irqsave(safe: bool) -> Result {
    if safe {
        let outer = KBox::pin_init(
            new_spinlock_irqsave!(0u32, "lockdep_cond_lock_safe_outer"),
            GFP_KERNEL,
        )?;
        let wb = KBox::pin_init(
            new_spinlock_irq!(0u32, "lockdep_cond_lock_safe_wb"),
            GFP_KERNEL,
        )?;
        irq_work::run_on_each_cpu(&|| outer.lock_irqsave(|o| **o += 1))?;
        let still_disabled = outer.lock_irqsave(|_| {
            let cookie = CondIrqSaveGuard::begin(&wb, || true);
            cookie.end();
            cfg!(CONFIG_PREEMPT_RT) || irqs_disabled()
        });
        if !still_disabled {
            pr_err!("cond_lock_in_irqsave: interrupts enabled inside the outer irqsave region\n");
            return Err(EINVAL);
        }
        return Ok(());
    }
    let outer = RawLock::new(c_str!("lockdep_cond_lock_outer"), static_lock_class!())?;
    let wb = RawLock::new(c_str!("lockdep_cond_lock_wb"), static_lock_class!())?;
    outer.use_in_hardirq()?;
    // SAFETY: Both locks are initialised; this is the buggy C sequence, `spin_unlock_irq()` inside
    // an irqsave region.
    unsafe {
        let flags = bindings::spin_lock_irqsave(outer.ptr());
        bindings::spin_lock_irq(wb.ptr());
        bindings::spin_unlock_irq(wb.ptr()); // Enables interrupts with `outer` held.
        bindings::spin_unlock_irqrestore(outer.ptr(), flags);
    }
    Ok(())
}

fn percpu_alloc_on_atomic_path(safe: bool) -> Result {
    let queue = KBox::pin_init(new_spinlock!(0u32, "lockdep_atomic_path_queue"), GFP_KERNEL)?;
    let deferred = DeferredPerCpuNum::<u64>::new(GFP_KERNEL)?;
    let g = queue.lock();
    if safe {
        // Submission path: allocate without sleeping, or let a worker do it.
        let stats = PerCpuNum::<u64>::new(GFP_NOWAIT);
        if let Ok(s) = &stats {
            rust_percpu_lockdep_add_u64(s, core::hint::black_box(1));
        }
        let _ = deferred.add(1);
        drop(g);
        drop(stats);
    } else {
        let stats = PerCpuNum::<u64>::new(GFP_KERNEL);
        drop(g);
        drop(stats);
    }
    Ok(())
}

fn percpu_alloc_on_io_path(safe: bool) -> Result {
    let dev_lock = KBox::pin_init(new_mutex!((), "lockdep_io_path_loop_lock"), GFP_KERNEL)?;
    // This task is the I/O path that reclaim waits on (a loop worker writing pages back).
    // SAFETY: Balanced with the release below; only lockdep state is affected.
    unsafe { bindings::fs_reclaim_acquire(bindings::GFP_KERNEL) };
    let r = (|| -> Result {
        let _g = dev_lock.lock();
        if safe {
            // Reclaim waits for this I/O: allocations here must not start more I/O.
            memalloc::scope::<NoIo, _>(|| {
                KBox::pin_init(new_percpu_counter!(0, GFP_KERNEL), GFP_KERNEL)?.inc();
                PerCpuNum::<u64>::new(GFP_KERNEL)?.inc();
                Ok(())
            })
        } else {
            PerCpuNum::<u64>::new(GFP_KERNEL)?.inc();
            Ok(())
        }
    })();
    // SAFETY: Balances the acquire above.
    unsafe { bindings::fs_reclaim_release(bindings::GFP_KERNEL) };
    r
}

fn irqsave_order(safe: bool) -> Result {
    if safe {
        let a = KBox::pin_init(
            new_spinlock_irqsave!(0u32, "lockdep_order_safe_a"),
            GFP_KERNEL,
        )?;
        let b = KBox::pin_init(new_spinlock_irq!(0u32, "lockdep_order_safe_b"), GFP_KERNEL)?;
        let c = KBox::pin_init(
            new_spinlock_irqsave!(0u64, "lockdep_order_safe_c"),
            GFP_KERNEL,
        )?;
        irq_work::run_on_each_cpu(&|| {
            a.lock_irqsave(|g| **g += 1);
            *b.lock() += 1;
        })?;
        rust_percpu_lockdep_irqsave_inc(&c);
        // The C bug takes `a` then `b` with irqsave and releases `a` first. Here `a`'s critical
        // section is a closure, so `b` (nested) ends first; a `SpinLockIrq` guard returned from
        // the closure would keep interrupts disabled until it ends.
        let gb = a.lock_irqsave(|_| b.lock());
        let held = cfg!(CONFIG_PREEMPT_RT) || irqs_disabled();
        drop(gb);
        if !held || irqs_disabled() {
            pr_err!("irqsave_order: wrong interrupt state around the nested lock\n");
            return Err(EINVAL);
        }
        return Ok(());
    }
    let a = RawLock::new(c_str!("lockdep_order_a"), static_lock_class!())?;
    let b = RawLock::new(c_str!("lockdep_order_b"), static_lock_class!())?;
    let fix = RawLock::new(c_str!("lockdep_order_fixup"), static_lock_class!())?;
    a.use_in_hardirq()?;
    b.use_in_hardirq()?;
    // SAFETY: All locks are initialised; this is the buggy out-of-order release.
    unsafe {
        let fa = bindings::spin_lock_irqsave(a.ptr());
        let fb = bindings::spin_lock_irqsave(b.ptr());
        // Enables interrupts with `b` held.
        bindings::spin_unlock_irqrestore(a.ptr(), fa);
        // Disables them again.
        bindings::spin_unlock_irqrestore(b.ptr(), fb);
        // Leave with interrupts enabled, as on entry.
        bindings::spin_lock_irq(fix.ptr());
        bindings::spin_unlock_irq(fix.ptr());
    }
    Ok(())
}

/// Checked by the harness's disassembly test: on x86_64 with inlined helpers, this must be a
/// load of the per-CPU pointer and one `add` with a `%gs:` operand, with no call.
#[inline(never)]
fn rust_percpu_lockdep_add_u64(n: &PerCpuNum<u64>, v: u64) {
    n.add(v)
}

fn local_lock_irq(safe: bool) -> Result {
    if safe {
        let l = KBox::init(
            new_local_lock!(GFP_KERNEL, |_| 0u64, "lockdep_local_lock_safe"),
            GFP_KERNEL,
        )?;
        let _ = l.lock_irqsave(|v| *v += 1);
        irq_work::run_on_each_cpu(&|| {
            let _ = l.lock_irqsave(|v| *v += 1);
        })?;
        return Ok(());
    }
    let l = KBox::init(
        new_local_lock!(GFP_KERNEL, |_| 0u64, "lockdep_local_lock"),
        GFP_KERNEL,
    )?;
    // Task context, interrupts enabled...
    if let Some(mut g) = l.lock() {
        *g += 1;
    }
    // ... and hard interrupt context, with `lock()`: a plain acquisition for lockdep, which
    // reports the two uses (`lock_irqsave()` is a trylock, as C's `local_trylock_irqsave()`).
    // Had the interrupt come while the task held the lock, C would have two owners; here it
    // would get `None`.
    irq_work::run_on_each_cpu(&|| {
        if let Some(mut g) = l.lock() {
            *g += 1;
        }
    })?;
    Ok(())
}

define_per_cpu! {
    /// Updated by `rust_percpu_lockdep_static_add_u64()` (disassembly check).
    static STATIC_COUNT: StaticPerCpuNum<u64> = 0;
}

per_cpu_cells! {
    /// Updated by `rust_percpu_lockdep_shared_add_u32()` (disassembly check).
    struct Cells {
        a: PerCpuCell<u32>,
        b: PerCpuCell<u64>,
    }
}

/// Checked by the harness's disassembly test: a static per-CPU variable of a module, one `add`
/// with a `%gs:` operand and no call.
#[inline(never)]
fn rust_percpu_lockdep_static_add_u64(v: u64) {
    STATIC_COUNT.add(v)
}

/// Checked by the harness's disassembly test: a field of a shared per-CPU struct, one `add` with a
/// `%gs:` operand and no call (the field's offset is a constant).
#[inline(never)]
fn rust_percpu_lockdep_shared_add_u32(s: &SharedPerCpu<Cells>, v: u32) {
    s.add(|c| &c.a, v)
}

/// Checked by the harness's disassembly test: `this_cpu_xchg()`, no `lock` prefix, no call.
#[inline(never)]
fn rust_percpu_lockdep_xchg_u64(n: &PerCpuNum<u64>, v: u64) -> u64 {
    n.xchg(v)
}

/// Checked by the harness's disassembly test: `this_cpu_cmpxchg()`, one `cmpxchg` with a `%gs:`
/// operand, no `lock` prefix, no call.
#[inline(never)]
fn rust_percpu_lockdep_cmpxchg_u64(n: &PerCpuNum<u64>, old: u64, new: u64) -> u64 {
    n.cmpxchg(old, new)
}

/// Runs the functions of the disassembly check once, so that they are kept and shown to work.
fn disasm_functions() -> Result {
    let n = PerCpuNum::<u64>::new(GFP_KERNEL)?;
    let s = SharedPerCpu::<Cells>::new(GFP_KERNEL)?;
    let before = STATIC_COUNT.sum();
    rust_percpu_lockdep_static_add_u64(core::hint::black_box(2));
    rust_percpu_lockdep_shared_add_u32(&s, core::hint::black_box(3));
    let _g = kernel::percpu::PreemptGuard::new();
    let old = rust_percpu_lockdep_xchg_u64(&n, core::hint::black_box(5));
    let found = rust_percpu_lockdep_cmpxchg_u64(&n, 5, core::hint::black_box(6));
    if STATIC_COUNT.sum().wrapping_sub(before) != 2
        || s.sum(|c| &c.a) != 3
        || s.sum(|c| &c.b) != 0
        || old != 0
        || found != 5
        || n.this_cpu_read() != 6
    {
        pr_err!("disassembly-check functions gave wrong results\n");
        return Err(EINVAL);
    }
    Ok(())
}

/// Checked by the harness's disassembly test: taking and releasing a `SpinLockIrqSave` must cost
/// what C's `spin_lock_irqsave()`/`spin_unlock_irqrestore()` cost, one call each, plus a read of
/// the preempt count at each end (out-of-line calls only on the refcounted-region paths).
#[inline(never)]
fn rust_percpu_lockdep_irqsave_inc(l: &SpinLockIrqSave<u64>) {
    l.lock_irqsave(|g| **g = g.wrapping_add(1));
}

/// Polls `done` every 10 ms for up to 10 s.
#[cfg(CONFIG_RUST_PERCPU_KUNIT_TEST)]
fn wait_for(mut done: impl FnMut() -> bool) -> bool {
    for _ in 0..1000 {
        if done() {
            return true;
        }
        kernel::time::delay::fsleep(kernel::time::Delta::from_millis(10));
    }
    done()
}

// The kernel crate's test hooks for deferred allocation workers (only in test kernels): raw C
// symbols, not Rust API, because holding the workers stalls every deferred allocation.
#[cfg(CONFIG_RUST_PERCPU_KUNIT_TEST)]
extern "C" {
    fn rust_percpu_deferred_test_hold(hold: bool);
    fn rust_percpu_deferred_test_held() -> u64;
    fn rust_percpu_deferred_test_released() -> u64;
    fn rust_percpu_deferred_test_live() -> i64;
}

/// Holds (or releases) the deferred allocation workers.
#[cfg(CONFIG_RUST_PERCPU_KUNIT_TEST)]
fn hold_workers(hold: bool) {
    // SAFETY: The hook only stores a flag that the workers poll (for at most 30 s each).
    unsafe { rust_percpu_deferred_test_hold(hold) }
}

/// Returns how many workers were held and how many of those went on, and the live cores.
#[cfg(CONFIG_RUST_PERCPU_KUNIT_TEST)]
fn worker_counts() -> (u64, u64, i64) {
    // SAFETY: The hooks only read counters.
    unsafe {
        (
            rust_percpu_deferred_test_held(),
            rust_percpu_deferred_test_released(),
            rust_percpu_deferred_test_live(),
        )
    }
}

/// `deferred_unload=1`: queues a `DeferredPerCpuNum` allocation whose worker is held inside the
/// work function, and drops the last handle, so that only the work item keeps it alive.
#[cfg(CONFIG_RUST_PERCPU_KUNIT_TEST)]
fn deferred_unload_queue() -> Result {
    let (held, _, _) = worker_counts();
    hold_workers(true);
    let d = DeferredPerCpuNum::<u64>::new(GFP_KERNEL)?;
    let counted = d.add(1);
    drop(d);
    if counted || !wait_for(|| worker_counts().0 > held) {
        hold_workers(false);
        pr_err!("deferred_unload: the allocation worker did not start\n");
        return Err(EIO);
    }
    pr_info!("deferred_unload: worker held with the last reference; unload the module now\n");
    Ok(())
}

/// `deferred_unload=2`: releases the held worker and checks that it finished and freed
/// everything.
#[cfg(CONFIG_RUST_PERCPU_KUNIT_TEST)]
fn deferred_unload_check() -> Result {
    hold_workers(false);
    let finished = wait_for(|| {
        let (held, released, live) = worker_counts();
        held > 0 && held == released && live == 0
    });
    let (held, released, live) = worker_counts();
    if !finished {
        pr_err!(
            "deferred_unload: held {} released {} live {}\n",
            held,
            released,
            live
        );
        return Err(EIO);
    }
    pr_info!("deferred_unload: worker finished after unload, nothing left allocated\n");
    Ok(())
}

fn deferred_unload(step: u32) -> Result {
    match step {
        #[cfg(CONFIG_RUST_PERCPU_KUNIT_TEST)]
        1 => deferred_unload_queue(),
        #[cfg(CONFIG_RUST_PERCPU_KUNIT_TEST)]
        2 => deferred_unload_check(),
        #[cfg(not(CONFIG_RUST_PERCPU_KUNIT_TEST))]
        1 | 2 => {
            pr_err!("deferred_unload needs CONFIG_RUST_PERCPU_KUNIT_TEST\n");
            Err(ENODEV)
        }
        _ => {
            pr_err!("invalid deferred_unload={}: must be within 0..=2\n", step);
            Err(EINVAL)
        }
    }
}

/// A scenario: its name and the function that runs it, safely (`true`) or the C way (`false`).
type Scenario = (&'static str, fn(bool) -> Result);

const SCENARIOS: [Scenario; 6] = [
    ("percpu_alloc_reclaim_cycle", percpu_alloc_under_fs_lock),
    ("cond_lock_irq_reenabled", cond_lock_in_irqsave),
    ("percpu_alloc_in_atomic", percpu_alloc_on_atomic_path),
    ("percpu_alloc_reclaim_recursion", percpu_alloc_on_io_path),
    ("irqsave_out_of_order", irqsave_order),
    ("local_lock_irq_inconsistent", local_lock_irq),
];

impl kernel::Module for RustPercpuLockdep {
    fn init(_module: &'static ThisModule) -> Result<Self> {
        let n = module_parameters::scenario.value();
        let unload = module_parameters::deferred_unload.value();
        if unload != 0 {
            if n != 0 {
                pr_err!("deferred_unload={} needs scenario=0\n", unload);
                return Err(EINVAL);
            }
            deferred_unload(unload)?;
            return Ok(RustPercpuLockdep);
        }
        if n as usize > SCENARIOS.len() {
            pr_err!(
                "invalid scenario={}: must be within 0..={}\n",
                n,
                SCENARIOS.len()
            );
            return Err(EINVAL);
        }
        if n == 0 {
            for (name, f) in SCENARIOS {
                f(true)?;
                pr_info!("safe {}: done\n", name);
            }
            disasm_functions()?;
            pr_info!("all safe scenarios done\n");
        } else if let Some((name, f)) = SCENARIOS.get(n as usize - 1) {
            pr_info!("provoking {}\n", name);
            f(false)?;
            pr_info!("provoked {}\n", name);
        }
        Ok(RustPercpuLockdep)
    }
}
