// SPDX-License-Identifier: GPL-2.0

//! Fault injection for the current task.
//!
//! The kernel's fault points (`failslab`, `fail_page_alloc`, `fail_percpu`, ...) can fail the
//! n-th time the current task reaches one of them: that is what writing `n` to
//! `/proc/self/fail-nth` does for the next system calls, and what [`fail_nth`] does for a
//! closure. Calling it with `n` = 1, 2, 3, ... until the closure reaches fewer than `n` fault
//! points fails each allocation of a code path in turn, which is how its error paths are
//! tested.
//!
//! Which fault points fail is configured as for `fail-nth`
//! (Documentation/fault-injection/fault-injection.rst): for instance, `failslab` ignores
//! allocations that may sleep unless `/sys/kernel/debug/failslab/ignore-gfp-wait` is `N`.
//!
//! C header: [`include/linux/fault-inject.h`](srctree/include/linux/fault-inject.h)

use crate::task::Task;
use core::ptr::{
    addr_of_mut,
    read_volatile,
    write_volatile, //
};

/// Runs `f` with the `n`-th fault point it reaches set to fail.
///
/// Returns `f`'s result and whether the fault was injected, that is, whether `f` reached `n`
/// fault points. The fault points reached in interrupt context do not count, as for
/// `/proc/self/fail-nth`. The task's previous setting is restored afterwards. `n` = 0 injects
/// nothing.
///
/// Only `f`'s error paths are affected: a fault point makes an allocation fail as it could fail
/// anyway (allocations with `__GFP_NOFAIL` are never failed).
///
/// # Examples
///
/// ```
/// use kernel::{fault_inject::fail_nth, prelude::*};
///
/// // Fail the allocations of `KVec::with_capacity()` one by one until it succeeds.
/// let mut n = 1;
/// loop {
///     match fail_nth(n, || KVec::<u64>::with_capacity(16, GFP_KERNEL)) {
///         (Ok(_), false) => break,
///         (Ok(_), true) => {} // The fault hit an allocation that has a fallback.
///         (Err(_), injected) => assert!(injected), // Fails only when made to.
///     }
///     n += 1;
/// }
/// ```
pub fn fail_nth<R>(n: u32, f: impl FnOnce() -> R) -> (R, bool) {
    let task = Task::current_raw();
    // SAFETY: `task` is the current task, live while it runs. Its `fail_nth` is read and written
    // with single volatile accesses, as C's `READ_ONCE()`/`WRITE_ONCE()` and the plain accesses
    // of `/proc/<pid>/fail-nth` do.
    let field = unsafe { addr_of_mut!((*task).fail_nth) };
    // SAFETY: As above.
    let previous = unsafe { read_volatile(field) };
    // SAFETY: As above.
    unsafe { write_volatile(field, n) };
    let r = f();
    // SAFETY: As above: `f` ran on this task, which is still current.
    let left = unsafe { read_volatile(field) };
    // SAFETY: As above.
    unsafe { write_volatile(field, previous) };
    (r, n != 0 && left == 0)
}
