// SPDX-License-Identifier: GPL-2.0

//! Running code in interrupt context with `irq_work`.
//!
//! [`run_on`] and [`run_on_each_cpu`] run a closure from an `irq_work` on the given CPUs and
//! wait for it. Without `CONFIG_PREEMPT_RT` the closure runs in hard interrupt context (lockdep
//! records the locks it takes as used in hard-IRQ context); unlike an inter-processor function
//! call, a plain `irq_work` is also a valid context for `spinlock_t` (it is threaded on
//! `PREEMPT_RT`). The closure must not sleep.
//!
//! C header: [`include/linux/irq_work.h`](srctree/include/linux/irq_work.h)

use crate::{
    alloc::{flags::GFP_KERNEL, KVec},
    bindings,
    cpu::CpuId,
    error::Result,
    types::Opaque, //
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
    /// `self` must not move or be dropped until [`Call::sync`] has returned.
    unsafe fn queue_on(&self, cpu: CpuId) {
        // SAFETY: `work` is valid for writes; `trampoline` matches `irq_work` callbacks.
        unsafe { bindings::init_irq_work(self.work.get(), Some(trampoline)) };
        // SAFETY: `work` is initialised and, by the safety requirements, stays in place until
        // `sync()`; `cpu` is a valid CPU number.
        unsafe { bindings::irq_work_queue_on(self.work.get(), u32::from(cpu) as i32) };
    }

    /// Waits until the work has run.
    fn sync(&self) {
        // SAFETY: `work` was initialised by `queue_on()` (callers never call `sync()` before it).
        unsafe { bindings::irq_work_sync(self.work.get()) };
    }
}

/// Runs `f` on `cpu` from an `irq_work` and waits for it to finish.
///
/// Must be called from process context with interrupts enabled; `cpu` should be online.
///
/// # Examples
///
/// ```
/// use kernel::{cpu::CpuId, irq_work, sync::atomic::*};
///
/// let runs = Atomic::new(0i32);
/// irq_work::run_on(CpuId::current(), &|| {
///     runs.add(1, Relaxed);
/// });
/// // `run_on()` returns only once the work has run.
/// assert_eq!(runs.load(Relaxed), 1);
/// ```
#[inline(never)]
pub fn run_on(cpu: CpuId, f: &(dyn Fn() + Sync)) {
    let call = Call::new(f);
    // SAFETY: `call` is a local that is not moved before `sync()` returns.
    unsafe { call.queue_on(cpu) };
    call.sync();
}

/// Runs `f` on every online CPU from an `irq_work`, concurrently, and waits for all of them.
///
/// Must be called from process context with interrupts enabled. Returns [`ENOMEM`] if the
/// bookkeeping cannot be allocated.
///
/// [`ENOMEM`]: crate::error::code::ENOMEM
#[inline(never)]
pub fn run_on_each_cpu(f: &(dyn Fn() + Sync)) -> Result {
    let cpus = crate::cpu::nr_cpu_ids() as usize;
    let mut calls = KVec::with_capacity(cpus, GFP_KERNEL)?;
    for _ in 0..cpus {
        // Within the capacity: the vector never reallocates, so the calls never move.
        calls.push(Call::new(f), GFP_KERNEL)?;
    }
    let online = (0..crate::cpu::nr_cpu_ids())
        .filter(|&c| {
            // SAFETY: `cpu_online()` only tests a bit of the online mask.
            unsafe { bindings::cpu_online(c) }
        })
        .map(|c| {
            // SAFETY: `c` is below `nr_cpu_ids`.
            unsafe { CpuId::from_u32_unchecked(c) }
        });
    let mut queued = 0;
    for (call, cpu) in calls.iter().zip(online) {
        // SAFETY: `calls` does not move its elements (no reallocation) and is dropped only after
        // every queued call has been synchronised below.
        unsafe { call.queue_on(cpu) };
        queued += 1;
    }
    for call in calls.iter().take(queued) {
        call.sync();
    }
    Ok(())
}
