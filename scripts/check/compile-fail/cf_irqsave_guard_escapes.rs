// SPDX-License-Identifier: GPL-2.0
// expect: E0521
//! Compile-fail case: the guard of an irqsave critical section cannot leave its closure.

use kernel::sync::new_spinlock_irqsave;

fn case() -> Result {
    let a = KBox::pin_init(new_spinlock_irqsave!(0u32), GFP_KERNEL)?;
    let mut stash = None;
    a.lock_irqsave(|g| stash = Some(g)); // error here
    drop(stash);
    Ok(())
}
