// SPDX-License-Identifier: GPL-2.0

//! Memory allocation scopes.
//!
//! A scope changes every allocation the current task makes while it is active, including the
//! allocations made deep inside callees that take a plain [`GFP_KERNEL`]:
//!
//! - [`NoFs`]: reclaim may not call into the filesystem (as if [`GFP_NOFS`] were used).
//! - [`NoIo`]: reclaim may not start I/O, nor call into the filesystem (as [`GFP_NOIO`]).
//! - [`NoMovable`]: no movable memory is used, for pages that are about to be pinned long-term.
//! - [`NoReclaim`]: no direct reclaim at all, and access to the memory reserves, for code that is
//!   itself part of memory reclaim.
//!
//! # When to use a scope and when to use a flag
//!
//! Use a scope at the boundary of the code that must not recurse into reclaim of a given kind,
//! and say in a comment which reclaim recursion the scope prevents. For example:
//!
//! - A filesystem enters a [`NoFs`] scope where it takes a lock that its own writeback also
//!   takes.
//! - A block driver that services I/O on behalf of reclaim, such as a loop worker, runs its
//!   worker under [`NoIo`].
//!
//! Everything called inside then allocates safely with [`GFP_KERNEL`], without having to thread
//! flags through APIs that do not take them. C's `percpu_counter_init()` inside a `NOFS`
//! transaction is the classic failure without a scope: the allocation ignored the caller's intent
//! and deadlocked in reclaim.
//!
//! Pass [`GFP_NOFS`] or [`GFP_NOIO`] explicitly only where a single allocation, not a region,
//! has the restriction. Do not use either in atomic context: use [`GFP_NOWAIT`] or
//! [`GFP_ATOMIC`] there.
//!
//! # Nesting and context
//!
//! Scopes nest. A scope only clears on exit the task flag that it set itself, so a [`NoFs`] scope
//! inside another [`NoFs`] or [`NoIo`] scope leaves the outer one in force. [`memalloc_scope!`]
//! binds the scope to a hidden variable of the enclosing block, and [`scope`] to a closure: used
//! that way, scopes end in the reverse order of entry.
//!
//! A scope changes the flags of the current task, and it is neither [`Send`] nor [`Sync`]:
//!
//! - Task context: a scope applies to the task that entered it, until it ends there.
//! - Interrupt context, such as an `irq_work` closure or C's `on_each_cpu()`: the current task is
//!   whichever task the interrupt hit, as for C's `memalloc_*_save()` there. Allocations in
//!   interrupt context never reclaim, so a scope has no use there, except [`NoReclaim`] while
//!   serving a softirq. A scope that is forgotten there leaves its flag on that task.
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
//!   affected until an enclosing scope that set the flag ends, or for the rest of the task's life
//!   if there is none. For [`NoReclaim`], the task keeps drawing on the memory reserves.
//! - A scope that ends before a scope entered after it clears the flag it set: the later scope is
//!   no longer in force until it ends, and its own exit then clears nothing.
//!
//! That is wrong allocation behaviour for the task (more reclaim recursion, more allocation
//! failures or more use of the reserves than intended), never memory unsafety: exiting a scope
//! only clears the scope's own `PF_MEMALLOC*` flag, and only if that scope set it. So entering a
//! scope is safe, and keeping scopes out of `async` code that may be suspended is the caller's
//! job.
//!
//! C header: [`include/linux/sched/mm.h`](srctree/include/linux/sched/mm.h)
//!
//! [`mem::forget`]: core::mem::forget
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
/// This is what the page, slab and per-CPU allocators apply to the caller's flags. A
/// [`NoReclaim`] scope does not show here: the page allocator reads its task flag itself.
///
/// # Examples
///
/// ```
/// use kernel::alloc::memalloc::{
///     self,
///     current_gfp_context,
///     NoFs, //
/// };
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
/// - Without `CONFIG_LOCKDEP` and `CONFIG_DEBUG_ATOMIC_SLEEP` nothing is checked, but it is still
///   C's `might_alloc()`: for flags that allow blocking it is a `might_sleep()`, which may
///   reschedule with `CONFIG_PREEMPT_VOLUNTARY` or dynamic preemption.
/// - Under a [`NoReclaim`] scope, or in reclaim itself (`PF_MEMALLOC`), it does nothing.
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
        Reclaim,
    }

    pub trait Sealed {}
}

use private::Kind;

/// A kind of memory allocation scope: [`NoFs`], [`NoIo`], [`NoMovable`] or [`NoReclaim`].
///
/// The trait is sealed, and it has no methods: the only way to set or clear the task flag of a
/// kind is a [`Scope`] of that kind, which clears only what it set. There is no raw `restore()`
/// that could end a scope entered by someone else, such as C code or a task that an interrupt
/// hit.
///
/// # Examples
///
/// Neither a kind nor a generic bound gives access to the C pair:
///
/// ```compile_fail,E0599
/// use kernel::alloc::memalloc::{NoIo, ScopeKind};
///
/// NoIo::restore(NoIo::TASK_FLAG); // No such function: only a `Scope` clears the flag.
/// ```
///
/// ```compile_fail,E0599
/// use kernel::alloc::memalloc::ScopeKind;
///
/// fn end_any<K: ScopeKind>() {
///     K::restore(K::TASK_FLAG); // Not through a bound either: the trait has no methods.
/// }
/// ```
pub trait ScopeKind: private::Sealed {
    /// The task flag (`PF_MEMALLOC` or a `PF_MEMALLOC_*` flag) this scope sets.
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

/// Scope in which no movable memory is used (C's `memalloc_pin_save()`).
///
/// For pages that are about to be pinned long-term.
pub enum NoMovable {}

/// Scope in which allocations never enter direct reclaim and may use the memory reserves (C's
/// `memalloc_noreclaim_save()`).
///
/// It sets `PF_MEMALLOC` on the task, the flag that reclaim itself runs with (kswapd, direct
/// reclaim). The page allocator then neither reclaims on behalf of the task, which could recurse
/// into the caller, nor keeps it above the watermarks: an allocation may take pages that are kept
/// back so that reclaim can make progress. C uses it in code that is itself part of reclaim,
/// such as the XFS log pusher, and for the sockets that swap over the network depends on.
///
/// # When to use it
///
/// - Only where the allocation is needed to free memory very shortly, and where reclaim cannot
///   be entered because it could recurse into the caller.
/// - Bound what is taken under the scope, for example by the amount of memory freed: the reserves
///   are shared with reclaim, and exhausting them can hang the whole system.
/// - Consider a preallocated pool first; never use it to make allocations more likely to succeed
///   or to avoid reclaim latency.
///
/// # Effects
///
/// - [`current_gfp_context`] does not change: the page allocator reads the task flag itself.
///   [`is_active::<NoReclaim>()`](is_active) shows it, also where reclaim set the flag.
/// - [`might_alloc`] does nothing inside the scope.
/// - An allocation made with C's `__GFP_NOFAIL` inside the scope warns: it can neither reclaim
///   nor fail.
/// - The flags are otherwise unchanged: this is not an atomic allocation context, and atomic
///   context still needs [`GFP_NOWAIT`] or [`GFP_ATOMIC`].
///
/// # Context
///
/// - Task context: the intended use.
/// - Softirq: the page allocator honours the flag while serving a softirq, as C's network
///   receive path does for packets that reclaim depends on.
/// - Hard interrupt and NMI: the page allocator ignores the flag there.
///
/// [`GFP_NOWAIT`]: super::flags::GFP_NOWAIT
/// [`GFP_ATOMIC`]: super::flags::GFP_ATOMIC
///
/// # Examples
///
/// ```
/// use kernel::alloc::memalloc::{
///     self,
///     current_gfp_context,
///     is_active,
///     NoReclaim, //
/// };
///
/// // Part of writeback that frees memory: a small, bounded allocation that must not recurse into
/// // reclaim.
/// let buf = memalloc::scope::<NoReclaim, _>(|| KBox::new([0u8; 64], GFP_KERNEL))?;
/// assert_eq!(buf.len(), 64);
/// memalloc::scope::<NoReclaim, _>(|| {
///     assert!(is_active::<NoReclaim>());
///     assert!(current_gfp_context(GFP_KERNEL) == GFP_KERNEL);
/// });
/// # Ok::<(), Error>(())
/// ```
pub enum NoReclaim {}

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
impl_scope_kind!(NoReclaim, Reclaim, PF_MEMALLOC);

/// Sets `K::TASK_FLAG` on the current task and returns the bits of it that this call set.
///
/// That is zero if the flag was already set.
#[inline(always)]
fn save<K: ScopeKind>() -> c_uint {
    // SAFETY: Each C function only sets its own `PF_MEMALLOC*` flag in the current task's flags,
    // which only the task itself changes.
    unsafe {
        match K::KIND {
            Kind::Fs => bindings::memalloc_nofs_save(),
            Kind::Io => bindings::memalloc_noio_save(),
            Kind::Movable => bindings::memalloc_pin_save(),
            Kind::Reclaim => bindings::memalloc_noreclaim_save(),
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
            Kind::Reclaim => bindings::memalloc_noreclaim_restore(saved),
        }
    }
}

/// Returns whether a scope of kind `K` is active on the current task.
///
/// It tests the task flag `K::TASK_FLAG`, so it also sees the flag where C code set it, and for
/// [`NoReclaim`] where reclaim runs.
///
/// # Examples
///
/// ```
/// use kernel::alloc::memalloc::{
///     self,
///     is_active,
///     NoFs,
///     NoIo, //
/// };
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
    // only the task itself changes its `PF_MEMALLOC*` flags.
    let flags = unsafe { (*bindings::get_current()).flags };
    flags & K::TASK_FLAG != 0
}

/// An active memory allocation scope of kind `K` on the current task.
///
/// Created by [`memalloc_scope!`], [`scope`] or [`Scope::enter`]; ends when dropped. It is not
/// [`Send`]: a scope ends on the task that entered it, also when it is held by a future, which is
/// then not [`Send`] either.
///
/// # Invariants
///
/// `saved` is the value `save::<K>()` returned on the task that created this object, which is the
/// task that owns it: a subset of `K::TASK_FLAG`.
///
/// # Examples
///
/// ```compile_fail,E0277
/// use kernel::alloc::memalloc::{NoFs, Scope};
///
/// fn assert_send<T: Send>() {}
///
/// assert_send::<Scope<NoFs>>(); // A scope ends on the task that entered it.
/// ```
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
    /// use kernel::alloc::memalloc::{
    ///     is_active,
    ///     NoFs,
    ///     Scope, //
    /// };
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
/// The argument names the kind of the scope, in one of two forms:
///
/// - A bare name, `NoFs`, `NoIo`, `NoMovable` or `NoReclaim`: the macro resolves it in
///   [`alloc::memalloc`] itself, so nothing needs to be imported.
/// - A path to the kind, such as `memalloc::NoFs` or `kernel::alloc::memalloc::NoIo`: resolved
///   where the macro is used.
///
/// A generic parameter is a bare name too, which [`alloc::memalloc`] does not have: use [`scope`]
/// for a kind given as a generic type.
///
/// The scope is bound to a hidden variable, so it ends exactly at the end of the block, after any
/// scope entered later in the block, and cannot be dropped early or moved. In an `async` block,
/// the end of the block may come much later than the next `.await`, or never: see [the module
/// documentation](crate::alloc::memalloc) before using it there.
///
/// [`alloc::memalloc`]: crate::alloc::memalloc
///
/// # Examples
///
/// ```
/// use kernel::{
///     alloc::{
///         flags::{
///             GFP_NOFS,
///             GFP_NOIO, //
///         },
///         memalloc::{
///             current_gfp_context,
///             is_active,
///             NoFs,
///             NoIo, //
///         }, //
///     },
///     memalloc_scope, //
/// };
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
///
/// The same kinds, given as paths:
///
/// ```
/// use kernel::{
///     alloc::memalloc::{
///         self,
///         is_active,
///         NoFs,
///         NoIo, //
///     },
///     memalloc_scope, //
/// };
///
/// {
///     memalloc_scope!(memalloc::NoFs);
///     memalloc_scope!(kernel::alloc::memalloc::NoIo);
///     assert!(is_active::<NoFs>() && is_active::<NoIo>());
/// }
/// assert!(!is_active::<NoFs>() && !is_active::<NoIo>());
/// ```
///
/// The scope cannot be ended early:
///
/// ```compile_fail,E0425
/// kernel::memalloc_scope!(NoFs);
/// drop(__memalloc_scope); // The variable is the macro's own: it cannot be named here.
/// ```
#[macro_export]
macro_rules! memalloc_scope {
    ($kind:ident) => {
        let __memalloc_scope =
            $crate::alloc::memalloc::Scope::<$crate::alloc::memalloc::$kind>::enter();
    };
    ($kind:path) => {
        let __memalloc_scope = $crate::alloc::memalloc::Scope::<$kind>::enter();
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
/// use kernel::alloc::memalloc::{
///     self,
///     is_active,
///     NoIo, //
/// };
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
mod tests;
