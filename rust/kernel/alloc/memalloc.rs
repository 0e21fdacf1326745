// SPDX-License-Identifier: GPL-2.0

//! Memory allocation scopes.
//!
//! A scope restricts every allocation the current task makes while it is active, including the
//! allocations made deep inside callees that take a plain [`GFP_KERNEL`]:
//!
//! - [`NoFs`]: reclaim may not call into the filesystem (as if [`GFP_NOFS`] were used).
//! - [`NoIo`]: reclaim may not start I/O, nor call into the filesystem (as [`GFP_NOIO`]).
//! - [`NoMovable`]: no movable memory is used (pages that are about to be pinned long-term).
//!
//! # When to use a scope and when to use a flag
//!
//! Use a scope at the boundary of the code that must not recurse into reclaim of a given kind:
//! for example, a filesystem enters a [`NoFs`] scope where it takes a lock that its own writeback
//! also takes, and a block driver that services I/O on behalf of reclaim (a loop worker) runs its
//! worker under [`NoIo`]. Say in a comment which reclaim recursion the scope prevents. Everything
//! called inside then allocates safely with [`GFP_KERNEL`], without having to thread flags
//! through APIs that do not take them (C's `percpu_counter_init()` inside a `NOFS` transaction
//! is the classic failure: the allocation ignored the caller's intent and deadlocked in reclaim).
//!
//! Pass [`GFP_NOFS`] or [`GFP_NOIO`] explicitly only where a single allocation, not a region,
//! has the restriction. Do not use either in atomic context: use [`GFP_NOWAIT`] or
//! [`GFP_ATOMIC`] there.
//!
//! Scopes nest. A scope only clears on exit the task flag that it set itself, so a [`NoFs`] scope
//! inside another [`NoFs`] or [`NoIo`] scope leaves the outer one in force. Scopes are tied to the
//! task that entered them (they are neither [`Send`] nor [`Sync`]). In interrupt context (an
//! `irq_work` closure, an [`on_each_cpu`] function) that task is whichever task the interrupt
//! hit, as for C's `memalloc_*_save()` there: a scope has no use there (allocations in interrupt
//! context never reclaim), and one that is forgotten there leaves its flag on that task.
//! [`memalloc_scope!`] binds the scope to a hidden variable of the enclosing block, and [`scope`]
//! to a closure: used that way, scopes end in the reverse order of entry.
//!
//! # Scopes that end out of order or never
//!
//! Like C's `memalloc_*_save()`, a scope is a pair of updates of the current task's flags, not a
//! resource: ending scopes in the reverse order of entry is best effort, not enforced. Safe code
//! can break it, for example with [`mem::forget`], or by holding [`memalloc_scope!`] across an
//! `.await` in an `async` block that is polled once and then dropped at some later point, or
//! never. What happens then is exactly this, and nothing else:
//!
//! - Between polls, a scope held by a pending future stays in force on the task that polled it,
//!   also for the code that runs after the poll returned.
//! - A scope that is never dropped leaves its flag set: every later allocation of the task is
//!   restricted until an enclosing scope that set the flag ends (or for the rest of the task's
//!   life if there is none).
//! - A scope that ends before a scope entered after it clears the flag it set: the later scope is
//!   no longer in force until it ends (and its own exit then clears nothing).
//!
//! That is wrong allocation behaviour for the task (more reclaim recursion, or more allocation
//! failures, than intended), never memory unsafety: exiting a scope only clears the scope's own
//! `PF_MEMALLOC_*` flag, and only if that scope set it. So entering a scope is safe, and keeping
//! scopes out of `async` code that may be suspended is the caller's job.
//!
//! There is deliberately no safe "no reclaim" (`PF_MEMALLOC`) scope: it grants access to the
//! memory reserves and was found unsafe as a general-purpose scope.
//!
//! C header: [`include/linux/sched/mm.h`](srctree/include/linux/sched/mm.h)
//!
//! [`mem::forget`]: core::mem::forget
//! [`on_each_cpu`]: crate::percpu::on_each_cpu
//! [`GFP_KERNEL`]: super::flags::GFP_KERNEL
//! [`GFP_NOFS`]: super::flags::GFP_NOFS
//! [`GFP_NOIO`]: super::flags::GFP_NOIO
//! [`GFP_NOWAIT`]: super::flags::GFP_NOWAIT
//! [`GFP_ATOMIC`]: super::flags::GFP_ATOMIC

use crate::{
    alloc::Flags,
    bindings,
    ffi::c_uint,
    types::NotThreadSafe, //
};
use core::marker::PhantomData;

/// Returns `flags` as restricted by the scopes active on the current task.
///
/// This is what the page, slab and per-CPU allocators apply to the caller's flags.
///
/// # Examples
///
/// ```
/// use kernel::alloc::memalloc::{self, current_gfp_context, NoFs};
///
/// assert!(current_gfp_context(GFP_KERNEL) == GFP_KERNEL);
/// memalloc::scope::<NoFs, _>(|| {
///     assert!(current_gfp_context(GFP_KERNEL) == kernel::alloc::flags::GFP_NOFS);
/// });
/// ```
#[inline]
pub fn current_gfp_context(flags: Flags) -> Flags {
    // SAFETY: `current_gfp_context()` only reads the current task's flags.
    Flags(unsafe { bindings::current_gfp_context(flags.as_raw()) })
}

/// Annotates a place that may allocate memory with `flags`.
///
/// Tells lockdep that the caller may enter reclaim of the kind `flags` (as restricted by the
/// active scopes) allows, and, if `flags` allow blocking, that the caller may sleep. Call it
/// where an allocation may take a fast path that does not reach the allocator's own annotation,
/// so that a lock inversion with reclaim, or a sleeping allocation in atomic context, is reported
/// every time rather than only when memory is short.
///
/// Without `CONFIG_LOCKDEP` and `CONFIG_DEBUG_ATOMIC_SLEEP` nothing is checked, but it is still
/// C's `might_alloc()`: for flags that allow blocking it is a `might_sleep()`, which is a
/// voluntary preemption point (it may reschedule) with `CONFIG_PREEMPT_VOLUNTARY` or dynamic
/// preemption, unless the task runs with `PF_MEMALLOC`.
///
/// # Examples
///
/// ```
/// use kernel::alloc::memalloc::might_alloc;
///
/// might_alloc(GFP_KERNEL);
/// ```
#[inline]
pub fn might_alloc(flags: Flags) {
    // SAFETY: `might_alloc()` only updates lockdep state and may warn; it is always safe to call.
    unsafe { bindings::might_alloc(flags.as_raw()) }
}

mod private {
    /// The C pair behind a [`ScopeKind`](super::ScopeKind).
    ///
    /// Public in a private module: code outside this module can hold a value of it (through
    /// `ScopeKind::KIND`) but can neither name it nor act on it. Only `Scope` calls the C
    /// functions, so a scope can only clear the flag it set.
    #[derive(Clone, Copy)]
    pub enum Kind {
        Fs,
        Io,
        Movable,
    }

    pub trait Sealed {}
}

use private::Kind;

/// A kind of memory allocation scope: [`NoFs`], [`NoIo`] or [`NoMovable`].
///
/// The trait is sealed, and it has no methods: the only way to set or clear the task flag of a
/// kind is a [`Scope`] of that kind, which clears only what it set. There is no raw `restore()`
/// that could end a scope entered by someone else (C code's, or one that an interrupted task
/// entered).
pub trait ScopeKind: private::Sealed {
    /// The task flag (`PF_MEMALLOC_*`) this scope sets.
    const TASK_FLAG: u32;

    /// Which C pair enters and leaves this scope; usable only by this module.
    #[doc(hidden)]
    const KIND: Kind;
}

/// Scope in which reclaim does not call into the filesystem (C's `memalloc_nofs_save()`).
pub enum NoFs {}

/// Scope in which reclaim starts no I/O and does not call into the filesystem (C's
/// `memalloc_noio_save()`).
pub enum NoIo {}

/// Scope in which no movable memory is used, for pages about to be pinned long-term (C's
/// `memalloc_pin_save()`).
pub enum NoMovable {}

macro_rules! impl_scope_kind {
    ($kind:ident, $variant:ident, $flag:ident) => {
        impl private::Sealed for $kind {}

        impl ScopeKind for $kind {
            const TASK_FLAG: u32 = bindings::$flag;
            const KIND: Kind = Kind::$variant;
        }
    };
}

impl_scope_kind!(NoFs, Fs, PF_MEMALLOC_NOFS);
impl_scope_kind!(NoIo, Io, PF_MEMALLOC_NOIO);
impl_scope_kind!(NoMovable, Movable, PF_MEMALLOC_PIN);

/// Sets `K::TASK_FLAG` on the current task and returns the bits of it that this call set (zero
/// if the flag was already set).
#[inline(always)]
fn save<K: ScopeKind>() -> c_uint {
    // SAFETY: Each C function only sets its own `PF_MEMALLOC_*` flag in the current task's
    // flags, which only the task itself changes.
    unsafe {
        match K::KIND {
            Kind::Fs => bindings::memalloc_nofs_save(),
            Kind::Io => bindings::memalloc_noio_save(),
            Kind::Movable => bindings::memalloc_pin_save(),
        }
    }
}

/// Clears the bits of `saved` that belong to `K::TASK_FLAG` on the current task.
#[inline(always)]
fn restore<K: ScopeKind>(saved: c_uint) {
    let saved = saved & K::TASK_FLAG;
    // SAFETY: Clears, in the current task's flags, at most `K::TASK_FLAG`: each C function clears
    // exactly the bits it is given.
    unsafe {
        match K::KIND {
            Kind::Fs => bindings::memalloc_nofs_restore(saved),
            Kind::Io => bindings::memalloc_noio_restore(saved),
            Kind::Movable => bindings::memalloc_pin_restore(saved),
        }
    }
}

/// Returns whether a scope of kind `K` is active on the current task.
///
/// # Examples
///
/// ```
/// use kernel::alloc::memalloc::{self, is_active, NoFs, NoIo};
///
/// assert!(!is_active::<NoFs>());
/// memalloc::scope::<NoFs, _>(|| {
///     assert!(is_active::<NoFs>());
///     assert!(!is_active::<NoIo>());
/// });
/// assert!(!is_active::<NoFs>());
/// ```
#[inline]
pub fn is_active<K: ScopeKind>() -> bool {
    // SAFETY: `get_current()` returns the current task, valid for the duration of this call, and
    // only the task itself changes its `PF_MEMALLOC_*` flags.
    let flags = unsafe { (*bindings::get_current()).flags };
    flags & K::TASK_FLAG != 0
}

/// An active memory allocation scope of kind `K` on the current task.
///
/// Created by [`memalloc_scope!`], [`scope`] or [`Scope::enter`]; ends when dropped. Not [`Send`]:
/// a scope ends on the task that entered it, also when it is held by a future (which is then not
/// [`Send`] either).
///
/// # Invariants
///
/// `saved` is the value `save::<K>()` returned on the task that created this object, which is the
/// task that owns it: a subset of `K::TASK_FLAG`.
#[must_use = "the scope ends immediately when unused"]
pub struct Scope<K: ScopeKind> {
    saved: c_uint,
    _kind: PhantomData<K>,
    _not_send: NotThreadSafe,
}

impl<K: ScopeKind> Scope<K> {
    /// Enters a scope of kind `K` on the current task.
    ///
    /// Prefer [`memalloc_scope!`] or [`scope`]: they end the scope at the end of a block or of a
    /// closure, so scopes end in the reverse order of entry. Dropping scopes in another order,
    /// forgetting one, or holding one across an `.await` is safe, but leaves the task with the
    /// wrong restrictions for a while: see [the module documentation](self).
    ///
    /// # Examples
    ///
    /// ```
    /// use kernel::alloc::memalloc::{is_active, NoFs, Scope};
    ///
    /// let outer = Scope::<NoFs>::enter();
    /// let inner = Scope::<NoFs>::enter();
    /// // Out of order: `outer` set the flag, so it clears it, and `inner` is no longer in force.
    /// drop(outer);
    /// assert!(!is_active::<NoFs>());
    /// drop(inner);
    /// assert!(!is_active::<NoFs>());
    /// ```
    #[inline]
    pub fn enter() -> Self {
        // INVARIANT: `saved` comes from `save::<K>()` on this task, which owns `Self` (`!Send`).
        Self {
            saved: save::<K>(),
            _kind: PhantomData,
            _not_send: NotThreadSafe,
        }
    }
}

impl<K: ScopeKind> Drop for Scope<K> {
    #[inline]
    fn drop(&mut self) {
        // By the type invariants, this runs on the task that entered the scope and clears
        // `K::TASK_FLAG` only if this scope set it.
        restore::<K>(self.saved);
    }
}

/// Enters a memory allocation scope until the end of the enclosing block.
///
/// The argument is the bare name of the kind, `NoFs`, `NoIo` or `NoMovable`, which the macro
/// resolves in [`alloc::memalloc`] itself (no path: `memalloc_scope!(memalloc::NoFs)` does not
/// match; nothing needs to be imported). For a kind given as a type, use [`scope`]. The scope is
/// bound to a hidden variable, so it ends exactly at the end of the block, after any scope
/// entered later in the block, and cannot be dropped early or moved. In an `async` block, the
/// end of the block may come much later than the next `.await`, or never: see [the module
/// documentation](crate::alloc::memalloc) before using it there.
///
/// [`alloc::memalloc`]: crate::alloc::memalloc
///
/// # Examples
///
/// ```
/// use kernel::alloc::memalloc::{current_gfp_context, is_active, NoFs, NoIo};
/// use kernel::alloc::flags::{GFP_NOFS, GFP_NOIO};
/// use kernel::memalloc_scope;
///
/// {
///     // Our writeback takes `fs_lock` too: reclaim must not re-enter the filesystem here.
///     memalloc_scope!(NoFs);
///     assert!(current_gfp_context(GFP_KERNEL) == GFP_NOFS);
///     {
///         memalloc_scope!(NoIo);
///         assert!(current_gfp_context(GFP_KERNEL) == GFP_NOIO);
///     }
///     assert!(is_active::<NoFs>() && !is_active::<NoIo>());
/// }
/// assert!(!is_active::<NoFs>());
/// ```
#[macro_export]
macro_rules! memalloc_scope {
    ($kind:ident) => {
        let __memalloc_scope =
            $crate::alloc::memalloc::Scope::<$crate::alloc::memalloc::$kind>::enter();
    };
}
pub use memalloc_scope;

/// Runs `f` inside a memory allocation scope of kind `K` and returns its result.
///
/// The scope ends when `f` returns, also when it returns early with `?`.
///
/// # Examples
///
/// ```
/// use kernel::alloc::memalloc::{self, is_active, NoIo};
///
/// fn submit() -> Result<KBox<u64>> {
///     // Runs on behalf of reclaim: starting more I/O from reclaim could deadlock.
///     memalloc::scope::<NoIo, _>(|| Ok(KBox::new(0u64, GFP_KERNEL)?))
/// }
///
/// let b = submit()?;
/// assert_eq!(*b, 0);
/// assert!(!is_active::<NoIo>());
/// # Ok::<(), Error>(())
/// ```
#[inline]
pub fn scope<K: ScopeKind, R>(f: impl FnOnce() -> R) -> R {
    let _scope = Scope::<K>::enter();
    f()
}

#[cfg(CONFIG_RUST_MEMALLOC_KUNIT_TEST)]
#[macros::kunit_tests(rust_kernel_memalloc)]
mod tests {
    use super::*;
    use crate::alloc::flags::*;
    use crate::prelude::*;
    use core::{
        future::Future,
        pin::pin,
        task::{Context, Poll, Waker},
    };

    /// A future that is pending when first polled and ready when polled again.
    struct YieldOnce(bool);

    impl Future for YieldOnce {
        type Output = ();

        fn poll(mut self: Pin<&mut Self>, _cx: &mut Context<'_>) -> Poll<()> {
            if self.0 {
                Poll::Ready(())
            } else {
                self.0 = true;
                Poll::Pending
            }
        }
    }

    /// Polls `f` once with a waker that does nothing.
    fn poll_once<F: Future>(f: Pin<&mut F>) -> Poll<F::Output> {
        f.poll(&mut Context::from_waker(Waker::noop()))
    }

    #[test]
    fn gfp_flag_values() {
        assert!(GFP_KERNEL.contains(__GFP_FS | __GFP_IO | __GFP_DIRECT_RECLAIM));
        assert!(GFP_NOFS == GFP_KERNEL & !__GFP_FS);
        assert!(GFP_NOIO == GFP_KERNEL & !(__GFP_FS | __GFP_IO));
        assert!(!GFP_NOWAIT.contains(__GFP_DIRECT_RECLAIM));
        assert!(!GFP_ATOMIC.contains(__GFP_DIRECT_RECLAIM));
        assert!(!(__GFP_NORETRY | __GFP_RETRY_MAYFAIL).contains(__GFP_FS));
        assert!(__GFP_NORETRY != __GFP_RETRY_MAYFAIL);
    }

    #[test]
    fn scope_sets_and_clears_task_flag() {
        let before = (
            is_active::<NoFs>(),
            is_active::<NoIo>(),
            is_active::<NoMovable>(),
        );
        let inside = {
            memalloc_scope!(NoFs);
            (
                is_active::<NoFs>(),
                is_active::<NoIo>(),
                current_gfp_context(GFP_KERNEL),
            )
        };
        let after = is_active::<NoFs>();
        assert_eq!(before, (false, false, false));
        assert!(inside.0 && !inside.1);
        assert!(inside.2 == GFP_NOFS);
        assert!(!after);
    }

    #[test]
    fn gfp_context_in_each_scope() {
        let nofs = scope::<NoFs, _>(|| current_gfp_context(GFP_KERNEL));
        let noio = scope::<NoIo, _>(|| current_gfp_context(GFP_KERNEL));
        let pin =
            scope::<NoMovable, _>(|| (is_active::<NoMovable>(), current_gfp_context(GFP_KERNEL)));
        let nowait = scope::<NoIo, _>(|| current_gfp_context(GFP_NOWAIT));
        assert!(nofs == GFP_NOFS);
        assert!(noio == GFP_NOIO);
        assert!(pin.0 && pin.1 == GFP_KERNEL);
        assert!(nowait == GFP_NOWAIT);
        assert!(!is_active::<NoMovable>());
    }

    #[test]
    fn nofs_inside_noio_keeps_outer() {
        let (inner, outer_after) = scope::<NoIo, _>(|| {
            let inner = scope::<NoFs, _>(|| current_gfp_context(GFP_KERNEL));
            (
                inner,
                (
                    is_active::<NoIo>(),
                    is_active::<NoFs>(),
                    current_gfp_context(GFP_KERNEL),
                ),
            )
        });
        assert!(inner == GFP_NOIO);
        assert!(outer_after.0 && !outer_after.1);
        assert!(outer_after.2 == GFP_NOIO);
        assert!(!is_active::<NoIo>());
    }

    #[test]
    fn noio_inside_nofs_keeps_outer() {
        let (inner, outer_after) = {
            memalloc_scope!(NoFs);
            let inner = {
                memalloc_scope!(NoIo);
                current_gfp_context(GFP_KERNEL)
            };
            (
                inner,
                (
                    is_active::<NoFs>(),
                    is_active::<NoIo>(),
                    current_gfp_context(GFP_KERNEL),
                ),
            )
        };
        assert!(inner == GFP_NOIO);
        assert!(outer_after.0 && !outer_after.1);
        assert!(outer_after.2 == GFP_NOFS);
        assert!(!is_active::<NoFs>());
    }

    #[test]
    fn scope_does_not_clear_flag_it_did_not_set() {
        let (inner, still_active) = scope::<NoFs, _>(|| {
            let inner = {
                // The flag is already set: this scope must not clear it when it ends.
                memalloc_scope!(NoFs);
                is_active::<NoFs>()
            };
            (inner, is_active::<NoFs>())
        });
        assert!(inner);
        assert!(still_active);
        assert!(!is_active::<NoFs>());
    }

    #[test]
    fn closure_restores_on_early_return() {
        fn fails() -> Result<u32> {
            scope::<NoFs, _>(|| {
                if is_active::<NoFs>() {
                    return Err(EAGAIN);
                }
                Ok(1)
            })
        }
        let r = fails();
        assert!(r == Err(EAGAIN));
        assert!(!is_active::<NoFs>());
    }

    #[test]
    fn allocation_inside_nofs_scope_under_mutex() -> Result {
        // The shape of the btrfs bug: a GFP_KERNEL allocation, annotated with `might_alloc()`,
        // under a lock that filesystem reclaim also takes. Inside the scope lockdep records no
        // reclaim dependency (the clean boot checks that no report appears).
        let m = KBox::pin_init(
            crate::new_mutex!(0u32, "memalloc_kunit_fs_lock"),
            GFP_KERNEL,
        )?;
        let b = {
            memalloc_scope!(NoFs);
            let _g = m.lock();
            might_alloc(GFP_KERNEL);
            KBox::new(7u64, GFP_KERNEL)?
        };
        assert_eq!(*b, 7);
        Ok(())
    }

    #[test]
    fn async_scope_stays_in_force_between_polls() {
        let mut fut = pin!(async {
            memalloc_scope!(NoFs);
            YieldOnce(false).await;
            current_gfp_context(GFP_KERNEL)
        });
        let first = poll_once(fut.as_mut());
        // Documented: the pending future's scope is in force for the code that polled it.
        let between = (is_active::<NoFs>(), current_gfp_context(GFP_KERNEL));
        let second = poll_once(fut.as_mut());
        let after = is_active::<NoFs>();
        assert!(first.is_pending());
        assert!(between.0 && between.1 == GFP_NOFS);
        assert!(matches!(second, Poll::Ready(f) if f == GFP_NOFS));
        assert!(!after);
    }

    #[test]
    fn async_scope_polled_once_then_dropped_inside_another_scope() {
        let (pending, inside, after_inner) = {
            let (pending, inner) = {
                let mut fut = pin!(async {
                    memalloc_scope!(NoFs);
                    YieldOnce(false).await;
                });
                let pending = poll_once(fut.as_mut()).is_pending();
                // Entered after the future's scope: the flag is already set, so this one saves
                // nothing.
                (pending, Scope::<NoFs>::enter())
                // Out of order: the future, and with it its scope (which set the flag), is
                // dropped here, before `inner`.
            };
            // Documented: the flag is cleared although `inner` has not ended.
            let inside = is_active::<NoFs>();
            drop(inner);
            (pending, inside, is_active::<NoFs>())
        };
        assert!(pending);
        assert!(!inside);
        assert!(!after_inner);
    }

    #[test]
    fn forgotten_scope_leaves_flag_until_enclosing_scope_ends() {
        // What a future holding a scope and never dropped amounts to.
        let in_outer = scope::<NoFs, _>(|| {
            core::mem::forget(Scope::<NoFs>::enter());
            is_active::<NoFs>()
        });
        // The enclosing scope set the flag, so it clears it; the forgotten one set nothing.
        let after_outer = is_active::<NoFs>();
        let outermost = {
            core::mem::forget(Scope::<NoFs>::enter());
            // Documented: a forgotten outermost scope leaves the flag set on the task.
            let left = (is_active::<NoFs>(), current_gfp_context(GFP_KERNEL));
            // The only way out (for this test, inside the module): clear the flag explicitly.
            restore::<NoFs>(NoFs::TASK_FLAG);
            (left, is_active::<NoFs>())
        };
        assert!(in_outer && !after_outer);
        assert!(outermost.0 .0 && outermost.0 .1 == GFP_NOFS);
        assert!(!outermost.1);
    }
}
