// SPDX-License-Identifier: GPL-2.0
// expect: E0425
//! Compile-fail case: a memalloc_scope! cannot be ended before the end of its block.

use kernel::prelude::*;

module! {
    type: Case,
    name: "cf_scope_ended_early",
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

use kernel::alloc::memalloc::NoFs;

fn case() -> Result {
    kernel::memalloc_scope!(NoFs);
    drop(__memalloc_scope);
    Ok(())
}
