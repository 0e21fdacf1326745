// SPDX-License-Identifier: GPL-2.0
// expect: E0597
//! Compile-fail case: a PerCpu LocalGuard cannot outlive its PerCpu.

use kernel::prelude::*;

module! {
    type: Case,
    name: "cf_local_guard_outlives",
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

fn case() -> Result {
    let g;
    {
        let v = PerCpu::<u64>::new_zeroed(GFP_KERNEL)?;
        g = v.local();
    }
    drop(g);
    Ok(())
}
