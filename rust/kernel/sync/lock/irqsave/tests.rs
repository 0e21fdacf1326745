// SPDX-License-Identifier: GPL-2.0

//! KUnit tests for the irqsave spinlock.

#[macros::kunit_tests(rust_kernel_irqsave)]
mod kunit {
    use crate::{
        cpu::CpuId,
        interrupt::{
            irqs_disabled,
            local_interrupt_disable, //
        },
        irq_work::run_on,
        prelude::*,
        sync::{
            new_spinlock_irq,
            new_spinlock_irqsave, //
        }, //
    };

    /// Interrupts are expected to be disabled (not on PREEMPT_RT, where spinlocks leave them on).
    fn disabled() -> bool {
        cfg!(CONFIG_PREEMPT_RT) || irqs_disabled()
    }

    #[test]
    fn nests_with_spinlock_irq_and_token() -> Result {
        let a = KBox::pin_init(new_spinlock_irqsave!(0u32, "kunit_irqsave_a"), GFP_KERNEL)?;
        let b = KBox::pin_init(new_spinlock_irq!(0u32, "kunit_irqsave_b"), GFP_KERNEL)?;
        let (x, y) = a.lock_irqsave(|_ga| {
            #[cfg(not(CONFIG_PREEMPT_RT))]
            let gb = b.lock_with(_ga.irq_disabled());
            #[cfg(CONFIG_PREEMPT_RT)]
            let gb = b.lock();
            let x = disabled();
            drop(gb);
            (x, disabled())
        });
        assert!(x && y && !irqs_disabled());
        Ok(())
    }

    #[test]
    fn refcounted_region_opened_before_ends_inside() -> Result {
        if cfg!(CONFIG_PREEMPT_RT) {
            // A sleeping lock must not be taken with hard interrupts disabled.
            return Ok(());
        }
        let a = KBox::pin_init(
            new_spinlock_irqsave!(0u32, "kunit_irqsave_join"),
            GFP_KERNEL,
        )?;
        let token = local_interrupt_disable();
        // The refcounted region ends inside the critical section: it must not enable interrupts
        // while `a` is held.
        let inside = a.lock_irqsave(move |g| {
            drop(token);
            **g += 1;
            disabled()
        });
        assert!(inside);
        assert!(!irqs_disabled());
        Ok(())
    }

    #[test]
    fn refcounted_region_opened_inside_outlives_it() -> Result {
        let a = KBox::pin_init(
            new_spinlock_irqsave!(0u32, "kunit_irqsave_leak"),
            GFP_KERNEL,
        )?;
        let b = KBox::pin_init(new_spinlock_irq!(0u32, "kunit_irqsave_leak_b"), GFP_KERNEL)?;
        // A refcounted region (a `SpinLockIrq` guard, and a bare one) returned from the critical
        // section: interrupts stay disabled until the last one ends, then are enabled again.
        let (gb, token) = a.lock_irqsave(|_| (b.lock(), local_interrupt_disable()));
        let after_section = disabled();
        drop(gb);
        let after_guard = disabled();
        drop(token);
        assert!(after_section && after_guard);
        assert!(!irqs_disabled());
        Ok(())
    }

    #[test]
    fn try_lock_irqsave() -> Result {
        let a = KBox::pin_init(new_spinlock_irqsave!(0u32, "kunit_irqsave_try"), GFP_KERNEL)?;
        let nested = a.lock_irqsave(|_| a.try_lock_irqsave(|_| ()).is_none());
        let free = a.try_lock_irqsave(|g| {
            **g += 1;
            disabled()
        });
        assert!(nested);
        assert_eq!(free, Some(true));
        assert!(!irqs_disabled());
        // Inside a refcounted region too, on the joined path, where the lock is free; and a
        // nested try inside the section of the lock, which fails (without `CONFIG_SMP` too, where
        // the lock's own flag says it is held). Not on PREEMPT_RT, where the sleeping lock must
        // not be taken with hard interrupts disabled.
        if !cfg!(CONFIG_PREEMPT_RT) {
            let token = local_interrupt_disable();
            let joined = a.try_lock_irqsave(|g| **g);
            let nested = a.try_lock_irqsave(|_| a.try_lock_irqsave(|_| ()).is_none());
            drop(token);
            assert_eq!(joined, Some(1));
            assert_eq!(nested, Some(true));
            assert!(!irqs_disabled());
        }
        // In an interrupt handler (interrupts disabled, no refcounted region; a thread on
        // `PREEMPT_RT`), on a free lock.
        run_on(CpuId::current(), &|| {
            let _ = a.try_lock_irqsave(|g| **g += 10);
        })?;
        assert_eq!(a.lock_irqsave(|g| **g), 11);
        Ok(())
    }

    #[test]
    fn unchecked_guards_in_order() -> Result {
        let a = KBox::pin_init(
            new_spinlock_irqsave!(0u32, "kunit_irqsave_unch_a"),
            GFP_KERNEL,
        )?;
        let b = KBox::pin_init(
            new_spinlock_irqsave!(0u32, "kunit_irqsave_unch_b"),
            GFP_KERNEL,
        )?;
        // SAFETY: The guards are dropped in the reverse order of their creation, and no other
        // interrupt-disabled region crosses them.
        let (ga, mut gb) = unsafe { (a.lock_unchecked(), b.lock_unchecked()) };
        *gb += *ga + 1;
        drop(gb);
        let mid = disabled();
        drop(ga);
        assert!(mid);
        assert!(!irqs_disabled());
        assert_eq!(b.lock_irqsave(|g| **g), 1);
        Ok(())
    }

    #[test]
    fn nested_critical_sections_restore() -> Result {
        let a = KBox::pin_init(new_spinlock_irqsave!(0u32, "kunit_irqsave_c"), GFP_KERNEL)?;
        let b = KBox::pin_init(new_spinlock_irqsave!(0u32, "kunit_irqsave_d"), GFP_KERNEL)?;
        let (inner_after, outer_in) = a.lock_irqsave(|ga| {
            **ga += 1;
            b.lock_irqsave(|gb| **gb += 1);
            (disabled(), disabled())
        });
        assert!(inner_after && outer_in);
        assert!(!irqs_disabled());
        assert_eq!((a.lock_irqsave(|g| **g), b.lock_irqsave(|g| **g)), (1, 1));
        Ok(())
    }
}
