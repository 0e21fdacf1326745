// SPDX-License-Identifier: GPL-2.0
// expect: E0599
//! Compile-fail case: two irqsave guards taken with lock() and dropped outer-first (the C bug): safe code has no free-standing irqsave guard.

use kernel::sync::new_spinlock_irqsave;

fn case() -> Result {
    let a = KBox::pin_init(new_spinlock_irqsave!(0u32), GFP_KERNEL)?;
    let b = KBox::pin_init(new_spinlock_irqsave!(0u32), GFP_KERNEL)?;
    let ga = a.lock(); // error here
    let gb = b.lock();
    drop(ga);
    drop(gb);
    Ok(())
}
