// SPDX-License-Identifier: GPL-2.0
// expect: E0080
//! Compile-fail case: a large per-CPU value cannot be passed by value through the
//! stack: its initialiser must be in place.

use kernel::prelude::*;

module! {
    type: Case,
    name: "cf_percpu_big_init_by_value",
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
    let v = PerCpu::new(GFP_KERNEL, |_| [0u8; 4096])?;
    drop(v);
    Ok(())
}
