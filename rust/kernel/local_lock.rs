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
    /// than [`MAX_ALIGN`] and [`ENOMEM`] if the allocation fails. [`new_local_lock!`] adds a lock
    /// class for the call site.
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
#[macros::kunit_tests(rust_kernel_local_lock)]
mod tests {
    use super::*;
    use crate::{
        interrupt::{
            irqs_disabled,
            local_interrupt_disable, //
        },
        irq_work,
        prelude::*,
        sync::atomic::{
            ordering::Relaxed,
            Atomic, //
        }, //
    };

    #[test]
    fn task_context() -> Result {
        let mut l = KBox::init(new_local_lock!(GFP_KERNEL, |_| 7u64), GFP_KERNEL)?;
        let mut g = l.lock().ok_or(EINVAL)?;
        let cpu = g.cpu();
        *g += 100;
        // Taken again on the same CPU: refused, never a second `&mut`.
        let refused = l.lock().is_none() && l.lock_irqsave(|_| ()).is_none();
        drop(g);
        assert!(refused);
        assert_eq!(*l.get_mut(cpu), 107);
        Ok(())
    }

    #[test]
    fn irqsave_from_task_and_hardirq() -> Result {
        let mut l = KBox::init(new_local_lock!(GFP_KERNEL, |_| 0u64), GFP_KERNEL)?;
        // Interrupt handlers on every CPU and this task, all with the irqsave form: lockdep
        // stays silent.
        irq_work::run_on_each_cpu(&|| {
            let _ = l.lock_irqsave(|v| *v += 1);
        })?;
        let inside = l.lock_irqsave(|_| irqs_disabled()).ok_or(EINVAL)?;
        let after = irqs_disabled();
        let mut total = 0;
        l.for_each_mut(|_, v| total += *v);
        assert!(cfg!(CONFIG_PREEMPT_RT) || inside);
        assert!(!after);
        assert_eq!(total, crate::percpu::online_cpus().count() as u64);
        Ok(())
    }

    #[test]
    fn nested_closures_restore_flags_in_order() -> Result {
        let a = KBox::init(new_local_lock!(GFP_KERNEL, |_| 0u32), GFP_KERNEL)?;
        let b = KBox::init(new_local_lock!(GFP_KERNEL, |_| 0u32), GFP_KERNEL)?;
        let seen = a.lock_irqsave(|x| {
            *x += 1;
            let inner = b.lock_irqsave(|_| irqs_disabled());
            // `b` restored the state it saved, "disabled": `a` is still held.
            (inner, irqs_disabled(), a.lock_irqsave(|_| ()).is_none())
        });
        let after = irqs_disabled();
        // Inside a refcounted region, the closure restores the state it found and the region its
        // own. Not on `PREEMPT_RT`, where the region disables interrupts that the lock keeps on.
        let mut in_region = (true, true);
        if !cfg!(CONFIG_PREEMPT_RT) {
            let region = local_interrupt_disable();
            in_region.0 = a.lock_irqsave(|_| ()).is_some() && irqs_disabled();
            drop(region);
            in_region.1 = !irqs_disabled();
        }
        let rt = cfg!(CONFIG_PREEMPT_RT);
        assert_eq!(seen, Some((Some(!rt), !rt, true)));
        assert!(!after);
        assert_eq!(in_region, (true, true));
        Ok(())
    }

    /// Counts its drops in the given counter.
    struct CountsDrops<'a>(&'a Atomic<i32>);

    impl Drop for CountsDrops<'_> {
        fn drop(&mut self) {
            self.0.add(1, Relaxed);
        }
    }

    #[test]
    fn dropped_under_a_forgotten_guard_is_leaked() -> Result {
        let drops = Atomic::new(0i32);
        let new = || {
            KBox::init(
                new_local_lock!(GFP_KERNEL, |_| CountsDrops(&drops)),
                GFP_KERNEL,
            )
        };
        // Without a held lock, every value is dropped.
        drop(new()?);
        let all = drops.xchg(0, Relaxed);
        let l = new()?;
        let percpu = l.slots.percpu();
        let g = l.lock().ok_or(EINVAL)?;
        let slot = g.slot;
        core::mem::forget(g);
        // This CPU's lock is held: the memory must be leaked, neither values dropped nor freed.
        drop(l);
        let dropped = drops.load(Relaxed);
        // Test cleanup, which safe code cannot do: release the lock as the forgotten guard would
        // have, then free the leaked allocation (its values need no drop).
        // SAFETY: `slot` is this CPU's slot in the leaked allocation, whose lock this task holds
        // (preemption is still disabled, as the guard left it); `percpu` is that allocation,
        // freed once, and nothing refers to it any more.
        unsafe {
            bindings::local_lock_release(slot.cast());
            bindings::free_percpu(percpu.cast());
        }
        assert_eq!(all as usize, possible_cpus().count());
        assert_eq!(dropped, 0);
        Ok(())
    }

    #[test]
    fn nmi_context() -> Result {
        // x86's local APIC sends an NMI to its own CPU; the other test kernels have no NMI to
        // send, and the test checks nothing there.
        #[cfg(CONFIG_X86_LOCAL_APIC)]
        {
            let (found, total, warned) = nmi::run()?;
            // In NMI context, `lock()` and `SpinLockIrqSave::try_lock_irqsave()` return `None`.
            // `lock_irqsave()` runs its closure (not on `PREEMPT_RT`), inside a refcounted
            // interrupt-disabled region too, and returns `None` when the NMI interrupted a
            // holder. Nothing warned: a kernel that a warning tainted before cannot tell, and the
            // clean boot of `make check` fails then.
            let ran = if cfg!(CONFIG_PREEMPT_RT) { 0 } else { nmi::RAN };
            let all = nmi::ALWAYS;
            assert_eq!(
                found,
                [Some(all | ran), Some(all | ran | nmi::DEPTH_1), Some(all)]
            );
            assert_eq!(total, if ran != 0 { 2 } else { 0 });
            assert!(!warned);
        }
        Ok(())
    }

    /// [`LocalLock`] and [`SpinLockIrqSave`](crate::sync::SpinLockIrqSave) in NMI context: an
    /// NMI that the local APIC sends to its own CPU, claimed by a handler of this test, as
    /// `arch/x86/kernel/nmi_selftest.c` does.
    #[cfg(CONFIG_X86_LOCAL_APIC)]
    mod nmi {
        use super::*;
        use crate::{
            cpu::CpuId,
            error::to_result,
            percpu::PreemptGuard,
            sync::{
                atomic::{
                    Acquire,
                    Release, //
                },
                new_spinlock_irqsave,
                SpinLockIrqSave, //
            },
            time::{
                delay::udelay,
                Delta, //
            }, //
        };
        use core::ptr::null;

        // What the handler finds: it runs in NMI context, `LocalLock::lock()` and
        // `SpinLockIrqSave::try_lock_irqsave()` return `None`, `LocalLock::lock_irqsave()` runs
        // its closure; from bit 8, the depth of refcounted interrupt disabling.
        const IN_NMI: i32 = 1 << 0;
        const LOCK_NONE: i32 = 1 << 1;
        const TRY_LOCK_IRQSAVE_NONE: i32 = 1 << 2;
        pub(super) const RAN: i32 = 1 << 3;
        pub(super) const DEPTH_1: i32 = 1 << 8;
        pub(super) const ALWAYS: i32 = IN_NMI | LOCK_NONE | TRY_LOCK_IRQSAVE_NONE;

        /// The name the handler is registered under and unregistered by.
        const NAME: &CStr = c"rust_kunit_local_lock_nmi";
        /// The CPU whose next NMI the handler claims, or -1.
        static ARMED: Atomic<i32> = Atomic::new(-1);
        /// The handler's findings, stored with release; -1 until then.
        static FOUND: Atomic<i32> = Atomic::new(-1);
        /// The locks the handler tries, set by [`run`] before it arms a CPU.
        static LOCAL: Atomic<*const LocalLock<u32>> = Atomic::new(null());
        static IRQSAVE: Atomic<*const SpinLockIrqSave<u32>> = Atomic::new(null());

        /// Claims the NMI armed for this CPU, once, and records what the locks do in it.
        ///
        /// # Safety
        ///
        /// Called by the NMI code only, as the `NMI_LOCAL` handler that [`run`] registers.
        unsafe extern "C" fn handler(_type: c_uint, _regs: *mut bindings::pt_regs) -> c_int {
            if ARMED
                .cmpxchg(i32::from(CpuId::current()), -1, Acquire)
                .is_err()
            {
                return bindings::NMI_DONE as c_int;
            }
            // SAFETY: `hardirq_disable_depth()` only reads the preempt count.
            let depth = unsafe { bindings::hardirq_disable_depth() };
            // CAST: The depth is at most 255 (`HARDIRQ_DISABLE_BITS`).
            let mut found = (depth as i32) << 8;
            // SAFETY: `in_nmi()` only reads the preempt count.
            if unsafe { bindings::in_nmi() } {
                found |= IN_NMI;
            }
            // SAFETY: `run` stored the addresses of two locks before it armed a CPU (release),
            // the arming was claimed above (acquire), and the locks live until after `run` has
            // unregistered this handler, which waits for running handlers. They are only shared.
            let (local, irqsave) = unsafe { (&*LOCAL.load(Relaxed), &*IRQSAVE.load(Relaxed)) };
            if local.lock().is_none() {
                found |= LOCK_NONE;
            }
            if local.lock_irqsave(|v| *v += 1).is_some() {
                found |= RAN;
            }
            if irqsave.try_lock_irqsave(|_| ()).is_none() {
                found |= TRY_LOCK_IRQSAVE_NONE;
            }
            FOUND.store(found, Release);
            bindings::NMI_HANDLED as c_int
        }

        /// Sends an NMI to this CPU and waits up to a second for the handler's findings.
        fn nmi_self() -> Option<i32> {
            // The task stays on the CPU that the NMI is sent to, so the NMI interrupts this task.
            let preempt = PreemptGuard::new();
            let cpu = i32::from(preempt.cpu().id());
            FOUND.store(-1, Relaxed);
            ARMED.store(cpu, Release);
            // SAFETY: `cpu` is the CPU this task runs on, online. The helper has the local APIC
            // send it an NMI, which `handler` claims.
            unsafe { bindings::apic_send_nmi(cpu) };
            for _ in 0..100_000 {
                if FOUND.load(Acquire) >= 0 {
                    break;
                }
                udelay(Delta::from_micros(10));
            }
            // Disarm, so that no later NMI runs the checks. If the handler claimed the NMI, it
            // has finished: it ran on this CPU, which runs this task again.
            let timed_out = ARMED.cmpxchg(cpu, -1, Relaxed).is_ok();
            drop(preempt);
            let found = FOUND.load(Acquire);
            (!timed_out && found >= 0).then_some(found)
        }

        /// Whether a warning has tainted the kernel (`TAINT_WARN`).
        fn warned() -> bool {
            // SAFETY: `test_taint()` only reads the taint flags.
            unsafe { bindings::test_taint(bindings::TAINT_WARN) != 0 }
        }

        /// Registers the handler and runs it in three NMIs: with the lock free, inside a
        /// refcounted interrupt-disabled region, and under `lock_irqsave()`. Returns its findings
        /// (`None`: it did not run), the sum of the values and whether a warning tainted the
        /// kernel meanwhile.
        pub(super) fn run() -> Result<([Option<i32>; 3], u32, bool)> {
            let mut local = KBox::init(new_local_lock!(GFP_KERNEL, |_| 0u32), GFP_KERNEL)?;
            let irqsave = KBox::pin_init(
                new_spinlock_irqsave!(0u32, "kunit_local_lock_nmi"),
                GFP_KERNEL,
            )?;
            let action = KBox::into_raw(KBox::new(
                bindings::nmiaction {
                    list: bindings::list_head::default(),
                    handler: Some(handler),
                    max_duration: 0,
                    flags: 0,
                    name: NAME.as_char_ptr(),
                },
                GFP_KERNEL,
            )?);
            // SAFETY: `action` points to a live `nmiaction`; `__register_nmi_handler()` wants its
            // list empty.
            unsafe { bindings::INIT_LIST_HEAD(&raw mut (*action).list) };
            let local_ref: &LocalLock<u32> = &local;
            let irqsave_ref: &SpinLockIrqSave<u32> = &irqsave;
            LOCAL.store(local_ref, Relaxed);
            IRQSAVE.store(irqsave_ref, Relaxed);
            let warned_before = warned();
            // SAFETY: `action` is a live `nmiaction` with an empty list, a handler and a name no
            // other handler has. It stays live until `unregister_nmi_handler()` below has
            // returned, which waits for the handlers running (in RCU read-side sections).
            let ret = unsafe { bindings::__register_nmi_handler(bindings::NMI_LOCAL, action) };
            let found = to_result(ret).map(|()| {
                let free = nmi_self();
                let region = local_interrupt_disable();
                let in_region = nmi_self();
                drop(region);
                let held = local_ref.lock_irqsave(|_| nmi_self()).flatten();
                // SAFETY: Registered above under `NAME`.
                unsafe {
                    bindings::unregister_nmi_handler(bindings::NMI_LOCAL, NAME.as_char_ptr())
                };
                [free, in_region, held]
            });
            // SAFETY: `action` came from `KBox::into_raw()` above. It is not registered (any
            // more), and no handler runs it: `unregister_nmi_handler()` waited for them.
            drop(unsafe { KBox::from_raw(action) });
            LOCAL.store(null(), Relaxed);
            IRQSAVE.store(null(), Relaxed);
            let found = found?;
            let mut total = 0;
            local.for_each_mut(|_, v| total += *v);
            Ok((found, total, !warned_before && warned()))
        }
    }
}
