// SPDX-License-Identifier: GPL-2.0
// expect: E0432
//! Compile-fail case: no irqsave lock backend is nameable, so no generic `Lock` with a
//! free-standing irqsave guard can be built.

use kernel::prelude::*;

module! {
    type: Case,
    name: "cf_irqsave_backend_lock",
    authors: ["Rust for Linux Contributors"],
    description: "compile-fail case",
    license: "GPL",
}

struct Case;

impl kernel::Module for Case {
    fn init(_module: &'static ThisModule) -> Result<Self> {
        case()?;
        Ok(Case)
    }
}

use kernel::sync::lock::{irqsave::SpinLockIrqSaveBackend, Lock};

fn case() -> Result {
    let a = KBox::pin_init(
        Lock::<u32, SpinLockIrqSaveBackend>::new(0, c_str!("a"), kernel::static_lock_class!()),
        GFP_KERNEL,
    )?;
    let ga = a.lock();
    drop(ga);
    Ok(())
}
