// SPDX-License-Identifier: GPL-2.0

//! The locks that [`CondIrqSaveGuard`]s hold, kept in a table without `CONFIG_SMP`.
//!
//! Without `CONFIG_SMP` (and `PREEMPT_RT`), C's `spinlock_t` has no state, so `spin_lock()` never
//! waits: a second guard on a lock that a guard holds would take it again. Each guard enters its
//! lock in [`HeldEntry`] before it takes it, and the entry refuses a lock that is in the table
//! already. With `CONFIG_SMP` or `PREEMPT_RT` there is no table, and [`HeldEntry`] is empty.
//!
//! [`CondIrqSaveGuard`]: super::CondIrqSaveGuard

use crate::sync::{
    SpinLockIrq,
    SpinLockIrqGuard, //
};

#[cfg(all(not(CONFIG_SMP), not(CONFIG_PREEMPT_RT)))]
use crate::{
    interrupt::LocalInterruptDisabled,
    sync::{
        atomic::{
            Atomic,
            Relaxed, //
        },
        lock::irqsave::up_recursion, //
    }, //
};

/// The entry of a [`CondIrqSaveGuard`]'s lock in the table, without `CONFIG_SMP` and `PREEMPT_RT`.
///
/// It is removed when the guard ends, before the lock is released. The type is empty, and free,
/// on every other configuration.
///
/// # Invariants
///
/// Without `CONFIG_SMP` and `PREEMPT_RT`, `lock` is null, or it is the `spinlock_t` of a lock that
/// this entry entered in `HELD_LOCKS` and that a [`SpinLockIrqGuard`] holds which is dropped
/// after this entry: the guard it was returned with by [`HeldEntry::lock`] or
/// [`HeldEntry::try_lock`] (a later field of the [`CondIrqSaveGuard`], or of the tuple).
///
/// [`CondIrqSaveGuard`]: super::CondIrqSaveGuard
pub(super) struct HeldEntry {
    #[cfg(all(not(CONFIG_SMP), not(CONFIG_PREEMPT_RT)))]
    lock: *mut bindings::spinlock_t,
}

impl HeldEntry {
    /// No entry: the guard took no lock.
    // INVARIANT: Null, so it names no lock.
    pub(super) const NONE: Self = Self {
        #[cfg(all(not(CONFIG_SMP), not(CONFIG_PREEMPT_RT)))]
        lock: core::ptr::null_mut(),
    };

    /// Takes `lock`: `spin_lock_irq_disable()`, nothing more.
    // Always inlined: a guard costs what `spin_lock_irq_disable()` costs.
    #[cfg(any(CONFIG_SMP, CONFIG_PREEMPT_RT))]
    #[inline(always)]
    pub(super) fn lock<T: ?Sized>(lock: &SpinLockIrq<T>) -> (Self, SpinLockIrqGuard<'_, T>) {
        (Self {}, lock.lock())
    }

    /// Tries to take `lock`: `spin_trylock_irq_disable()`, nothing more.
    // Always inlined, as `lock`.
    #[cfg(any(CONFIG_SMP, CONFIG_PREEMPT_RT))]
    #[inline(always)]
    pub(super) fn try_lock<T: ?Sized>(
        lock: &SpinLockIrq<T>,
    ) -> Option<(Self, SpinLockIrqGuard<'_, T>)> {
        lock.try_lock().map(|guard| (Self {}, guard))
    }

    /// Enters `lock` in [`HELD_LOCKS`], then takes it.
    ///
    /// If a [`CondIrqSaveGuard`] holds the lock, or the table is full, it spins for ever
    /// instead, as a second `spin_lock()` does on SMP.
    ///
    /// [`CondIrqSaveGuard`]: super::CondIrqSaveGuard
    #[cfg(all(not(CONFIG_SMP), not(CONFIG_PREEMPT_RT)))]
    pub(super) fn lock<T: ?Sized>(lock: &SpinLockIrq<T>) -> (Self, SpinLockIrqGuard<'_, T>) {
        let ptr = lock.state.get();
        let irq = crate::interrupt::local_interrupt_disable();
        if !HELD_LOCKS.enter(&irq, ptr) {
            up_recursion();
        }
        let guard = lock.lock();
        // Interrupts stay disabled: `guard` holds a level of the refcounted region.
        drop(irq);
        // INVARIANT: `ptr` was entered above, and `guard`, returned after the entry, holds it.
        (Self { lock: ptr }, guard)
    }

    /// Enters `lock` in [`HELD_LOCKS`], then tries to take it.
    ///
    /// Returns `None` if a [`CondIrqSaveGuard`] holds the lock, the table is full, or the try
    /// fails.
    ///
    /// [`CondIrqSaveGuard`]: super::CondIrqSaveGuard
    #[cfg(all(not(CONFIG_SMP), not(CONFIG_PREEMPT_RT)))]
    pub(super) fn try_lock<T: ?Sized>(
        lock: &SpinLockIrq<T>,
    ) -> Option<(Self, SpinLockIrqGuard<'_, T>)> {
        let ptr = lock.state.get();
        let irq = crate::interrupt::local_interrupt_disable();
        if !HELD_LOCKS.enter(&irq, ptr) {
            return None;
        }
        let Some(guard) = lock.try_lock() else {
            HELD_LOCKS.exit(&irq, ptr);
            return None;
        };
        // Interrupts stay disabled: `guard` holds a level of the refcounted region.
        drop(irq);
        // INVARIANT: As in `lock`.
        Some((Self { lock: ptr }, guard))
    }
}

#[cfg(all(not(CONFIG_SMP), not(CONFIG_PREEMPT_RT)))]
impl Drop for HeldEntry {
    #[inline]
    fn drop(&mut self) {
        if self.lock.is_null() {
            return;
        }
        // SAFETY: By the type invariants, a `SpinLockIrqGuard` that is dropped after this entry
        // holds the lock, and with it a level of the refcounted interrupt-disabled region
        // (`spin_lock_irq_disable()`): interrupts stay disabled until after this borrow ends.
        let irq = unsafe { LocalInterruptDisabled::assume_disabled() };
        HELD_LOCKS.exit(irq, self.lock);
    }
}

/// The number of slots of [`HELD_LOCKS`]: the levels of the refcounted interrupt disabling.
#[cfg(all(not(CONFIG_SMP), not(CONFIG_PREEMPT_RT)))]
const HELD_SLOTS: usize = (1 << bindings::HARDIRQ_DISABLE_BITS) - 1;

/// The locks that [`CondIrqSaveGuard`]s hold, without `CONFIG_SMP` and `PREEMPT_RT`.
///
/// They are the addresses of the locks' `spinlock_t`s, in the first `len` slots; free slots
/// there are null.
///
/// The accesses are atomic, plain loads and stores on one CPU, so that an NMI, which may interrupt
/// them even with interrupts disabled, cannot race with them. The guards are not for NMI context:
/// entries of guards begun there may be lost.
///
/// # Invariants
///
/// Written only with local interrupts disabled, on the only CPU. The lock of every guard begun
/// outside NMI context whose [`HeldEntry`] is not null is in `slots[..len]`, once.
///
/// [`CondIrqSaveGuard`]: super::CondIrqSaveGuard
#[cfg(all(not(CONFIG_SMP), not(CONFIG_PREEMPT_RT)))]
pub(super) struct HeldLocks {
    len: Atomic<usize>,
    pub(super) slots: [Atomic<*mut bindings::spinlock_t>; HELD_SLOTS],
}

// INVARIANT: Empty.
#[cfg(all(not(CONFIG_SMP), not(CONFIG_PREEMPT_RT)))]
pub(super) static HELD_LOCKS: HeldLocks = HeldLocks {
    len: Atomic::new(0),
    slots: [const { Atomic::new(core::ptr::null_mut()) }; HELD_SLOTS],
};

#[cfg(all(not(CONFIG_SMP), not(CONFIG_PREEMPT_RT)))]
impl HeldLocks {
    /// Enters `lock`, unless it is in the table already or the table is full.
    ///
    /// Returns `false`, and changes nothing, in those cases.
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
        // INVARIANT: Interrupts are disabled, as `_irq` proves, and `lock` was not in the table.
        slot.store(lock, Relaxed);
        if free == len {
            self.len.store(len + 1, Relaxed);
        }
        true
    }

    /// Removes `lock`, entered by [`HeldLocks::enter`].
    fn exit(&self, _irq: &LocalInterruptDisabled, lock: *mut bindings::spinlock_t) {
        let mut len = self.len.load(Relaxed);
        if let Some(slot) = self
            .slots
            .iter()
            .take(len)
            .find(|slot| slot.load(Relaxed) == lock)
        {
            // INVARIANT: Interrupts are disabled, as `_irq` proves.
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
