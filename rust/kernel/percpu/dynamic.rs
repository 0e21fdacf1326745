// SPDX-License-Identifier: GPL-2.0

//! Dynamic per-CPU values of any type, reached through a guard on the current CPU.

use super::{
    slot::{
        Slot,
        Slots, //
    },
    RawPerCpu, //
};
use crate::{
    alloc::Flags,
    cpu::PossibleCpu,
    error::{
        Error,
        Result, //
    },
    preempt::PreemptGuard,
    sync::atomic::{
        ordering,
        Atomic, //
    }, //
};
use core::{
    marker::PhantomData,
    ops::{
        Deref,
        DerefMut, //
    }, //
};
use pin_init::{Init, Zeroable};

/// Largest size, in bytes, of the per-CPU initialiser that [`PerCpu::new`] and
/// [`PerCpu::try_new`] accept.
///
/// The initialiser is returned by value on the kernel stack, once for every CPU. A plain value is
/// its own initialiser, so a `T` larger than this must be initialised in place (for example with
/// [`init!`](pin_init::init!) or [`pin_init::init_zeroed`]); larger initialisers do not
/// compile.
pub const MAX_INIT_SIZE: usize = 1024;

/// The access flag of a [`PerCpu`] or [`StaticPerCpu`](super::StaticPerCpu) slot: 1 while a
/// [`LocalGuard`] gives access to the value.
#[repr(transparent)]
pub(crate) struct Busy(Atomic<i32>);

impl Busy {
    /// A flag that is not set.
    pub(crate) const fn new() -> Self {
        Self(Atomic::new(0))
    }
}

// SAFETY: All-zero bytes are a valid `Atomic<i32>`: a flag that is not set.
unsafe impl Zeroable for Busy {}

/// One `T` for each possible CPU, allocated dynamically.
///
/// The current CPU's value is accessed mutably with [`PerCpu::local`], which disables preemption
/// for the lifetime of the returned guard. There is exactly one mutable reference to a CPU's value
/// at any time: if the same CPU tries to access the value again while a guard exists (from an
/// interrupt handler that interrupted the guard's owner, or by the owner itself),
/// [`PerCpu::local`] returns `None` instead of aliasing. Values of other CPUs are reachable only
/// through `&mut self` ([`PerCpu::get_mut`], [`PerCpu::for_each_mut`]), when nobody else can
/// access them.
///
/// For integer statistics, [`PerCpuNum`](super::PerCpuNum) is cheaper: its updates are single
/// `this_cpu_*()` instructions and it can be read from any CPU.
///
/// # Examples
///
/// ```
/// use kernel::percpu::{PerCpu, PossibleCpu};
///
/// #[derive(Default)]
/// struct Stats {
///     ops: u64,
///     bytes: u64,
/// }
///
/// let mut stats = PerCpu::new(GFP_KERNEL, |_cpu| Stats::default())?;
/// if let Some(mut s) = stats.local() {
///     s.ops += 1;
///     s.bytes += 512;
/// }
/// let mut total = 0;
/// stats.for_each_mut(|_cpu, s| total += s.bytes);
/// assert_eq!(total, 512);
///
/// // Large values are initialised in place, never on the stack.
/// let mut table = PerCpu::<[u32; 2048]>::new(GFP_KERNEL, |cpu| {
///     pin_init::init_array_from_fn(move |i| cpu.as_u32() + i as u32)
/// })?;
/// let cpu = PossibleCpu::current();
/// assert_eq!(table.get_mut(cpu)[7], cpu.as_u32() + 7);
/// # Ok::<(), Error>(())
/// ```
pub struct PerCpu<T> {
    slots: Slots<Busy, T>,
}

// SAFETY: Dropping a `PerCpu<T>` drops `T`s on the dropping thread: `T` must be `Send`.
unsafe impl<T: Send> Send for PerCpu<T> {}

// SAFETY: `&PerCpu<T>` only gives exclusive access (`&mut T`) to one CPU's value at a time, from
// whichever task runs on that CPU, so values move between threads: `T: Send` is what is needed,
// as for `Mutex<T>`.
unsafe impl<T: Send> Sync for PerCpu<T> {}

impl<T> PerCpu<T> {
    /// Allocates one `T` per possible CPU, each initialised in place by the initialiser
    /// `init(cpu)` returns.
    ///
    /// A plain value is an initialiser too, so `PerCpu::new(flags, |_| T::default())` works for
    /// small types. The initialiser is returned by value on the stack: it may not be larger than
    /// [`MAX_INIT_SIZE`] (this does not compile otherwise). Initialise larger values in place,
    /// for example with [`init!`](pin_init::init!), [`pin_init::init_array_from_fn`] or
    /// [`pin_init::init_zeroed`]; for an all-zero value, [`PerCpu::new_zeroed`] is cheaper.
    ///
    /// Each CPU's part of the allocation holds `T` and a 4-byte flag, padded to `T`'s alignment.
    /// Returns [`E2BIG`] if that is larger than [`MAX_SIZE`] (so `T` may be at most `MAX_SIZE - 4`
    /// bytes for an alignment up to 4, less for larger alignments), [`EINVAL`] if `T`'s alignment
    /// is larger than [`MAX_ALIGN`], and [`ENOMEM`] if the allocation fails. The allocation comes
    /// first: when it fails, no initialiser has run and nothing is left allocated.
    ///
    /// [`E2BIG`]: crate::error::code::E2BIG
    /// [`EINVAL`]: crate::error::code::EINVAL
    /// [`ENOMEM`]: crate::error::code::ENOMEM
    /// [`MAX_SIZE`]: super::MAX_SIZE
    /// [`MAX_ALIGN`]: super::MAX_ALIGN
    ///
    /// # Examples
    ///
    /// ```compile_fail,E0080
    /// use kernel::percpu::PerCpu;
    ///
    /// let v = PerCpu::new(GFP_KERNEL, |_| [0u8; 4096])?; // 4 KiB returned by value, on the stack.
    /// # Ok::<(), Error>(())
    /// ```
    pub fn new<I>(flags: Flags, init: impl FnMut(PossibleCpu) -> I) -> Result<Self>
    where
        I: Init<T>,
    {
        // The `busy` flags are zero (not busy): the allocator zero-fills.
        match Slots::init_each(RawPerCpu::alloc(flags)?, |_busy| {}, init) {
            Ok(slots) => Ok(Self { slots }),
            Err(e) => match e {},
        }
    }

    /// Like [`PerCpu::new`], but `init(cpu)` returns an initialiser that may fail.
    ///
    /// If an initialiser fails, the values already initialised are dropped, the memory is freed
    /// and its error is returned. Allocation errors are converted to `E`.
    ///
    /// # Examples
    ///
    /// ```
    /// use kernel::percpu::{possible_cpus, PerCpu, PossibleCpu};
    ///
    /// let last = possible_cpus().last().ok_or(ENODEV)?;
    /// let r = PerCpu::<u64>::try_new(GFP_KERNEL, |cpu| {
    ///     if cpu == last {
    ///         Err(EAGAIN)
    ///     } else {
    ///         Ok(u64::from(cpu.as_u32()))
    ///     }
    /// });
    /// assert!(r.err() == Some(EAGAIN));
    /// # Ok::<(), Error>(())
    /// ```
    pub fn try_new<I, E>(flags: Flags, init: impl FnMut(PossibleCpu) -> I) -> Result<Self, E>
    where
        I: Init<T, E>,
        E: From<Error>,
    {
        let slots = Slots::init_each(RawPerCpu::alloc(flags)?, |_busy| {}, init)?;
        // The `busy` flags are zero (not busy): the allocator zero-fills.
        Ok(Self { slots })
    }

    /// Gives exclusive access to the current CPU's value, with preemption disabled.
    ///
    /// Returns `None` if this CPU's value is already being accessed: by the current task, or by
    /// the task an interrupt handler calling this interrupted.
    ///
    /// While the guard lives the task must not sleep. On `PREEMPT_RT` that includes taking a
    /// [`SpinLock`] or a [`Mutex`], and allocating or freeing memory with any flags, `GFP_NOWAIT`
    /// and the types of this module included (all of them take a `spinlock_t`, which sleeps
    /// there; `CONFIG_DEBUG_ATOMIC_SLEEP` reports it as a sleeping function called from invalid
    /// context): per-CPU data that needs such a lock is a [`LocalLock`], which on `PREEMPT_RT`
    /// keeps the task on its CPU without disabling preemption.
    ///
    /// [`SpinLock`]: crate::sync::SpinLock
    /// [`Mutex`]: crate::sync::Mutex
    /// [`LocalLock`]: crate::local_lock::LocalLock
    #[inline]
    pub fn local(&self) -> Option<LocalGuard<'_, T>> {
        let preempt = PreemptGuard::new();
        let slot = self.slots.this_cpu(&preempt);
        // SAFETY: `slot` is the current CPU's slot of our live allocation, whose value is
        // initialised (type invariants of `Slots`) and accessed only under its `busy` flag or
        // through `&mut self`, which `&self` excludes for the lifetime of the guard.
        unsafe { LocalGuard::try_new(slot, preempt) }
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

impl<T: Zeroable> PerCpu<T> {
    /// Allocates one zero-initialised `T` per possible CPU.
    ///
    /// Nothing is written: the allocator returns zero-filled memory. Errors as [`PerCpu::new`].
    ///
    /// # Examples
    ///
    /// ```
    /// use kernel::percpu::PerCpu;
    ///
    /// let mut v = PerCpu::<[u32; 4]>::new_zeroed(GFP_KERNEL)?;
    /// v.for_each_mut(|_cpu, a| assert_eq!(*a, [0; 4]));
    /// # Ok::<(), Error>(())
    /// ```
    pub fn new_zeroed(flags: Flags) -> Result<Self> {
        Ok(Self {
            slots: Slots::new_zeroed(flags)?,
        })
    }
}

/// Exclusive access to the current CPU's value of a [`PerCpu`]; preemption is disabled while it
/// exists.
///
/// A guard that is never dropped (`core::mem::forget`) leaves preemption disabled and the value
/// marked busy: every later access on that CPU gets `None`, and the scheduler reports the task
/// when it next sleeps ("scheduling while atomic"). Nothing is aliased or freed early.
///
/// # Invariants
///
/// `slot` points to a slot of a live [`PerCpu`] for `'a`; the slot belongs to the CPU the task
/// runs on, which `preempt` keeps fixed, and its `busy` flag was set by this guard.
///
/// # Examples
///
/// A guard neither outlives its [`PerCpu`] nor leaves its task:
///
/// ```compile_fail,E0597
/// use kernel::percpu::PerCpu;
///
/// let g;
/// {
///     let v = PerCpu::<u64>::new_zeroed(GFP_KERNEL)?;
///     g = v.local(); // `v` is freed at the end of the block, before `g`.
/// }
/// drop(g);
/// # Ok::<(), Error>(())
/// ```
///
/// ```compile_fail,E0277
/// use kernel::percpu::PerCpu;
///
/// fn assert_send<T: Send>(_: &T) {}
///
/// let v = PerCpu::<u64>::new_zeroed(GFP_KERNEL)?;
/// let g = v.local();
/// assert_send(&g); // Preemption is disabled on this CPU, for this task.
/// # Ok::<(), Error>(())
/// ```
#[must_use = "the value is released immediately when the guard is unused"]
pub struct LocalGuard<'a, T> {
    // A raw pointer, not a reference: `Option<LocalGuard>` then needs no null test.
    slot: *const Slot<Busy, T>,
    _p: PhantomData<&'a Slot<Busy, T>>,
    preempt: PreemptGuard,
}

impl<'a, T> LocalGuard<'a, T> {
    /// Takes `slot`'s `busy` flag, unless it is set already.
    ///
    /// # Safety
    ///
    /// `slot` is the slot of the CPU `preempt` keeps the task on; it is valid for `'a`, its value
    /// is initialised, and for `'a` its value is accessed only by the holder of its `busy` flag.
    #[inline]
    pub(crate) unsafe fn try_new(
        slot: *const Slot<Busy, T>,
        preempt: PreemptGuard,
    ) -> Option<Self> {
        // SAFETY: `slot` is valid (the caller guarantees it); `busy` is atomic.
        let busy = unsafe { &(*Slot::guard(slot)).0 };
        // Only the CPU that owns the slot accesses its flag, with preemption disabled. An
        // interrupt or NMI handler that runs between the test and the set below nests completely:
        // it has released its own access (or leaked a guard that nothing can reach) before this
        // code resumes. A plain test and set therefore suffices; no locked instruction is needed.
        if busy.load(ordering::Relaxed) != 0 {
            return None;
        }
        busy.store(1, ordering::Relaxed);
        // Keep the accesses to the value after the flag is set.
        crate::sync::barrier::barrier();
        // INVARIANT: We set `busy` on the current CPU, which cannot change while `preempt` lives;
        // `slot` is valid for `'a` (the caller guarantees it).
        Some(LocalGuard {
            slot,
            _p: PhantomData,
            preempt,
        })
    }

    /// Returns the CPU whose value this is.
    #[inline]
    pub fn cpu(&self) -> PossibleCpu {
        self.preempt.cpu()
    }
}

impl<T> Deref for LocalGuard<'_, T> {
    type Target = T;

    #[inline]
    fn deref(&self) -> &T {
        // SAFETY: By the type invariants, `slot` is valid and this guard has exclusive access to
        // the value.
        unsafe { &*Slot::value(self.slot) }
    }
}

impl<T> DerefMut for LocalGuard<'_, T> {
    #[inline]
    fn deref_mut(&mut self) -> &mut T {
        // SAFETY: By the type invariants, `slot` is valid and this guard has exclusive access to
        // the value.
        unsafe { &mut *Slot::value(self.slot) }
    }
}

impl<T> Drop for LocalGuard<'_, T> {
    #[inline]
    fn drop(&mut self) {
        // Keep the accesses to the value before the flag is cleared.
        crate::sync::barrier::barrier();
        // Release the value before `preempt` lets the task migrate.
        // SAFETY: By the type invariants, `slot` is valid.
        unsafe { &(*Slot::guard(self.slot)).0 }.store(0, ordering::Relaxed);
    }
}

#[cfg(CONFIG_RUST_PERCPU_KUNIT_TEST)]
mod tests;
