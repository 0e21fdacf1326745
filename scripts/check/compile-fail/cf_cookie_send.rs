// SPDX-License-Identifier: GPL-2.0
// expect: E0277
//! Compile-fail case: a CondIrqSaveGuard cannot be sent to another thread.

use kernel::sync::{new_spinlock_irq, CondIrqSaveGuard};

fn assert_send<T: Send>(_: &T) {}

fn case() -> Result {
    let c = KBox::pin_init(new_spinlock_irq!(0u32), GFP_KERNEL)?;
    let guard = CondIrqSaveGuard::begin(&c, || true);
    assert_send(&guard); // error here
    guard.end();
    Ok(())
}
