// SPDX-License-Identifier: GPL-2.0
// expect: E0277
//! Compile-fail case: the guard of an irqsave critical section cannot be sent to another thread.

use kernel::sync::new_spinlock_irqsave;

fn assert_send<T: Send>(_: &T) {}

fn case() -> Result {
    let a = KBox::pin_init(new_spinlock_irqsave!(0u32), GFP_KERNEL)?;
    a.lock_irqsave(|g| assert_send(g)); // error here
    Ok(())
}
