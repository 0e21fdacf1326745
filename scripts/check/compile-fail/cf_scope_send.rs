// SPDX-License-Identifier: GPL-2.0
// expect: E0277
//! Compile-fail case: a memory allocation scope cannot be sent to another thread.

use kernel::alloc::memalloc::{NoFs, Scope};

fn assert_send<T: Send>() {}

fn case() -> Result {
    assert_send::<Scope<NoFs>>(); // error here
    Ok(())
}
