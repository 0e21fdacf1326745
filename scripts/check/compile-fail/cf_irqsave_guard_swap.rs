// SPDX-License-Identifier: GPL-2.0
// expect: E0521
//! Compile-fail case: guards of two critical sections cannot be swapped (the inner one would outlive its section).

use kernel::sync::new_spinlock_irqsave;

fn case() -> Result {
    let a = KBox::pin_init(new_spinlock_irqsave!(0u32), GFP_KERNEL)?;
    let b = KBox::pin_init(new_spinlock_irqsave!(0u32), GFP_KERNEL)?;
    a.lock_irqsave(|ga| b.lock_irqsave(|gb| core::mem::swap(ga, gb))); // error here
    Ok(())
}
