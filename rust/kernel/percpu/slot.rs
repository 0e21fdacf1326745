// SPDX-License-Identifier: GPL-2.0

//! Per-CPU values that are accessed under a per-CPU access flag or lock.
//!
//! A [`Slot<G, T>`] is one CPU's value after the state `G` that controls access to it: a busy flag
//! for [`PerCpu`](super::PerCpu) and [`StaticPerCpu`](super::StaticPerCpu), C's `local_trylock_t`
//! for [`LocalLock`](crate::local_lock::LocalLock). [`Slots<G, T>`] owns a dynamic allocation of
//! one slot per possible CPU, initialises the values and drops them: the code that
//! `PerCpu` and `LocalLock` share.

use super::{
    possible_cpus,
    RawPerCpu,
    MAX_INIT_SIZE, //
};
use crate::{
    alloc::Flags,
    build_assert::const_assert,
    cpu::PossibleCpu,
    error::Result,
    preempt::PreemptGuard, //
};
use core::{
    cell::UnsafeCell,
    marker::PhantomData,
    mem::{
        needs_drop,
        size_of, //
    },
    ptr::{
        addr_of,
        drop_in_place, //
    }, //
};
use pin_init::{
    Init,
    Zeroable, //
};

/// One CPU's value, after the per-CPU state that controls access to it.
///
/// The state comes first: the per-CPU address of a slot is the per-CPU address of its state, as
/// C's `local_lock()` family needs.
#[repr(C)]
pub(crate) struct Slot<G, T> {
    guard: G,
    value: UnsafeCell<T>,
}

impl<G, T> Slot<G, T> {
    /// A slot holding `guard` and `value`.
    pub(crate) const fn new(guard: G, value: T) -> Self {
        Self {
            guard,
            value: UnsafeCell::new(value),
        }
    }

    /// Returns the address of the state of the slot at `slot`.
    ///
    /// # Safety
    ///
    /// `slot` points to a live slot (its value need not be initialised).
    #[inline(always)]
    pub(crate) unsafe fn guard(slot: *const Self) -> *const G {
        // SAFETY: The caller guarantees that `slot` is valid; no reference is created.
        unsafe { addr_of!((*slot).guard) }
    }

    /// Returns the address of the value of the slot at `slot`.
    ///
    /// # Safety
    ///
    /// `slot` points to a live slot (its value need not be initialised).
    #[inline(always)]
    pub(crate) unsafe fn value(slot: *const Self) -> *mut T {
        // SAFETY: The caller guarantees that `slot` is valid; no reference is created.
        UnsafeCell::raw_get(unsafe { addr_of!((*slot).value) })
    }
}

// SAFETY: All-zero bytes are a valid slot when they are a valid state and a valid value.
unsafe impl<G: Zeroable, T: Zeroable> Zeroable for Slot<G, T> {}

/// One initialised [`Slot<G, T>`] per possible CPU in a dynamic per-CPU allocation; the values
/// are dropped with it.
///
/// # Invariants
///
/// Every possible CPU's slot of `raw` holds an initialised state and an initialised value.
pub(crate) struct Slots<G, T> {
    raw: RawPerCpu<Slot<G, T>>,
    _p: PhantomData<T>,
}

impl<G, T> Slots<G, T> {
    /// Initialises every possible CPU's slot of `raw`, a zero-filled allocation.
    ///
    /// `init_guard(state)` initialises every CPU's state (zero-filled on entry) and `init(cpu)`
    /// returns the initialiser of its value, which runs in place. If an initialiser fails, the
    /// values already initialised are dropped, the memory is freed and its error is returned.
    /// `init_guard` must not fail.
    ///
    /// The initialiser is returned by value on the stack: it may not be larger than
    /// [`MAX_INIT_SIZE`] (this does not compile otherwise).
    #[inline]
    pub(crate) fn init_each<I, E>(
        raw: RawPerCpu<Slot<G, T>>,
        mut init_guard: impl FnMut(*mut G),
        mut init: impl FnMut(PossibleCpu) -> I,
    ) -> Result<Self, E>
    where
        I: Init<T, E>,
    {
        const_assert!(
            size_of::<I>() <= MAX_INIT_SIZE,
            "the per-CPU initialiser is larger than MAX_INIT_SIZE: initialise the value in place"
        );
        for (done, cpu) in possible_cpus().enumerate() {
            let slot = raw.cpu(cpu);
            // SAFETY: `slot` is this CPU's slot of the live allocation, which nobody else can
            // reach yet.
            init_guard(unsafe { Slot::guard(slot) }.cast_mut());
            // SAFETY: As above; the value is valid for writes of a `T` and not initialised. If
            // `__init` fails it is left uninitialised, as the error path below assumes. A value
            // written is dropped by `Drop` or on the error path.
            if let Err(e) = unsafe { init(cpu).__init(Slot::value(slot)) } {
                for cpu in possible_cpus().take(done) {
                    // SAFETY: The first `done` possible CPUs (the set and its order are fixed)
                    // were initialised above; each value is dropped once, then `raw` is freed.
                    unsafe { drop_in_place(Slot::value(raw.cpu(cpu))) };
                }
                return Err(e);
            }
        }
        // INVARIANT: Every possible CPU's state and value were initialised above.
        Ok(Self {
            raw,
            _p: PhantomData,
        })
    }

    /// Returns the per-CPU address of the slots.
    #[inline(always)]
    pub(crate) fn percpu(&self) -> *mut Slot<G, T> {
        self.raw.percpu()
    }

    /// Returns the address of `cpu`'s slot.
    #[inline(always)]
    pub(crate) fn cpu(&self, cpu: PossibleCpu) -> *mut Slot<G, T> {
        self.raw.cpu(cpu)
    }

    /// Returns the address of the current CPU's slot.
    #[inline(always)]
    pub(crate) fn this_cpu(&self, preempt: &PreemptGuard) -> *mut Slot<G, T> {
        self.raw.this_cpu(preempt)
    }

    /// Returns `cpu`'s value.
    #[inline]
    pub(crate) fn get_mut(&mut self, cpu: PossibleCpu) -> &mut T {
        // SAFETY: By the type invariants the value is initialised; `&mut self` excludes every
        // other access through `self`, and the owners of `Slots` access values only through it.
        unsafe { &mut *Slot::value(self.raw.cpu(cpu)) }
    }

    /// Calls `f` with each possible CPU and its value.
    pub(crate) fn for_each_mut(&mut self, mut f: impl FnMut(PossibleCpu, &mut T)) {
        for cpu in possible_cpus() {
            f(cpu, self.get_mut(cpu));
        }
    }
}

impl<G: Zeroable, T: Zeroable> Slots<G, T> {
    /// Allocates one zero-filled slot per possible CPU; nothing is written. Errors as
    /// [`RawPerCpu::alloc`].
    #[inline]
    pub(crate) fn new_zeroed(flags: Flags) -> Result<Self> {
        // INVARIANT: The allocator zero-fills, and zero bytes are a valid state and value.
        Ok(Self {
            raw: RawPerCpu::alloc(flags)?,
            _p: PhantomData,
        })
    }
}

impl<G, T> Drop for Slots<G, T> {
    fn drop(&mut self) {
        if needs_drop::<T>() {
            for cpu in possible_cpus() {
                // SAFETY: By the type invariants the value is initialised; it is dropped once,
                // and `&mut self` excludes every other access.
                unsafe { drop_in_place(Slot::value(self.raw.cpu(cpu))) };
            }
        }
    }
}
