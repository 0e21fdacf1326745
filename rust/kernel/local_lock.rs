// SPDX-License-Identifier: GPL-2.0

//! Per-CPU data protected by a local lock.
//!
//! A local lock (C's `local_trylock_t`) protects per-CPU data against the other code that may
//! run on the same CPU. [`LocalLock<T>`] keeps one `T` and one lock per possible CPU in a per-CPU
//! allocation and gives `&mut T` for the current CPU's value while the lock is held. Taking a
//! lock that this CPU holds already (the same task, or the code an interrupt handler
//! interrupted) returns `None`, so the value is never reachable twice.
//!
//! # Context
//!
//! - Task and interrupt context: without `PREEMPT_RT` the lock is C's `acquired` flag, tested and
//!   set with preemption ([`LocalLock::lock`]) or interrupts ([`LocalLock::lock_irqsave`])
//!   disabled. Lockdep sees `lock()` as a plain acquisition, so it reports a lock taken with
//!   `lock()` in hard interrupt context and elsewhere with interrupts enabled; `lock_irqsave()` is
//!   a trylock for lockdep, as in C.
//! - NMI: `lock()` returns `None`; `lock_irqsave()` works, as C's `local_trylock_irqsave()` does.
//! - `PREEMPT_RT`: the lock is a per-CPU `spinlock_t`; its holder stays preemptible, on its CPU,
//!   with interrupts enabled. Both forms are C's `local_trylock()`: `None` also while another
//!   task holds this CPU's lock (waiting could mean waiting for oneself), and in hard interrupt
//!   and NMI context.
//! - Without `CONFIG_SMP`: the same flag, on the only CPU.
//! - Sleeping with the lock held is a bug, reported as in C. The lock is released through its
//!   address, so the value and the unlock stay those of the CPU it was taken on.
//!
//! C header: [`include/linux/local_lock.h`](srctree/include/linux/local_lock.h)

use crate::{
    alloc::Flags,
    bindings,
    cpu::PossibleCpu,
    error::{
        Error,
        Result, //
    },
    ffi::c_ulong,
    percpu::{
        possible_cpus,
        slot::{
            Slot,
            Slots, //
        },
        RawPerCpu, //
    },
    str::{
        CStr,
        CStrExt as _, //
    },
    sync::{
        barrier::barrier,
        LockClassKey, //
    },
    try_init,
    types::{
        NotThreadSafe,
        Opaque, //
    }, //
};
use core::{
    marker::PhantomData,
    mem::ManuallyDrop,
    ops::{
        Deref,
        DerefMut, //
    },
    pin::Pin, //
};
use pin_init::Init;

/// Creates a [`LocalLock`] initialiser with a lock class of its own for the call site.
///
/// `new_local_lock!(flags, init)` or `new_local_lock!(flags, init, "name")`, with `flags` and
/// `init` as for [`LocalLock::new`]. The per-CPU memory is allocated when the initialiser runs.
///
/// # Examples
///
/// ```
/// use kernel::{local_lock::LocalLock, new_local_lock};
///
/// #[pin_data]
/// struct Stats {
///     hits: LocalLock<u64>,
/// }
///
/// let stats = KBox::pin_init(
///     try_pin_init!(Stats {
///         hits <- new_local_lock!(GFP_KERNEL, |_cpu| 0u64, "stats_hits"),
///     }),
///     GFP_KERNEL,
/// )?;
/// assert_eq!(stats.hits.lock_irqsave(|h| { *h += 1; *h }), Some(1));
/// # Ok::<(), Error>(())
/// ```
#[macro_export]
macro_rules! new_local_lock {
    ($flags:expr, $init:expr $(, $name:literal)? $(,)?) => {
        $crate::local_lock::LocalLock::new(
            $flags,
            $init,
            $crate::optional_name!($($name)?),
            $crate::static_lock_class!(),
        )
    };
}
pub use new_local_lock;

/// The state of one CPU's lock, first in its [`Slot`]: the per-CPU address of the slot is the
/// per-CPU address of the lock.
type LockState = Opaque<bindings::local_trylock_t>;

/// One `T` per possible CPU, each protected by that CPU's local lock.
///
/// [`LocalLock::lock`] gives a guard, [`LocalLock::lock_irqsave`] runs a closure with interrupts
/// disabled; other CPUs' values are reachable through `&mut self` ([`LocalLock::get_mut`]).
///
/// Guards that end out of order: not offered for the irqsave form; nest closures.
///
/// # Examples
///
/// ```
/// use kernel::new_local_lock;
///
/// #[derive(Default)]
/// struct Batch {
///     pending: u32,
///     flushed: u64,
/// }
///
/// let mut batches = KBox::init(
///     new_local_lock!(GFP_KERNEL, |_cpu| Batch::default()),
///     GFP_KERNEL,
/// )?;
/// if let Some(mut b) = batches.lock() {
///     b.pending += 1;
/// }
/// // The task may have moved to another CPU meanwhile: the sum below counts every CPU.
/// batches.lock_irqsave(|b| {
///     b.flushed += u64::from(b.pending);
///     b.pending = 0;
/// });
/// let mut total = 0;
/// batches.for_each_mut(|_cpu, b| total += b.flushed + u64::from(b.pending));
/// assert_eq!(total, 1);
/// # Ok::<(), Error>(())
/// ```
///
/// # Invariants
///
/// For every possible CPU, the slot in `slots` holds an initialised lock; its value is accessed
/// only by the owner of that lock on that CPU, or through `&mut LocalLock`. `slots` is dropped
/// only by `Drop`.
pub struct LocalLock<T> {
    slots: ManuallyDrop<Slots<LockState, T>>,
}

// SAFETY: Dropping a `LocalLock<T>` drops `T`s on the dropping thread: `T` must be `Send`.
unsafe impl<T: Send> Send for LocalLock<T> {}

// SAFETY: `&LocalLock<T>` gives `&mut T` to one owner of a CPU's lock at a time, on the CPU whose
// value it is; the values move between threads, so `T` must be `Send`.
unsafe impl<T: Send> Sync for LocalLock<T> {}

impl<T> LocalLock<T> {
    /// Returns an initialiser of one lock and one `T` per possible CPU.
    ///
    /// When it runs, it allocates the per-CPU memory with `flags` and initialises each CPU's
    /// value in place with the initialiser `init(cpu)` returns, which may be at most
    /// [`MAX_INIT_SIZE`] bytes (this does not compile otherwise). It fails with [`E2BIG`] if one
    /// CPU's lock and value are larger than [`MAX_SIZE`], [`EINVAL`] if `T`'s alignment is larger
    /// than [`MAX_ALIGN`] and [`ENOMEM`] if the allocation fails; no value has been initialised
    /// then and nothing is left allocated (with `KBox::init()`, the box is freed too).
    /// [`new_local_lock!`] adds a lock class for the call site.
    ///
    /// [`E2BIG`]: crate::error::code::E2BIG
    /// [`EINVAL`]: crate::error::code::EINVAL
    /// [`ENOMEM`]: crate::error::code::ENOMEM
    /// [`MAX_INIT_SIZE`]: crate::percpu::MAX_INIT_SIZE
    /// [`MAX_SIZE`]: crate::percpu::MAX_SIZE
    /// [`MAX_ALIGN`]: crate::percpu::MAX_ALIGN
    pub fn new<I: Init<T>>(
        flags: Flags,
        init: impl FnMut(PossibleCpu) -> I,
        name: &'static CStr,
        key: Pin<&'static LockClassKey>,
    ) -> impl Init<Self, Error> {
        // INVARIANT: `init_slots` initialises every possible CPU's lock and value.
        try_init!(Self {
            slots: ManuallyDrop::new(Self::init_slots(flags, init, name, key)?),
        })
    }

    /// Allocates the slots and initialises every possible CPU's lock and value.
    fn init_slots<I: Init<T>>(
        flags: Flags,
        init: impl FnMut(PossibleCpu) -> I,
        name: &'static CStr,
        key: Pin<&'static LockClassKey>,
    ) -> Result<Slots<LockState, T>> {
        let init_lock = |lock: *mut LockState| {
            // SAFETY: `lock` is a CPU's zero-filled lock in a live allocation that nobody else can
            // reach yet. `name` and `key` are static, as lockdep requires.
            unsafe {
                bindings::local_trylock_init_key(
                    Opaque::cast_into(lock),
                    name.as_char_ptr(),
                    key.as_ptr(),
                )
            }
        };
        match Slots::init_each(RawPerCpu::alloc(flags)?, init_lock, init) {
            Ok(slots) => Ok(slots),
            Err(e) => match e {},
        }
    }

    /// Returns the per-CPU address of the locks, for the `local_lock()` family.
    #[inline]
    fn lock_ptr(&self) -> *mut bindings::local_trylock_t {
        // The lock is the first field of the `#[repr(C)]` slot.
        self.slots.percpu().cast()
    }

    /// Takes the current CPU's lock (C's `local_lock()`) and gives access to its value.
    ///
    /// Preemption (on `PREEMPT_RT`, migration) stays disabled until the guard is dropped. Returns
    /// `None` if this CPU holds the lock already, and in the contexts that the
    /// [module documentation](self) lists.
    #[inline]
    pub fn lock(&self) -> Option<LocalLockGuard<'_, T>> {
        // SAFETY: `lock_ptr()` is the per-CPU address of initialised locks (type invariants).
        let lock = unsafe { bindings::local_lock_checked(self.lock_ptr()) };
        if lock.is_null() {
            return None;
        }
        // Keep the accesses to the value after the lock is taken.
        barrier();
        // INVARIANT: `lock` is the lock of the CPU the task runs on, just taken by this task,
        // which stays on that CPU until it is released; the lock is the first field of the
        // `#[repr(C)]` slot.
        Some(LocalLockGuard {
            slot: lock.cast(),
            _p: PhantomData,
            _not_send: NotThreadSafe,
        })
    }

    /// Runs `f` on the current CPU's value with the lock held and interrupts disabled, then
    /// restores the saved interrupt state.
    ///
    /// This is C's `local_trylock_irqsave()` and `local_unlock_irqrestore()`; on `PREEMPT_RT`
    /// interrupts stay enabled. Returns `None`, without calling `f`, if this CPU holds the lock
    /// already (inside `f`, under a [`LocalLock::lock`] guard, or in the code that an interrupt
    /// or NMI handler calling this interrupted), and in the contexts that the
    /// [module documentation](self) lists.
    ///
    /// # Interrupt-disabled regions
    ///
    /// `f`, its result and `T` are [`Send`]; the guards of refcounted interrupt-disabled regions
    /// ([`LocalInterruptDisabled`], the guards of [`SpinLockIrq`]) and their tokens are not. So
    /// no region crosses the closure's boundary: one that is open when `f` starts cannot end
    /// inside it, and one that begins inside it ends there (or is leaked). The state saved on
    /// entry is then the one to restore, with no read of the refcounted depth at either end
    /// (which [`SpinLockIrqSave`] pays, as its closures let regions cross).
    ///
    /// # Examples
    ///
    /// ```
    /// use kernel::new_local_lock;
    ///
    /// let l = KBox::init(new_local_lock!(GFP_KERNEL, |_| 1u32), GFP_KERNEL)?;
    /// assert_eq!(l.lock_irqsave(|v| { *v += 1; *v }), Some(2));
    /// // Held already on this CPU: the nested closure does not run.
    /// assert_eq!(l.lock_irqsave(|_| l.lock_irqsave(|v| *v)), Some(None));
    /// # Ok::<(), Error>(())
    /// ```
    ///
    /// [`LocalInterruptDisabled`]: crate::interrupt::LocalInterruptDisabled
    /// [`SpinLockIrq`]: crate::sync::SpinLockIrq
    /// [`SpinLockIrqSave`]: crate::sync::SpinLockIrqSave
    #[inline]
    pub fn lock_irqsave<R: Send>(&self, f: impl FnOnce(&mut T) -> R + Send) -> Option<R>
    where
        T: Send,
    {
        let lock = self.lock_ptr();
        let mut flags: c_ulong = 0;
        // No `in_nmi()` test: without `PREEMPT_RT`, saving and disabling interrupts is harmless in
        // NMI context, an NMI that interrupted a holder on this CPU finds the flag set, and one
        // that interrupted a task between its test and its set of the flag releases the lock
        // before that task resumes. Nothing here calls `local_interrupt_disable()`, which warns
        // in NMI context. On `PREEMPT_RT`, C's trylock fails in NMI context.
        // SAFETY: `lock` is the per-CPU address of initialised locks (type invariants), and
        // `flags` is valid for writes.
        if !unsafe { bindings::local_trylock_irqsave(lock, &mut flags) } {
            return None;
        }
        // SAFETY: `lock` is a per-CPU address, and the task stays on its CPU until the lock is
        // released: interrupts are disabled, or on `PREEMPT_RT` migration is.
        let slot: *mut Slot<LockState, T> = unsafe { bindings::this_cpu_ptr(lock.cast()) }.cast();
        // Keep the accesses to the value between the set and the clear of the flag: an interrupt
        // or NMI handler on this CPU may take the lock outside them.
        barrier();
        // SAFETY: The task holds the lock of `slot`, this CPU's slot, whose value is initialised
        // (type invariants) and accessed only by the holder of its lock. The borrow ends when `f`
        // returns, before the lock is released.
        let r = f(unsafe { &mut *Slot::value(slot) });
        barrier();
        // SAFETY: The task took the lock of `slot` above, with the state saved in `flags`, and
        // releases it once. Every interrupt-disabled region begun since has ended: closures
        // nest, and `f` can keep no region (see the documentation above).
        unsafe { bindings::local_lock_release_irqrestore(slot.cast(), flags) };
        Some(r)
    }

    /// Returns `cpu`'s value.
    #[inline]
    pub fn get_mut(&mut self, cpu: PossibleCpu) -> &mut T {
        self.slots.get_mut(cpu)
    }

    /// Calls `f` with each possible CPU and its value.
    pub fn for_each_mut(&mut self, f: impl FnMut(PossibleCpu, &mut T)) {
        self.slots.for_each_mut(f)
    }
}

impl<T> Drop for LocalLock<T> {
    fn drop(&mut self) {
        // A guard passed to `mem::forget` leaves its CPU's lock held for ever, and lockdep keeps
        // the lock among the held locks of the task that took it. Freeing it would let lockdep
        // read and write freed memory (the per-CPU allocator, unlike `kfree()`, does not check
        // for held locks): the whole allocation is leaked instead, values included.
        if possible_cpus().any(|cpu| {
            // SAFETY: The slot of a possible CPU is valid, and its lock was initialised in `new`;
            // the helper only reads it.
            unsafe { bindings::local_lock_is_held(self.slots.cpu(cpu).cast()) }
        }) {
            return;
        }
        // SAFETY: `slots` is dropped only here, once, and not used afterwards. No lock is held,
        // so its values and memory can go.
        unsafe { ManuallyDrop::drop(&mut self.slots) };
    }
}

/// The current CPU's lock of a [`LocalLock`], taken by [`LocalLock::lock`], and access to that
/// CPU's value.
///
/// A guard that is never dropped (`core::mem::forget`) keeps the lock held: later attempts on
/// that CPU get `None`, and when the [`LocalLock`] is dropped its per-CPU memory (values
/// included) is leaked rather than freed under a held lock.
///
/// # Invariants
///
/// `slot` is the slot, in a [`LocalLock`] that lives for `'a`, of the CPU the current task took
/// the lock of with `local_lock_checked()`; the lock is held by this guard.
///
/// # Examples
///
/// ```compile_fail,E0277
/// # let l = KBox::init(kernel::new_local_lock!(GFP_KERNEL, |_| 0u64), GFP_KERNEL)?;
/// # fn assert_send<T: Send>(_: &T) {}
/// let g = l.lock();
/// assert_send(&g); // The guard holds this CPU's lock for this task.
/// # Ok::<(), Error>(())
/// ```
#[must_use = "the lock is released immediately when the guard is unused"]
pub struct LocalLockGuard<'a, T> {
    slot: *mut Slot<LockState, T>,
    _p: PhantomData<&'a LocalLock<T>>,
    _not_send: NotThreadSafe,
}

impl<T> LocalLockGuard<'_, T> {
    /// Returns the CPU the task runs on: the CPU whose value this is, unless a bug (sleeping while
    /// holding the lock) moved the task, in which case the value stays that of the CPU the lock
    /// was taken on.
    #[inline]
    pub fn cpu(&self) -> PossibleCpu {
        PossibleCpu::current()
    }

    #[inline]
    fn value(&self) -> *mut T {
        // SAFETY: By the type invariants `slot` points to a live slot.
        unsafe { Slot::value(self.slot) }
    }
}

impl<T> Deref for LocalLockGuard<'_, T> {
    type Target = T;

    #[inline]
    fn deref(&self) -> &T {
        // SAFETY: The guard owns this CPU's lock, so nothing else accesses the value.
        unsafe { &*self.value() }
    }
}

impl<T> DerefMut for LocalLockGuard<'_, T> {
    #[inline]
    fn deref_mut(&mut self) -> &mut T {
        // SAFETY: The guard owns this CPU's lock, so nothing else accesses the value.
        unsafe { &mut *self.value() }
    }
}

impl<T> Drop for LocalLockGuard<'_, T> {
    #[inline]
    fn drop(&mut self) {
        // Keep the accesses to the value before the lock is released.
        barrier();
        // SAFETY: By the type invariants this guard holds the lock of `slot`, its first field,
        // taken with `local_lock_checked()`.
        unsafe { bindings::local_lock_release(self.slot.cast()) };
    }
}

#[cfg(CONFIG_RUST_PERCPU_KUNIT_TEST)]
mod tests;
