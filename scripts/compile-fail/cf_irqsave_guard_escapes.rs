// SPDX-License-Identifier: GPL-2.0
// expect: E0521
//! Compile-fail case: the guard of an irqsave critical section cannot leave its closure.

use kernel::prelude::*;

module! {
    type: Case,
    name: "cf_irqsave_guard_escapes",
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

use kernel::sync::new_spinlock_irqsave;

fn case() -> Result {
    let a = KBox::pin_init(new_spinlock_irqsave!(0u32), GFP_KERNEL)?;
    let mut stash = None;
    a.lock_irqsave(|g| stash = Some(g));
    drop(stash);
    Ok(())
}
