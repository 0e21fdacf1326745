// SPDX-License-Identifier: GPL-2.0
// expect: E0599
//! Compile-fail case: a scope kind has no raw save/restore that could clear the flag of a scope
//! entered by someone else (the enclosing scope, a C region, an interrupted task).

use kernel::alloc::memalloc::{NoIo, ScopeKind};

fn case() -> Result {
    kernel::memalloc_scope!(NoIo);
    NoIo::restore(NoIo::TASK_FLAG); // error here
    Ok(())
}
