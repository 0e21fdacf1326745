// SPDX-License-Identifier: GPL-2.0

//! KUnit tests of [`LocalLock`](super::LocalLock).

#[macros::kunit_tests(rust_kernel_local_lock)]
mod kunit {
    use super::super::*;
    use crate::{
        interrupt::{
            irqs_disabled,
            local_interrupt_disable, //
        },
        irq_work,
        prelude::*,
        sync::atomic::{
            ordering::Relaxed,
            Atomic, //
        }, //
    };

    #[test]
    fn task_context() -> Result {
        let mut l = KBox::init(new_local_lock!(GFP_KERNEL, |_| 7u64), GFP_KERNEL)?;
        let mut g = l.lock().ok_or(EINVAL)?;
        let cpu = g.cpu();
        *g += 100;
        // Taken again on the same CPU: refused, never a second `&mut`.
        let refused = l.lock().is_none() && l.lock_irqsave(|_| ()).is_none();
        drop(g);
        assert!(refused);
        assert_eq!(*l.get_mut(cpu), 107);
        Ok(())
    }

    #[test]
    fn irqsave_from_task_and_hardirq() -> Result {
        let mut l = KBox::init(new_local_lock!(GFP_KERNEL, |_| 0u64), GFP_KERNEL)?;
        // Interrupt handlers on every CPU and this task, all with the irqsave form: lockdep
        // stays silent.
        irq_work::run_on_each_cpu(&|| {
            let _ = l.lock_irqsave(|v| *v += 1);
        })?;
        let inside = l.lock_irqsave(|_| irqs_disabled()).ok_or(EINVAL)?;
        let after = irqs_disabled();
        let mut total = 0;
        l.for_each_mut(|_, v| total += *v);
        assert!(cfg!(CONFIG_PREEMPT_RT) || inside);
        assert!(!after);
        assert_eq!(total, crate::percpu::online_cpus().count() as u64);
        Ok(())
    }

    #[test]
    fn nested_closures_restore_flags_in_order() -> Result {
        let a = KBox::init(new_local_lock!(GFP_KERNEL, |_| 0u32), GFP_KERNEL)?;
        let b = KBox::init(new_local_lock!(GFP_KERNEL, |_| 0u32), GFP_KERNEL)?;
        let seen = a.lock_irqsave(|x| {
            *x += 1;
            let inner = b.lock_irqsave(|_| irqs_disabled());
            // `b` restored the state it saved, "disabled": `a` is still held.
            (inner, irqs_disabled(), a.lock_irqsave(|_| ()).is_none())
        });
        let after = irqs_disabled();
        // Inside a refcounted region, the closure restores the state it found and the region its
        // own. Not on `PREEMPT_RT`, where the region disables interrupts that the lock keeps on.
        let mut in_region = (true, true);
        if !cfg!(CONFIG_PREEMPT_RT) {
            let region = local_interrupt_disable();
            in_region.0 = a.lock_irqsave(|_| ()).is_some() && irqs_disabled();
            drop(region);
            in_region.1 = !irqs_disabled();
        }
        let rt = cfg!(CONFIG_PREEMPT_RT);
        assert_eq!(seen, Some((Some(!rt), !rt, true)));
        assert!(!after);
        assert_eq!(in_region, (true, true));
        Ok(())
    }

    /// Counts its drops in the given counter.
    struct CountsDrops<'a>(&'a Atomic<i32>);

    impl Drop for CountsDrops<'_> {
        fn drop(&mut self) {
            self.0.add(1, Relaxed);
        }
    }

    #[test]
    fn dropped_under_a_forgotten_guard_is_leaked() -> Result {
        let drops = Atomic::new(0i32);
        let new = || {
            KBox::init(
                new_local_lock!(GFP_KERNEL, |_| CountsDrops(&drops)),
                GFP_KERNEL,
            )
        };
        // Without a held lock, every value is dropped.
        drop(new()?);
        let all = drops.xchg(0, Relaxed);
        let l = new()?;
        let percpu = l.slots.percpu();
        let g = l.lock().ok_or(EINVAL)?;
        let slot = g.slot;
        core::mem::forget(g);
        // This CPU's lock is held: the memory must be leaked, neither values dropped nor freed.
        drop(l);
        let dropped = drops.load(Relaxed);
        // Test cleanup, which safe code cannot do: release the lock as the forgotten guard would
        // have, then free the leaked allocation (its values need no drop).
        // SAFETY: `slot` is this CPU's slot in the leaked allocation, whose lock this task holds
        // (preemption is still disabled, as the guard left it); `percpu` is that allocation,
        // freed once, and nothing refers to it any more.
        unsafe {
            bindings::local_lock_release(slot.cast());
            bindings::free_percpu(percpu.cast());
        }
        assert_eq!(all as usize, possible_cpus().count());
        assert_eq!(dropped, 0);
        Ok(())
    }

    #[test]
    fn nmi_context() -> Result {
        // x86's local APIC sends an NMI to its own CPU; the other test kernels have no NMI to
        // send, and the test checks nothing there.
        #[cfg(CONFIG_X86_LOCAL_APIC)]
        {
            let (found, total, warned) = nmi::run()?;
            // In NMI context, `lock()` and `SpinLockIrqSave::try_lock_irqsave()` return `None`.
            // `lock_irqsave()` runs its closure (not on `PREEMPT_RT`), inside a refcounted
            // interrupt-disabled region too, and returns `None` when the NMI interrupted a
            // holder. Nothing warned: a kernel that a warning tainted before cannot tell, and the
            // clean boot of `make check` fails then.
            let ran = if cfg!(CONFIG_PREEMPT_RT) { 0 } else { nmi::RAN };
            let all = nmi::ALWAYS;
            assert_eq!(
                found,
                [Some(all | ran), Some(all | ran | nmi::DEPTH_1), Some(all)]
            );
            assert_eq!(total, if ran != 0 { 2 } else { 0 });
            assert!(!warned);
        }
        Ok(())
    }

    /// [`LocalLock`] and [`SpinLockIrqSave`](crate::sync::SpinLockIrqSave) in NMI context: an
    /// NMI that the local APIC sends to its own CPU, claimed by a handler of this test, as
    /// `arch/x86/kernel/nmi_selftest.c` does.
    #[cfg(CONFIG_X86_LOCAL_APIC)]
    mod nmi {
        use super::*;
        use crate::{
            cpu::CpuId,
            error::to_result,
            percpu::PreemptGuard,
            sync::{
                atomic::{
                    Acquire,
                    Release, //
                },
                new_spinlock_irqsave,
                SpinLockIrqSave, //
            },
            time::{
                delay::udelay,
                Delta, //
            }, //
        };
        use core::ptr::null;

        // What the handler finds: it runs in NMI context, `LocalLock::lock()` and
        // `SpinLockIrqSave::try_lock_irqsave()` return `None`, `LocalLock::lock_irqsave()` runs
        // its closure; from bit 8, the depth of refcounted interrupt disabling.
        const IN_NMI: i32 = 1 << 0;
        const LOCK_NONE: i32 = 1 << 1;
        const TRY_LOCK_IRQSAVE_NONE: i32 = 1 << 2;
        pub(super) const RAN: i32 = 1 << 3;
        pub(super) const DEPTH_1: i32 = 1 << 8;
        pub(super) const ALWAYS: i32 = IN_NMI | LOCK_NONE | TRY_LOCK_IRQSAVE_NONE;

        /// The name the handler is registered under and unregistered by.
        const NAME: &CStr = c"rust_kunit_local_lock_nmi";
        /// The CPU whose next NMI the handler claims, or -1.
        static ARMED: Atomic<i32> = Atomic::new(-1);
        /// The handler's findings, stored with release; -1 until then.
        static FOUND: Atomic<i32> = Atomic::new(-1);
        /// The locks the handler tries, set by [`run`] before it arms a CPU.
        static LOCAL: Atomic<*const LocalLock<u32>> = Atomic::new(null());
        static IRQSAVE: Atomic<*const SpinLockIrqSave<u32>> = Atomic::new(null());

        /// Claims the NMI armed for this CPU, once, and records what the locks do in it.
        ///
        /// # Safety
        ///
        /// Called by the NMI code only, as the `NMI_LOCAL` handler that [`run`] registers.
        unsafe extern "C" fn handler(_type: c_uint, _regs: *mut bindings::pt_regs) -> c_int {
            if ARMED
                .cmpxchg(i32::from(CpuId::current()), -1, Acquire)
                .is_err()
            {
                return bindings::NMI_DONE as c_int;
            }
            // SAFETY: `hardirq_disable_depth()` only reads the preempt count.
            let depth = unsafe { bindings::hardirq_disable_depth() };
            // CAST: The depth is at most 255 (`HARDIRQ_DISABLE_BITS`).
            let mut found = (depth as i32) << 8;
            // SAFETY: `in_nmi()` only reads the preempt count.
            if unsafe { bindings::in_nmi() } {
                found |= IN_NMI;
            }
            // SAFETY: `run` stored the addresses of two locks before it armed a CPU (release),
            // the arming was claimed above (acquire), and the locks live until after `run` has
            // unregistered this handler, which waits for running handlers. They are only shared.
            let (local, irqsave) = unsafe { (&*LOCAL.load(Relaxed), &*IRQSAVE.load(Relaxed)) };
            if local.lock().is_none() {
                found |= LOCK_NONE;
            }
            if local.lock_irqsave(|v| *v += 1).is_some() {
                found |= RAN;
            }
            if irqsave.try_lock_irqsave(|_| ()).is_none() {
                found |= TRY_LOCK_IRQSAVE_NONE;
            }
            FOUND.store(found, Release);
            bindings::NMI_HANDLED as c_int
        }

        /// Sends an NMI to this CPU and waits up to a second for the handler's findings.
        fn nmi_self() -> Option<i32> {
            // The task stays on the CPU that the NMI is sent to, so the NMI interrupts this task.
            let preempt = PreemptGuard::new();
            let cpu = i32::from(preempt.cpu().id());
            FOUND.store(-1, Relaxed);
            ARMED.store(cpu, Release);
            // SAFETY: `cpu` is the CPU this task runs on, online. The helper has the local APIC
            // send it an NMI, which `handler` claims.
            unsafe { bindings::apic_send_nmi(cpu) };
            for _ in 0..100_000 {
                if FOUND.load(Acquire) >= 0 {
                    break;
                }
                udelay(Delta::from_micros(10));
            }
            // Disarm, so that no later NMI runs the checks. If the handler claimed the NMI, it
            // has finished: it ran on this CPU, which runs this task again.
            let timed_out = ARMED.cmpxchg(cpu, -1, Relaxed).is_ok();
            drop(preempt);
            let found = FOUND.load(Acquire);
            (!timed_out && found >= 0).then_some(found)
        }

        /// Whether a warning has tainted the kernel (`TAINT_WARN`).
        fn warned() -> bool {
            // SAFETY: `test_taint()` only reads the taint flags.
            unsafe { bindings::test_taint(bindings::TAINT_WARN) != 0 }
        }

        /// Registers the handler and runs it in three NMIs: with the lock free, inside a
        /// refcounted interrupt-disabled region, and under `lock_irqsave()`. Returns its findings
        /// (`None`: it did not run), the sum of the values and whether a warning tainted the
        /// kernel meanwhile.
        pub(super) fn run() -> Result<([Option<i32>; 3], u32, bool)> {
            let mut local = KBox::init(new_local_lock!(GFP_KERNEL, |_| 0u32), GFP_KERNEL)?;
            let irqsave = KBox::pin_init(
                new_spinlock_irqsave!(0u32, "kunit_local_lock_nmi"),
                GFP_KERNEL,
            )?;
            let action = KBox::into_raw(KBox::new(
                bindings::nmiaction {
                    list: bindings::list_head::default(),
                    handler: Some(handler),
                    max_duration: 0,
                    flags: 0,
                    name: NAME.as_char_ptr(),
                },
                GFP_KERNEL,
            )?);
            // SAFETY: `action` points to a live `nmiaction`; `__register_nmi_handler()` wants its
            // list empty.
            unsafe { bindings::INIT_LIST_HEAD(&raw mut (*action).list) };
            let local_ref: &LocalLock<u32> = &local;
            let irqsave_ref: &SpinLockIrqSave<u32> = &irqsave;
            LOCAL.store(local_ref, Relaxed);
            IRQSAVE.store(irqsave_ref, Relaxed);
            let warned_before = warned();
            // SAFETY: `action` is a live `nmiaction` with an empty list, a handler and a name no
            // other handler has. It stays live until `unregister_nmi_handler()` below has
            // returned, which waits for the handlers running (in RCU read-side sections).
            let ret = unsafe { bindings::__register_nmi_handler(bindings::NMI_LOCAL, action) };
            let found = to_result(ret).map(|()| {
                let free = nmi_self();
                let region = local_interrupt_disable();
                let in_region = nmi_self();
                drop(region);
                let held = local_ref.lock_irqsave(|_| nmi_self()).flatten();
                // SAFETY: Registered above under `NAME`.
                unsafe {
                    bindings::unregister_nmi_handler(bindings::NMI_LOCAL, NAME.as_char_ptr())
                };
                [free, in_region, held]
            });
            // SAFETY: `action` came from `KBox::into_raw()` above. It is not registered (any
            // more), and no handler runs it: `unregister_nmi_handler()` waited for them.
            drop(unsafe { KBox::from_raw(action) });
            LOCAL.store(null(), Relaxed);
            IRQSAVE.store(null(), Relaxed);
            let found = found?;
            let mut total = 0;
            local.for_each_mut(|_, v| total += *v);
            Ok((found, total, !warned_before && warned()))
        }
    }
}
