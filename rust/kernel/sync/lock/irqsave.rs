// SPDX-License-Identifier: GPL-2.0

//! A spinlock taken with `spin_lock_irqsave()`, and a writeback-cookie style conditional guard.
//!
//! [`SpinLockIrqSave`] saves the interrupt state in its guard and restores exactly that state when
//! the guard is dropped (`spin_unlock_irqrestore()`). Unlike `spin_unlock_irq()`, it never
//! enables interrupts that were disabled before the lock was taken, so it is correct inside any
//! interrupt-disabled region, C or Rust: the bug fixed by C's `struct wb_lock_cookie` cannot
//! happen.
//!
//! # Which lock to use
//!
//! - [`SpinLockIrq`]: the default for data shared with interrupt handlers in Rust code. It
//!   counts interrupt disabling per CPU, so its guards may be dropped in any order.
//! - [`SpinLockIrqSave`]: when the code mirrors or interoperates with C that uses
//!   `spin_lock_irqsave()` on the same lock, or when the exact saved state must be restored (for
//!   example when called from C with interrupts in an unknown state). Its guards restore what
//!   they saved, so they must end in the reverse order of their creation, as in C.
//! - A lock that is always taken with interrupts already disabled: use
//!   [`SpinLockIrq::lock_with`] with the [`LocalInterruptDisabled`] token of the outer guard
//!   ([`Guard::irq_disabled`]).
//!
//! # Ordering
//!
//! Releasing two irqsave guards out of order would restore the "interrupts enabled" state while
//! the inner lock is still held. This module makes that impossible by construction where it
//! nests locks itself: a nested lock taken with [`Guard::irq_disabled`] or inside
//! [`SpinLockIrqSave::with_irqsave`] borrows the outer guard, so the compiler rejects dropping the
//! outer guard first. Two guards obtained independently with [`Lock::lock`] follow C's rule (end
//! in reverse order); lockdep reports a violation when the inner lock is also used from
//! interrupt context.
//!
//! C header: [`include/linux/spinlock.h`](srctree/include/linux/spinlock.h)
//!
//! [`SpinLockIrq`]: super::spinlock::SpinLockIrq
//! [`SpinLockIrq::lock_with`]: super::spinlock::SpinLockIrq::lock_with
//! [`LocalInterruptDisabled`]: crate::interrupt::LocalInterruptDisabled

use super::{Backend, Guard, Lock};
use crate::{
    ffi::c_ulong,
    interrupt::LocalInterruptDisabled,
    sync::rcu, //
};

/// Creates a [`SpinLockIrqSave`] initialiser with the given name and a new lock class.
///
/// It uses the name if one is given, otherwise it generates one based on the file name and line
/// number.
#[macro_export]
macro_rules! new_spinlock_irqsave {
    ($inner:expr $(, $name:literal)? $(,)?) => {
        $crate::sync::SpinLockIrqSave::new(
            $inner, $crate::optional_name!($($name)?), $crate::static_lock_class!())
    };
}
pub use new_spinlock_irqsave;

/// A spinlock whose guard saves and restores the local interrupt state
/// (`spin_lock_irqsave()`/`spin_unlock_irqrestore()`).
///
/// # Examples
///
/// ```
/// use kernel::interrupt::irqs_disabled;
/// use kernel::sync::{new_spinlock_irqsave, SpinLockIrqSave};
///
/// let outer = KBox::pin_init(new_spinlock_irqsave!(0u32, "outer"), GFP_KERNEL)?;
/// let inner = KBox::pin_init(new_spinlock_irqsave!(0u32, "inner"), GFP_KERNEL)?;
///
/// let mut o = outer.lock();
/// *o += 1;
/// {
///     let mut i = inner.lock();
///     *i += 1;
/// } // Restores "disabled", as saved: the outer lock is still held.
/// assert!(irqs_disabled());
/// drop(o);
/// assert!(!irqs_disabled());
/// # Ok::<(), Error>(())
/// ```
pub type SpinLockIrqSave<T> = Lock<T, SpinLockIrqSaveBackend>;

/// A guard of a [`SpinLockIrqSave`]; it holds the saved interrupt state.
pub type SpinLockIrqSaveGuard<'a, T> = Guard<'a, T, SpinLockIrqSaveBackend>;

/// A kernel `spinlock_t` taken with `spin_lock_irqsave()`.
pub struct SpinLockIrqSaveBackend;

// SAFETY: The underlying kernel `spinlock_t` object ensures mutual exclusion, and `relock` (the
// default implementation) calls `lock`, so it also uses `spin_lock_irqsave()`.
unsafe impl Backend for SpinLockIrqSaveBackend {
    type State = bindings::spinlock_t;
    type GuardState = c_ulong;

    #[inline]
    unsafe fn init(
        ptr: *mut Self::State,
        name: *const crate::ffi::c_char,
        key: *mut bindings::lock_class_key,
    ) {
        // SAFETY: The safety requirements ensure that `ptr` is valid for writes, and `name` and
        // `key` are valid for read indefinitely.
        unsafe { bindings::__spin_lock_init(ptr, name, key) }
    }

    #[inline]
    unsafe fn lock(ptr: *mut Self::State) -> Self::GuardState {
        // SAFETY: The safety requirements of this function ensure that `ptr` points to valid
        // memory, and that it has been initialised before.
        unsafe { bindings::spin_lock_irqsave(ptr) }
    }

    #[inline]
    unsafe fn unlock(ptr: *mut Self::State, guard_state: &Self::GuardState) {
        // SAFETY: The safety requirements of this function ensure that `ptr` is valid and that
        // the caller is the owner of the spinlock; `guard_state` holds what `lock` saved.
        unsafe { bindings::spin_unlock_irqrestore(ptr, *guard_state) }
    }

    #[inline]
    unsafe fn try_lock(ptr: *mut Self::State) -> Option<Self::GuardState> {
        let mut flags: c_ulong = 0;
        // SAFETY: `ptr` is valid and initialised; `flags` is a valid place for the saved state.
        if unsafe { bindings::spin_trylock_irqsave(ptr, &mut flags) } != 0 {
            Some(flags)
        } else {
            None
        }
    }

    #[inline]
    unsafe fn assert_is_held(ptr: *mut Self::State) {
        // SAFETY: The `ptr` pointer is guaranteed to be valid and initialized before use.
        unsafe { bindings::spin_assert_is_held(ptr) }
    }
}

impl<T: ?Sized> Lock<T, SpinLockIrqSaveBackend> {
    /// Runs `f` with the lock held and interrupts disabled, then restores the saved state.
    ///
    /// `f` gets the guard by reference, so it cannot end it early; locks nested inside `f` end
    /// before this one by construction.
    ///
    /// # Examples
    ///
    /// ```
    /// use kernel::sync::new_spinlock_irqsave;
    ///
    /// let l = KBox::pin_init(new_spinlock_irqsave!(1u32), GFP_KERNEL)?;
    /// let v = l.with_irqsave(|g| {
    ///     **g += 1;
    ///     **g
    /// });
    /// assert_eq!(v, 2);
    /// # Ok::<(), Error>(())
    /// ```
    #[inline]
    pub fn with_irqsave<R>(&self, f: impl FnOnce(&mut SpinLockIrqSaveGuard<'_, T>) -> R) -> R {
        let mut guard = self.lock();
        f(&mut guard)
    }
}

impl<'a, T: ?Sized> Guard<'a, T, SpinLockIrqSaveBackend> {
    /// Returns the interrupt state saved when the lock was taken (C's `flags`).
    #[inline]
    pub fn saved_flags(&self) -> c_ulong {
        self.state
    }

    /// Returns a token proving that local interrupts are disabled while this guard lives.
    ///
    /// Use it to take nested [`SpinLockIrq`](super::spinlock::SpinLockIrq) locks with
    /// `lock_with()`: they borrow this guard, so they end before it by construction.
    ///
    /// # Examples
    ///
    /// ```
    /// use kernel::sync::{new_spinlock_irq, new_spinlock_irqsave};
    ///
    /// let outer = KBox::pin_init(new_spinlock_irqsave!(0u32), GFP_KERNEL)?;
    /// let inner = KBox::pin_init(new_spinlock_irq!(0u32), GFP_KERNEL)?;
    /// let o = outer.lock();
    /// let mut i = inner.lock_with(o.irq_disabled());
    /// *i += 1;
    /// drop(i); // Dropping `o` before `i` would not compile.
    /// drop(o);
    /// # Ok::<(), Error>(())
    /// ```
    #[inline]
    pub fn irq_disabled(&self) -> &LocalInterruptDisabled {
        // SAFETY: The lock was taken with `spin_lock_irqsave()`, so local interrupts are disabled
        // until this guard is dropped, which the returned borrow of `self` outlives.
        unsafe { LocalInterruptDisabled::assume_disabled() }
    }
}

/// A writeback-cookie style guard: an RCU read-side section in which a [`SpinLockIrqSave`] is
/// held only if a condition was true (C's `struct wb_lock_cookie`).
///
/// [`begin`](Self::begin) enters an RCU read-side critical section, evaluates the condition and,
/// if it holds, takes the lock with `spin_lock_irqsave()`. [`end`](Self::end) (or dropping the
/// cookie) releases the lock restoring exactly the saved interrupt state, then leaves the RCU
/// section. It is therefore correct inside an outer irqsave region: interrupts stay disabled
/// after it ends.
///
/// The cookie borrows the lock, so it cannot outlive it; `end` consumes it, so it cannot end
/// twice; it is neither [`Send`] nor [`Sync`].
///
/// # Examples
///
/// ```
/// use kernel::interrupt::irqs_disabled;
/// use kernel::sync::{new_spinlock_irqsave, WbLockCookie};
///
/// let outer = KBox::pin_init(new_spinlock_irqsave!(0u32, "memcg"), GFP_KERNEL)?;
/// let wb = KBox::pin_init(new_spinlock_irqsave!(0u32, "i_pages"), GFP_KERNEL)?;
///
/// let o = outer.lock();
/// let mut cookie = WbLockCookie::begin(&wb, || true); // E.g. "inode is switching wb".
/// assert!(cookie.locked());
/// if let Some(v) = cookie.data() {
///     *v += 1;
/// }
/// cookie.end();
/// assert!(irqs_disabled()); // `spin_unlock_irq()` would have enabled them here.
/// drop(o);
/// # Ok::<(), Error>(())
/// ```
#[must_use = "the cookie ends immediately when unused"]
pub struct WbLockCookie<'a, T: ?Sized> {
    // Dropped first: the lock is released before the RCU read-side section ends, as in C.
    guard: Option<SpinLockIrqSaveGuard<'a, T>>,
    _rcu: rcu::Guard,
}

impl<'a, T: ?Sized> WbLockCookie<'a, T> {
    /// Enters an RCU read-side section and takes `lock` (irqsave) if `cond()` returns true.
    ///
    /// `cond` runs inside the RCU read-side section.
    #[inline]
    pub fn begin(lock: &'a SpinLockIrqSave<T>, cond: impl FnOnce() -> bool) -> Self {
        let rcu = rcu::read_lock();
        let guard = if cond() { Some(lock.lock()) } else { None };
        Self { guard, _rcu: rcu }
    }

    /// Returns whether the lock was taken (C's `cookie->locked`).
    #[inline]
    pub fn locked(&self) -> bool {
        self.guard.is_some()
    }

    /// Returns the interrupt state saved when the lock was taken (C's `cookie->flags`).
    #[inline]
    pub fn saved_flags(&self) -> Option<c_ulong> {
        self.guard.as_ref().map(|g| g.saved_flags())
    }

    /// Returns the protected data if the lock was taken.
    #[inline]
    pub fn data(&mut self) -> Option<&mut T>
    where
        T: Unpin,
    {
        self.guard.as_deref_mut()
    }

    /// Ends the cookie: releases the lock if taken, restoring the saved interrupt state, then
    /// leaves the RCU read-side section.
    #[inline]
    pub fn end(self) {}
}

#[cfg(CONFIG_RUST_IRQSAVE_KUNIT_TEST)]
#[macros::kunit_tests(rust_kernel_irqsave)]
mod tests {
    use crate::interrupt::{irqs_disabled, local_interrupt_disable};
    use crate::irq_work::run_on_each_cpu;
    use crate::prelude::*;
    use crate::sync::{new_spinlock_irq, new_spinlock_irqsave, WbLockCookie};

    #[test]
    fn seed_001_cookie_inside_outer_irqsave() -> Result {
        let outer = KBox::pin_init(
            new_spinlock_irqsave!(0u32, "kunit_irqsave_outer"),
            GFP_KERNEL,
        )?;
        let wb = KBox::pin_init(new_spinlock_irqsave!(0u32, "kunit_irqsave_wb"), GFP_KERNEL)?;
        // Make the outer lock hard-IRQ-used: every CPU takes it from an irq_work.
        run_on_each_cpu(&|| *outer.lock() += 1)?;

        let before = irqs_disabled();
        let (in_outer, in_cookie, after_cookie, locked) = {
            let o = outer.lock();
            let in_outer = irqs_disabled();
            let mut cookie = WbLockCookie::begin(&wb, || true);
            let locked = cookie.locked();
            if let Some(v) = cookie.data() {
                *v += 1;
            }
            let in_cookie = irqs_disabled();
            cookie.end();
            let after_cookie = irqs_disabled();
            drop(o);
            (in_outer, in_cookie, after_cookie, locked)
        };
        let after = irqs_disabled();
        assert!(!before);
        assert!(in_outer && in_cookie && locked);
        // The end of the cookie must not have enabled interrupts inside the outer region.
        assert!(after_cookie);
        assert!(!after);
        assert_eq!(*wb.lock(), 1);
        Ok(())
    }

    #[test]
    fn cookie_condition_false_takes_no_lock() -> Result {
        let wb = KBox::pin_init(new_spinlock_irqsave!(0u32, "kunit_irqsave_wb2"), GFP_KERNEL)?;
        let (locked, irqs, flags, trylock_ok) = {
            let mut cookie = WbLockCookie::begin(&wb, || false);
            let r = (
                cookie.locked(),
                irqs_disabled(),
                cookie.saved_flags(),
                cookie.data().is_none(),
            );
            // The lock is free while the cookie did not take it.
            let t = wb.try_lock().is_some();
            cookie.end();
            (r.0, r.1, r.2, r.3 && t)
        };
        assert!(!locked);
        assert!(!irqs);
        assert!(flags.is_none());
        assert!(trylock_ok);
        Ok(())
    }

    #[test]
    fn nests_with_spinlock_irq_and_token() -> Result {
        let a = KBox::pin_init(new_spinlock_irqsave!(0u32, "kunit_irqsave_a"), GFP_KERNEL)?;
        let b = KBox::pin_init(new_spinlock_irq!(0u32, "kunit_irqsave_b"), GFP_KERNEL)?;
        let (x, y, z) = {
            let ga = a.lock();
            let gb = b.lock_with(ga.irq_disabled());
            let x = irqs_disabled();
            drop(gb);
            let y = irqs_disabled();
            drop(ga);
            (x, y, irqs_disabled())
        };
        assert!(x && y && !z);

        // Under `LocalInterruptDisabled`, and around a `SpinLockIrq` guard (another irqsave lock,
        // so that lockdep sees one lock order only).
        let c = KBox::pin_init(new_spinlock_irqsave!(0u32, "kunit_irqsave_e"), GFP_KERNEL)?;
        let (q, r) = {
            let token = local_interrupt_disable();
            let gb = b.lock();
            let gc = c.lock();
            drop(gc);
            let q = irqs_disabled();
            drop(gb);
            let r = irqs_disabled();
            drop(token);
            (q, r)
        };
        assert!(q && r);
        assert!(!irqs_disabled());
        Ok(())
    }

    #[test]
    fn with_irqsave_restores() -> Result {
        let a = KBox::pin_init(new_spinlock_irqsave!(0u32, "kunit_irqsave_c"), GFP_KERNEL)?;
        let b = KBox::pin_init(new_spinlock_irqsave!(0u32, "kunit_irqsave_d"), GFP_KERNEL)?;
        let (inner_after, outer_in) = a.with_irqsave(|ga| {
            **ga += 1;
            b.with_irqsave(|gb| **gb += 1);
            (irqs_disabled(), irqs_disabled())
        });
        assert!(inner_after && outer_in);
        assert!(!irqs_disabled());
        assert_eq!((*a.lock(), *b.lock()), (1, 1));
        Ok(())
    }
}
