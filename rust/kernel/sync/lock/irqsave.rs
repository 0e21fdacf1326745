// SPDX-License-Identifier: GPL-2.0

//! A spinlock taken with `spin_lock_irqsave()`, and a writeback-cookie style conditional guard.
//!
//! [`SpinLockIrqSave`] saves the interrupt state when the lock is taken and restores exactly that
//! state when it is released (`spin_unlock_irqrestore()`). Unlike `spin_unlock_irq()`, it never
//! enables interrupts that were disabled before the lock was taken, so it is correct inside any
//! interrupt-disabled region, C or Rust: the bug fixed by C's `struct wb_lock_cookie` cannot
//! happen.
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
//! - The refcounted scheme of [`SpinLockIrq`] and [`local_interrupt_disable`] (whose guards may
//!   be dropped in any order) interoperates: a refcounted region that is open when the closure
//!   starts is joined, so it cannot end (and restore its own saved state) while the lock is held;
//!   a refcounted region that starts inside the closure and outlives it (returned from it, for
//!   example) inherits the saved state, so interrupts stay disabled until it ends and then return
//!   to the state saved here. The cost is one read of the preempt count on entry and one on exit.
//! - [`WbLockCookie`] is built on [`SpinLockIrq`], so cookies may end in any order. Without
//!   `CONFIG_SMP` it keeps a table of the locks that cookies hold, so that a second cookie on a
//!   lock cannot take it again (see its documentation).
//! - [`SpinLockIrqSave::lock_unchecked`] returns a free-standing guard, as C's
//!   `spin_lock_irqsave()` does, for code that must mirror C. It is `unsafe`: the caller promises
//!   the last-in, first-out order.
//!
//! # PREEMPT_RT
//!
//! With `CONFIG_PREEMPT_RT`, `spinlock_t` is a sleeping lock and `spin_lock_irqsave()` does not
//! disable interrupts (handlers run in threads, and take the lock like any other task). Both types
//! then guarantee mutual exclusion only: interrupts stay enabled, and the guard of
//! [`SpinLockIrqSave::lock_irqsave`] does not offer [`IrqSaveGuard::irq_disabled`]. Code that
//! nests a [`SpinLockIrq`] takes it with `lock()` there. As for every `spinlock_t` on
//! PREEMPT_RT, a [`SpinLockIrqSave`] must not be taken where hard interrupts are really disabled
//! (for example inside [`local_interrupt_disable`]); lockdep reports that as an invalid wait
//! context.
//!
//! C header: [`include/linux/spinlock.h`](srctree/include/linux/spinlock.h)
//!
//! [`SpinLockIrq`]: super::spinlock::SpinLockIrq
//! [`local_interrupt_disable`]: crate::interrupt::local_interrupt_disable

use super::{
    spinlock::{SpinLock, SpinLockIrqGuard},
    Lock,
};
use crate::{
    ffi::c_ulong,
    str::CStr,
    sync::{rcu, LockClassKey, SpinLockIrq},
    types::NotThreadSafe,
};
use core::{
    marker::PhantomData,
    ops::{Deref, DerefMut},
    pin::Pin,
};
use pin_init::{pin_data, pin_init, PinInit};

#[cfg(not(CONFIG_PREEMPT_RT))]
use crate::interrupt::LocalInterruptDisabled;

#[cfg(all(not(CONFIG_SMP), not(CONFIG_PREEMPT_RT)))]
use crate::sync::atomic::{Atomic, Relaxed};

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

/// A spinlock whose critical sections save and restore the local interrupt state
/// (`spin_lock_irqsave()`/`spin_unlock_irqrestore()`).
///
/// The lock is held for the duration of a closure ([`lock_irqsave`](Self::lock_irqsave),
/// [`try_lock_irqsave`](Self::try_lock_irqsave)), so saved states are restored in the reverse
/// order of saving by construction. See the [module documentation](self) for how it combines
/// with [`SpinLockIrq`] and what it guarantees on PREEMPT_RT.
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
#[pin_data]
pub struct SpinLockIrqSave<T: ?Sized> {
    held: UpHeld,
    #[pin]
    // Only its `spinlock_t` and data are used, through the functions below: a `Lock` of this
    // module's own is never handed out, so no safe code can take it with `Lock::lock()`.
    inner: SpinLock<T>,
}

/// Whether a [`SpinLockIrqSave`] is held, kept by the lock itself without `CONFIG_SMP` (and
/// `CONFIG_PREEMPT_RT`), where C's `spinlock_t` has no state that `spin_lock()` could wait on:
/// taking the lock again in its own critical section (a deadlock on SMP) would give a second
/// guard. Empty otherwise.
///
/// # Invariants
///
/// Without `CONFIG_SMP` and `CONFIG_PREEMPT_RT`, `held` is true while a critical section of the
/// lock is open, and is accessed only with interrupts disabled, on the only CPU.
struct UpHeld {
    #[cfg(all(not(CONFIG_SMP), not(CONFIG_PREEMPT_RT)))]
    held: core::cell::UnsafeCell<bool>,
}

// SAFETY: Without `CONFIG_SMP` there is one CPU, and `held` is accessed only with interrupts
// disabled (type invariants), so never concurrently; otherwise the type is empty.
unsafe impl Sync for UpHeld {}

impl UpHeld {
    const fn new() -> Self {
        Self {
            #[cfg(all(not(CONFIG_SMP), not(CONFIG_PREEMPT_RT)))]
            held: core::cell::UnsafeCell::new(false),
        }
    }

    /// Records that the lock was just taken, with interrupts disabled. Returns `false` if it was
    /// already held: this CPU is inside the lock's own critical section (or its holder slept).
    #[inline(always)]
    fn enter(&self) -> bool {
        #[cfg(all(not(CONFIG_SMP), not(CONFIG_PREEMPT_RT)))]
        {
            // SAFETY: Interrupts are disabled on the only CPU: nothing else accesses `held`.
            let held = unsafe { &mut *self.held.get() };
            if *held {
                return false;
            }
            *held = true;
        }
        true
    }

    /// Returns whether the lock is held (always `false` with `CONFIG_SMP` or `PREEMPT_RT`).
    ///
    /// # Safety
    ///
    /// Without `CONFIG_SMP` and `PREEMPT_RT`, interrupts are disabled.
    #[inline(always)]
    unsafe fn is_held(&self) -> bool {
        #[cfg(all(not(CONFIG_SMP), not(CONFIG_PREEMPT_RT)))]
        // SAFETY: Interrupts are disabled on the only CPU: nothing else accesses `held`.
        if unsafe { *self.held.get() } {
            return true;
        }
        false
    }

    /// `spin_trylock_irqsave()` on `ptr`; without `CONFIG_SMP` and `PREEMPT_RT`, only if the lock
    /// is not held, tested with interrupts disabled.
    ///
    /// # Safety
    ///
    /// `ptr` points to the initialised `spinlock_t` of the lock whose flag this is.
    #[inline(always)]
    unsafe fn trylock_irqsave(&self, ptr: *mut bindings::spinlock_t, flags: &mut c_ulong) -> bool {
        #[cfg(any(CONFIG_SMP, CONFIG_PREEMPT_RT))]
        // SAFETY: `ptr` is valid and initialised; `flags` is a valid place for the saved state.
        let taken = unsafe { bindings::spin_trylock_irqsave(ptr, flags) };
        #[cfg(all(not(CONFIG_SMP), not(CONFIG_PREEMPT_RT)))]
        // SAFETY: As above. The helper reads `held` with interrupts disabled, as the type
        // invariants require.
        let taken =
            unsafe { bindings::spin_trylock_irqsave_unless_held(ptr, self.held.get(), flags) };
        taken != 0
    }

    /// Records that the critical section is ending, with interrupts still disabled.
    #[inline(always)]
    fn exit(&self) {
        #[cfg(all(not(CONFIG_SMP), not(CONFIG_PREEMPT_RT)))]
        // SAFETY: As in `enter`.
        unsafe {
            *self.held.get() = false
        };
    }
}

/// Taking a held [`SpinLockIrqSave`] again, or beginning a [`WbLockCookie`] on a lock that a cookie
/// holds, without `CONFIG_SMP`: on SMP the CPU spins for ever (lockdep reports the recursion
/// first); it does so here too instead of giving a second guard.
#[cold]
#[inline(never)]
fn up_recursion() -> ! {
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
        pin_init!(Self {
            held: UpHeld::new(),
            inner <- Lock::new(t, name, key),
        })
    }
}

/// The interrupt state saved on entry to a critical section of a [`SpinLockIrqSave`].
#[derive(Clone, Copy)]
enum Saved {
    /// Taken with `spin_lock_irqsave()`, which saved these flags.
    Flags(c_ulong),
    /// Taken with `spin_lock()` inside a refcounted interrupt-disabled region, joined with
    /// `local_interrupt_disable()`.
    Joined,
}

/// Returns the nesting depth of refcounted interrupt disabling (`local_interrupt_disable()`) on
/// this CPU.
#[inline(always)]
fn refcounted_irq_depth() -> u32 {
    // SAFETY: Reads the preempt count of the current CPU, which is always valid.
    unsafe { bindings::hardirq_disable_depth() }
}

/// Takes the lock at `ptr` inside an open refcounted interrupt-disabled region, joining it.
///
/// Out of line: it is not the common case, and it keeps the fast path as short as C's.
///
/// # Safety
///
/// `ptr` points to an initialised `spinlock_t` that stays valid until [`unlock_slow`] releases
/// it, and the current CPU is inside a refcounted interrupt-disabled region.
#[cold]
#[inline(never)]
unsafe fn lock_joined(ptr: *mut bindings::spinlock_t) {
    // SAFETY: `local_interrupt_disable()` may always be called; it only counts here, as the
    // region is open. `ptr` is valid and initialised.
    unsafe {
        bindings::local_interrupt_disable();
        bindings::spin_lock(ptr);
    }
}

/// Like [`lock_joined`], but with `spin_trylock()`; returns whether the lock was taken.
///
/// # Safety
///
/// As for [`lock_joined`]; `held` is the flag of the lock at `ptr`.
#[cold]
#[inline(never)]
unsafe fn try_lock_joined(ptr: *mut bindings::spinlock_t, held: &UpHeld) -> bool {
    // SAFETY: As in `lock_joined`; on failure the region is left again, as it was found. Without
    // `PREEMPT_RT` the region disables interrupts, as `is_held()` requires.
    unsafe {
        bindings::local_interrupt_disable();
        if !held.is_held() && bindings::spin_trylock(ptr) != 0 {
            return true;
        }
        bindings::local_interrupt_enable();
    }
    false
}

/// Releases the lock at `ptr` when [`unlock`]'s fast path does not apply.
///
/// # Safety
///
/// The current task holds the lock at `ptr`, taken as `saved` says, and the critical section
/// is ending.
#[cold]
#[inline(never)]
unsafe fn unlock_slow(ptr: *mut bindings::spinlock_t, saved: Saved) {
    // SAFETY: The caller owns the lock. Interrupts stay as they are.
    unsafe { bindings::spin_unlock(ptr) };
    match saved {
        Saved::Joined => {
            // SAFETY: Leaves the region joined by `lock_joined()`.
            unsafe { bindings::local_interrupt_enable() }
        }
        // A refcounted region started inside the critical section and is still open. It saved
        // "disabled" (the state inside); hand it the state saved on entry, which it restores
        // when it ends. Interrupts stay disabled until then. On PREEMPT_RT,
        // `spin_lock_irqsave()` did not disable interrupts, so the region saved the state of
        // entry itself.
        Saved::Flags(_flags) => {
            #[cfg(not(CONFIG_PREEMPT_RT))]
            // SAFETY: A refcounted region is open on this CPU, with interrupts disabled; its
            // saved state is read only when the region ends.
            unsafe {
                bindings::local_interrupt_save_state(_flags)
            };
        }
    }
}

/// Ends a critical section begun by [`lock`] or [`try_lock`].
///
/// # Safety
///
/// The current task holds the lock at `ptr`, taken as `saved` says, and every critical section
/// of a [`SpinLockIrqSave`] begun after this one has ended.
#[inline(always)]
unsafe fn unlock(ptr: *mut bindings::spinlock_t, saved: Saved) {
    match saved {
        Saved::Flags(flags) if refcounted_irq_depth() == 0 => {
            // SAFETY: The caller owns the lock; `flags` is what `spin_lock_irqsave()` saved, and
            // no region that began after it is still open.
            unsafe { bindings::spin_unlock_irqrestore(ptr, flags) }
        }
        _ => {
            // SAFETY: As required by the caller.
            unsafe { unlock_slow(ptr, saved) }
        }
    }
}

/// Takes the lock at `ptr` with the interrupt state saved.
///
/// # Safety
///
/// `ptr` points to an initialised `spinlock_t` that stays valid until [`unlock`] releases it.
#[inline(always)]
unsafe fn lock(ptr: *mut bindings::spinlock_t) -> Saved {
    if refcounted_irq_depth() == 0 {
        // SAFETY: `ptr` is valid and initialised.
        Saved::Flags(unsafe { bindings::spin_lock_irqsave(ptr) })
    } else {
        // SAFETY: `ptr` is valid and initialised; a refcounted region is open.
        unsafe { lock_joined(ptr) };
        Saved::Joined
    }
}

/// Tries to take the lock at `ptr` with the interrupt state saved; fails in NMI context.
///
/// # Safety
///
/// As for [`lock`]; `held` is the flag of the lock at `ptr`.
#[inline(always)]
unsafe fn try_lock(ptr: *mut bindings::spinlock_t, held: &UpHeld) -> Option<Saved> {
    // In NMI context the try fails before anything else runs. A `spinlock_t` is not a lock for
    // NMI context: the NMI may have interrupted the holder on this CPU, on `PREEMPT_RT` it is a
    // sleeping lock, and the joined path below calls `local_interrupt_disable()`, which warns
    // there. Without `CONFIG_SMP` (and `PREEMPT_RT`) the NMI may also have interrupted the holder
    // between taking the lock and setting its flag.
    // SAFETY: `in_nmi()` only reads the preempt count.
    if unsafe { bindings::in_nmi() } {
        return None;
    }
    // Without `CONFIG_SMP` (and `PREEMPT_RT`) C's `spin_trylock()` cannot see a holder: the lock
    // has no state, and the try would succeed inside the lock's own critical section. The lock's
    // own flag is tested first, with interrupts disabled, in both paths below.
    if refcounted_irq_depth() == 0 {
        let mut flags: c_ulong = 0;
        // SAFETY: `ptr` is valid and initialised, and `held` is its lock's flag.
        unsafe { held.trylock_irqsave(ptr, &mut flags) }.then_some(Saved::Flags(flags))
    } else {
        // SAFETY: `ptr` is valid and initialised; a refcounted region is open; `held` is the
        // lock's flag.
        unsafe { try_lock_joined(ptr, held) }.then_some(Saved::Joined)
    }
}

impl<T: ?Sized> SpinLockIrqSave<T> {
    /// Runs `f` with the lock held and interrupts disabled, then restores the saved state.
    ///
    /// `f` gets the guard by reference, branded with a lifetime of its own: it cannot end the
    /// critical section early, keep the guard after it returns, or exchange it with the guard of
    /// another lock. Critical sections nested inside `f` end before this one.
    ///
    /// Taking the same lock again inside `f` deadlocks, as for any spinlock (lockdep reports it).
    /// Without `CONFIG_SMP`, where C's spinlock has no state to wait on, the lock keeps a flag and
    /// the CPU spins just the same instead of handing out a second guard.
    ///
    /// Not for NMI context, where a `spinlock_t` must not be taken (as with C's
    /// `spin_lock_irqsave()`; inside a refcounted interrupt-disabled region it also warns, in
    /// `local_interrupt_disable()`): use [`try_lock_irqsave`](Self::try_lock_irqsave) there.
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
    #[inline]
    pub fn lock_irqsave<R>(&self, f: impl for<'g> FnOnce(&mut IrqSaveGuard<'g, T>) -> R) -> R {
        let ptr = self.inner.state.get();
        // SAFETY: The lock was initialised by `new`, and `self` outlives the critical section.
        let saved = unsafe { lock(ptr) };
        if !self.held.enter() {
            up_recursion();
        }
        let r = f(&mut IrqSaveGuard::new(self));
        self.held.exit();
        // SAFETY: We took the lock above as `saved` says. Critical sections begun inside `f` are
        // closures that ended before it returned, or refcounted regions, which `unlock` handles.
        unsafe { unlock(ptr, saved) };
        r
    }

    /// Runs `f` with the lock held if it can be taken without spinning; returns `None` otherwise.
    ///
    /// Returns `None` in NMI context, on every configuration, before it does anything else (it
    /// neither touches the lock nor the interrupt state there, so it cannot warn).
    ///
    /// Without `CONFIG_SMP` (and `PREEMPT_RT`), where C's spinlock has no state to test, the
    /// lock's own flag is tested instead: outside NMI context the try fails only inside the
    /// lock's own critical section (or while a holder sleeps, a bug).
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
        let saved = unsafe { try_lock(ptr, &self.held) }?;
        if !self.held.enter() {
            // SAFETY: Taken just above as `saved` says; nothing began since.
            unsafe { unlock(ptr, saved) };
            return None;
        }
        let r = f(&mut IrqSaveGuard::new(self));
        self.held.exit();
        // SAFETY: As in `lock_irqsave`.
        unsafe { unlock(ptr, saved) };
        Some(r)
    }

    /// Takes the lock and returns a free-standing guard, as C's `spin_lock_irqsave()` does.
    ///
    /// For code that must mirror C (for example a lock also taken by C code, released on a
    /// different path than it was taken). Prefer [`lock_irqsave`](Self::lock_irqsave). Not for
    /// NMI context, as [`lock_irqsave`](Self::lock_irqsave).
    ///
    /// # Safety
    ///
    /// While the returned guard exists, no interrupt-disabled region that was entered before this
    /// call may end on this CPU, and every such region entered after this call must have ended
    /// when the guard is dropped. Such regions are the critical sections of other
    /// [`SpinLockIrqSave`]s (closures or guards), the guards of [`SpinLockIrq`] and
    /// [`WbLockCookie`]s, [`LocalInterruptDisabled`] guards, and C's `local_irq_save()`,
    /// `spin_lock_irqsave()` and `local_interrupt_disable()` sections.
    ///
    /// [`LocalInterruptDisabled`]: crate::interrupt::LocalInterruptDisabled
    #[inline]
    pub unsafe fn lock_unchecked(&self) -> SpinLockIrqSaveGuard<'_, T> {
        let ptr = self.inner.state.get();
        // SAFETY: The lock was initialised by `new`, and the guard borrows `self`, so the lock
        // outlives it; the caller guarantees the last-in, first-out order `unlock` relies on.
        let saved = unsafe { lock(ptr) };
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
/// returned from its closure nor exchanged with the guard of another critical section (which
/// could outlive it).
///
/// # Invariants
///
/// The lock is held by the current task, with the interrupt state saved, for as long as the
/// object exists; it exists only inside the closure of the critical section.
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
    /// guard, so they end inside the critical section. Not available on PREEMPT_RT, where
    /// interrupts stay enabled.
    ///
    /// # Examples
    ///
    /// ```
    /// use kernel::sync::{new_spinlock_irq, new_spinlock_irqsave};
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
    /// [`SpinLockIrq`]: super::spinlock::SpinLockIrq
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
/// [`SpinLockIrqSave::lock_unchecked`]; it holds the saved interrupt state and restores it when
/// dropped.
///
/// It is not the generic [`Guard`](super::Guard): it cannot be passed to a condition variable
/// or unlocked temporarily, so the order promised to `lock_unchecked` cannot be broken by those.
///
/// # Invariants
///
/// The lock is held by the current task, taken as `saved` says, for as long as the object exists.
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
        unsafe { unlock(self.lock.inner.state.get(), self.saved) };
    }
}

/// A writeback-cookie style guard: an RCU read-side section in which a [`SpinLockIrq`] is held
/// only if a condition was true (C's `struct wb_lock_cookie`).
///
/// [`begin`](Self::begin) enters an RCU read-side critical section, evaluates the condition and,
/// if it holds, takes the lock with interrupts disabled. [`end`](Self::end) (or dropping the
/// cookie) releases the lock, then leaves the RCU section. The lock is a [`SpinLockIrq`], whose
/// interrupt disabling is counted per CPU and restores the state saved by the outermost region
/// when the last one ends: a cookie is therefore correct inside an outer irqsave region (C's or a
/// [`SpinLockIrqSave`] critical section), and cookies may end in any order.
///
/// The cookie borrows the lock, so it cannot outlive it; `end` consumes it, so it cannot end
/// twice; it is neither [`Send`] nor [`Sync`]. On PREEMPT_RT the lock sleeps and interrupts stay
/// enabled, as for every `spinlock_t`. Cookies are not for NMI context, where a `spinlock_t` must
/// not be taken: [`begin`](Self::begin) warns there (in `local_interrupt_disable()`), and
/// [`try_begin`](Self::try_begin) returns `None`.
///
/// # A lock held twice
///
/// Beginning a cookie on a lock that the same CPU already holds through another cookie deadlocks
/// on SMP, as any spinlock taken twice does; lockdep reports it. Without `CONFIG_SMP` (and
/// `PREEMPT_RT`), C's `spin_lock()` never waits: the lock has no state (with
/// `CONFIG_DEBUG_SPINLOCK` a recursion is reported, then the lock is taken all the same), so the
/// second cookie would take the lock again and hand out a second `&mut T`. There, the locks that
/// cookies hold are kept in a table, tested and updated with interrupts disabled, on the only
/// CPU, before the lock is taken: a second [`begin`](Self::begin) on such a lock spins as on SMP
/// instead, and [`try_begin`](Self::try_begin) returns `None`. With `CONFIG_SMP` or `PREEMPT_RT`
/// (where the lock is an `rt_mutex`, which has an owner) there is no table, and a cookie costs
/// what it did.
///
/// The bounds of the table, without `CONFIG_SMP` and `PREEMPT_RT`:
///
/// - It covers cookies only. A [`SpinLockIrq`] held through its own guards (`lock()`,
///   `try_lock()`, `lock_with()`) is not in it: a cookie on a lock held that way, or such a guard
///   on a lock a cookie holds, takes the lock again and gives a second guard, as two `lock()`
///   calls on a [`SpinLock`] or [`SpinLockIrq`] do there (silently without
///   `CONFIG_DEBUG_SPINLOCK`, after a "spinlock recursion" report with it). That is the behaviour
///   of those upstream types, not fixed here.
/// - It has one slot per level of the refcounted interrupt disabling (255, from
///   `HARDIRQ_DISABLE_BITS` in `include/linux/preempt.h`; 255 pointers of static memory), and
///   every cookie in it holds one level. It fills only if more cookies are held at once than the
///   preempt count can count, or if a cookie's holder slept (a bug, reported as "scheduling while
///   atomic") while others began cookies. A full table refuses as a held lock does: `begin` spins,
///   `try_begin` returns `None`.
/// - Cookies begun in NMI context (a bug, see above) are not covered.
///
/// # Examples
///
/// ```
/// use kernel::interrupt::irqs_disabled;
/// use kernel::sync::{new_spinlock_irq, new_spinlock_irqsave, WbLockCookie};
///
/// let memcg = KBox::pin_init(new_spinlock_irqsave!(0u32, "memcg"), GFP_KERNEL)?;
/// let i_pages = KBox::pin_init(new_spinlock_irq!(0u32, "i_pages"), GFP_KERNEL)?;
///
/// memcg.lock_irqsave(|_| {
///     let mut cookie = WbLockCookie::begin(&i_pages, || true); // E.g. "inode is switching wb".
///     assert!(cookie.locked());
///     if let Some(v) = cookie.data() {
///         *v += 1;
///     }
///     cookie.end();
///     // `spin_unlock_irq()` would have enabled interrupts here.
///     assert!(cfg!(CONFIG_PREEMPT_RT) || irqs_disabled());
/// });
/// assert!(!irqs_disabled());
/// # Ok::<(), Error>(())
/// ```
///
/// # Invariants
///
/// Without `CONFIG_SMP` and `PREEMPT_RT`, `_entry` names a lock if and only if `guard` is `Some`,
/// and then it names the lock that `guard` holds.
#[must_use = "the cookie ends immediately when unused"]
pub struct WbLockCookie<'a, T: ?Sized> {
    // Dropped first, while `guard` still keeps interrupts disabled.
    _entry: CookieEntry,
    // Dropped next: the lock is released before the RCU read-side section ends, as in C.
    guard: Option<SpinLockIrqGuard<'a, T>>,
    _rcu: rcu::Guard,
}

impl<'a, T: ?Sized> WbLockCookie<'a, T> {
    /// Enters an RCU read-side section and takes `lock` if `cond()` returns true.
    ///
    /// `cond` runs inside the RCU read-side section. If a cookie on this CPU holds `lock`
    /// already, this spins for ever, on every configuration (see [`WbLockCookie`] for what is
    /// covered without `CONFIG_SMP`). Not for NMI context.
    #[inline]
    pub fn begin(lock: &'a SpinLockIrq<T>, cond: impl FnOnce() -> bool) -> Self {
        let rcu = rcu::read_lock();
        let (entry, guard) = if cond() {
            let (entry, guard) = CookieEntry::lock(lock);
            (entry, Some(guard))
        } else {
            (CookieEntry::NONE, None)
        };
        // INVARIANT: `CookieEntry::lock` names the lock that its guard holds, `NONE` names none.
        Self {
            _entry: entry,
            guard,
            _rcu: rcu,
        }
    }

    /// Like [`begin`](Self::begin), but returns `None` instead of waiting if `cond()` returns
    /// true and the lock cannot be taken at once: it is held, on this CPU or another one. Without
    /// `CONFIG_SMP` and `PREEMPT_RT` the lock itself can tell only with `CONFIG_DEBUG_SPINLOCK`;
    /// a lock that a cookie holds is refused in any case, and so is every lock while the table of
    /// those is full (see [`WbLockCookie`]).
    ///
    /// Returns `None` in NMI context, before it does anything else (`cond` is not called).
    ///
    /// # Examples
    ///
    /// ```
    /// use kernel::sync::{new_spinlock_irq, WbLockCookie};
    ///
    /// let l = KBox::pin_init(new_spinlock_irq!(0u32), GFP_KERNEL)?;
    /// let first = WbLockCookie::begin(&l, || true);
    /// // Held by the first cookie: no second guard, on every configuration.
    /// assert!(WbLockCookie::try_begin(&l, || true).is_none());
    /// // A false condition needs no lock.
    /// assert!(WbLockCookie::try_begin(&l, || false).is_some_and(|c| !c.locked()));
    /// first.end();
    /// assert!(WbLockCookie::try_begin(&l, || true).is_some_and(|c| c.locked()));
    /// # Ok::<(), Error>(())
    /// ```
    #[inline]
    pub fn try_begin(lock: &'a SpinLockIrq<T>, cond: impl FnOnce() -> bool) -> Option<Self> {
        // A `spinlock_t` must not be taken in NMI context, and `spin_trylock_irq_disable()` would
        // warn there (in `local_interrupt_disable()`): nothing else runs there.
        // SAFETY: `in_nmi()` only reads the preempt count.
        if unsafe { bindings::in_nmi() } {
            return None;
        }
        let rcu = rcu::read_lock();
        let (entry, guard) = if cond() {
            let (entry, guard) = CookieEntry::try_lock(lock)?;
            (entry, Some(guard))
        } else {
            (CookieEntry::NONE, None)
        };
        // INVARIANT: As in `begin`.
        Some(Self {
            _entry: entry,
            guard,
            _rcu: rcu,
        })
    }

    /// Returns whether the lock was taken (C's `cookie->locked`).
    #[inline]
    pub fn locked(&self) -> bool {
        self.guard.is_some()
    }

    /// Returns the protected data if the lock was taken.
    #[inline]
    pub fn data(&mut self) -> Option<&mut T>
    where
        T: Unpin,
    {
        self.guard.as_deref_mut()
    }

    /// Ends the cookie: releases the lock if taken, restoring the interrupt state, then leaves
    /// the RCU read-side section.
    #[inline]
    pub fn end(self) {}
}

/// The entry of a [`WbLockCookie`]'s lock in `COOKIE_LOCKS`, without `CONFIG_SMP` and
/// `PREEMPT_RT`; it is removed when the cookie ends, before the lock is released. Empty (and
/// free) otherwise.
///
/// # Invariants
///
/// Without `CONFIG_SMP` and `PREEMPT_RT`, `lock` is null, or it is the `spinlock_t` of a lock that
/// this entry entered in `COOKIE_LOCKS` and that a [`SpinLockIrqGuard`] holds which is dropped
/// after this entry: the guard it was returned with by [`CookieEntry::lock`] or
/// [`CookieEntry::try_lock`] (a later field of the cookie, or of the tuple).
struct CookieEntry {
    #[cfg(all(not(CONFIG_SMP), not(CONFIG_PREEMPT_RT)))]
    lock: *mut bindings::spinlock_t,
}

impl CookieEntry {
    /// No entry: the cookie took no lock.
    const NONE: Self = Self {
        #[cfg(all(not(CONFIG_SMP), not(CONFIG_PREEMPT_RT)))]
        lock: core::ptr::null_mut(),
    };

    /// Takes `lock` for a cookie: `spin_lock_irq_disable()`, nothing more.
    // Always inlined: a cookie costs what `spin_lock_irq_disable()` costs.
    #[cfg(any(CONFIG_SMP, CONFIG_PREEMPT_RT))]
    #[inline(always)]
    fn lock<T: ?Sized>(lock: &SpinLockIrq<T>) -> (Self, SpinLockIrqGuard<'_, T>) {
        (Self {}, lock.lock())
    }

    /// Tries to take `lock` for a cookie: `spin_trylock_irq_disable()`, nothing more.
    // Always inlined, as `lock`.
    #[cfg(any(CONFIG_SMP, CONFIG_PREEMPT_RT))]
    #[inline(always)]
    fn try_lock<T: ?Sized>(lock: &SpinLockIrq<T>) -> Option<(Self, SpinLockIrqGuard<'_, T>)> {
        lock.try_lock().map(|guard| (Self {}, guard))
    }

    /// Enters `lock` in [`COOKIE_LOCKS`], then takes it; if a cookie holds it (or the table is
    /// full), spins for ever instead, as a second `spin_lock()` does on SMP.
    #[cfg(all(not(CONFIG_SMP), not(CONFIG_PREEMPT_RT)))]
    fn lock<T: ?Sized>(lock: &SpinLockIrq<T>) -> (Self, SpinLockIrqGuard<'_, T>) {
        let ptr = lock.state.get();
        let irq = crate::interrupt::local_interrupt_disable();
        if !COOKIE_LOCKS.enter(&irq, ptr) {
            up_recursion();
        }
        let guard = lock.lock();
        // Interrupts stay disabled: `guard` holds a level of the refcounted region.
        drop(irq);
        // INVARIANT: `ptr` was entered above, and `guard`, returned after the entry, holds it.
        (Self { lock: ptr }, guard)
    }

    /// Enters `lock` in [`COOKIE_LOCKS`], then tries to take it; `None` if a cookie holds it (or
    /// the table is full) or the try fails.
    #[cfg(all(not(CONFIG_SMP), not(CONFIG_PREEMPT_RT)))]
    fn try_lock<T: ?Sized>(lock: &SpinLockIrq<T>) -> Option<(Self, SpinLockIrqGuard<'_, T>)> {
        let ptr = lock.state.get();
        let irq = crate::interrupt::local_interrupt_disable();
        if !COOKIE_LOCKS.enter(&irq, ptr) {
            return None;
        }
        let Some(guard) = lock.try_lock() else {
            COOKIE_LOCKS.exit(&irq, ptr);
            return None;
        };
        // Interrupts stay disabled: `guard` holds a level of the refcounted region.
        drop(irq);
        // INVARIANT: As in `lock`.
        Some((Self { lock: ptr }, guard))
    }
}

#[cfg(all(not(CONFIG_SMP), not(CONFIG_PREEMPT_RT)))]
impl Drop for CookieEntry {
    #[inline]
    fn drop(&mut self) {
        if self.lock.is_null() {
            return;
        }
        // SAFETY: By the type invariants, a `SpinLockIrqGuard` that is dropped after this entry
        // holds the lock, and with it a level of the refcounted interrupt-disabled region
        // (`spin_lock_irq_disable()`): interrupts stay disabled until after this borrow ends.
        let irq = unsafe { LocalInterruptDisabled::assume_disabled() };
        COOKIE_LOCKS.exit(irq, self.lock);
    }
}

/// The number of slots of [`COOKIE_LOCKS`]: the levels of the refcounted interrupt disabling.
#[cfg(all(not(CONFIG_SMP), not(CONFIG_PREEMPT_RT)))]
const COOKIE_SLOTS: usize = (1 << bindings::HARDIRQ_DISABLE_BITS) - 1;

/// The locks that [`WbLockCookie`]s hold, without `CONFIG_SMP` and `PREEMPT_RT`: the addresses of
/// their `spinlock_t`s, in the first `len` slots (free slots there are null).
///
/// The accesses are atomic (plain loads and stores on one CPU), so that an NMI, which may
/// interrupt them even with interrupts disabled, cannot race with them. Cookies are not for NMI
/// context: entries of cookies begun there may be lost.
///
/// # Invariants
///
/// Written only with local interrupts disabled, on the only CPU. The lock of every cookie begun
/// outside NMI context whose [`CookieEntry`] is not null is in `slots[..len]`, once.
#[cfg(all(not(CONFIG_SMP), not(CONFIG_PREEMPT_RT)))]
struct CookieLocks {
    len: Atomic<usize>,
    slots: [Atomic<*mut bindings::spinlock_t>; COOKIE_SLOTS],
}

#[cfg(all(not(CONFIG_SMP), not(CONFIG_PREEMPT_RT)))]
static COOKIE_LOCKS: CookieLocks = CookieLocks {
    len: Atomic::new(0),
    slots: [const { Atomic::new(core::ptr::null_mut()) }; COOKIE_SLOTS],
};

#[cfg(all(not(CONFIG_SMP), not(CONFIG_PREEMPT_RT)))]
impl CookieLocks {
    /// Enters `lock`, unless it is in the table already or the table is full: then returns
    /// `false` and changes nothing.
    fn enter(&self, _irq: &LocalInterruptDisabled, lock: *mut bindings::spinlock_t) -> bool {
        let len = self.len.load(Relaxed);
        let mut free = len;
        for (i, slot) in self.slots.iter().enumerate().take(len) {
            let entered = slot.load(Relaxed);
            if entered == lock {
                return false;
            }
            if entered.is_null() && free == len {
                free = i;
            }
        }
        let Some(slot) = self.slots.get(free) else {
            return false;
        };
        slot.store(lock, Relaxed);
        if free == len {
            self.len.store(len + 1, Relaxed);
        }
        true
    }

    /// Removes `lock`, entered by [`CookieLocks::enter`].
    fn exit(&self, _irq: &LocalInterruptDisabled, lock: *mut bindings::spinlock_t) {
        let mut len = self.len.load(Relaxed);
        if let Some(slot) = self
            .slots
            .iter()
            .take(len)
            .find(|slot| slot.load(Relaxed) == lock)
        {
            slot.store(core::ptr::null_mut(), Relaxed);
        }
        // Free slots at the end leave the part that is searched.
        while len > 0
            && self
                .slots
                .get(len - 1)
                .is_some_and(|slot| slot.load(Relaxed).is_null())
        {
            len -= 1;
        }
        self.len.store(len, Relaxed);
    }
}

#[cfg(CONFIG_RUST_IRQSAVE_KUNIT_TEST)]
#[macros::kunit_tests(rust_kernel_irqsave)]
mod tests {
    use crate::interrupt::{irqs_disabled, local_interrupt_disable};
    use crate::irq_work::run_on_each_cpu;
    use crate::prelude::*;
    use crate::sync::{new_spinlock_irq, new_spinlock_irqsave, SpinLockIrq, WbLockCookie};

    /// Interrupts are expected to be disabled (not on PREEMPT_RT, where spinlocks leave them on).
    fn disabled() -> bool {
        cfg!(CONFIG_PREEMPT_RT) || irqs_disabled()
    }

    /// Whether the table of locks held by cookies, which `WbLockCookie::begin` consults before it
    /// takes a lock, has `l`; `None` where there is no table (`CONFIG_SMP` or `PREEMPT_RT`).
    fn in_cookie_table(l: &SpinLockIrq<u32>) -> Option<bool> {
        #[cfg(all(not(CONFIG_SMP), not(CONFIG_PREEMPT_RT)))]
        {
            use crate::sync::atomic::Relaxed;
            let ptr = l.state.get();
            Some(
                super::COOKIE_LOCKS
                    .slots
                    .iter()
                    .any(|slot| slot.load(Relaxed) == ptr),
            )
        }
        #[cfg(any(CONFIG_SMP, CONFIG_PREEMPT_RT))]
        {
            let _ = l;
            None
        }
    }

    #[test]
    fn seed_001_cookie_inside_outer_irqsave() -> Result {
        let outer = KBox::pin_init(
            new_spinlock_irqsave!(0u32, "kunit_irqsave_outer"),
            GFP_KERNEL,
        )?;
        let wb = KBox::pin_init(new_spinlock_irq!(0u32, "kunit_irqsave_wb"), GFP_KERNEL)?;
        // Make the outer lock hard-IRQ-used: every CPU takes it from an irq_work.
        run_on_each_cpu(&|| outer.lock_irqsave(|g| **g += 1))?;

        let before = irqs_disabled();
        let (in_outer, in_cookie, after_cookie, locked) = outer.lock_irqsave(|_| {
            let in_outer = disabled();
            let mut cookie = WbLockCookie::begin(&wb, || true);
            let locked = cookie.locked();
            if let Some(v) = cookie.data() {
                *v += 1;
            }
            let in_cookie = disabled();
            cookie.end();
            (in_outer, in_cookie, disabled(), locked)
        });
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
        let wb = KBox::pin_init(new_spinlock_irq!(0u32, "kunit_irqsave_wb2"), GFP_KERNEL)?;
        let (locked, irqs, none, trylock_ok) = {
            let mut cookie = WbLockCookie::begin(&wb, || false);
            let r = (cookie.locked(), irqs_disabled(), cookie.data().is_none());
            // The lock is free while the cookie did not take it.
            let t = wb.try_lock().is_some();
            cookie.end();
            (r.0, r.1, r.2, t)
        };
        assert!(!locked);
        assert!(!irqs);
        assert!(none);
        assert!(trylock_ok);
        Ok(())
    }

    #[test]
    fn cookies_end_in_any_order() -> Result {
        let a = KBox::pin_init(
            new_spinlock_irq!(0u32, "kunit_irqsave_cookie_a"),
            GFP_KERNEL,
        )?;
        let b = KBox::pin_init(
            new_spinlock_irq!(0u32, "kunit_irqsave_cookie_b"),
            GFP_KERNEL,
        )?;
        let ca = WbLockCookie::begin(&a, || true);
        let cb = WbLockCookie::begin(&b, || true);
        ca.end();
        // `b` is still held: interrupts must still be disabled.
        let mid = disabled();
        cb.end();
        assert!(mid);
        assert!(!irqs_disabled());
        Ok(())
    }

    #[test]
    fn second_cookie_on_a_held_lock_gets_no_guard() -> Result {
        let l = KBox::pin_init(
            new_spinlock_irq!(0u32, "kunit_irqsave_cookie_twice"),
            GFP_KERNEL,
        )?;
        let mut first = WbLockCookie::begin(&l, || true);
        // Without `CONFIG_SMP` (and `PREEMPT_RT`) C's spinlock cannot refuse a second taker (with
        // `CONFIG_DEBUG_SPINLOCK` it reports the recursion, then goes on): the table of locks held
        // by cookies must have the lock, so that a second `begin` spins, as on SMP, and a second
        // `try_begin` refuses before it touches the lock.
        let entered = in_cookie_table(&l);
        let second = WbLockCookie::try_begin(&l, || true);
        let refused = second.is_none();
        drop(second);
        // A false condition needs no lock: that cookie begins.
        let unlocked = WbLockCookie::try_begin(&l, || false).map(|c| c.locked());
        if let Some(v) = first.data() {
            *v += 1;
        }
        first.end();
        let removed = in_cookie_table(&l);
        let again = WbLockCookie::try_begin(&l, || true).map(|mut c| {
            if let Some(v) = c.data() {
                *v += 1;
            }
            c.locked()
        });
        let removed_again = in_cookie_table(&l);
        assert!(entered != Some(false));
        assert!(refused);
        assert_eq!(unlocked, Some(false));
        assert!(removed != Some(true));
        assert_eq!(again, Some(true));
        assert!(removed_again != Some(true));
        assert!(!irqs_disabled());
        assert_eq!(*l.lock(), 2);
        Ok(())
    }

    #[test]
    fn nests_with_spinlock_irq_and_token() -> Result {
        let a = KBox::pin_init(new_spinlock_irqsave!(0u32, "kunit_irqsave_a"), GFP_KERNEL)?;
        let b = KBox::pin_init(new_spinlock_irq!(0u32, "kunit_irqsave_b"), GFP_KERNEL)?;
        let (x, y) = a.lock_irqsave(|_ga| {
            #[cfg(not(CONFIG_PREEMPT_RT))]
            let gb = b.lock_with(_ga.irq_disabled());
            #[cfg(CONFIG_PREEMPT_RT)]
            let gb = b.lock();
            let x = disabled();
            drop(gb);
            (x, disabled())
        });
        assert!(x && y && !irqs_disabled());
        Ok(())
    }

    #[test]
    fn refcounted_region_opened_before_ends_inside() -> Result {
        if cfg!(CONFIG_PREEMPT_RT) {
            // A sleeping lock must not be taken with hard interrupts disabled.
            return Ok(());
        }
        let a = KBox::pin_init(
            new_spinlock_irqsave!(0u32, "kunit_irqsave_join"),
            GFP_KERNEL,
        )?;
        let token = local_interrupt_disable();
        // The refcounted region ends inside the critical section: it must not enable interrupts
        // while `a` is held.
        let inside = a.lock_irqsave(move |g| {
            drop(token);
            **g += 1;
            disabled()
        });
        assert!(inside);
        assert!(!irqs_disabled());
        Ok(())
    }

    #[test]
    fn refcounted_region_opened_inside_outlives_it() -> Result {
        let a = KBox::pin_init(
            new_spinlock_irqsave!(0u32, "kunit_irqsave_leak"),
            GFP_KERNEL,
        )?;
        let b = KBox::pin_init(new_spinlock_irq!(0u32, "kunit_irqsave_leak_b"), GFP_KERNEL)?;
        // A refcounted region (a `SpinLockIrq` guard, and a bare one) returned from the critical
        // section: interrupts stay disabled until the last one ends, then are enabled again.
        let (gb, token) = a.lock_irqsave(|_| (b.lock(), local_interrupt_disable()));
        let after_section = disabled();
        drop(gb);
        let after_guard = disabled();
        drop(token);
        assert!(after_section && after_guard);
        assert!(!irqs_disabled());
        // The same with a cookie.
        let cookie = a.lock_irqsave(|_| WbLockCookie::begin(&b, || true));
        let with_cookie = disabled();
        cookie.end();
        assert!(with_cookie);
        assert!(!irqs_disabled());
        Ok(())
    }

    #[test]
    fn try_lock_irqsave() -> Result {
        let a = KBox::pin_init(new_spinlock_irqsave!(0u32, "kunit_irqsave_try"), GFP_KERNEL)?;
        let nested = a.lock_irqsave(|_| a.try_lock_irqsave(|_| ()).is_none());
        let free = a.try_lock_irqsave(|g| {
            **g += 1;
            disabled()
        });
        assert!(nested);
        assert_eq!(free, Some(true));
        assert!(!irqs_disabled());
        // Inside a refcounted region too (the joined path; not on PREEMPT_RT, where the sleeping
        // lock must not be taken with hard interrupts disabled), where it is free; and a nested
        // try inside the section of the lock, which fails (without `CONFIG_SMP` too, where the
        // lock's own flag says it is held).
        if !cfg!(CONFIG_PREEMPT_RT) {
            let token = local_interrupt_disable();
            let joined = a.try_lock_irqsave(|g| **g);
            let nested = a.try_lock_irqsave(|_| a.try_lock_irqsave(|_| ()).is_none());
            drop(token);
            assert_eq!(joined, Some(1));
            assert_eq!(nested, Some(true));
            assert!(!irqs_disabled());
        }
        // In an interrupt handler (interrupts disabled, no refcounted region; a thread on
        // `PREEMPT_RT`), on a free lock.
        crate::irq_work::run_on(crate::cpu::CpuId::current(), &|| {
            let _ = a.try_lock_irqsave(|g| **g += 10);
        })?;
        assert_eq!(a.lock_irqsave(|g| **g), 11);
        Ok(())
    }

    #[test]
    fn unchecked_guards_in_order() -> Result {
        let a = KBox::pin_init(
            new_spinlock_irqsave!(0u32, "kunit_irqsave_unch_a"),
            GFP_KERNEL,
        )?;
        let b = KBox::pin_init(
            new_spinlock_irqsave!(0u32, "kunit_irqsave_unch_b"),
            GFP_KERNEL,
        )?;
        // SAFETY: The guards are dropped in the reverse order of their creation, and no other
        // interrupt-disabled region crosses them.
        let (ga, mut gb) = unsafe { (a.lock_unchecked(), b.lock_unchecked()) };
        *gb += *ga + 1;
        drop(gb);
        let mid = disabled();
        drop(ga);
        assert!(mid);
        assert!(!irqs_disabled());
        assert_eq!(b.lock_irqsave(|g| **g), 1);
        Ok(())
    }

    #[test]
    fn nested_critical_sections_restore() -> Result {
        let a = KBox::pin_init(new_spinlock_irqsave!(0u32, "kunit_irqsave_c"), GFP_KERNEL)?;
        let b = KBox::pin_init(new_spinlock_irqsave!(0u32, "kunit_irqsave_d"), GFP_KERNEL)?;
        let (inner_after, outer_in) = a.lock_irqsave(|ga| {
            **ga += 1;
            b.lock_irqsave(|gb| **gb += 1);
            (disabled(), disabled())
        });
        assert!(inner_after && outer_in);
        assert!(!irqs_disabled());
        assert_eq!((a.lock_irqsave(|g| **g), b.lock_irqsave(|g| **g)), (1, 1));
        Ok(())
    }
}
