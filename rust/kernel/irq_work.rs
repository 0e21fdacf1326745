// SPDX-License-Identifier: GPL-2.0

//! Running code in interrupt context with `irq_work`.
//!
//! [`run_on`] and [`run_on_each_cpu`] run a closure from an `irq_work` on the given CPUs and
//! wait for it. Without `CONFIG_PREEMPT_RT` the closure runs in hard interrupt context (lockdep
//! records the locks it takes as used in hard-IRQ context); unlike an inter-processor function
//! call, a plain `irq_work` is also a valid context for `spinlock_t` (it is threaded on
//! `PREEMPT_RT`). The closure must not sleep.
//!
//! Both functions hold CPU hotplug off (`cpus_read_lock()`) while they queue and wait, so the
//! CPUs they run on stay online; they sleep, and return [`EDEADLK`] instead of waiting forever
//! when called where they cannot sleep.
//!
//! C header: [`include/linux/irq_work.h`](srctree/include/linux/irq_work.h)
//!
//! [`EDEADLK`]: crate::error::code::EDEADLK

use crate::{
    alloc::{flags::GFP_KERNEL, KVec},
    bindings,
    cpu::CpuId,
    error::{code::*, Result},
    types::{NotThreadSafe, Opaque}, //
};

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
    /// online until then (the caller holds CPU hotplug off and checked that it is online).
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

/// Returns [`EDEADLK`] if the caller is in a context that cannot wait for an `irq_work`.
///
/// With interrupts disabled the work queued on the current CPU never runs and
/// `irq_work_sync()` would spin forever; in interrupt context, with bottom halves disabled,
/// with preemption disabled or in a read-side critical section of preemptible RCU (which on
/// `PREEMPT_RT` includes holding a `spinlock_t`) the task must not sleep (taking
/// `cpus_read_lock()` may sleep, and on `PREEMPT_RT` or an architecture without an `irq_work`
/// interrupt the wait is for an RCU grace period, which would never end). Without
/// `CONFIG_PREEMPT_COUNT`, a spinlock or `preempt_disable()` is invisible to this check; the
/// `might_sleep()` annotation reports that case when `CONFIG_DEBUG_ATOMIC_SLEEP` is enabled
/// (which selects `CONFIG_PREEMPT_COUNT`).
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

/// Holds CPU hotplug off (C's `cpus_read_lock()`) while it exists: online CPUs stay online.
///
/// # Invariants
///
/// With `CONFIG_HOTPLUG_CPU`, this task took `cpus_read_lock()` when creating the guard, and the
/// guard stays on this task.
struct HotplugGuard(NotThreadSafe);

impl HotplugGuard {
    /// Takes `cpus_read_lock()`; may sleep.
    fn new() -> Self {
        #[cfg(CONFIG_HOTPLUG_CPU)]
        {
            // SAFETY: Callers checked that this task may sleep (`check_can_wait()`); `Drop`
            // releases the lock on this task.
            unsafe { bindings::cpus_read_lock() };
        }
        // INVARIANT: The lock was taken above (a no-op without `CONFIG_HOTPLUG_CPU`, where CPUs
        // never go offline).
        Self(NotThreadSafe)
    }

    /// Returns whether `cpu` is online; it stays online while the guard exists.
    fn is_online(&self, cpu: CpuId) -> bool {
        // SAFETY: `cpu_online()` only tests a bit of the online mask.
        unsafe { bindings::cpu_online(cpu.as_u32()) }
    }
}

impl Drop for HotplugGuard {
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
/// Sleeps: call from process context. CPU hotplug is held off (`cpus_read_lock()`) from the
/// check that `cpu` is online until `f` has run.
///
/// Returns [`ENODEV`] if `cpu` is not online, and [`EDEADLK`] if called with interrupts
/// disabled, in interrupt context (including from `f` itself), with preemption disabled (as
/// far as the kernel counts it, see [`run_on_each_cpu`]) or inside an RCU read-side critical
/// section of preemptible RCU (on `PREEMPT_RT`, also under a [`SpinLock`]).
///
/// [`SpinLock`]: crate::sync::SpinLock
///
/// [`ENODEV`]: crate::error::code::ENODEV
///
/// # Examples
///
/// ```
/// use kernel::{cpu::CpuId, irq_work, sync::atomic::*};
///
/// let runs = Atomic::new(0i32);
/// irq_work::run_on(CpuId::current(), &|| {
///     runs.add(1, Relaxed);
/// })?;
/// // `run_on()` returns only once the work has run.
/// assert_eq!(runs.load(Relaxed), 1);
/// # Ok::<(), Error>(())
/// ```
#[inline(never)]
#[track_caller]
pub fn run_on(cpu: CpuId, f: &(dyn Fn() + Sync)) -> Result {
    check_can_wait()?;
    let hotplug = HotplugGuard::new();
    if !hotplug.is_online(cpu) {
        return Err(ENODEV);
    }
    let call = Call::new(f);
    // SAFETY: `call` is a local that is not moved before `sync()` returns; `cpu` is online and
    // stays online while `hotplug` holds CPU hotplug off.
    unsafe { call.queue_on(cpu) };
    call.sync();
    drop(hotplug);
    Ok(())
}

/// Runs `f` on every online CPU from an `irq_work`, concurrently, and waits for all of them.
///
/// Sleeps: call from process context. CPU hotplug is held off (`cpus_read_lock()`) while the
/// work is queued and waited for, so `f` runs exactly once on each CPU that is online then.
///
/// Returns [`ENOMEM`] if the bookkeeping cannot be allocated, and [`EDEADLK`] in the contexts
/// where [`run_on`] returns it. Without `CONFIG_PREEMPT_COUNT` the kernel does not count
/// spinlocks and `preempt_disable()`: calling this under them is a bug that the check cannot see
/// (as for any sleeping function; `CONFIG_DEBUG_ATOMIC_SLEEP` reports it).
///
/// [`ENOMEM`]: crate::error::code::ENOMEM
#[inline(never)]
#[track_caller]
pub fn run_on_each_cpu(f: &(dyn Fn() + Sync)) -> Result {
    check_can_wait()?;
    let cpus = crate::cpu::nr_cpu_ids() as usize;
    let mut calls = KVec::with_capacity(cpus, GFP_KERNEL)?;
    for _ in 0..cpus {
        // Within the capacity: the vector never reallocates, so the calls never move.
        calls.push(Call::new(f), GFP_KERNEL)?;
    }
    let hotplug = HotplugGuard::new();
    let online = (0..crate::cpu::nr_cpu_ids())
        .filter_map(CpuId::from_u32)
        .filter(|&cpu| hotplug.is_online(cpu));
    let mut queued = 0;
    for (call, cpu) in calls.iter().zip(online) {
        // SAFETY: `calls` does not move its elements (no reallocation) and is dropped only after
        // every queued call has been synchronised below; `cpu` is online and stays online while
        // `hotplug` holds CPU hotplug off.
        unsafe { call.queue_on(cpu) };
        queued += 1;
    }
    for call in calls.iter().take(queued) {
        call.sync();
    }
    drop(hotplug);
    Ok(())
}
