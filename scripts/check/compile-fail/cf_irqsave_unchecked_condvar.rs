// SPDX-License-Identifier: GPL-2.0
// expect: E0308
//! Compile-fail case: the guard of `lock_unchecked()` cannot be released temporarily by a
//! condition variable.

use kernel::sync::{new_condvar, new_spinlock_irqsave};

fn case() -> Result {
    let a = KBox::pin_init(new_spinlock_irqsave!(0u32), GFP_KERNEL)?;
    let cv = KBox::pin_init(new_condvar!(), GFP_KERNEL)?;
    // SAFETY: Only this guard is held.
    let mut ga = unsafe { a.lock_unchecked() };
    cv.wait(&mut ga); // error here
    drop(ga);
    Ok(())
}
