// SPDX-License-Identifier: GPL-2.0
// expect: E0432
//! Compile-fail case: no irqsave lock backend is nameable, so no generic `Lock` with a
//! free-standing irqsave guard can be built.

use kernel::sync::lock::{irqsave::SpinLockIrqSaveBackend, Lock}; // error here

fn case() -> Result {
    let a = KBox::pin_init(
        Lock::<u32, SpinLockIrqSaveBackend>::new(0, c_str!("a"), kernel::static_lock_class!()),
        GFP_KERNEL,
    )?;
    let ga = a.lock();
    drop(ga);
    Ok(())
}
