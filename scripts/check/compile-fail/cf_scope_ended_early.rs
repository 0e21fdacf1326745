// SPDX-License-Identifier: GPL-2.0
// expect: E0425
//! Compile-fail case: a memalloc_scope! cannot be ended before the end of its block.

use kernel::alloc::memalloc::NoFs;

fn case() -> Result {
    kernel::memalloc_scope!(NoFs);
    drop(__memalloc_scope); // error here
    Ok(())
}
