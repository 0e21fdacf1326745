// SPDX-License-Identifier: GPL-2.0

//! Running code in interrupt context with `irq_work`.
//!
//! [`run_on`] and [`run_on_each_cpu`] run a closure from an `irq_work` on the given CPUs and
//! wait for it. The closure must not sleep. Where it runs:
//!
//! - Without `CONFIG_PREEMPT_RT`: in hard interrupt context. Lockdep records the locks it takes
//!   as used in hard-IRQ context.
//! - With `CONFIG_PREEMPT_RT`: in the CPU's `irq_work` thread.
//!
//! Either way, and unlike an inter-processor function call, a plain `irq_work` is a valid context
//! for `spinlock_t`.
//!
//! # CPU hotplug
//!
//! Both functions hold CPU hotplug off (`cpus_read_lock()`) while they queue and wait, so the
//! CPUs they run on stay online. Code that already holds CPU hotplug off must not take that lock
//! again: it calls [`run_on_cpuslocked`] and [`run_on_each_cpu_cpuslocked`] instead, following
//! C's `_cpuslocked` convention. They take a [`CpusLocked`] proof that the lock is held:
//!
//! - A [`CpusReadGuard`], C's `cpus_read_lock()`, gives one.
//! - Code that C calls with the lock held, such as a CPU hotplug callback or a cpufreq driver's
//!   `init`, gets one from [`CpusLocked::assume_held`].
//!
//! # Context
//!
//! All four functions wait, and may sleep: call them from task context that may sleep. They
//! return [`EDEADLK`] in the contexts where the kernel can see that the caller must not sleep.
//! That check is not deadlock detection: like `kernel/smp.c` for `smp_call_function_many()`,
//! the `# Context` section of each function says which contexts may call it, what is checked at
//! run time, and which deadlocks remain the caller's responsibility.
//!
//! C header: [`include/linux/irq_work.h`](srctree/include/linux/irq_work.h)
//!
//! [`EDEADLK`]: crate::error::code::EDEADLK

use crate::{
    alloc::{
        flags::GFP_KERNEL,
        KVec, //
    },
    bindings,
    cpu::CpuId,
    error::{
        code::*,
        Result, //
    },
    types::{
        NotThreadSafe,
        Opaque, //
    }, //
};
use core::ops::Deref;

/// An `irq_work` and the closure it calls.
///
/// # Invariants
///
/// `work` is the first field, so a pointer to it is a pointer to the `Call`.
#[repr(C)]
struct Call<'a> {
    work: Opaque<bindings::irq_work>,
    f: &'a (dyn Fn() + Sync),
}

/// Calls the closure of the [`Call`] that `work` belongs to.
///
/// # Safety
///
/// `work` must be the `work` field of a live [`Call`].
unsafe extern "C" fn trampoline(work: *mut bindings::irq_work) {
    // SAFETY: By the type invariants of `Call`, `work` is the first field of a live `Call`
    // (the queuing function waits for the work before the `Call` goes away).
    let call = unsafe { &*work.cast::<Call<'_>>() };
    (call.f)();
}

impl<'a> Call<'a> {
    fn new(f: &'a (dyn Fn() + Sync)) -> Self {
        Self {
            work: Opaque::uninit(),
            f,
        }
    }

    /// Queues the work on `cpu`.
    ///
    /// # Safety
    ///
    /// `self` must not move or be dropped until [`Call::sync`] has returned, and `cpu` must stay
    /// online until then: the caller holds CPU hotplug off and checked that `cpu` is online.
    unsafe fn queue_on(&self, cpu: CpuId) {
        // SAFETY: `work` is valid for writes; `trampoline` matches `irq_work` callbacks.
        unsafe { bindings::init_irq_work(self.work.get(), Some(trampoline)) };
        // SAFETY: `work` is initialised and, by the safety requirements, stays in place until
        // `sync()`; `cpu` is an online CPU, as `irq_work_queue_on()` requires.
        unsafe { bindings::irq_work_queue_on(self.work.get(), i32::from(cpu)) };
    }

    /// Waits until the work has run.
    fn sync(&self) {
        // SAFETY: `work` was initialised by `queue_on()` (callers never call `sync()` before it).
        // Callers checked with `check_can_wait()` that this task may sleep with interrupts on.
        unsafe { bindings::irq_work_sync(self.work.get()) };
    }
}

/// Returns [`EDEADLK`] if the caller is in a context that, as far as the kernel can tell, cannot
/// sleep and wait for an `irq_work`.
///
/// - Interrupts disabled: the work queued on the current CPU never runs, and `irq_work_sync()`
///   would spin forever.
/// - Interrupt context, bottom halves disabled, preemption disabled, or a read-side critical
///   section of preemptible RCU, which on `PREEMPT_RT` includes holding a `spinlock_t`: the task
///   must not sleep. Taking `cpus_read_lock()` may sleep, and on `PREEMPT_RT` or on an
///   architecture without an `irq_work` interrupt `irq_work_sync()` sleeps too.
/// - Without `CONFIG_PREEMPT_COUNT`, a spinlock or `preempt_disable()` is invisible to this
///   check. The `might_sleep()` annotation reports that case when `CONFIG_DEBUG_ATOMIC_SLEEP` is
///   enabled, which selects `CONFIG_PREEMPT_COUNT`.
#[track_caller]
fn check_can_wait() -> Result {
    // SAFETY: `irqs_disabled()`, `in_interrupt()`, `preemptible()` and `rcu_preempt_depth()`
    // only read the local interrupt state, the preemption count and the task's RCU nesting.
    let atomic = unsafe {
        bindings::irqs_disabled()
            || bindings::in_interrupt()
            || (cfg!(CONFIG_PREEMPT_COUNT) && !bindings::preemptible())
            || bindings::rcu_preempt_depth() != 0
    };
    if atomic {
        return Err(EDEADLK);
    }
    crate::task::might_sleep();
    Ok(())
}

/// A proof that CPU hotplug is held off.
///
/// No online CPU goes offline while a `&CpusLocked` is live. C's `_cpuslocked` functions require
/// the caller to hold the CPU hotplug lock and check it with `lockdep_assert_cpus_held()`, which
/// only warns, and only with lockdep. A `&CpusLocked` argument makes the requirement part of the
/// type:
///
/// - Safe code gets one by dereferencing a [`CpusReadGuard`].
/// - Code that C calls with the lock held gets one from [`CpusLocked::assume_held`].
///
/// The reference cannot leave the task, since `CpusLocked` is not `Sync`: it cannot be captured
/// by a closure that another CPU runs.
///
/// # Invariants
///
/// With `CONFIG_HOTPLUG_CPU`, for as long as a `&CpusLocked` is live, the CPU hotplug lock is
/// held (for reading or for writing) by the task that uses the reference or, in a CPU hotplug
/// callback, by the hotplug operation that waits for the callback. So no CPU that is online
/// while the reference is live goes offline before the reference ends. Without
/// `CONFIG_HOTPLUG_CPU` CPUs never go offline.
pub struct CpusLocked(NotThreadSafe);

impl CpusLocked {
    /// Returns a proof that CPU hotplug is held off, for code that C calls with the CPU hotplug
    /// lock held.
    ///
    /// For example:
    ///
    /// - A CPU hotplug state callback (`cpuhp_setup_state()`). The hotplug operation, or
    ///   `cpuhp_setup_state()` itself for the CPUs already online, holds the lock and waits for
    ///   the callback, and lockdep counts it as held on the CPU's hotplug thread.
    /// - A cpufreq driver's `init`.
    /// - Rust code called from C under `cpus_read_lock()`.
    ///
    /// Like C's `_cpuslocked` functions, it checks with `lockdep_assert_cpus_held()`, with
    /// lockdep and once the system is running.
    ///
    /// Safe code that relies on [`CpusLocked`] does not work without the lock. For example
    /// [`run_on_cpuslocked`] queues work on a CPU it found online and waits for it to run: a CPU
    /// may go offline first, `irq_work_queue_on()` then warns and the work never runs.
    ///
    /// # Safety
    ///
    /// For the whole lifetime `'a`, the CPU hotplug lock must be held, for reading or for
    /// writing, by the current task or by the CPU hotplug operation whose callback the current
    /// task runs (and which waits for the callback to return).
    #[inline]
    pub unsafe fn assume_held<'a>() -> &'a CpusLocked {
        // INVARIANT: By the safety requirements, the lock is held for the whole lifetime `'a`.
        const HELD: &CpusLocked = &CpusLocked(NotThreadSafe);

        HELD.assert_held();
        HELD
    }

    /// Checks with lockdep that CPU hotplug is held off (C's `lockdep_assert_cpus_held()`).
    ///
    /// By the type invariants it is, so this only cross-checks the callers of
    /// [`CpusLocked::assume_held`]. Lockdep is silent until the system is running.
    #[inline]
    fn assert_held(&self) {
        #[cfg(CONFIG_HOTPLUG_CPU)]
        {
            // SAFETY: `lockdep_assert_cpus_held()` only reads lockdep's record of the locks the
            // current task holds.
            unsafe { bindings::lockdep_assert_cpus_held() };
        }
    }

    /// Returns whether `cpu` is online.
    ///
    /// By the type invariants, an online `cpu` stays online while `self` is borrowed.
    #[inline]
    fn is_online(&self, cpu: CpuId) -> bool {
        // SAFETY: `cpu_online()` only tests a bit of the online mask.
        unsafe { bindings::cpu_online(cpu.as_u32()) }
    }
}

/// Holds CPU hotplug off while it exists (C's `cpus_read_lock()`).
///
/// Online CPUs stay online. It dereferences to the [`CpusLocked`] proof that
/// [`run_on_cpuslocked`] and [`run_on_each_cpu_cpuslocked`] take.
///
/// # Context
///
/// [`CpusReadGuard::new`] may sleep: call it from task context that may sleep. It returns
/// [`EDEADLK`] where [`run_on`] does. As in C, the caller must not hold:
///
/// - The CPU hotplug lock already: a second guard, a CPU hotplug callback, C's
///   `cpus_read_lock()`. That deadlocks as soon as a CPU hotplug operation waits for the lock,
///   and at once in a hotplug callback.
/// - A lock that CPU hotplug callbacks take. That deadlocks when a hotplug operation runs at the
///   same time.
///
/// Lockdep reports both; nothing else detects them at run time.
///
/// # Invariants
///
/// With `CONFIG_HOTPLUG_CPU`, this task took `cpus_read_lock()` when creating the guard and
/// holds it until the guard is dropped; the guard stays on this task.
///
/// # Examples
///
/// ```
/// use kernel::{
///     irq_work::{self, CpusReadGuard},
///     sync::atomic::*, //
/// };
///
/// let runs = Atomic::new(0i32);
/// let cpus = CpusReadGuard::new()?;
/// irq_work::run_on_each_cpu_cpuslocked(&cpus, &|| {
///     runs.add(1, Relaxed);
/// })?;
/// let online = runs.load(Relaxed);
/// irq_work::run_on_each_cpu_cpuslocked(&cpus, &|| {
///     runs.add(1, Relaxed);
/// })?;
/// // No CPU went online or offline in between.
/// assert_eq!(runs.load(Relaxed), 2 * online);
/// drop(cpus);
/// # Ok::<(), Error>(())
/// ```
#[must_use = "CPU hotplug is allowed again immediately when the guard is unused"]
pub struct CpusReadGuard(CpusLocked);

impl CpusReadGuard {
    /// Takes the CPU hotplug lock for reading (C's `cpus_read_lock()`).
    ///
    /// It may sleep. Returns [`EDEADLK`] in the contexts where [`run_on`] returns it, instead of
    /// sleeping there.
    #[track_caller]
    pub fn new() -> Result<Self> {
        check_can_wait()?;
        #[cfg(CONFIG_HOTPLUG_CPU)]
        {
            // SAFETY: `cpus_read_lock()` may sleep, which `check_can_wait()` allows; `Drop`
            // releases the lock on this task (the guard is not `Send`).
            unsafe { bindings::cpus_read_lock() };
        }
        // INVARIANT: The lock was taken above (a no-op without `CONFIG_HOTPLUG_CPU`, where CPUs
        // never go offline). A `&CpusLocked` borrows the guard, which holds the lock.
        Ok(Self(CpusLocked(NotThreadSafe)))
    }
}

impl Deref for CpusReadGuard {
    type Target = CpusLocked;

    #[inline]
    fn deref(&self) -> &CpusLocked {
        &self.0
    }
}

impl Drop for CpusReadGuard {
    #[inline]
    fn drop(&mut self) {
        #[cfg(CONFIG_HOTPLUG_CPU)]
        {
            // SAFETY: By the type invariants, this task took `cpus_read_lock()` in `new()`.
            unsafe { bindings::cpus_read_unlock() };
        }
    }
}

/// Runs `f` on `cpu` from an `irq_work` and waits for it to finish.
///
/// `cpu` is a [`CpuId`] or a [`PossibleCpu`](crate::cpu::PossibleCpu). CPU hotplug is held off
/// (`cpus_read_lock()`) from the check that `cpu` is online until `f` has run. Returns
/// [`ENODEV`] if `cpu` is not online.
///
/// # Context
///
/// Task context that may sleep: interrupts, bottom halves and preemption enabled, no spinlock
/// held, outside RCU read-side critical sections, and without the CPU hotplug lock.
///
/// Checked at run time, returning [`EDEADLK`] instead of waiting:
///
/// - Interrupts disabled.
/// - Interrupt context or bottom halves disabled, including a call from `f` itself.
/// - Preemption disabled or a spinlock held. These are visible only with `CONFIG_PREEMPT_COUNT`,
///   which preemptible kernels and `CONFIG_DEBUG_ATOMIC_SLEEP` select. Without it, a call under
///   a spinlock is a bug the kernel does not report, as for any sleeping function.
/// - A read-side critical section of preemptible RCU. On `PREEMPT_RT` that includes holding a
///   [`SpinLock`].
///
/// Not detected, the caller's responsibility (the call never returns):
///
/// - Holding the CPU hotplug lock already: under a [`CpusReadGuard`] or C's
///   `cpus_read_lock()`, in a CPU hotplug callback, in a cpufreq driver's `init`. Taking it
///   again blocks behind a waiting CPU hotplug operation, and at once in a callback that a CPU
///   hotplug operation runs, since that operation holds the lock for writing. Lockdep reports
///   the recursion. Use [`run_on_cpuslocked`] there.
/// - Holding a lock that a CPU hotplug callback takes, while a hotplug operation runs: an ABBA
///   deadlock that lockdep reports.
/// - Holding anything that `f` waits for, or that `cpu` waits for with interrupts disabled:
///   `f` runs only once `cpu` enables them, and on `PREEMPT_RT` once its `irq_work` thread
///   runs. For example a flag that the caller sets only after the call returns, or a spinlock
///   that the check cannot see without `CONFIG_PREEMPT_COUNT`. Lockdep does not model the wait
///   for an `irq_work`.
///
/// [`SpinLock`]: crate::sync::SpinLock
/// [`ENODEV`]: crate::error::code::ENODEV
///
/// # Examples
///
/// ```
/// use kernel::{
///     cpu::CpuId,
///     irq_work,
///     sync::atomic::*, //
/// };
///
/// let runs = Atomic::new(0i32);
/// irq_work::run_on(CpuId::current(), &|| {
///     runs.add(1, Relaxed);
/// })?;
/// // `run_on()` returns only once the work has run.
/// assert_eq!(runs.load(Relaxed), 1);
/// # Ok::<(), Error>(())
/// ```
#[inline]
#[track_caller]
pub fn run_on(cpu: impl Into<CpuId>, f: &(dyn Fn() + Sync)) -> Result {
    run_on_id(cpu.into(), f)
}

/// [`run_on`] for one CPU type, out of line.
#[inline(never)]
#[track_caller]
fn run_on_id(cpu: CpuId, f: &(dyn Fn() + Sync)) -> Result {
    let cpus = CpusReadGuard::new()?;
    queue_and_wait(&cpus, cpu, f)
}

/// Runs `f` on `cpu` from an `irq_work` and waits for it to finish, with CPU hotplug already
/// held off by the caller.
///
/// This is [`run_on`] for callers that hold the CPU hotplug lock, following C's `_cpuslocked`
/// convention: `cpus` proves it, so `cpu` stays online until `f` has run. Returns [`ENODEV`] if
/// `cpu` is not online.
///
/// # Context
///
/// Task context that may sleep, with CPU hotplug held off: under a [`CpusReadGuard`], or in
/// code that C calls with the hotplug lock held (see [`CpusLocked::assume_held`]).
///
/// Checked at run time:
///
/// - [`EDEADLK`] as for [`run_on`]. A callback of an atomic CPU hotplug state, such as
///   `STARTING` or `DYING`, runs with interrupts disabled and gets it too.
/// - With lockdep, the lock is cross-checked with `lockdep_assert_cpus_held()`.
///
/// Not detected, the caller's responsibility (the call never returns):
///
/// - Holding anything that `f` waits for, or that `cpu` waits for with interrupts disabled, as
///   for [`run_on`].
/// - On `PREEMPT_RT`, a call from a CPU hotplug callback of a state below
///   `CPUHP_AP_SMPBOOT_THREADS` that targets the CPU being plugged, whose `irq_work` thread is
///   parked there.
///
/// [`ENODEV`]: crate::error::code::ENODEV
///
/// # Examples
///
/// ```
/// use kernel::{
///     cpu::CpuId,
///     irq_work::{self, CpusLocked, CpusReadGuard},
///     sync::atomic::*, //
/// };
///
/// // A function following C's `_cpuslocked` convention: the caller holds CPU hotplug off.
/// fn poke_cpuslocked(cpus: &CpusLocked, cpu: CpuId, runs: &Atomic<i32>) -> Result {
///     irq_work::run_on_cpuslocked(cpus, cpu, &|| {
///         runs.add(1, Relaxed);
///     })
/// }
///
/// let runs = Atomic::new(0i32);
/// let cpus = CpusReadGuard::new()?;
/// poke_cpuslocked(&cpus, CpuId::current(), &runs)?;
/// poke_cpuslocked(&cpus, CpuId::current(), &runs)?;
/// drop(cpus);
/// assert_eq!(runs.load(Relaxed), 2);
/// # Ok::<(), Error>(())
/// ```
#[inline]
#[track_caller]
pub fn run_on_cpuslocked(
    cpus: &CpusLocked,
    cpu: impl Into<CpuId>,
    f: &(dyn Fn() + Sync),
) -> Result {
    run_on_cpuslocked_id(cpus, cpu.into(), f)
}

/// [`run_on_cpuslocked`] for one CPU type, out of line.
#[inline(never)]
#[track_caller]
fn run_on_cpuslocked_id(cpus: &CpusLocked, cpu: CpuId, f: &(dyn Fn() + Sync)) -> Result {
    check_can_wait()?;
    cpus.assert_held();
    queue_and_wait(cpus, cpu, f)
}

/// Runs `f` on `cpu` if it is online and waits for it.
///
/// Callers checked with `check_can_wait()` that this task may sleep.
fn queue_and_wait(cpus: &CpusLocked, cpu: CpuId, f: &(dyn Fn() + Sync)) -> Result {
    if !cpus.is_online(cpu) {
        return Err(ENODEV);
    }
    let call = Call::new(f);
    // SAFETY: `call` is a local that is not moved before `sync()` returns; `cpu` is online and,
    // by the type invariants of `CpusLocked`, stays online while `cpus` is borrowed.
    unsafe { call.queue_on(cpu) };
    call.sync();
    Ok(())
}

/// Runs `f` on every online CPU from an `irq_work`, concurrently, and waits for all of them.
///
/// CPU hotplug is held off (`cpus_read_lock()`) while the work is queued and waited for, so `f`
/// runs exactly once on each CPU that is online then. Returns [`ENOMEM`] if the bookkeeping
/// cannot be allocated.
///
/// # Context
///
/// As for [`run_on`], where "`cpu`" is any online CPU: task context that may sleep, without the
/// CPU hotplug lock, which [`run_on_each_cpu_cpuslocked`] is for. The same contexts get
/// [`EDEADLK`], and the same cases are left to the caller.
///
/// [`ENOMEM`]: crate::error::code::ENOMEM
#[inline(never)]
#[track_caller]
pub fn run_on_each_cpu(f: &(dyn Fn() + Sync)) -> Result {
    check_can_wait()?;
    let calls = new_calls(f)?;
    let cpus = CpusReadGuard::new()?;
    queue_each_and_wait(&cpus, &calls);
    drop(cpus);
    Ok(())
}

/// Runs `f` on every online CPU from an `irq_work`, concurrently, and waits for all of them,
/// with CPU hotplug already held off by the caller.
///
/// This is [`run_on_each_cpu`] for callers that hold the CPU hotplug lock, following C's
/// `_cpuslocked` convention: `cpus` proves it, so `f` runs exactly once on each CPU that is
/// online during the call. Returns [`ENOMEM`] if the bookkeeping cannot be allocated.
///
/// # Context
///
/// As for [`run_on_cpuslocked`], where "`cpu`" is any online CPU.
///
/// [`ENOMEM`]: crate::error::code::ENOMEM
///
/// # Examples
///
/// ```
/// use kernel::{
///     cpu::CpuId,
///     irq_work::{self, CpusReadGuard},
///     sync::atomic::*, //
/// };
///
/// let mine = Atomic::new(0i32);
/// let cpus = CpusReadGuard::new()?;
/// // Online, and it stays online while `cpus` exists.
/// let me = CpuId::current();
/// irq_work::run_on_each_cpu_cpuslocked(&cpus, &|| {
///     if CpuId::current() == me {
///         mine.add(1, Relaxed);
///     }
/// })?;
/// drop(cpus);
/// // The task may have moved to another CPU since, but every online CPU ran the closure once.
/// assert_eq!(mine.load(Relaxed), 1);
/// # Ok::<(), Error>(())
/// ```
#[inline(never)]
#[track_caller]
pub fn run_on_each_cpu_cpuslocked(cpus: &CpusLocked, f: &(dyn Fn() + Sync)) -> Result {
    check_can_wait()?;
    cpus.assert_held();
    let calls = new_calls(f)?;
    queue_each_and_wait(cpus, &calls);
    Ok(())
}

/// Allocates one [`Call`] of `f` per CPU number.
fn new_calls(f: &(dyn Fn() + Sync)) -> Result<KVec<Call<'_>>> {
    let cpus = crate::cpu::nr_cpu_ids() as usize;
    let mut calls = KVec::with_capacity(cpus, GFP_KERNEL)?;
    for _ in 0..cpus {
        // Within the capacity: the vector never reallocates.
        calls.push(Call::new(f), GFP_KERNEL)?;
    }
    Ok(calls)
}

/// Queues one of `calls` on each online CPU and waits for all of them.
///
/// Callers checked with `check_can_wait()` that this task may sleep.
fn queue_each_and_wait(cpus: &CpusLocked, calls: &[Call<'_>]) {
    let online = (0..crate::cpu::nr_cpu_ids())
        .filter_map(CpuId::from_u32)
        .filter(|&cpu| cpus.is_online(cpu));
    let mut queued = 0;
    for (call, cpu) in calls.iter().zip(online) {
        // SAFETY: `calls` is borrowed, so it neither moves nor goes away, until this function
        // returns, after every queued call has been synchronised below; `cpu` is online and, by
        // the type invariants of `CpusLocked`, stays online while `cpus` is borrowed.
        unsafe { call.queue_on(cpu) };
        queued += 1;
    }
    for call in calls.iter().take(queued) {
        call.sync();
    }
}

#[cfg(CONFIG_RUST_PERCPU_KUNIT_TEST)]
mod tests;
