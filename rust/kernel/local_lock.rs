// SPDX-License-Identifier: GPL-2.0

//! Per-CPU data protected by a local lock.
//!
//! A local lock (`local_lock_t`) protects per-CPU data against the other code that may run on the
//! same CPU: without `CONFIG_PREEMPT_RT` taking it disables preemption (and, with the irqsave
//! form, interrupts), on `PREEMPT_RT` it is a per-CPU `spinlock_t` that keeps the task on its CPU
//! and stays preemptible. In both cases lockdep sees it, so it reports a local lock taken in
//! hard interrupt context by code whose task-context users left interrupts enabled.
//!
//! [`LocalLock<T>`] keeps one `T` and one lock per possible CPU in a per-CPU allocation and gives
//! `&mut T` for the current CPU's value while the lock is held.
//!
//! C header: [`include/linux/local_lock.h`](srctree/include/linux/local_lock.h)

use crate::{
    alloc::Flags,
    bindings,
    build_assert::const_assert,
    error::Result,
    percpu::{possible_cpus, PossibleCpu, RawPerCpu, MAX_INIT_SIZE},
    str::{CStr, CStrExt as _},
    sync::LockClassKey,
    types::{NotThreadSafe, Opaque},
};
use core::{
    cell::UnsafeCell,
    marker::PhantomData,
    mem::{size_of, ManuallyDrop},
    ops::{Deref, DerefMut},
    pin::Pin,
};
use pin_init::Init;

/// Creates a [`LocalLock`] with a lock class of its own for the call site, and an optional name.
///
/// `new_local_lock!(flags, init)` or `new_local_lock!(flags, init, "name")`, where `init` is as
/// for [`LocalLock::new`].
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

/// One CPU's lock and value.
///
/// # Invariants
///
/// `value` is accessed only by the owner of `lock` on this CPU, or through `&mut LocalLock`.
#[repr(C)]
struct Slot<T> {
    // First: the per-CPU address of the slot is the per-CPU address of the lock.
    lock: Opaque<bindings::local_trylock_t>,
    value: UnsafeCell<T>,
}

/// One `T` per possible CPU, each protected by that CPU's local lock (C's `local_lock_t`).
///
/// [`LocalLock::lock`] takes the current CPU's lock and gives `&mut T` for the current CPU's
/// value; [`LocalLock::lock_irqsave`] also disables interrupts, for data that interrupt handlers
/// use too. The guards can be dropped in any order, like those of
/// [`SpinLockIrq`](crate::sync::SpinLockIrq), with whose interrupt-disabled regions they nest.
///
/// Taking the lock again on a CPU that holds it, by the same task or by an interrupt handler that
/// interrupted the holder, is a locking bug in C (lockdep reports it when the lock's users do not
/// agree on the interrupt state). Here it returns `None`, so the value is never reachable twice;
/// the check is C's `local_trylock()` test and costs one load and one branch. Without
/// `CONFIG_PREEMPT_RT` it is all the locking there is. On `PREEMPT_RT`, where the lock is a
/// sleeping per-CPU `spinlock_t` whose holder may be preempted, taking it is C's
/// `local_trylock()`: `None` while any task holds this CPU's lock (waiting could mean waiting for
/// oneself forever) and in hard interrupt context. In NMI context the result is always `None`.
///
/// Other CPUs' values are reachable through `&mut self` ([`LocalLock::get_mut`]).
///
/// # Examples
///
/// ```
/// use kernel::{new_local_lock, percpu::possible_cpus};
///
/// #[derive(Default)]
/// struct Batch {
///     pending: u32,
///     flushed: u64,
/// }
///
/// let mut batches = new_local_lock!(GFP_KERNEL, |_cpu| Batch::default())?;
/// if let Some(mut b) = batches.lock() {
///     b.pending += 1;
/// }
/// if let Some(mut b) = batches.lock_irqsave() {
///     b.flushed += u64::from(b.pending);
///     b.pending = 0;
/// }
/// let mut flushed = 0;
/// for cpu in possible_cpus() {
///     flushed += batches.get_mut(cpu).flushed;
/// }
/// assert_eq!(flushed, 1);
/// # Ok::<(), Error>(())
/// ```
///
/// # Invariants
///
/// For every possible CPU, the slot of `raw` holds an initialised lock and an initialised `T`.
/// `raw` is dropped only by `Drop`.
pub struct LocalLock<T> {
    raw: ManuallyDrop<RawPerCpu<Slot<T>>>,
    _p: PhantomData<T>,
}

// SAFETY: Dropping a `LocalLock<T>` drops `T`s on the dropping thread: `T` must be `Send`.
unsafe impl<T: Send> Send for LocalLock<T> {}

// SAFETY: `&LocalLock<T>` gives `&mut T` to one owner of a CPU's lock at a time, on the CPU whose
// value it is; the values move between threads, so `T` must be `Send`.
unsafe impl<T: Send> Sync for LocalLock<T> {}

impl<T> LocalLock<T> {
    /// Allocates one lock and one `T` per possible CPU, each value initialised in place by the
    /// initialiser `init(cpu)` returns. Use [`new_local_lock!`] to get a lock class for the
    /// call site.
    ///
    /// As for [`PerCpu::new`](crate::percpu::PerCpu::new), the initialiser may be at most
    /// [`MAX_INIT_SIZE`] bytes (this does not compile otherwise). Returns [`E2BIG`] if one CPU's
    /// lock and value are larger than [`MAX_SIZE`], [`EINVAL`] if `T`'s alignment is larger than
    /// [`MAX_ALIGN`] and [`ENOMEM`] if the allocation fails.
    ///
    /// [`E2BIG`]: crate::error::code::E2BIG
    /// [`EINVAL`]: crate::error::code::EINVAL
    /// [`ENOMEM`]: crate::error::code::ENOMEM
    /// [`MAX_SIZE`]: crate::percpu::MAX_SIZE
    /// [`MAX_ALIGN`]: crate::percpu::MAX_ALIGN
    pub fn new<I: Init<T>>(
        flags: Flags,
        mut init: impl FnMut(PossibleCpu) -> I,
        name: &'static CStr,
        key: Pin<&'static LockClassKey>,
    ) -> Result<Self> {
        const_assert!(
            size_of::<I>() <= MAX_INIT_SIZE,
            "the per-CPU initialiser is larger than MAX_INIT_SIZE: initialise the value in place"
        );
        let raw = RawPerCpu::<Slot<T>>::alloc(flags)?;
        for cpu in possible_cpus() {
            let slot = raw.cpu_ptr(cpu);
            // SAFETY: `slot` is this CPU's slot of the live, zero-filled allocation, which nobody
            // else can reach yet. `name` and `key` are static, as lockdep requires.
            unsafe {
                bindings::local_trylock_init_key(
                    Opaque::cast_into(core::ptr::addr_of!((*slot).lock)),
                    name.as_char_ptr(),
                    key.as_ptr(),
                )
            };
            // SAFETY: As above; `addr_of_mut!` creates no reference to the uninitialised value.
            let value = UnsafeCell::raw_get(unsafe { core::ptr::addr_of_mut!((*slot).value) });
            // SAFETY: `value` is valid for writes of a `T` and not initialised. The initialiser
            // cannot fail.
            match unsafe { init(cpu).__init(value) } {
                Ok(()) => {}
                Err(e) => match e {},
            }
        }
        // INVARIANT: Every possible CPU's lock and value were initialised above.
        Ok(Self {
            raw: ManuallyDrop::new(raw),
            _p: PhantomData,
        })
    }

    /// Returns the per-CPU address of the locks, for the `local_lock()` family.
    #[inline]
    fn lock_ptr(&self) -> *mut bindings::local_trylock_t {
        // The lock is the first field of the `#[repr(C)]` slot.
        self.raw.percpu_ptr().cast()
    }

    /// Takes the current CPU's lock (C's `local_lock()`) and gives access to its value.
    ///
    /// Without `CONFIG_PREEMPT_RT` preemption is disabled until the guard is dropped; on
    /// `PREEMPT_RT` migration is.
    ///
    /// Returns `None` if the current CPU's lock is held already (by the calling task, or by the
    /// code an interrupt handler calling this interrupted) and in NMI context. On `PREEMPT_RT`,
    /// where the lock is a per-CPU `spinlock_t` and its holder may be preempted, this is C's
    /// `local_trylock()`: `None` also while another task holds this CPU's lock, and in hard
    /// interrupt context, where a sleeping lock cannot be taken.
    #[inline]
    pub fn lock(&self) -> Option<LocalLockGuard<'_, T>> {
        // SAFETY: `lock_ptr()` is the per-CPU address of initialised locks (type invariants).
        let lock = unsafe { bindings::local_lock_checked(self.lock_ptr()) };
        if lock.is_null() {
            return None;
        }
        // INVARIANT: `lock` is the lock of the CPU the task runs on, just taken by this task,
        // which stays on that CPU until it is released; the lock is the first field of the
        // `#[repr(C)]` slot.
        Some(LocalLockGuard {
            slot: lock.cast(),
            irq: false,
            _p: PhantomData,
            _not_send: NotThreadSafe,
        })
    }

    /// Takes the current CPU's lock with interrupts disabled (C's `local_lock_irqsave()`).
    ///
    /// Interrupts are disabled in the reference-counted way of
    /// [`SpinLockIrq`](crate::sync::SpinLockIrq) (`local_interrupt_disable()`), so guards may be
    /// dropped in any order. On `PREEMPT_RT`, as in C, interrupts stay enabled: the lock is then
    /// a sleeping lock, which interrupt handlers (threaded there) take like any task.
    ///
    /// Returns `None` as [`LocalLock::lock`] does. In NMI context it returns `None` before it
    /// does anything else: it does not touch the interrupt state there (C's
    /// `local_interrupt_disable()` warns in NMI context).
    #[inline]
    pub fn lock_irqsave(&self) -> Option<LocalLockGuard<'_, T>> {
        // On `PREEMPT_RT` interrupts are left alone, and `local_lock_checked()` tests for NMI
        // context first.
        #[cfg(not(CONFIG_PREEMPT_RT))]
        // SAFETY: `in_nmi()` only reads the preempt count.
        if unsafe { bindings::in_nmi() } {
            return None;
        }
        #[cfg(not(CONFIG_PREEMPT_RT))]
        // SAFETY: Balanced by `local_interrupt_enable()` below or in the guard's `drop`; not in
        // NMI context, tested above.
        unsafe {
            bindings::local_interrupt_disable()
        };
        // SAFETY: `lock_ptr()` is the per-CPU address of initialised locks (type invariants).
        let lock = unsafe { bindings::local_lock_checked(self.lock_ptr()) };
        if lock.is_null() {
            #[cfg(not(CONFIG_PREEMPT_RT))]
            // SAFETY: Ends the region begun above.
            unsafe {
                bindings::local_interrupt_enable()
            };
            return None;
        }
        // INVARIANT: As in `lock()`; without `CONFIG_PREEMPT_RT` the guard also owns one level
        // of the refcounted interrupt-disabled region.
        Some(LocalLockGuard {
            slot: lock.cast(),
            irq: !cfg!(CONFIG_PREEMPT_RT),
            _p: PhantomData,
            _not_send: NotThreadSafe,
        })
    }

    /// Returns `cpu`'s value.
    pub fn get_mut(&mut self, cpu: PossibleCpu) -> &mut T {
        // SAFETY: By the type invariants the value is initialised; `&mut self` excludes every
        // other access.
        unsafe { &mut *(*self.raw.cpu_ptr(cpu)).value.get() }
    }

    /// Calls `f` with each possible CPU and its value.
    pub fn for_each_mut(&mut self, mut f: impl FnMut(PossibleCpu, &mut T)) {
        for cpu in possible_cpus() {
            f(cpu, self.get_mut(cpu));
        }
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
            unsafe { bindings::local_lock_is_held(self.raw.cpu_ptr(cpu).cast()) }
        }) {
            return;
        }
        if core::mem::needs_drop::<T>() {
            for cpu in possible_cpus() {
                // SAFETY: By the type invariants the value is initialised; it is dropped once,
                // and `&mut self` excludes every other access.
                unsafe { core::ptr::drop_in_place((*self.raw.cpu_ptr(cpu)).value.get()) };
            }
        }
        // SAFETY: `raw` is dropped only here, once, and not used afterwards.
        unsafe { ManuallyDrop::drop(&mut self.raw) };
    }
}

/// The current CPU's lock of a [`LocalLock`], held, and access to that CPU's value.
///
/// A guard that is never dropped (`core::mem::forget`) keeps the lock held: later attempts on
/// that CPU get `None`, as a leaked guard of any lock does, and when the [`LocalLock`] is dropped
/// its per-CPU memory (values included) is leaked rather than freed under a held lock.
///
/// The guard keeps the address of the slot it locked, so its value and its unlock stay those of
/// the CPU the lock was taken on even if a bug (sleeping while holding it) moves the task.
///
/// # Invariants
///
/// `slot` is the slot, in a [`LocalLock`] that lives for `'a`, of the CPU the current task took
/// the lock of; the lock is held by this guard. If `irq` is true the guard also owns one level of
/// the refcounted interrupt-disabled region.
#[must_use = "the lock is released immediately when the guard is unused"]
pub struct LocalLockGuard<'a, T> {
    slot: *mut Slot<T>,
    irq: bool,
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
        unsafe { (*self.slot).value.get() }
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
        // SAFETY: By the type invariants this guard holds the lock of `slot`, its first field.
        unsafe { bindings::local_lock_release(self.slot.cast()) };
        if self.irq {
            // SAFETY: By the type invariants the guard owns one level of the region.
            unsafe { bindings::local_interrupt_enable() };
        }
    }
}

#[cfg(CONFIG_RUST_PERCPU_KUNIT_TEST)]
#[macros::kunit_tests(rust_kernel_local_lock)]
mod tests {
    use super::*;
    use crate::sync::atomic::{ordering, Atomic};
    use crate::{alloc::flags::GFP_KERNEL, error::code::*, interrupt::irqs_disabled, irq_work};

    #[test]
    fn task_context() -> Result {
        let mut l = new_local_lock!(GFP_KERNEL, |cpu| u64::from(cpu.as_u32()))?;
        {
            let mut g = l.lock().ok_or(EINVAL)?;
            assert_eq!(*g, u64::from(g.cpu().as_u32()));
            *g += 100;
            // Taken again on the same CPU: refused, never a second `&mut`.
            assert!(l.lock().is_none());
            assert!(l.lock_irqsave().is_none());
        }
        let g = l.lock().ok_or(EINVAL)?;
        let cpu = g.cpu();
        drop(g);
        assert_eq!(*l.get_mut(cpu), u64::from(cpu.as_u32()) + 100);
        Ok(())
    }

    #[test]
    fn irqsave_from_task_and_hardirq() -> Result {
        let l = new_local_lock!(GFP_KERNEL, |_| 0u64)?;
        // Interrupt handlers on every CPU and this task, all with the irqsave form: lockdep
        // stays silent.
        irq_work::run_on_each_cpu(&|| {
            if let Some(mut g) = l.lock_irqsave() {
                *g += 1;
            }
        })?;
        let g = l.lock_irqsave().ok_or(EINVAL)?;
        assert!(cfg!(CONFIG_PREEMPT_RT) || irqs_disabled());
        drop(g);
        assert!(!irqs_disabled());
        let mut l = l;
        let mut total = 0;
        l.for_each_mut(|_, v| total += *v);
        assert_eq!(total, crate::percpu::online_cpus().count() as u64);
        Ok(())
    }

    #[test]
    fn irqsave_guards_dropped_in_any_order() -> Result {
        let a = new_local_lock!(GFP_KERNEL, |_| 0u32)?;
        let b = new_local_lock!(GFP_KERNEL, |_| 0u32)?;
        let ga = a.lock_irqsave().ok_or(EINVAL)?;
        let gb = b.lock_irqsave().ok_or(EINVAL)?;
        drop(ga);
        // `b` is still held: interrupts stay disabled until its guard goes.
        assert!(cfg!(CONFIG_PREEMPT_RT) || irqs_disabled());
        drop(gb);
        assert!(!irqs_disabled());
        Ok(())
    }

    /// Counts its drops in the given counter.
    struct CountsDrops<'a>(&'a Atomic<i32>);

    impl Drop for CountsDrops<'_> {
        fn drop(&mut self) {
            self.0.add(1, ordering::Relaxed);
        }
    }

    #[test]
    fn values_are_dropped() -> Result {
        let drops = Atomic::new(0i32);
        let l = new_local_lock!(GFP_KERNEL, |_| CountsDrops(&drops))?;
        assert_eq!(drops.load(ordering::Relaxed), 0);
        drop(l);
        assert_eq!(
            drops.load(ordering::Relaxed) as usize,
            possible_cpus().count()
        );
        Ok(())
    }

    #[test]
    fn dropped_under_a_forgotten_guard_is_leaked() -> Result {
        let drops = Atomic::new(0i32);
        let l = new_local_lock!(GFP_KERNEL, |_| CountsDrops(&drops))?;
        let percpu = l.raw.percpu_ptr();
        let g = l.lock().ok_or(EINVAL)?;
        let slot = g.slot;
        core::mem::forget(g);
        // This CPU's lock is held: the memory must be leaked, neither values dropped nor freed.
        drop(l);
        let dropped = drops.load(ordering::Relaxed);
        // Test cleanup, which safe code cannot do: release the lock as the forgotten guard would
        // have, then free the leaked allocation (its values need no drop).
        // SAFETY: `slot` is this CPU's slot in the leaked allocation, whose lock this task holds
        // (preemption is still disabled, as the guard left it); `percpu` is that allocation,
        // freed once, and nothing refers to it any more.
        unsafe {
            bindings::local_lock_release(slot.cast());
            bindings::free_percpu(percpu.cast());
        }
        assert_eq!(dropped, 0);
        Ok(())
    }

    #[test]
    fn none_in_nmi_context() -> Result {
        // x86's local APIC sends an NMI to its own CPU; the other test kernels have no NMI to
        // send, and the test checks nothing there.
        #[cfg(CONFIG_X86_LOCAL_APIC)]
        {
            let r = nmi::run()?;
            // In NMI context every attempt returned `None`, without and inside a refcounted
            // interrupt-disabled region (where `SpinLockIrqSave` would join the region), and
            // nothing warned (C's `local_interrupt_disable()` does in NMI context). A kernel that
            // a warning tainted before cannot tell; the clean boot of `make check` fails then.
            assert_eq!(r.plain, Some((nmi::ALL, 0)));
            assert_eq!(r.joined, Some((nmi::ALL, 1)));
            assert!(!r.warned);
        }
        Ok(())
    }

    /// [`LocalLock`] and [`SpinLockIrqSave`](crate::sync::SpinLockIrqSave) in NMI context: an
    /// NMI that the local APIC sends to its own CPU, claimed by a handler of this test, as
    /// `arch/x86/kernel/nmi_selftest.c` does.
    #[cfg(CONFIG_X86_LOCAL_APIC)]
    mod nmi {
        use crate::{
            bindings,
            cpu::CpuId,
            error::to_result,
            interrupt::local_interrupt_disable,
            local_lock::LocalLock,
            new_local_lock,
            percpu::PreemptGuard,
            prelude::*,
            sync::{
                atomic::{Acquire, Atomic, Relaxed, Release},
                new_spinlock_irqsave, SpinLockIrqSave,
            },
            time::{delay::udelay, Delta},
        };
        use core::ptr::null;

        /// The handler ran in NMI context.
        const IN_NMI: i32 = 1 << 0;
        /// `LocalLock::lock()` returned `None`.
        const LOCK_NONE: i32 = 1 << 1;
        /// `LocalLock::lock_irqsave()` returned `None`.
        const LOCK_IRQSAVE_NONE: i32 = 1 << 2;
        /// `SpinLockIrqSave::try_lock_irqsave()` returned `None`.
        const TRY_LOCK_IRQSAVE_NONE: i32 = 1 << 3;
        /// What the handler must find.
        pub(super) const ALL: i32 = IN_NMI | LOCK_NONE | LOCK_IRQSAVE_NONE | TRY_LOCK_IRQSAVE_NONE;

        /// The name the handler is registered under and unregistered by.
        const NAME: &CStr = c"rust_kunit_local_lock_nmi";

        /// The CPU whose next NMI the handler claims, or -1.
        static ARMED: Atomic<i32> = Atomic::new(-1);
        /// Set by the handler (release) once it has stored its results.
        static DONE: Atomic<i32> = Atomic::new(0);
        /// The handler's results (`IN_NMI` and the others).
        static RESULT: Atomic<i32> = Atomic::new(0);
        /// The depth of refcounted interrupt disabling that the handler saw.
        static DEPTH: Atomic<u32> = Atomic::new(0);
        /// The `LocalLock` the handler tries, set by [`run`] before it arms a CPU.
        static LOCAL: Atomic<*const LocalLock<u32>> = Atomic::new(null());
        /// The `SpinLockIrqSave` the handler tries, set by [`run`] before it arms a CPU.
        static IRQSAVE: Atomic<*const SpinLockIrqSave<u32>> = Atomic::new(null());

        /// What the handler found without and inside a refcounted interrupt-disabled region
        /// (`None`: it did not run within a second), and whether a warning tainted the kernel
        /// meanwhile.
        pub(super) struct Outcome {
            pub(super) plain: Option<(i32, u32)>,
            pub(super) joined: Option<(i32, u32)>,
            pub(super) warned: bool,
        }

        /// Claims the NMI armed for this CPU, once, and records what the locks do in it.
        ///
        /// # Safety
        ///
        /// Called by the NMI code only, as the `NMI_LOCAL` handler that [`run`] registers.
        unsafe extern "C" fn handler(_type: c_uint, _regs: *mut bindings::pt_regs) -> c_int {
            let cpu = i32::from(CpuId::current());
            if ARMED.cmpxchg(cpu, -1, Acquire).is_err() {
                return bindings::NMI_DONE as c_int;
            }
            let mut result = 0;
            // SAFETY: `in_nmi()` only reads the preempt count.
            if unsafe { bindings::in_nmi() } {
                result |= IN_NMI;
            }
            // SAFETY: `hardirq_disable_depth()` only reads the preempt count.
            DEPTH.store(unsafe { bindings::hardirq_disable_depth() }, Relaxed);
            // SAFETY: `run` stored the addresses of two locks before it armed a CPU (release),
            // the arming was claimed above (acquire), and the locks live until after `run` has
            // unregistered this handler, which waits for running handlers. They are only shared.
            let (local, irqsave) = unsafe { (&*LOCAL.load(Relaxed), &*IRQSAVE.load(Relaxed)) };
            if local.lock().is_none() {
                result |= LOCK_NONE;
            }
            if local.lock_irqsave().is_none() {
                result |= LOCK_IRQSAVE_NONE;
            }
            if irqsave.try_lock_irqsave(|_| ()).is_none() {
                result |= TRY_LOCK_IRQSAVE_NONE;
            }
            RESULT.store(result, Relaxed);
            DONE.store(1, Release);
            bindings::NMI_HANDLED as c_int
        }

        /// Sends an NMI to this CPU and waits up to a second for the handler; returns its results
        /// and the depth it saw, or `None` if it did not run.
        fn nmi_self() -> Option<(i32, u32)> {
            // The task stays on the CPU that the NMI is sent to, so the NMI interrupts this task.
            let preempt = PreemptGuard::new();
            let cpu = i32::from(preempt.cpu().id());
            DONE.store(0, Relaxed);
            ARMED.store(cpu, Release);
            // SAFETY: `cpu` is the CPU this task runs on, online. The helper has the local APIC
            // send it an NMI, which `handler` claims.
            unsafe { bindings::apic_send_nmi(cpu) };
            let mut waited = 0;
            while DONE.load(Acquire) == 0 && waited < 100_000 {
                udelay(Delta::from_micros(10));
                waited += 1;
            }
            // Disarm, so that no later NMI runs the checks. If the handler claimed the NMI, it
            // has finished: it ran on this CPU, which runs this task again.
            let timed_out = ARMED.cmpxchg(cpu, -1, Relaxed).is_ok();
            drop(preempt);
            if timed_out || DONE.load(Acquire) == 0 {
                return None;
            }
            Some((RESULT.load(Relaxed), DEPTH.load(Relaxed)))
        }

        /// Whether a warning has tainted the kernel (`TAINT_WARN`).
        fn warned() -> bool {
            // SAFETY: `test_taint()` only reads the taint flags.
            unsafe { bindings::test_taint(bindings::TAINT_WARN) != 0 }
        }

        /// Registers the handler, runs it in an NMI without and inside a refcounted
        /// interrupt-disabled region, and unregisters it.
        pub(super) fn run() -> Result<Outcome> {
            let local = new_local_lock!(GFP_KERNEL, |_| 0u32)?;
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
            let irqsave_ref: &SpinLockIrqSave<u32> = &irqsave;
            LOCAL.store(&local, Relaxed);
            IRQSAVE.store(irqsave_ref, Relaxed);
            let warned_before = warned();
            // SAFETY: `action` is a live `nmiaction` with an empty list, a handler and a name no
            // other handler has. It stays live until `unregister_nmi_handler()` below has
            // returned, which waits for the handlers running (in RCU read-side sections).
            let ret = unsafe { bindings::__register_nmi_handler(bindings::NMI_LOCAL, action) };
            let results = to_result(ret).map(|()| {
                let plain = nmi_self();
                let region = local_interrupt_disable();
                let joined = nmi_self();
                drop(region);
                let name = NAME.as_char_ptr();
                // SAFETY: Registered above under `NAME`.
                unsafe { bindings::unregister_nmi_handler(bindings::NMI_LOCAL, name) };
                (plain, joined)
            });
            // SAFETY: `action` came from `KBox::into_raw()` above. It is not registered (any
            // more), and no handler runs it: `unregister_nmi_handler()` waited for them.
            drop(unsafe { KBox::from_raw(action) });
            LOCAL.store(null(), Relaxed);
            IRQSAVE.store(null(), Relaxed);
            let (plain, joined) = results?;
            Ok(Outcome {
                plain,
                joined,
                warned: !warned_before && warned(),
            })
        }
    }
}
