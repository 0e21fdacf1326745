// SPDX-License-Identifier: GPL-2.0
// expect: E0277
//! Compile-fail case: a WbLockCookie cannot be sent to another thread.

use kernel::sync::{new_spinlock_irq, WbLockCookie};

fn assert_send<T: Send>(_: &T) {}

fn case() -> Result {
    let c = KBox::pin_init(new_spinlock_irq!(0u32), GFP_KERNEL)?;
    let cookie = WbLockCookie::begin(&c, || true);
    assert_send(&cookie); // error here
    cookie.end();
    Ok(())
}
