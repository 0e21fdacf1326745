// SPDX-License-Identifier: GPL-2.0
// expect: lifetime may not live long enough
//! Compile-fail case: a lock nested with the outer section's interrupts-disabled token cannot outlive that section.

use kernel::sync::{new_spinlock_irq, new_spinlock_irqsave};

fn case() -> Result {
    let a = KBox::pin_init(new_spinlock_irqsave!(0u32), GFP_KERNEL)?;
    let b = KBox::pin_init(new_spinlock_irq!(0u32), GFP_KERNEL)?;
    let gb = a.lock_irqsave(|ga| b.lock_with(ga.irq_disabled())); // error here
    drop(gb);
    Ok(())
}
