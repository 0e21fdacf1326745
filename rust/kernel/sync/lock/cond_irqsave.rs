// SPDX-License-Identifier: GPL-2.0

//! A guard that takes a [`SpinLockIrq`] only if a condition holds, as C's `struct wb_lock_cookie`.
//!
//! C's writeback code reads an inode's writeback structure under RCU, and takes the `i_pages`
//! lock only while the inode is switching between writeback structures
//! (`unlocked_inode_to_wb_begin()` and `unlocked_inode_to_wb_end()`). The end once released the
//! lock with `spin_unlock_irq()`, inside an outer `spin_lock_irqsave()` region: it enabled
//! interrupts with the outer lock still held, and an interrupt taking that lock deadlocked. The
//! fix was `struct wb_lock_cookie`, which records whether the lock was taken and the saved
//! interrupt state, and restores exactly that state.
//!
//! [`CondIrqSaveGuard`] is that cookie for Rust. It holds a [`SpinLockIrq`], whose refcounted
//! interrupt disabling restores the state saved by the outermost region, so it cannot enable
//! interrupts inside an outer irqsave region either.
//!
//! C header: [`include/linux/backing-dev.h`](srctree/include/linux/backing-dev.h)
//!
//! [`SpinLockIrq`]: crate::sync::SpinLockIrq

use crate::sync::{
    rcu,
    SpinLockIrq,
    SpinLockIrqGuard, //
};
use held::HeldEntry;

mod held;

/// A guard that takes a [`SpinLockIrq`] only if a condition holds, inside an RCU read-side section.
///
/// The lock must be a [`SpinLockIrq`], created with [`new_spinlock_irq!`]. A [`SpinLock`] is not
/// accepted: [`SpinLockIrq`] is an alias of `Lock<T, SpinLockIrqBackend>`, so passing a
/// [`SpinLock`] fails with a mismatch between `SpinLockBackend` and `SpinLockIrqBackend`.
///
/// This is C's `struct wb_lock_cookie`:
///
/// - [`begin`](Self::begin) (C's `unlocked_inode_to_wb_begin()`) enters an RCU read-side section,
///   evaluates the condition and, if it holds, takes the lock with interrupts disabled.
/// - [`end`](Self::end) (C's `unlocked_inode_to_wb_end()`), or dropping the guard, releases the
///   lock, restoring the interrupt state, then leaves the RCU read-side section.
///
/// The interrupt state is saved and restored by the refcounted interrupt disabling of
/// [`SpinLockIrq`], which restores the state saved by the outermost region when the last one ends.
/// A guard is therefore correct inside an outer irqsave region, C's or a critical section of a
/// [`SpinLockIrqSave`], and guards may end in any order.
///
/// The guard borrows the lock, so it cannot outlive it. [`end`](Self::end) consumes it, so it
/// cannot end twice. It is neither [`Send`] nor [`Sync`].
///
/// # Context
///
/// - NMI: not allowed, as a `spinlock_t` must not be taken there. [`begin`](Self::begin) warns
///   (in `local_interrupt_disable()`), and [`try_begin`](Self::try_begin) returns `None`.
/// - `PREEMPT_RT`: the lock sleeps and interrupts stay enabled, as for every `spinlock_t`.
/// - Without `CONFIG_SMP`: a table of held locks stands in for the lock's missing state; see
///   [below](#a-lock-held-twice).
///
/// # A lock held twice
///
/// Beginning a guard on a lock that the same CPU already holds through another guard of this type
/// deadlocks on SMP, as any spinlock taken twice does; lockdep reports it.
///
/// Without `CONFIG_SMP` (and `PREEMPT_RT`), C's `spin_lock()` never waits, as the lock has no
/// state. With `CONFIG_DEBUG_SPINLOCK` a recursion is reported, then the lock is taken all the
/// same. The second guard would take the lock again and hand out a second `&mut T`. There, the
/// locks that these guards hold are kept in a table, tested and updated with interrupts disabled,
/// on the only CPU, before the lock is taken: a second [`begin`](Self::begin) on such a lock spins
/// as on SMP instead, and [`try_begin`](Self::try_begin) returns `None`.
///
/// With `CONFIG_SMP`, or with `PREEMPT_RT` (where the lock is an `rt_mutex`, which has an owner),
/// there is no table, and a guard costs what `spin_lock_irq_disable()` costs.
///
/// The bounds of the table, without `CONFIG_SMP` and `PREEMPT_RT`:
///
/// - It covers these guards only. A [`SpinLockIrq`] held through its own guards (`lock()`,
///   `try_lock()`, `lock_with()`) is not in it: a [`CondIrqSaveGuard`] on a lock held that way, or
///   such a guard on a lock a [`CondIrqSaveGuard`] holds, takes the lock again and gives a second
///   guard, as two `lock()` calls on a [`SpinLock`] or [`SpinLockIrq`] do there (silently without
///   `CONFIG_DEBUG_SPINLOCK`, after a "spinlock recursion" report with it). That is the behaviour
///   of those upstream types, not fixed here.
/// - It has one slot per level of the refcounted interrupt disabling: 255 (from
///   `HARDIRQ_DISABLE_BITS` in `include/linux/preempt.h`), 255 pointers of static memory. Every
///   guard in it holds one level. It fills only if more guards are held at once than the preempt
///   count can count, or if a guard's holder slept (a bug, reported as "scheduling while atomic")
///   while others began guards. A full table refuses as a held lock does: `begin` spins,
///   `try_begin` returns `None`.
/// - Guards begun in NMI context (a bug, see above) are not covered.
///
/// # Invariants
///
/// Without `CONFIG_SMP` and `PREEMPT_RT`, `_entry` names a lock if and only if `guard` is `Some`,
/// and then it names the lock that `guard` holds.
///
/// # Examples
///
/// The lock is a [`SpinLockIrq`], created with [`new_spinlock_irq!`]:
///
/// ```
/// use kernel::sync::{
///     new_spinlock_irq,
///     CondIrqSaveGuard, //
/// };
///
/// let i_pages = KBox::pin_init(new_spinlock_irq!(0u32, "i_pages"), GFP_KERNEL)?;
/// let switching = true; // E.g. "the inode is switching its writeback structure".
///
/// let mut guard = CondIrqSaveGuard::begin(&i_pages, || switching);
/// assert!(guard.locked());
/// if let Some(v) = guard.data() {
///     *v += 1;
/// }
/// guard.end();
///
/// assert_eq!(*i_pages.lock(), 1);
/// # Ok::<(), Error>(())
/// ```
///
/// Inside an outer irqsave region, the end of the guard restores "disabled", as saved:
///
/// ```
/// use kernel::interrupt::irqs_disabled;
/// use kernel::sync::{
///     new_spinlock_irq,
///     new_spinlock_irqsave,
///     CondIrqSaveGuard, //
/// };
///
/// let memcg = KBox::pin_init(new_spinlock_irqsave!(0u32, "memcg"), GFP_KERNEL)?;
/// let i_pages = KBox::pin_init(new_spinlock_irq!(0u32, "i_pages"), GFP_KERNEL)?;
///
/// memcg.lock_irqsave(|_| {
///     let guard = CondIrqSaveGuard::begin(&i_pages, || true);
///     guard.end();
///     // `spin_unlock_irq()` would have enabled interrupts here.
///     assert!(cfg!(CONFIG_PREEMPT_RT) || irqs_disabled());
/// });
/// assert!(!irqs_disabled());
/// # Ok::<(), Error>(())
/// ```
///
/// A guard stays on the task that began it:
///
/// ```compile_fail,E0277
/// # let l = KBox::pin_init(kernel::new_spinlock_irq!(0u32), GFP_KERNEL)?;
/// use kernel::sync::CondIrqSaveGuard;
///
/// fn assert_send<T: Send>(_: &T) {}
///
/// let guard = CondIrqSaveGuard::begin(&l, || true);
/// assert_send(&guard); // It must end on the task, and CPU, that began it.
/// # Ok::<(), Error>(())
/// ```
///
/// [`SpinLock`]: crate::sync::SpinLock
/// [`SpinLockIrqSave`]: crate::sync::SpinLockIrqSave
/// [`new_spinlock_irq!`]: crate::sync::new_spinlock_irq
#[doc(alias = "wb_lock_cookie")]
#[must_use = "the guard ends immediately when unused"]
pub struct CondIrqSaveGuard<'a, T: ?Sized> {
    // Dropped first, while `guard` still keeps interrupts disabled.
    _entry: HeldEntry,
    // Dropped next: the lock is released before the RCU read-side section ends, as in C.
    guard: Option<SpinLockIrqGuard<'a, T>>,
    _rcu: rcu::Guard,
}

impl<'a, T: ?Sized> CondIrqSaveGuard<'a, T> {
    /// Enters an RCU read-side section and takes `lock` if `cond()` returns true.
    ///
    /// `cond` runs inside the RCU read-side section. If a [`CondIrqSaveGuard`] on this CPU holds
    /// `lock` already, this spins for ever, on every configuration; see
    /// [A lock held twice](CondIrqSaveGuard#a-lock-held-twice) for what is covered without
    /// `CONFIG_SMP`.
    ///
    /// Not for NMI context: use [`try_begin`](Self::try_begin) there.
    #[doc(alias = "unlocked_inode_to_wb_begin")]
    #[inline]
    pub fn begin(lock: &'a SpinLockIrq<T>, cond: impl FnOnce() -> bool) -> Self {
        let rcu = rcu::read_lock();
        let (entry, guard) = if cond() {
            let (entry, guard) = HeldEntry::lock(lock);
            (entry, Some(guard))
        } else {
            (HeldEntry::NONE, None)
        };
        // INVARIANT: `HeldEntry::lock` names the lock that its guard holds, `NONE` names none.
        Self {
            _entry: entry,
            guard,
            _rcu: rcu,
        }
    }

    /// Like [`begin`](Self::begin), but returns `None` instead of waiting for the lock.
    ///
    /// It returns `None` if `cond()` returns true and the lock cannot be taken at once: it is
    /// held, on this CPU or another one.
    ///
    /// # Context
    ///
    /// - NMI: returns `None` before it does anything else; `cond` is not called.
    /// - Without `CONFIG_SMP` and `PREEMPT_RT`: the lock itself can tell that it is held only with
    ///   `CONFIG_DEBUG_SPINLOCK`. A lock that a [`CondIrqSaveGuard`] holds is refused in any case,
    ///   and so is every lock while the table of those is full; see
    ///   [A lock held twice](CondIrqSaveGuard#a-lock-held-twice).
    ///
    /// # Examples
    ///
    /// ```
    /// use kernel::sync::{
    ///     new_spinlock_irq,
    ///     CondIrqSaveGuard, //
    /// };
    ///
    /// let l = KBox::pin_init(new_spinlock_irq!(0u32), GFP_KERNEL)?;
    /// let first = CondIrqSaveGuard::begin(&l, || true);
    /// // Held by the first guard: no second guard, on every configuration.
    /// assert!(CondIrqSaveGuard::try_begin(&l, || true).is_none());
    /// // A false condition needs no lock.
    /// assert!(CondIrqSaveGuard::try_begin(&l, || false).is_some_and(|g| !g.locked()));
    /// first.end();
    /// assert!(CondIrqSaveGuard::try_begin(&l, || true).is_some_and(|g| g.locked()));
    /// # Ok::<(), Error>(())
    /// ```
    #[must_use = "the guard ends immediately when unused"]
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
            let (entry, guard) = HeldEntry::try_lock(lock)?;
            (entry, Some(guard))
        } else {
            (HeldEntry::NONE, None)
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

    /// Ends the guard: releases the lock if taken, restoring the interrupt state, then leaves the
    /// RCU read-side section.
    #[doc(alias = "unlocked_inode_to_wb_end")]
    #[inline]
    pub fn end(self) {}
}

#[cfg(CONFIG_RUST_IRQSAVE_KUNIT_TEST)]
#[macros::kunit_tests(rust_kernel_cond_irqsave)]
mod tests {
    use crate::{
        interrupt::irqs_disabled,
        irq_work::run_on_each_cpu,
        prelude::*,
        sync::{
            new_spinlock_irq,
            new_spinlock_irqsave,
            CondIrqSaveGuard,
            SpinLockIrq, //
        }, //
    };

    /// Interrupts are expected to be disabled (not on PREEMPT_RT, where spinlocks leave them on).
    fn disabled() -> bool {
        cfg!(CONFIG_PREEMPT_RT) || irqs_disabled()
    }

    /// Whether the table of held locks, which `CondIrqSaveGuard::begin` consults before it takes a
    /// lock, has `l`; `None` where there is no table (`CONFIG_SMP` or `PREEMPT_RT`).
    fn in_held_table(l: &SpinLockIrq<u32>) -> Option<bool> {
        #[cfg(all(not(CONFIG_SMP), not(CONFIG_PREEMPT_RT)))]
        {
            use crate::sync::atomic::Relaxed;
            let ptr = l.state.get();
            Some(
                super::held::HELD_LOCKS
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
    fn end_inside_outer_irqsave_region_keeps_irqs_disabled() -> Result {
        let outer = KBox::pin_init(
            new_spinlock_irqsave!(0u32, "kunit_cond_irqsave_outer"),
            GFP_KERNEL,
        )?;
        let wb = KBox::pin_init(new_spinlock_irq!(0u32, "kunit_cond_irqsave_wb"), GFP_KERNEL)?;
        // Make the outer lock hard-IRQ-used: every CPU takes it from an irq_work.
        run_on_each_cpu(&|| outer.lock_irqsave(|g| **g += 1))?;

        let before = irqs_disabled();
        let (in_outer, in_guard, after_guard, locked) = outer.lock_irqsave(|_| {
            let in_outer = disabled();
            let mut guard = CondIrqSaveGuard::begin(&wb, || true);
            let locked = guard.locked();
            if let Some(v) = guard.data() {
                *v += 1;
            }
            let in_guard = disabled();
            guard.end();
            (in_outer, in_guard, disabled(), locked)
        });
        let after = irqs_disabled();
        assert!(!before);
        assert!(in_outer && in_guard && locked);
        // The end of the guard must not have enabled interrupts inside the outer region.
        assert!(after_guard);
        assert!(!after);
        assert_eq!(*wb.lock(), 1);
        Ok(())
    }

    #[test]
    fn false_condition_takes_no_lock() -> Result {
        let wb = KBox::pin_init(
            new_spinlock_irq!(0u32, "kunit_cond_irqsave_wb2"),
            GFP_KERNEL,
        )?;
        let (locked, irqs, none, trylock_ok) = {
            let mut guard = CondIrqSaveGuard::begin(&wb, || false);
            let r = (guard.locked(), irqs_disabled(), guard.data().is_none());
            // The lock is free while the guard did not take it.
            let t = wb.try_lock().is_some();
            guard.end();
            (r.0, r.1, r.2, t)
        };
        assert!(!locked);
        assert!(!irqs);
        assert!(none);
        assert!(trylock_ok);
        Ok(())
    }

    #[test]
    fn guards_end_in_any_order() -> Result {
        let a = KBox::pin_init(new_spinlock_irq!(0u32, "kunit_cond_irqsave_a"), GFP_KERNEL)?;
        let b = KBox::pin_init(new_spinlock_irq!(0u32, "kunit_cond_irqsave_b"), GFP_KERNEL)?;
        let ga = CondIrqSaveGuard::begin(&a, || true);
        let gb = CondIrqSaveGuard::begin(&b, || true);
        ga.end();
        // `b` is still held: interrupts must still be disabled.
        let mid = disabled();
        gb.end();
        assert!(mid);
        assert!(!irqs_disabled());
        Ok(())
    }

    #[test]
    fn second_guard_on_a_held_lock_is_refused() -> Result {
        let l = KBox::pin_init(
            new_spinlock_irq!(0u32, "kunit_cond_irqsave_twice"),
            GFP_KERNEL,
        )?;
        let mut first = CondIrqSaveGuard::begin(&l, || true);
        // Without `CONFIG_SMP` (and `PREEMPT_RT`) C's spinlock cannot refuse a second taker (with
        // `CONFIG_DEBUG_SPINLOCK` it reports the recursion, then goes on): the table of held
        // locks must have the lock, so that a second `begin` spins, as on SMP, and a second
        // `try_begin` refuses before it touches the lock.
        let entered = in_held_table(&l);
        let second = CondIrqSaveGuard::try_begin(&l, || true);
        let refused = second.is_none();
        drop(second);
        // A false condition needs no lock: that guard begins.
        let unlocked = CondIrqSaveGuard::try_begin(&l, || false).map(|g| g.locked());
        if let Some(v) = first.data() {
            *v += 1;
        }
        first.end();
        let removed = in_held_table(&l);
        let again = CondIrqSaveGuard::try_begin(&l, || true).map(|mut g| {
            if let Some(v) = g.data() {
                *v += 1;
            }
            g.locked()
        });
        let removed_again = in_held_table(&l);
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
    fn returned_from_irqsave_section_keeps_irqs_disabled() -> Result {
        let a = KBox::pin_init(
            new_spinlock_irqsave!(0u32, "kunit_cond_irqsave_section"),
            GFP_KERNEL,
        )?;
        let b = KBox::pin_init(
            new_spinlock_irq!(0u32, "kunit_cond_irqsave_returned"),
            GFP_KERNEL,
        )?;
        // A guard begun inside a critical section of a `SpinLockIrqSave` and returned from it:
        // interrupts stay disabled until it ends, then are enabled again.
        let guard = a.lock_irqsave(|_| CondIrqSaveGuard::begin(&b, || true));
        let with_guard = disabled();
        guard.end();
        assert!(with_guard);
        assert!(!irqs_disabled());
        Ok(())
    }
}
