// SPDX-License-Identifier: GPL-2.0
// expect: E0277
//! Compile-fail case: a PerCpu LocalGuard (preemption disabled on this CPU) cannot be sent to another thread.

use kernel::prelude::*;

module! {
    type: Case,
    name: "cf_local_guard_send",
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

use kernel::percpu::PerCpu;

fn assert_send<T: Send>(_: &T) {}

fn case() -> Result {
    let v = PerCpu::<u64>::new_zeroed(GFP_KERNEL)?;
    if let Some(g) = v.local() {
        assert_send(&g);
    }
    Ok(())
}
