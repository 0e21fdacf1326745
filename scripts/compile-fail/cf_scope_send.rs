// SPDX-License-Identifier: GPL-2.0
// expect: E0277
//! Compile-fail case: a memory allocation scope cannot be sent to another thread.

use kernel::prelude::*;

module! {
    type: Case,
    name: "cf_scope_send",
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

use kernel::alloc::memalloc::{NoFs, Scope};

fn assert_send<T: Send>() {}

fn case() -> Result {
    assert_send::<Scope<NoFs>>();
    Ok(())
}
