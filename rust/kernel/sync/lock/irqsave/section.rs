// SPDX-License-Identifier: GPL-2.0

//! How a critical section of a [`SpinLockIrqSave`] begins and ends.
//!
//! A section begins in one of two ways, recorded in [`Saved`]:
//!
//! - Outside any refcounted interrupt-disabled region (the fast path): `spin_lock_irqsave()`, and
//!   `spin_unlock_irqrestore()` with the saved flags at the end.
//! - Inside an open refcounted region (`local_interrupt_disable()`, or a [`SpinLockIrq`] guard):
//!   the region is joined with `local_interrupt_disable()` and the lock taken with `spin_lock()`,
//!   so that the region cannot end, and restore its own saved state, while the lock is held.
//!
//! A refcounted region that begins inside the section and outlives it inherits the state saved
//! on entry, through `_local_interrupt_save_state()`.
//!
//! Without `CONFIG_SMP` and `CONFIG_PREEMPT_RT`, the lock also keeps a held flag, [`UpHeld`].
//!
//! C header: [`include/linux/spinlock.h`](srctree/include/linux/spinlock.h)
//!
//! [`SpinLockIrqSave`]: super::SpinLockIrqSave
//! [`SpinLockIrq`]: crate::sync::SpinLockIrq

use crate::ffi::c_ulong;

/// Whether a [`SpinLockIrqSave`] is held, kept by the lock itself where C's `spinlock_t` cannot
/// tell.
///
/// Without `CONFIG_SMP` (and `CONFIG_PREEMPT_RT`), C's `spinlock_t` has no state that
/// `spin_lock()` could wait on: taking the lock again in its own critical section (a deadlock on
/// SMP) would give a second guard. The flag lets the lock refuse instead. The type is empty on
/// every other configuration.
///
/// # Invariants
///
/// Without `CONFIG_SMP` and `CONFIG_PREEMPT_RT`, `held` is true while a critical section of the
/// lock is open, and is accessed only with interrupts disabled, on the only CPU.
///
/// [`SpinLockIrqSave`]: super::SpinLockIrqSave
pub(super) struct UpHeld {
    #[cfg(all(not(CONFIG_SMP), not(CONFIG_PREEMPT_RT)))]
    held: core::cell::UnsafeCell<bool>,
}

// SAFETY: Without `CONFIG_SMP` there is one CPU, and `held` is accessed only with interrupts
// disabled (type invariants), so never concurrently; otherwise the type is empty.
unsafe impl Sync for UpHeld {}

impl UpHeld {
    /// Creates the flag of a lock that is not held.
    pub(super) const fn new() -> Self {
        // INVARIANT: No critical section of the new lock is open.
        Self {
            #[cfg(all(not(CONFIG_SMP), not(CONFIG_PREEMPT_RT)))]
            held: core::cell::UnsafeCell::new(false),
        }
    }

    /// Records that the lock was just taken, with interrupts disabled.
    ///
    /// Returns `false` if it was already held: this CPU is inside the lock's own critical section,
    /// or its holder slept.
    #[inline(always)]
    pub(super) fn enter(&self) -> bool {
        #[cfg(all(not(CONFIG_SMP), not(CONFIG_PREEMPT_RT)))]
        {
            // SAFETY: Interrupts are disabled on the only CPU: nothing else accesses `held`.
            let held = unsafe { &mut *self.held.get() };
            if *held {
                return false;
            }
            // INVARIANT: The critical section of the lock begins.
            *held = true;
        }
        true
    }

    /// Returns whether the lock is held; always `false` with `CONFIG_SMP` or `PREEMPT_RT`.
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

    /// Calls `spin_trylock_irqsave()` on `ptr`, and returns whether it took the lock.
    ///
    /// Without `CONFIG_SMP` and `PREEMPT_RT`, the lock is taken only if it is not held, tested with
    /// interrupts disabled.
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
    pub(super) fn exit(&self) {
        #[cfg(all(not(CONFIG_SMP), not(CONFIG_PREEMPT_RT)))]
        // INVARIANT: The critical section of the lock ends.
        // SAFETY: As in `enter`.
        unsafe {
            *self.held.get() = false
        };
    }
}

/// The interrupt state saved on entry to a critical section of a [`SpinLockIrqSave`].
///
/// [`SpinLockIrqSave`]: super::SpinLockIrqSave
#[derive(Clone, Copy)]
pub(super) enum Saved {
    /// Taken with `spin_lock_irqsave()`, which saved these flags.
    Flags(c_ulong),
    /// Taken with `spin_lock()` inside a refcounted interrupt-disabled region, joined with
    /// `local_interrupt_disable()`.
    Joined,
}

/// Returns the nesting depth of refcounted interrupt disabling on this CPU.
///
/// That is the number of open `local_interrupt_disable()` levels, from the preempt count.
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
        // when it ends. Interrupts stay disabled until then.
        //
        // On PREEMPT_RT, `spin_lock_irqsave()` did not disable interrupts, so the region saved
        // the state of entry itself.
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
///
/// [`SpinLockIrqSave`]: super::SpinLockIrqSave
#[inline(always)]
pub(super) unsafe fn unlock(ptr: *mut bindings::spinlock_t, saved: Saved) {
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
pub(super) unsafe fn lock(ptr: *mut bindings::spinlock_t) -> Saved {
    if refcounted_irq_depth() == 0 {
        // SAFETY: `ptr` is valid and initialised.
        Saved::Flags(unsafe { bindings::spin_lock_irqsave(ptr) })
    } else {
        // SAFETY: `ptr` is valid and initialised; a refcounted region is open.
        unsafe { lock_joined(ptr) };
        Saved::Joined
    }
}

/// Tries to take the lock at `ptr` with the interrupt state saved.
///
/// # Context
///
/// - NMI: fails before anything else runs. A `spinlock_t` is not a lock for NMI context: the NMI
///   may have interrupted the holder on this CPU, and the joined path calls
///   `local_interrupt_disable()`, which warns there.
/// - `PREEMPT_RT`: the lock is a sleeping lock, also not for NMI context.
/// - Without `CONFIG_SMP`: C's `spin_trylock()` cannot see a holder, as the lock has no state, so
///   the try would succeed inside the lock's own critical section. The lock's own flag, `held`,
///   is tested first, with interrupts disabled, in both paths. An NMI may also have interrupted
///   the holder between taking the lock and setting that flag.
///
/// # Safety
///
/// As for [`lock`]; `held` is the flag of the lock at `ptr`.
#[inline(always)]
pub(super) unsafe fn try_lock(ptr: *mut bindings::spinlock_t, held: &UpHeld) -> Option<Saved> {
    // SAFETY: `in_nmi()` only reads the preempt count.
    if unsafe { bindings::in_nmi() } {
        return None;
    }
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
