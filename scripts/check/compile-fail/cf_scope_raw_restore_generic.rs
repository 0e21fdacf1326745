// SPDX-License-Identifier: GPL-2.0
// expect: E0599
//! Compile-fail case: not through a generic bound either (a sealed supertrait's methods would be
//! callable there): the raw C pair is reachable only inside `kernel::alloc::memalloc`.

use kernel::alloc::memalloc::{NoFs, ScopeKind};

fn end_any<K: ScopeKind>() {
    K::restore(K::TASK_FLAG); // error here
}

fn case() -> Result {
    kernel::memalloc_scope!(NoFs);
    end_any::<NoFs>();
    Ok(())
}
