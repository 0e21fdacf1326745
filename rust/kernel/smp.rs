// SPDX-License-Identifier: GPL-2.0

//! Calling functions on other CPUs.
//!
//! C header: [`include/linux/smp.h`](srctree/include/linux/smp.h)

use crate::{
    bindings,
    error::{
        code::EDEADLK,
        Result, //
    },
    ffi::c_void, //
};

/// Runs `f` on every online CPU and waits for all of them to finish (C's `on_each_cpu()` with
/// `wait` set).
///
/// On the other CPUs `f` runs in hard interrupt context (an inter-processor interrupt); on the
/// calling CPU it runs with interrupts disabled. `f` must therefore not sleep, and must not take a
/// lock that sleeps on `PREEMPT_RT` (a `spinlock_t` or a `local_lock_t`: `SpinLock`, `SpinLockIrq`,
/// `SpinLockIrqSave`, a `CondIrqSaveGuard`, a `LocalLock`), nor allocate or free memory (the
/// allocators take a `spinlock_t`; this includes creating or dropping a `PercpuCounter` or any
/// per-CPU type of [`percpu`](crate::percpu)): that is an invalid wait context, reported by lockdep
/// with `CONFIG_PROVE_RAW_LOCK_NESTING`. Use [`irq_work::run_on_each_cpu`] for such code.
///
/// # Context
///
/// C's contract (`on_each_cpu_cond_mask()` and `smp_call_function_many()` in `kernel/smp.c`):
/// "You must not call this function with disabled interrupts or from a hardware interrupt
/// handler or from a bottom half handler." Task context with interrupts enabled; it does not
/// sleep, so preemption may be disabled and a [`SpinLock`] may be held (but see below).
///
/// Checked at run time: returns [`EDEADLK`], instead of C's warning, when called with
/// interrupts disabled (under a [`SpinLockIrq`] or in a [`SpinLockIrqSave`] section, except on
/// `PREEMPT_RT` where they leave interrupts enabled) or outside task context (hard interrupt,
/// NMI, a softirq handler; including a call from `f` itself). This is the C contract, not
/// deadlock detection.
///
/// Not detected, the caller's responsibility, as in C (the call never returns): the caller
/// waits until every online CPU has run `f`, and a CPU runs it only with interrupts enabled. So
/// the caller must not hold anything that `f` waits for, nor anything that another CPU waits for
/// with interrupts disabled. For example, a caller holding a plain [`SpinLock`] while another
/// CPU takes the same lock inside a [`SpinLockIrqSave`] section: that CPU spins with interrupts
/// disabled and never runs `f`, and the caller never releases the lock. Lockdep does not model
/// the wait; `CONFIG_CSD_LOCK_WAIT_DEBUG` and the hard-lockup detector report the hang.
///
/// [`irq_work::run_on_each_cpu`]: crate::irq_work::run_on_each_cpu
/// [`SpinLock`]: crate::sync::SpinLock
/// [`SpinLockIrq`]: crate::sync::SpinLockIrq
/// [`SpinLockIrqSave`]: crate::sync::SpinLockIrqSave
///
/// # Examples
///
/// ```
/// use kernel::{
///     cpu::online_cpus,
///     smp::on_each_cpu,
///     sync::atomic::{
///         Atomic,
///         Relaxed, //
///     }, //
/// };
///
/// let hits = Atomic::new(0usize);
/// on_each_cpu(&|| hits.add(1usize, Relaxed))?;
/// assert_eq!(hits.load(Relaxed), online_cpus().count());
/// # Ok::<(), Error>(())
/// ```
pub fn on_each_cpu<F: Fn() + Sync>(f: &F) -> Result {
    /// Calls the closure `info` points to.
    ///
    /// # Safety
    ///
    /// `info` must point to an `F` that is live for the duration of the call.
    unsafe extern "C" fn call<F: Fn() + Sync>(info: *mut c_void) {
        // SAFETY: `info` is the `&F` passed to `on_each_cpu()` below, which waits for every
        // call to return before `f` goes out of scope; `F: Sync` allows calls from all CPUs.
        let f = unsafe { &*info.cast::<F>() };
        f();
    }
    // SAFETY: `irqs_disabled()` and `in_task()` only read the local interrupt state and the
    // preemption count.
    if unsafe { bindings::irqs_disabled() || !bindings::in_task() } {
        return Err(EDEADLK);
    }
    // SAFETY: `call::<F>` matches `smp_call_func_t`, `info` points to `f`, and `wait` is 1, so
    // `f` outlives every call. We are in task context with interrupts enabled (checked above).
    unsafe { bindings::on_each_cpu(Some(call::<F>), core::ptr::from_ref(f).cast_mut().cast(), 1) };
    Ok(())
}

#[cfg(CONFIG_RUST_PERCPU_KUNIT_TEST)]
#[macros::kunit_tests(rust_kernel_smp)]
mod tests {
    use super::*;
    use crate::{
        alloc::flags::GFP_KERNEL,
        cpu::{
            online_cpus,
            CpuId, //
        },
        prelude::*,
        sync::{
            atomic::{
                ordering,
                Atomic, //
            },
            new_spinlock,
            new_spinlock_irq, //
        },
    };

    #[test]
    fn waiting_in_atomic_context_is_refused() -> Result {
        let spin = KBox::pin_init(new_spinlock!((), "kunit_percpu_atomic"), GFP_KERNEL)?;
        let irq = KBox::pin_init(new_spinlock_irq!((), "kunit_percpu_atomic_irq"), GFP_KERNEL)?;
        let hits = Atomic::new(0i32);
        let inc = || {
            hits.add(1, ordering::Relaxed);
        };
        let (run_spin, each_spin, ipi_spin) = {
            let _g = spin.lock();
            // Does not sleep: allowed with preemption disabled, as in C.
            let ipi = on_each_cpu(&inc);
            // Without `CONFIG_PREEMPT_COUNT` a held spinlock cannot be detected.
            if cfg!(CONFIG_PREEMPT_COUNT) {
                (
                    crate::irq_work::run_on(CpuId::current(), &inc),
                    crate::irq_work::run_on_each_cpu(&inc),
                    ipi,
                )
            } else {
                (Err(EDEADLK), Err(EDEADLK), ipi)
            }
        };
        let (run_irq, ipi_irq) = {
            let _g = irq.lock();
            (
                crate::irq_work::run_on(CpuId::current(), &inc),
                on_each_cpu(&inc),
            )
        };
        // From hard interrupt context: nested waits must fail, not hang.
        let nested = Atomic::new(0i32);
        crate::irq_work::run_on(CpuId::current(), &|| {
            if crate::irq_work::run_on(CpuId::current(), &|| {}) == Err(EDEADLK) {
                nested.add(1, ordering::Relaxed);
            }
            if on_each_cpu(&|| {}) == Err(EDEADLK) {
                nested.add(1, ordering::Relaxed);
            }
        })?;
        let online = online_cpus().count() as i32;
        // Only the `on_each_cpu()` under the plain spinlock ran; on PREEMPT_RT, where a
        // `SpinLockIrq` leaves interrupts enabled, also the one under it.
        let rt = cfg!(CONFIG_PREEMPT_RT);
        assert!(run_spin == Err(EDEADLK) && each_spin == Err(EDEADLK));
        assert!(run_irq == Err(EDEADLK));
        assert!(ipi_irq == if rt { Ok(()) } else { Err(EDEADLK) });
        assert!(ipi_spin == Ok(()));
        assert_eq!(
            hits.load(ordering::Relaxed),
            if rt { 2 * online } else { online }
        );
        // On PREEMPT_RT the `irq_work` runs in a thread, inside an RCU read-side section: the
        // nested wait is refused, the inter-processor call is allowed.
        assert_eq!(nested.load(ordering::Relaxed), if rt { 1 } else { 2 });
        Ok(())
    }
}
