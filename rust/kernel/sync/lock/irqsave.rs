// SPDX-License-Identifier: GPL-2.0

//! A spinlock whose critical sections save and restore the local interrupt state.
//!
//! [`SpinLockIrqSave`] saves the interrupt state when the lock is taken and restores exactly that
//! state when it is released (`spin_unlock_irqrestore()`). Unlike `spin_unlock_irq()`, it never
//! enables interrupts that were disabled before the lock was taken, so it is correct inside any
//! interrupt-disabled region, C or Rust. For a lock taken only if a condition holds, as with C's
//! `struct wb_lock_cookie`, see [`CondIrqSaveGuard`].
//!
//! # Ordering, by construction
//!
//! A saved interrupt state is only correct if it is restored in the reverse order of saving:
//! restoring an outer "enabled" state while an inner lock is still held leaves interrupts on under
//! that lock. Safe code therefore never holds a free-standing irqsave guard:
//!
//! - [`SpinLockIrqSave::lock_irqsave`] runs a closure with the lock held. Closures nest, so the
//!   states are restored last-in, first-out. The guard the closure receives is branded with a
//!   lifetime of its own: it cannot leave the closure, nor be swapped with the guard of another
//!   lock.
//! - The refcounted scheme of [`SpinLockIrq`] and [`local_interrupt_disable`], whose guards may be
//!   dropped in any order, interoperates: a refcounted region open when the closure starts is
//!   joined, and one that starts inside the closure and outlives it inherits the saved state. The
//!   cost is one read of the preempt count on entry and one on exit.
//! - [`CondIrqSaveGuard`] is built on [`SpinLockIrq`], so those guards may end in any order.
//! - [`SpinLockIrqSave::lock_unchecked`] returns a free-standing guard, as C's
//!   `spin_lock_irqsave()` does, for code that must mirror C. It is `unsafe`: the caller promises
//!   the last-in, first-out order.
//!
//! # PREEMPT_RT
//!
//! With `CONFIG_PREEMPT_RT`, `spinlock_t` is a sleeping lock and `spin_lock_irqsave()` does not
//! disable interrupts: handlers run in threads, and take the lock like any other task.
//!
//! - The lock guarantees mutual exclusion only: interrupts stay enabled.
//! - The guard of [`SpinLockIrqSave::lock_irqsave`] does not offer
//!   [`IrqSaveGuard::irq_disabled`]; code that nests a [`SpinLockIrq`] takes it with `lock()`.
//! - As for every `spinlock_t` there, a [`SpinLockIrqSave`] must not be taken where hard
//!   interrupts are really disabled, for example inside [`local_interrupt_disable`]; lockdep
//!   reports that as an invalid wait context.
//!
//! # Without `CONFIG_SMP`
//!
//! C's `spinlock_t` has no state there, so `spin_lock()` cannot stop a recursive lock and
//! `spin_trylock()` always succeeds. The lock keeps a held flag of its own, so that taking it
//! again in its own critical section spins, as on SMP, instead of handing out a second guard.
//!
//! # NMI
//!
//! A `spinlock_t` must not be taken in NMI context. Only the `try_*` forms may be called there,
//! and they fail at once.
//!
//! C header: [`include/linux/spinlock.h`](srctree/include/linux/spinlock.h)
//!
//! [`CondIrqSaveGuard`]: crate::sync::CondIrqSaveGuard
//! [`SpinLockIrq`]: crate::sync::SpinLockIrq
//! [`local_interrupt_disable`]: crate::interrupt::local_interrupt_disable

use super::{
    spinlock::SpinLock,
    Lock, //
};
use crate::{
    str::CStr,
    sync::LockClassKey,
    types::NotThreadSafe, //
};
use core::{
    marker::PhantomData,
    ops::{
        Deref,
        DerefMut, //
    },
    pin::Pin, //
};
use pin_init::{
    pin_data,
    pin_init,
    PinInit, //
};
use section::{
    Saved,
    UpHeld, //
};

#[cfg(not(CONFIG_PREEMPT_RT))]
use crate::interrupt::LocalInterruptDisabled;

mod section;

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

/// A spinlock whose critical sections save and restore the local interrupt state.
///
/// The lock is held for the duration of a closure ([`lock_irqsave`](Self::lock_irqsave),
/// [`try_lock_irqsave`](Self::try_lock_irqsave)), so saved states are restored in the reverse
/// order of saving by construction. See the [module documentation](self) for how it combines with
/// [`SpinLockIrq`], and for PREEMPT_RT, `CONFIG_SMP=n` and NMI context.
///
/// # Invariants
///
/// - `inner` is never handed out, so no safe code can take it with `Lock::lock()`: its
///   `spinlock_t` is taken and released only by the critical sections of this type.
/// - `held` is the flag of that `spinlock_t`.
///
/// # Examples
///
/// ```
/// use kernel::interrupt::irqs_disabled;
/// use kernel::sync::new_spinlock_irqsave;
///
/// let outer = KBox::pin_init(new_spinlock_irqsave!(0u32, "outer"), GFP_KERNEL)?;
/// let inner = KBox::pin_init(new_spinlock_irqsave!(0u32, "inner"), GFP_KERNEL)?;
///
/// outer.lock_irqsave(|o| {
///     **o += 1;
///     inner.lock_irqsave(|i| **i += 1);
///     // Restored "disabled", as saved: the outer lock is still held.
///     assert!(cfg!(CONFIG_PREEMPT_RT) || irqs_disabled());
/// });
/// assert!(!irqs_disabled());
/// # Ok::<(), Error>(())
/// ```
///
/// There is no `lock()`, as a guard of its own could be dropped out of order, and no irqsave
/// backend for the generic [`Lock`]:
///
/// ```compile_fail,E0599
/// # let l = KBox::pin_init(kernel::new_spinlock_irqsave!(0u32), GFP_KERNEL)?;
/// let g = l.lock(); // Critical sections are closures.
/// # Ok::<(), Error>(())
/// ```
///
/// ```compile_fail,E0432
/// use kernel::sync::lock::irqsave::SpinLockIrqSaveBackend; // No such backend.
/// ```
///
/// [`SpinLockIrq`]: crate::sync::SpinLockIrq
#[pin_data]
pub struct SpinLockIrqSave<T: ?Sized> {
    held: UpHeld,
    #[pin]
    inner: SpinLock<T>,
}

/// Spins for ever, where a CPU takes again a lock it holds and C's spinlock cannot tell.
///
/// Without `CONFIG_SMP`, a held [`SpinLockIrqSave`] taken again, or a [`CondIrqSaveGuard`] begun
/// on a lock that another one holds, ends here instead of giving a second guard, as on SMP.
///
/// [`CondIrqSaveGuard`]: crate::sync::CondIrqSaveGuard
#[cold]
#[inline(never)]
pub(super) fn up_recursion() -> ! {
    loop {
        core::hint::spin_loop();
    }
}

impl<T> SpinLockIrqSave<T> {
    /// Constructs a new lock initialiser; see [`new_spinlock_irqsave!`].
    pub fn new(
        t: impl PinInit<T>,
        name: &'static CStr,
        key: Pin<&'static LockClassKey>,
    ) -> impl PinInit<Self> {
        // INVARIANT: `inner` is private and never handed out; `held` is created with it.
        pin_init!(Self {
            held: UpHeld::new(),
            inner <- Lock::new(t, name, key),
        })
    }
}

impl<T: ?Sized> SpinLockIrqSave<T> {
    /// Runs `f` with the lock held and interrupts disabled, then restores the saved state.
    ///
    /// `f` gets the guard by reference, branded with a lifetime of its own: it cannot end the
    /// critical section early, keep the guard after it returns, or exchange it with the guard of
    /// another lock. Critical sections nested inside `f` end before this one.
    ///
    /// Taking the same lock again inside `f` deadlocks, as for any spinlock; lockdep reports it.
    ///
    /// # Context
    ///
    /// - NMI: not allowed, as for C's `spin_lock_irqsave()`. Inside a refcounted
    ///   interrupt-disabled region, `local_interrupt_disable()` also warns there. Use
    ///   [`try_lock_irqsave`](Self::try_lock_irqsave) instead.
    /// - `PREEMPT_RT`: the lock sleeps, and interrupts stay enabled.
    /// - Without `CONFIG_SMP`: C's spinlock has no state to wait on. The lock keeps a flag, and
    ///   taking it again inside `f` spins just the same instead of handing out a second guard.
    ///
    /// # Examples
    ///
    /// ```
    /// use kernel::sync::new_spinlock_irqsave;
    ///
    /// let l = KBox::pin_init(new_spinlock_irqsave!(1u32), GFP_KERNEL)?;
    /// let v = l.lock_irqsave(|g| {
    ///     **g += 1;
    ///     **g
    /// });
    /// assert_eq!(v, 2);
    /// # Ok::<(), Error>(())
    /// ```
    ///
    /// The guard cannot leave the closure:
    ///
    /// ```compile_fail,E0521
    /// # let l = KBox::pin_init(kernel::new_spinlock_irqsave!(1u32), GFP_KERNEL)?;
    /// let mut stash = None;
    /// l.lock_irqsave(|g| stash = Some(g)); // `g` would outlive the critical section.
    /// # Ok::<(), Error>(())
    /// ```
    #[inline]
    pub fn lock_irqsave<R>(&self, f: impl for<'g> FnOnce(&mut IrqSaveGuard<'g, T>) -> R) -> R {
        let ptr = self.inner.state.get();
        // SAFETY: The lock was initialised by `new`, and `self` outlives the critical section.
        let saved = unsafe { section::lock(ptr) };
        if !self.held.enter() {
            up_recursion();
        }
        let r = f(&mut IrqSaveGuard::new(self));
        self.held.exit();
        // SAFETY: We took the lock above as `saved` says. Critical sections begun inside `f` are
        // closures that ended before it returned, or refcounted regions, which `unlock` handles.
        unsafe { section::unlock(ptr, saved) };
        r
    }

    /// Runs `f` with the lock held if it can be taken without spinning; returns `None` otherwise.
    ///
    /// # Context
    ///
    /// - NMI: returns `None` on every configuration, before it does anything else. It neither
    ///   touches the lock nor the interrupt state there, so it cannot warn.
    /// - Without `CONFIG_SMP` and `PREEMPT_RT`: C's spinlock has no state to test, so the lock's
    ///   own flag is tested instead. Outside NMI context the try then fails only inside the
    ///   lock's own critical section, or while a holder sleeps (a bug).
    ///
    /// # Examples
    ///
    /// ```
    /// use kernel::sync::new_spinlock_irqsave;
    ///
    /// let l = KBox::pin_init(new_spinlock_irqsave!(1u32), GFP_KERNEL)?;
    /// assert_eq!(l.try_lock_irqsave(|g| **g), Some(1));
    /// // Already held: the nested attempt fails instead of deadlocking.
    /// assert_eq!(l.lock_irqsave(|_| l.try_lock_irqsave(|g| **g)), None);
    /// # Ok::<(), Error>(())
    /// ```
    #[inline]
    pub fn try_lock_irqsave<R>(
        &self,
        f: impl for<'g> FnOnce(&mut IrqSaveGuard<'g, T>) -> R,
    ) -> Option<R> {
        let ptr = self.inner.state.get();
        // SAFETY: As in `lock_irqsave`; `held` is this lock's flag.
        let saved = unsafe { section::try_lock(ptr, &self.held) }?;
        if !self.held.enter() {
            // SAFETY: Taken just above as `saved` says; nothing began since.
            unsafe { section::unlock(ptr, saved) };
            return None;
        }
        let r = f(&mut IrqSaveGuard::new(self));
        self.held.exit();
        // SAFETY: As in `lock_irqsave`.
        unsafe { section::unlock(ptr, saved) };
        Some(r)
    }

    /// Takes the lock and returns a free-standing guard, as C's `spin_lock_irqsave()` does.
    ///
    /// For code that must mirror C, for example a lock also taken by C code, released on a
    /// different path than it was taken. Prefer [`lock_irqsave`](Self::lock_irqsave). Not for
    /// NMI context, as [`lock_irqsave`](Self::lock_irqsave).
    ///
    /// # Safety
    ///
    /// While the returned guard exists:
    ///
    /// - no interrupt-disabled region that was entered before this call may end on this CPU;
    /// - every such region entered after this call must have ended when the guard is dropped.
    ///
    /// Such regions are the critical sections of other [`SpinLockIrqSave`]s (closures or guards),
    /// the guards of [`SpinLockIrq`] and [`CondIrqSaveGuard`], [`LocalInterruptDisabled`] guards,
    /// and C's `local_irq_save()`, `spin_lock_irqsave()` and `local_interrupt_disable()` sections.
    ///
    /// [`CondIrqSaveGuard`]: crate::sync::CondIrqSaveGuard
    /// [`LocalInterruptDisabled`]: crate::interrupt::LocalInterruptDisabled
    /// [`SpinLockIrq`]: crate::sync::SpinLockIrq
    #[inline]
    pub unsafe fn lock_unchecked(&self) -> SpinLockIrqSaveGuard<'_, T> {
        let ptr = self.inner.state.get();
        // SAFETY: The lock was initialised by `new`, and the guard borrows `self`, so the lock
        // outlives it; the caller guarantees the last-in, first-out order `unlock` relies on.
        let saved = unsafe { section::lock(ptr) };
        if !self.held.enter() {
            up_recursion();
        }
        // INVARIANT: The lock is taken with the state saved; the caller keeps the order.
        SpinLockIrqSaveGuard {
            lock: self,
            saved,
            _not_send: NotThreadSafe,
        }
    }
}

/// Access to the data of a [`SpinLockIrqSave`] inside [`SpinLockIrqSave::lock_irqsave`].
///
/// The lifetime `'g` is invariant and a new one for every critical section, so a guard cannot be
/// returned from its closure nor exchanged with the guard of another critical section, which
/// could outlive it.
///
/// # Invariants
///
/// The lock is held by the current task, with the interrupt state saved, for as long as the
/// object exists; it exists only inside the closure of the critical section.
///
/// # Examples
///
/// A guard can neither be sent to another thread nor exchanged with the guard of another critical
/// section:
///
/// ```compile_fail,E0277
/// # let l = KBox::pin_init(kernel::new_spinlock_irqsave!(0u32), GFP_KERNEL)?;
/// fn assert_send<T: Send>(_: &T) {}
///
/// l.lock_irqsave(|g| assert_send(g)); // The section must end on the task that began it.
/// # Ok::<(), Error>(())
/// ```
///
/// ```compile_fail,E0521
/// # let a = KBox::pin_init(kernel::new_spinlock_irqsave!(0u32), GFP_KERNEL)?;
/// # let b = KBox::pin_init(kernel::new_spinlock_irqsave!(0u32), GFP_KERNEL)?;
/// a.lock_irqsave(|ga| {
///     b.lock_irqsave(|gb| core::mem::swap(ga, gb)); // `gb` would outlive its section in `ga`.
/// });
/// # Ok::<(), Error>(())
/// ```
pub struct IrqSaveGuard<'g, T: ?Sized> {
    lock: &'g SpinLockIrqSave<T>,
    _brand: PhantomData<fn(&'g ()) -> &'g ()>,
    _not_send: NotThreadSafe,
}

impl<'g, T: ?Sized> IrqSaveGuard<'g, T> {
    /// Creates the guard of a critical section of `lock`.
    #[inline(always)]
    fn new(lock: &'g SpinLockIrqSave<T>) -> Self {
        // INVARIANT: Called by the critical sections of `lock`, which hold it, and lent to their
        // closures by reference only.
        Self {
            lock,
            _brand: PhantomData,
            _not_send: NotThreadSafe,
        }
    }

    /// Returns the data as a pinned mutable reference.
    #[inline]
    pub fn as_mut(&mut self) -> Pin<&mut T> {
        // SAFETY: The data of a pinned lock is structurally pinned, and by the type invariants
        // the lock is held.
        unsafe { Pin::new_unchecked(&mut *self.lock.inner.data.get()) }
    }

    /// Returns a token proving that local interrupts are disabled inside this critical section.
    ///
    /// Use it to take nested [`SpinLockIrq`] locks with `lock_with()`: their guards borrow this
    /// guard, so they end inside the critical section.
    ///
    /// Not available on PREEMPT_RT, where interrupts stay enabled.
    ///
    /// # Examples
    ///
    /// ```
    /// use kernel::sync::{
    ///     new_spinlock_irq,
    ///     new_spinlock_irqsave, //
    /// };
    ///
    /// let outer = KBox::pin_init(new_spinlock_irqsave!(0u32), GFP_KERNEL)?;
    /// let inner = KBox::pin_init(new_spinlock_irq!(0u32), GFP_KERNEL)?;
    /// # #[cfg(not(CONFIG_PREEMPT_RT))]
    /// outer.lock_irqsave(|o| {
    ///     let mut i = inner.lock_with(o.irq_disabled());
    ///     *i += 1;
    /// });
    /// # Ok::<(), Error>(())
    /// ```
    ///
    /// A guard taken with the token cannot outlive the critical section:
    ///
    /// ```compile_fail
    /// # let outer = KBox::pin_init(kernel::new_spinlock_irqsave!(0u32), GFP_KERNEL)?;
    /// # let inner = KBox::pin_init(kernel::new_spinlock_irq!(0u32), GFP_KERNEL)?;
    /// let i = outer.lock_irqsave(|o| inner.lock_with(o.irq_disabled())); // `i` borrows `o`.
    /// # Ok::<(), Error>(())
    /// ```
    ///
    /// [`SpinLockIrq`]: crate::sync::SpinLockIrq
    #[cfg(not(CONFIG_PREEMPT_RT))]
    #[inline]
    pub fn irq_disabled(&self) -> &LocalInterruptDisabled {
        // By the type invariants, this guard exists only inside a critical section, entered with
        // `spin_lock_irqsave()` (interrupts off without PREEMPT_RT) or inside a refcounted region
        // that it joined, which cannot end first; nested sections restore "disabled".
        // SAFETY: Interrupts stay disabled while the returned borrow of `self` lives.
        unsafe { LocalInterruptDisabled::assume_disabled() }
    }
}

impl<T: ?Sized> Deref for IrqSaveGuard<'_, T> {
    type Target = T;

    #[inline]
    fn deref(&self) -> &T {
        // SAFETY: By the type invariants, the lock is held, so nobody else accesses the data.
        unsafe { &*self.lock.inner.data.get() }
    }
}

impl<T: ?Sized + Unpin> DerefMut for IrqSaveGuard<'_, T> {
    #[inline]
    fn deref_mut(&mut self) -> &mut T {
        // SAFETY: By the type invariants, the lock is held, so nobody else accesses the data.
        unsafe { &mut *self.lock.inner.data.get() }
    }
}

/// A free-standing guard of a [`SpinLockIrqSave`], from the `unsafe`
/// [`SpinLockIrqSave::lock_unchecked`].
///
/// It holds the saved interrupt state and restores it when dropped. It is not the generic
/// [`Guard`](super::Guard): it cannot be passed to a condition variable or unlocked temporarily,
/// so the order promised to `lock_unchecked` cannot be broken by those.
///
/// # Invariants
///
/// The lock is held by the current task, taken as `saved` says, for as long as the object exists.
///
/// # Examples
///
/// ```compile_fail,E0308
/// # let l = KBox::pin_init(kernel::new_spinlock_irqsave!(0u32), GFP_KERNEL)?;
/// # let cv = KBox::pin_init(kernel::new_condvar!(), GFP_KERNEL)?;
/// // SAFETY: No other interrupt-disabled region begins or ends while `g` exists.
/// let mut g = unsafe { l.lock_unchecked() };
/// cv.wait(&mut g); // Not a `Guard`: the wait cannot unlock it in the middle of the section.
/// # Ok::<(), Error>(())
/// ```
#[must_use = "the lock is released immediately when the guard is unused"]
pub struct SpinLockIrqSaveGuard<'a, T: ?Sized> {
    lock: &'a SpinLockIrqSave<T>,
    saved: Saved,
    _not_send: NotThreadSafe,
}

impl<T: ?Sized> SpinLockIrqSaveGuard<'_, T> {
    /// Returns the data as a pinned mutable reference.
    #[inline]
    pub fn as_mut(&mut self) -> Pin<&mut T> {
        // SAFETY: The data of a pinned lock is structurally pinned, and by the type invariants
        // the lock is held.
        unsafe { Pin::new_unchecked(&mut *self.lock.inner.data.get()) }
    }
}

impl<T: ?Sized> Deref for SpinLockIrqSaveGuard<'_, T> {
    type Target = T;

    #[inline]
    fn deref(&self) -> &T {
        // SAFETY: By the type invariants, the lock is held, so nobody else accesses the data.
        unsafe { &*self.lock.inner.data.get() }
    }
}

impl<T: ?Sized + Unpin> DerefMut for SpinLockIrqSaveGuard<'_, T> {
    #[inline]
    fn deref_mut(&mut self) -> &mut T {
        // SAFETY: By the type invariants, the lock is held, so nobody else accesses the data.
        unsafe { &mut *self.lock.inner.data.get() }
    }
}

impl<T: ?Sized> Drop for SpinLockIrqSaveGuard<'_, T> {
    #[inline]
    fn drop(&mut self) {
        self.lock.held.exit();
        // SAFETY: By the type invariants, the lock is held as `saved` says; the caller of
        // `lock_unchecked` promised that regions entered later have ended.
        unsafe { section::unlock(self.lock.inner.state.get(), self.saved) };
    }
}

#[cfg(CONFIG_RUST_IRQSAVE_KUNIT_TEST)]
mod tests;
