// SPDX-License-Identifier: GPL-2.0

//! Dynamic per-CPU memory.
//!
//! A per-CPU allocation holds one value for every possible CPU. Code running on a CPU updates
//! that CPU's value without any lock or shared cache line; readers combine the values of all CPUs
//! when they need a total.
//!
//! - [`PerCpu<T>`]: one `T` per CPU, any type. The current CPU's value is reached through a
//!   guard that disables preemption and gives `&mut T` ([`PerCpu::local`]).
//! - [`PerCpuNum<T>`]: one integer per CPU, updated with the kernel's `this_cpu_*` operations
//!   (one instruction on x86, safe against interrupts and preemption) and summed over all CPUs.
//! - [`DeferredPerCpuNum<T>`]: a [`PerCpuNum<T>`] allocated by a worker when first needed, for
//!   paths (I/O submission, atomic context) that must not allocate with [`GFP_KERNEL`].
//!
//! Allocation takes the caller's [`Flags`]: [`GFP_KERNEL`] in process context, [`GFP_NOWAIT`]
//! in atomic context that is atomic on every configuration (under a [`SpinLockIrq`], a
//! `SpinLock`, in an interrupt handler). Under a guard that only disables preemption
//! ([`PerCpu::local`], [`PreemptGuard`]) nothing may be allocated or freed on `PREEMPT_RT`,
//! whatever the flags: the per-CPU and slab allocators take `spinlock_t`s, which sleep there.
//! The allocator applies the task's [memory allocation scopes](crate::alloc::memalloc), and
//! every allocating constructor calls [`might_alloc`] first: the per-CPU allocator has no such
//! annotation of its own, so without it lockdep could not see a reclaim dependency or a sleeping
//! allocation in atomic context until memory actually ran short.
//!
//! Freeing (`free_percpu()`) takes the per-CPU allocator's `spinlock_t` with interrupts saved
//! and does not sleep without `CONFIG_PREEMPT_RT`. The types may therefore be dropped in process
//! context, under a [`SpinLock`] or [`SpinLockIrq`], in an interrupt handler and in an
//! `irq_work` ([`irq_work::run_on`]). They must not be dropped under a raw spinlock, in an
//! inter-processor function call ([`on_each_cpu`]) or in NMI context: taking a `spinlock_t`
//! there is an invalid wait context (lockdep reports it with `CONFIG_PROVE_RAW_LOCK_NESTING`, on
//! every free, since every free takes the lock) and sleeps on `PREEMPT_RT`, where `spinlock_t`
//! is a sleeping lock.
//!
//! Other CPUs' values are addressed by a [`PossibleCpu`]: per-CPU memory exists only for
//! possible CPUs. The ways to get one: [`possible_cpus`] and [`online_cpus`] (iterators),
//! [`PossibleCpu::current`], a guard's `cpu()` ([`LocalGuard::cpu`], [`PreemptGuard::cpu`]),
//! and from a CPU number [`PossibleCpu::new`] (a [`CpuId`]) or
//! [`PossibleCpu::from_u32`], both `None` for a CPU that is not possible. The functions of
//! [`irq_work`](crate::irq_work), like the rest of the kernel crate, take a
//! [`CpuId`]: [`PossibleCpu::id`] gives it.
//!
//! C header: [`include/linux/percpu.h`](srctree/include/linux/percpu.h)
//!
//! [`GFP_KERNEL`]: crate::alloc::flags::GFP_KERNEL
//! [`GFP_NOWAIT`]: crate::alloc::flags::GFP_NOWAIT
//! [`SpinLock`]: crate::sync::SpinLock
//! [`SpinLockIrq`]: crate::sync::SpinLockIrq
//! [`irq_work::run_on`]: crate::irq_work::run_on

use crate::{
    alloc::{memalloc::might_alloc, Flags},
    bindings,
    build_assert::const_assert,
    cpu::CpuId,
    error::{code::*, Error, Result},
    ffi::c_void,
    sync::atomic::{ordering, Atomic},
    types::NotThreadSafe,
};
use core::{
    cell::UnsafeCell,
    marker::PhantomData,
    mem::{align_of, size_of},
    ops::{Deref, DerefMut},
    ptr::NonNull, //
};
use pin_init::{Init, Zeroable};

// The operations of `PerCpuNum` and `StaticPerCpuNum`, for an `impl<T: PerCpuInt>` block of
// a type whose `percpu_ptr()` is the per-CPU address of one live, initialised `T` per possible
// CPU and whose `cpu_ptr(cpu)` is `cpu`'s value.
macro_rules! per_cpu_num_ops {
    () => {
        /// Adds `v` to the current CPU's value.
        #[inline]
        pub fn add(&self, v: T) {
            // SAFETY: `percpu_ptr()` is a live per-CPU address of a `T` (see the macro).
            unsafe { T::this_cpu_add(self.percpu_ptr(), v) }
        }

        /// Subtracts `v` from the current CPU's value.
        #[inline]
        pub fn sub(&self, v: T) {
            self.add(v.wrapping_neg())
        }

        /// Adds one to the current CPU's value.
        #[inline]
        pub fn inc(&self) {
            self.add(T::ONE)
        }

        /// Subtracts one from the current CPU's value.
        #[inline]
        pub fn dec(&self) {
            self.sub(T::ONE)
        }

        /// Returns the current CPU's value.
        ///
        /// The task may move to another CPU right after the read.
        #[inline]
        pub fn this_cpu_read(&self) -> T {
            // SAFETY: `percpu_ptr()` is a live per-CPU address of a `T` (see the macro).
            unsafe { T::this_cpu_read(self.percpu_ptr()) }
        }

        /// Sets the current CPU's value.
        #[inline]
        pub fn this_cpu_write(&self, v: T) {
            // SAFETY: `percpu_ptr()` is a live per-CPU address of a `T` (see the macro).
            unsafe { T::this_cpu_write(self.percpu_ptr(), v) }
        }

        /// Sets the current CPU's value to `v` and returns the old one (C's `this_cpu_xchg()`).
        ///
        /// Atomic with respect to interrupts and preemption on the current CPU, like every
        /// update of this type; on x86 a `cmpxchg` loop with a `%gs:` operand and no `lock`
        /// prefix, as in C.
        ///
        /// # Examples
        ///
        /// ```
        /// use kernel::percpu::{PerCpuNum, PreemptGuard};
        ///
        /// let n = PerCpuNum::<u32>::new(GFP_KERNEL)?;
        /// let _g = PreemptGuard::new(); // Stay on one CPU for the example.
        /// assert_eq!(n.xchg(7), 0);
        /// assert_eq!(n.cmpxchg(7, 9), 7); // Found 7: now 9.
        /// assert_eq!(n.cmpxchg(7, 1), 9); // Found 9: unchanged.
        /// assert_eq!(n.add_return(1), 10);
        /// # Ok::<(), Error>(())
        /// ```
        #[inline]
        pub fn xchg(&self, v: T) -> T {
            // SAFETY: `percpu_ptr()` is a live per-CPU address of a `T` (see the macro).
            unsafe { T::this_cpu_xchg(self.percpu_ptr(), v) }
        }

        /// Sets the current CPU's value to `new` if it is `old`; returns the value found (C's
        /// `this_cpu_cmpxchg()`). The exchange happened if the result equals `old`.
        #[inline]
        pub fn cmpxchg(&self, old: T, new: T) -> T {
            // SAFETY: `percpu_ptr()` is a live per-CPU address of a `T` (see the macro).
            unsafe { T::this_cpu_cmpxchg(self.percpu_ptr(), old, new) }
        }

        /// Adds `v` to the current CPU's value and returns the new value (C's
        /// `this_cpu_add_return()`).
        #[inline]
        pub fn add_return(&self, v: T) -> T {
            // SAFETY: `percpu_ptr()` is a live per-CPU address of a `T` (see the macro).
            unsafe { T::this_cpu_add_return(self.percpu_ptr(), v) }
        }

        /// Returns `cpu`'s value (C's `per_cpu()`).
        ///
        /// A racy snapshot: on 32-bit architectures a 64-bit value may tear (see the
        /// documentation of `PerCpuNum`).
        #[inline]
        pub fn get(&self, cpu: PossibleCpu) -> T {
            // SAFETY: `cpu_ptr(cpu)` is `cpu`'s initialised value (see the macro). The read is
            // volatile (`READ_ONCE()`) because that CPU may update its value concurrently; a
            // torn read on 32-bit gives a valid integer.
            unsafe { self.cpu_ptr(cpu).read_volatile() }
        }

        /// Returns the sum of all possible CPUs' values.
        ///
        /// Not a snapshot: updates that run concurrently may or may not be included.
        pub fn sum(&self) -> T {
            possible_cpus().fold(T::default(), |acc, cpu| acc.wrapping_add(self.get(cpu)))
        }
    };
}

pub mod cell;
pub mod deferred;
pub mod statics;

pub use cell::{PerCpuCell, PerCpuCells, SharedPerCpu};
pub use deferred::DeferredPerCpuNum;
pub use statics::{StaticPerCpu, StaticPerCpuNum};
#[doc(hidden)]
pub use statics::{StaticPerCpuNumTemplate, StaticPerCpuTemplate, StaticPerCpuType};

/// Largest size, in bytes, of one CPU's part of a per-CPU allocation (C's `PCPU_MIN_UNIT_SIZE`).
///
/// For a [`PerCpuNum<T>`] this is the size of `T`; a [`PerCpu<T>`] also keeps a 4-byte flag per
/// CPU, so its limit for `T` is smaller (see [`PerCpu::new`]).
pub const MAX_SIZE: usize = bindings::PCPU_MIN_UNIT_SIZE;

/// Largest size, in bytes, of the per-CPU initialiser that [`PerCpu::new`] and
/// [`PerCpu::try_new`] accept.
///
/// The initialiser is returned by value on the kernel stack, once for every CPU. A plain value is
/// its own initialiser, so a `T` larger than this must be initialised in place (for example with
/// [`init!`](pin_init::init!) or [`pin_init::init_zeroed`]); larger initialisers do not
/// compile.
pub const MAX_INIT_SIZE: usize = 1024;

/// A possible CPU: one that has a value in every per-CPU allocation.
///
/// Possible CPUs are those that may ever be online. Their set is fixed during early boot, before
/// any Rust code runs (`cpu_possible_mask` is `__ro_after_init`), so a `PossibleCpu` stays valid.
/// A [`CpuId`] may also name a CPU that is not possible when the possible CPUs are not numbered
/// contiguously; per-CPU memory has no value for it.
///
/// # Invariants
///
/// `cpu_possible(self.0)` is true.
///
/// # Examples
///
/// ```
/// use kernel::{cpu::CpuId, percpu::PossibleCpu};
///
/// let cpu = PossibleCpu::current();
/// assert!(PossibleCpu::new(CpuId::from(cpu)) == Some(cpu));
/// assert!(PossibleCpu::from_u32(kernel::cpu::nr_cpu_ids()).is_none());
/// ```
#[derive(Copy, Clone, PartialEq, Eq, Debug)]
pub struct PossibleCpu(CpuId);

impl PossibleCpu {
    /// Returns `cpu` if it is a possible CPU.
    #[inline]
    pub fn new(cpu: CpuId) -> Option<Self> {
        // SAFETY: `cpu_possible()` only tests a bit of the possible mask.
        if unsafe { bindings::cpu_possible(cpu.as_u32()) } {
            // INVARIANT: Just checked.
            Some(Self(cpu))
        } else {
            None
        }
    }

    /// Returns CPU number `cpu` if it is a possible CPU.
    #[inline]
    pub fn from_u32(cpu: u32) -> Option<Self> {
        CpuId::from_u32(cpu).and_then(Self::new)
    }

    /// Returns the CPU the code is currently running on.
    ///
    /// As for [`CpuId::current`], the task may move to another CPU right away unless preemption
    /// is disabled ([`PreemptGuard::cpu`]).
    #[inline]
    pub fn current() -> Self {
        // INVARIANT: Every CPU that runs code is a possible CPU.
        Self(CpuId::current())
    }

    /// Returns the CPU number.
    #[inline]
    pub fn id(self) -> CpuId {
        self.0
    }

    /// Returns the CPU number as a `u32`.
    #[inline]
    pub fn as_u32(self) -> u32 {
        self.0.as_u32()
    }
}

impl From<PossibleCpu> for CpuId {
    #[inline]
    fn from(cpu: PossibleCpu) -> Self {
        cpu.0
    }
}

impl From<PossibleCpu> for u32 {
    #[inline]
    fn from(cpu: PossibleCpu) -> Self {
        cpu.as_u32()
    }
}

/// Largest alignment of a per-CPU allocation.
pub const MAX_ALIGN: usize = crate::page::PAGE_SIZE;

/// Returns an iterator over the possible CPUs.
///
/// Possible CPUs are those that may ever be online; per-CPU allocations have a value for each.
///
/// # Examples
///
/// ```
/// use kernel::percpu::{possible_cpus, PossibleCpu};
///
/// assert!(possible_cpus().count() >= 1);
/// assert!(possible_cpus().any(|cpu| cpu == PossibleCpu::current()));
/// ```
pub fn possible_cpus() -> impl Iterator<Item = PossibleCpu> {
    (0..crate::cpu::nr_cpu_ids()).filter_map(PossibleCpu::from_u32)
}

/// Returns an iterator over the CPUs that are online when each is visited.
///
/// CPUs may come and go during the iteration unless hotplug is excluded by the caller; an online
/// CPU is always a possible one.
pub fn online_cpus() -> impl Iterator<Item = PossibleCpu> {
    possible_cpus().filter(|&cpu| {
        // SAFETY: `cpu_online()` only tests a bit of the online mask.
        unsafe { bindings::cpu_online(cpu.as_u32()) }
    })
}

/// Runs `f` on every online CPU and waits for all of them to finish (C's `on_each_cpu()` with
/// `wait` set).
///
/// On the other CPUs `f` runs in hard interrupt context (an inter-processor interrupt); on the
/// calling CPU it runs with interrupts disabled. `f` must therefore not sleep, and must not take
/// a lock that sleeps on `PREEMPT_RT` (a `spinlock_t` or a `local_lock_t`: `SpinLock`,
/// `SpinLockIrq`, `SpinLockIrqSave`, a `WbLockCookie`, a `LocalLock`), nor allocate or free
/// memory (the allocators take a `spinlock_t`; this includes creating or dropping a
/// `PercpuCounter` or any type of this module): that is an invalid wait context, reported by
/// lockdep with `CONFIG_PROVE_RAW_LOCK_NESTING`. Use [`irq_work::run_on_each_cpu`] for such
/// code.
///
/// # Context
///
/// C's contract (`on_each_cpu_cond_mask()` and `smp_call_function_many()` in `kernel/smp.c`):
/// "You must not call this function with disabled interrupts or from a hardware interrupt
/// handler or from a bottom half handler." Task context with interrupts enabled; it does not
/// sleep, so preemption may be disabled and a [`SpinLock`] may be held (but see below).
///
/// Checked at run time: returns [`EDEADLK`], instead of C's warning, when called with
/// interrupts disabled (under a [`SpinLockIrq`] or in a [`SpinLockIrqSave`] section, except on
/// `PREEMPT_RT` where they leave interrupts enabled) or outside task context (hard interrupt,
/// NMI, a softirq handler; including a call from `f` itself). This is the C contract, not
/// deadlock detection.
///
/// Not detected, the caller's responsibility, as in C (the call never returns): the caller
/// waits until every online CPU has run `f`, and a CPU runs it only with interrupts enabled. So
/// the caller must not hold anything that `f` waits for, nor anything that another CPU waits for
/// with interrupts disabled. For example, a caller holding a plain [`SpinLock`] while another
/// CPU takes the same lock inside a [`SpinLockIrqSave`] section: that CPU spins with interrupts
/// disabled and never runs `f`, and the caller never releases the lock. Lockdep does not model
/// the wait; `CONFIG_CSD_LOCK_WAIT_DEBUG` and the hard-lockup detector report the hang.
///
/// [`irq_work::run_on_each_cpu`]: crate::irq_work::run_on_each_cpu
/// [`SpinLock`]: crate::sync::SpinLock
/// [`SpinLockIrq`]: crate::sync::SpinLockIrq
/// [`SpinLockIrqSave`]: crate::sync::SpinLockIrqSave
///
/// # Examples
///
/// ```
/// use kernel::percpu::{on_each_cpu, online_cpus, PerCpuNum};
///
/// let hits = PerCpuNum::<u32>::new(GFP_KERNEL)?;
/// on_each_cpu(&|| hits.inc())?;
/// assert_eq!(hits.sum() as usize, online_cpus().count());
/// # Ok::<(), Error>(())
/// ```
pub fn on_each_cpu<F: Fn() + Sync>(f: &F) -> Result {
    /// Calls the closure `info` points to.
    ///
    /// # Safety
    ///
    /// `info` must point to an `F` that is live for the duration of the call.
    unsafe extern "C" fn call<F: Fn() + Sync>(info: *mut c_void) {
        // SAFETY: `info` is the `&F` passed to `on_each_cpu()` below, which waits for every
        // call to return before `f` goes out of scope; `F: Sync` allows calls from all CPUs.
        let f = unsafe { &*info.cast::<F>() };
        f();
    }
    // SAFETY: `irqs_disabled()` and `in_task()` only read the local interrupt state and the
    // preemption count.
    if unsafe { bindings::irqs_disabled() || !bindings::in_task() } {
        return Err(EDEADLK);
    }
    // SAFETY: `call::<F>` matches `smp_call_func_t`, `info` points to `f`, and `wait` is 1, so
    // `f` outlives every call. We are in task context with interrupts enabled (checked above).
    unsafe { bindings::on_each_cpu(Some(call::<F>), core::ptr::from_ref(f).cast_mut().cast(), 1) };
    Ok(())
}

/// A guard that keeps the current task on its CPU by disabling preemption.
///
/// # Invariants
///
/// Preemption is disabled (once more) for as long as the object exists, and the object stays on
/// the task that created it.
#[must_use = "preemption is enabled again immediately when the guard is unused"]
pub struct PreemptGuard(NotThreadSafe);

impl PreemptGuard {
    /// Disables preemption until the guard is dropped.
    ///
    /// # Examples
    ///
    /// ```
    /// use kernel::percpu::PreemptGuard;
    ///
    /// let g = PreemptGuard::new();
    /// let cpu = g.cpu();
    /// assert!(cpu.id() == kernel::cpu::CpuId::current());
    /// ```
    #[inline]
    pub fn new() -> Self {
        // SAFETY: Disabling preemption is always allowed; `Drop` enables it again.
        unsafe { bindings::preempt_disable() };
        // INVARIANT: Preemption was just disabled.
        Self(NotThreadSafe)
    }

    /// Returns the CPU the task runs on, which cannot change while the guard exists.
    #[inline]
    pub fn cpu(&self) -> PossibleCpu {
        PossibleCpu::current()
    }
}

impl Default for PreemptGuard {
    fn default() -> Self {
        Self::new()
    }
}

impl Drop for PreemptGuard {
    #[inline]
    fn drop(&mut self) {
        // SAFETY: By the type invariants, this task disabled preemption when creating `self`.
        unsafe { bindings::preempt_enable() };
    }
}

/// An owned dynamic per-CPU allocation of one `T` per possible CPU, without initialisation
/// bookkeeping: the building block of the types of this module.
///
/// # Invariants
///
/// If `T` is not zero-sized, `ptr` was returned by `__alloc_percpu_gfp()` for `size_of::<T>()`
/// bytes aligned to `align_of::<T>()`, zero-filled, and is freed only by `Drop`. If `T` is
/// zero-sized, `ptr` is dangling and nothing was allocated.
pub(crate) struct RawPerCpu<T> {
    ptr: NonNull<T>,
}

impl<T> RawPerCpu<T> {
    /// Allocates zeroed memory for one `T` per possible CPU.
    ///
    /// `T` is everything stored per CPU, bookkeeping included: the size and alignment checks
    /// below are the allocator's, so it never warns about an illegal size.
    pub(crate) fn alloc(flags: Flags) -> Result<Self> {
        let (size, align) = (size_of::<T>(), align_of::<T>());
        if size == 0 {
            // INVARIANT: Zero-sized: nothing to allocate.
            return Ok(Self {
                ptr: NonNull::dangling(),
            });
        }
        if size > MAX_SIZE {
            return Err(E2BIG);
        }
        if align > MAX_ALIGN {
            return Err(EINVAL);
        }
        // `pcpu_alloc()` has no allocation annotation of its own: tell lockdep and the
        // atomic-sleep checker what this allocation may do, even when it takes the fast path.
        might_alloc(flags);
        // SAFETY: `size` and `align` are valid for the per-CPU allocator (checked above; the
        // alignment of a Rust type is a power of two). The memory is zero-filled.
        let ptr = unsafe { bindings::__alloc_percpu_gfp(size, align, flags.as_raw()) };
        // INVARIANT: `ptr` is a non-null per-CPU allocation of the right size and alignment.
        Ok(Self {
            ptr: NonNull::new(ptr.cast()).ok_or(ENOMEM)?,
        })
    }

    /// Returns the address of `cpu`'s value.
    #[inline]
    pub(crate) fn cpu_ptr(&self, cpu: PossibleCpu) -> *mut T {
        if size_of::<T>() == 0 {
            return self.ptr.as_ptr();
        }
        // SAFETY: By the type invariants, `ptr` is a live per-CPU allocation; by the invariants
        // of `PossibleCpu`, `cpu` is a possible CPU, for which `per_cpu_ptr()` is defined.
        unsafe { bindings::per_cpu_ptr(self.ptr.as_ptr().cast(), cpu.as_u32()).cast() }
    }

    /// Returns the per-CPU address of the allocation, for the `this_cpu_*()` operations.
    #[inline]
    pub(crate) fn percpu_ptr(&self) -> *mut T {
        self.ptr.as_ptr()
    }

    /// Returns the address of the current CPU's value.
    #[inline]
    fn this_cpu_ptr(&self, _preempt: &PreemptGuard) -> *mut T {
        if size_of::<T>() == 0 {
            return self.ptr.as_ptr();
        }
        // SAFETY: By the type invariants, `ptr` is a live per-CPU allocation; preemption is
        // disabled, as `this_cpu_ptr()` requires.
        unsafe { bindings::this_cpu_ptr(self.ptr.as_ptr().cast()).cast() }
    }
}

impl<T> Drop for RawPerCpu<T> {
    fn drop(&mut self) {
        if size_of::<T>() != 0 {
            // SAFETY: By the type invariants, `ptr` came from `__alloc_percpu_gfp()` and is freed
            // only here. (`free_percpu()` takes a `spinlock_t`: see the module documentation for
            // the contexts where that is allowed; lockdep checks it on every call.)
            unsafe { bindings::free_percpu(self.ptr.as_ptr().cast()) };
        }
    }
}

/// One CPU's value in a [`PerCpu`], with a flag that detects reentrant access on that CPU.
///
/// # Invariants
///
/// `value` is only accessed by the CPU that owns the slot while `busy` is 1 and that CPU
/// has preemption disabled, or through `&mut PerCpu`.
#[repr(C)]
struct Slot<T> {
    busy: Atomic<i32>,
    value: UnsafeCell<T>,
}

impl<T> Slot<T> {
    /// A slot holding `value`, not busy.
    const fn new(value: T) -> Self {
        Self {
            busy: Atomic::new(0),
            value: UnsafeCell::new(value),
        }
    }
}

// SAFETY: All-zero bytes are a valid `Slot<T>` (not busy) when they are a valid `T`.
unsafe impl<T: Zeroable> Zeroable for Slot<T> {}

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
/// For integer statistics, [`PerCpuNum`] is cheaper: its updates are single `this_cpu_*()`
/// instructions and it can be read from any CPU.
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
///
/// # Invariants
///
/// For every possible CPU, the slot of `raw` holds an initialised `T`.
pub struct PerCpu<T> {
    raw: RawPerCpu<Slot<T>>,
    _p: PhantomData<T>,
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
    /// is larger than [`MAX_ALIGN`], and [`ENOMEM`] if the allocation fails.
    pub fn new<I>(flags: Flags, init: impl FnMut(PossibleCpu) -> I) -> Result<Self>
    where
        I: Init<T>,
    {
        Self::init_each(RawPerCpu::alloc(flags)?, init).map_err(|e| match e {})
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
        Self::init_each(RawPerCpu::alloc(flags)?, init)
    }

    /// Initialises the value of every possible CPU of `raw` with `init(cpu)`.
    fn init_each<I, E>(
        raw: RawPerCpu<Slot<T>>,
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
            let slot = raw.cpu_ptr(cpu);
            // SAFETY: `slot` points to this CPU's slot of the live allocation, which nobody else
            // can reach yet; `addr_of_mut!` creates no reference to the uninitialised value.
            let value = UnsafeCell::raw_get(unsafe { core::ptr::addr_of_mut!((*slot).value) });
            // SAFETY: `value` is valid for writes of a `T` and not initialised; if `__init` fails
            // it is left uninitialised, as the error path below assumes. A value written is
            // dropped by `Drop for PerCpu` or on the error path.
            if let Err(e) = unsafe { init(cpu).__init(value) } {
                for cpu in possible_cpus().take(done) {
                    // SAFETY: The first `done` possible CPUs (the set and its order are fixed)
                    // were initialised above; each value is dropped once, then `raw` is freed.
                    unsafe { core::ptr::drop_in_place((*raw.cpu_ptr(cpu)).value.get()) };
                }
                return Err(e);
            }
        }
        // INVARIANT: Every possible CPU's value was initialised above. The `busy` flags are zero
        // (not busy): the allocator zero-fills.
        Ok(Self {
            raw,
            _p: PhantomData,
        })
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
        let slot = self.raw.this_cpu_ptr(&preempt);
        // SAFETY: `slot` is the current CPU's slot of our live allocation, whose value is
        // initialised (type invariants) and accessed only under its `busy` flag or through
        // `&mut self`, which `&self` excludes for the lifetime of the guard.
        unsafe { LocalGuard::try_new(slot, preempt) }
    }

    /// Returns `cpu`'s value.
    pub fn get_mut(&mut self, cpu: PossibleCpu) -> &mut T {
        // SAFETY: By the type invariants, the value is initialised; `&mut self` excludes every
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
        // INVARIANT: The allocator zeroes the memory, and zero bytes are a valid `Slot<T>`.
        Ok(Self {
            raw: RawPerCpu::alloc(flags)?,
            _p: PhantomData,
        })
    }
}

impl<T> Drop for PerCpu<T> {
    fn drop(&mut self) {
        if core::mem::needs_drop::<T>() {
            for cpu in possible_cpus() {
                // SAFETY: By the type invariants the value is initialised; it is dropped once.
                unsafe { core::ptr::drop_in_place((*self.raw.cpu_ptr(cpu)).value.get()) };
            }
        }
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
#[must_use = "the value is released immediately when the guard is unused"]
pub struct LocalGuard<'a, T> {
    // A raw pointer, not a reference: `Option<LocalGuard>` then needs no null test.
    slot: *const Slot<T>,
    _p: PhantomData<&'a Slot<T>>,
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
    unsafe fn try_new(slot: *const Slot<T>, preempt: PreemptGuard) -> Option<Self> {
        // SAFETY: `slot` is valid (the caller guarantees it); `busy` is atomic.
        let busy = unsafe { &(*slot).busy };
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
        unsafe { &*(*self.slot).value.get() }
    }
}

impl<T> DerefMut for LocalGuard<'_, T> {
    #[inline]
    fn deref_mut(&mut self) -> &mut T {
        // SAFETY: By the type invariants, `slot` is valid and this guard has exclusive access to
        // the value.
        unsafe { &mut *(*self.slot).value.get() }
    }
}

impl<T> Drop for LocalGuard<'_, T> {
    #[inline]
    fn drop(&mut self) {
        // Keep the accesses to the value before the flag is cleared.
        crate::sync::barrier::barrier();
        // Release the value before `preempt` lets the task migrate.
        // SAFETY: By the type invariants, `slot` is valid.
        unsafe { &(*self.slot).busy }.store(0, ordering::Relaxed);
    }
}

mod private {
    pub trait Sealed {}
}

/// Integer types that [`PerCpuNum`] supports.
///
/// # Safety
///
/// The `this_cpu_*` functions must perform the named per-CPU operation on a `Self` at a per-CPU
/// address, atomically with respect to interrupts and preemption on the current CPU.
pub unsafe trait PerCpuInt:
    Copy + Zeroable + Default + PartialEq + private::Sealed + 'static
{
    /// The value one.
    const ONE: Self;

    /// Adds `v` to the current CPU's value at the per-CPU address `ptr`.
    ///
    /// # Safety
    ///
    /// `ptr` must be the per-CPU address of a live allocation of a `Self`.
    unsafe fn this_cpu_add(ptr: *mut Self, v: Self);

    /// Reads the current CPU's value at the per-CPU address `ptr`.
    ///
    /// # Safety
    ///
    /// `ptr` must be the per-CPU address of a live allocation of a `Self`.
    unsafe fn this_cpu_read(ptr: *mut Self) -> Self;

    /// Writes the current CPU's value at the per-CPU address `ptr`.
    ///
    /// # Safety
    ///
    /// `ptr` must be the per-CPU address of a live allocation of a `Self`.
    unsafe fn this_cpu_write(ptr: *mut Self, v: Self);

    /// Sets the current CPU's value at the per-CPU address `ptr` to `v` and returns the old one.
    ///
    /// # Safety
    ///
    /// `ptr` must be the per-CPU address of a live allocation of a `Self`.
    unsafe fn this_cpu_xchg(ptr: *mut Self, v: Self) -> Self;

    /// Sets the current CPU's value at the per-CPU address `ptr` to `new` if it is `old`, and
    /// returns the value found.
    ///
    /// # Safety
    ///
    /// `ptr` must be the per-CPU address of a live allocation of a `Self`.
    unsafe fn this_cpu_cmpxchg(ptr: *mut Self, old: Self, new: Self) -> Self;

    /// Adds `v` to the current CPU's value at the per-CPU address `ptr` and returns the result.
    ///
    /// # Safety
    ///
    /// `ptr` must be the per-CPU address of a live allocation of a `Self`.
    unsafe fn this_cpu_add_return(ptr: *mut Self, v: Self) -> Self;

    /// Two's complement addition.
    fn wrapping_add(self, rhs: Self) -> Self;

    /// Two's complement negation.
    fn wrapping_neg(self) -> Self;
}

macro_rules! impl_percpu_int {
    ($($t:ty => $u:ty, $add:ident, $read:ident, $write:ident, $xchg:ident, $cmpxchg:ident,
       $add_return:ident;)*) => {$(
        impl private::Sealed for $t {}

        // SAFETY: The helpers are the kernel's `this_cpu_add/read/write/xchg/cmpxchg/add_return()`
        // for the unsigned type of the same size; two's complement addition and comparison for
        // equality are the same for signed values.
        unsafe impl PerCpuInt for $t {
            const ONE: Self = 1;

            #[inline(always)]
            unsafe fn this_cpu_add(ptr: *mut Self, v: Self) {
                // CAST: Same size and two's complement representation.
                // SAFETY: The caller guarantees `ptr` is a live per-CPU address.
                unsafe { bindings::$add(ptr.cast(), v as $u) }
            }

            #[inline(always)]
            unsafe fn this_cpu_read(ptr: *mut Self) -> Self {
                // SAFETY: The caller guarantees `ptr` is a live per-CPU address.
                unsafe { bindings::$read(ptr.cast()) as $t }
            }

            #[inline(always)]
            unsafe fn this_cpu_write(ptr: *mut Self, v: Self) {
                // SAFETY: The caller guarantees `ptr` is a live per-CPU address.
                unsafe { bindings::$write(ptr.cast(), v as $u) }
            }

            #[inline(always)]
            unsafe fn this_cpu_xchg(ptr: *mut Self, v: Self) -> Self {
                // SAFETY: The caller guarantees `ptr` is a live per-CPU address.
                unsafe { bindings::$xchg(ptr.cast(), v as $u) as $t }
            }

            #[inline(always)]
            unsafe fn this_cpu_cmpxchg(ptr: *mut Self, old: Self, new: Self) -> Self {
                // SAFETY: The caller guarantees `ptr` is a live per-CPU address.
                unsafe { bindings::$cmpxchg(ptr.cast(), old as $u, new as $u) as $t }
            }

            #[inline(always)]
            unsafe fn this_cpu_add_return(ptr: *mut Self, v: Self) -> Self {
                // SAFETY: The caller guarantees `ptr` is a live per-CPU address.
                unsafe { bindings::$add_return(ptr.cast(), v as $u) as $t }
            }

            #[inline(always)]
            fn wrapping_add(self, rhs: Self) -> Self {
                <$t>::wrapping_add(self, rhs)
            }

            #[inline(always)]
            fn wrapping_neg(self) -> Self {
                <$t>::wrapping_neg(self)
            }
        }
    )*};
}

impl_percpu_int! {
    u32 => u32, this_cpu_add_u32, this_cpu_read_u32, this_cpu_write_u32,
        this_cpu_xchg_u32, this_cpu_cmpxchg_u32, this_cpu_add_return_u32;
    i32 => u32, this_cpu_add_u32, this_cpu_read_u32, this_cpu_write_u32,
        this_cpu_xchg_u32, this_cpu_cmpxchg_u32, this_cpu_add_return_u32;
    u64 => u64, this_cpu_add_u64, this_cpu_read_u64, this_cpu_write_u64,
        this_cpu_xchg_u64, this_cpu_cmpxchg_u64, this_cpu_add_return_u64;
    i64 => u64, this_cpu_add_u64, this_cpu_read_u64, this_cpu_write_u64,
        this_cpu_xchg_u64, this_cpu_cmpxchg_u64, this_cpu_add_return_u64;
}

#[cfg(target_pointer_width = "64")]
impl_percpu_int! {
    usize => u64, this_cpu_add_u64, this_cpu_read_u64, this_cpu_write_u64,
        this_cpu_xchg_u64, this_cpu_cmpxchg_u64, this_cpu_add_return_u64;
    isize => u64, this_cpu_add_u64, this_cpu_read_u64, this_cpu_write_u64,
        this_cpu_xchg_u64, this_cpu_cmpxchg_u64, this_cpu_add_return_u64;
}

#[cfg(target_pointer_width = "32")]
impl_percpu_int! {
    usize => u32, this_cpu_add_u32, this_cpu_read_u32, this_cpu_write_u32,
        this_cpu_xchg_u32, this_cpu_cmpxchg_u32, this_cpu_add_return_u32;
    isize => u32, this_cpu_add_u32, this_cpu_read_u32, this_cpu_write_u32,
        this_cpu_xchg_u32, this_cpu_cmpxchg_u32, this_cpu_add_return_u32;
}

/// One integer per possible CPU, updated with the kernel's `this_cpu_*()` operations.
///
/// Updates ([`add`], [`sub`], [`inc`], [`dec`]) work from any context, task, softirq or hard
/// interrupt, need no guard, and are a single instruction on x86 (`add %reg, %gs:(...)`). Reads
/// of other CPUs' values ([`get`], [`sum`]) are racy snapshots, as in C: a value read while
/// another CPU updates it is either the old or the new one, except for 64-bit integers on 32-bit
/// architectures, which are read in two halves and may mix the halves of the old and new value
/// (C's `per_cpu()` reads tear the same way; `struct percpu_counter` keeps 32-bit per-CPU deltas
/// for this reason). Arithmetic wraps.
///
/// [`add`]: PerCpuNum::add
/// [`sub`]: PerCpuNum::sub
/// [`inc`]: PerCpuNum::inc
/// [`dec`]: PerCpuNum::dec
/// [`get`]: PerCpuNum::get
/// [`sum`]: PerCpuNum::sum
///
/// # Examples
///
/// ```
/// use kernel::percpu::PerCpuNum;
///
/// let bytes = PerCpuNum::<u64>::new(GFP_KERNEL)?;
/// bytes.add(4096);
/// bytes.sub(96);
/// bytes.inc();
/// assert_eq!(bytes.sum(), 4001);
/// # Ok::<(), Error>(())
/// ```
pub struct PerCpuNum<T: PerCpuInt> {
    raw: RawPerCpu<T>,
}

// SAFETY: Integers have no thread affinity; the allocation is freed from any thread.
unsafe impl<T: PerCpuInt> Send for PerCpuNum<T> {}

// SAFETY: All accesses through `&self` are `this_cpu_*()` operations, atomic with respect to the
// current CPU, or volatile reads of other CPUs' values.
unsafe impl<T: PerCpuInt> Sync for PerCpuNum<T> {}

impl<T: PerCpuInt> PerCpuNum<T> {
    /// Allocates a zero value for every possible CPU.
    ///
    /// Returns [`ENOMEM`] if the allocation fails.
    pub fn new(flags: Flags) -> Result<Self> {
        Ok(Self {
            raw: RawPerCpu::alloc(flags)?,
        })
    }

    /// Returns the per-CPU address of the values, for the `this_cpu_*()` operations.
    #[inline(always)]
    fn percpu_ptr(&self) -> *mut T {
        self.raw.percpu_ptr()
    }

    /// Returns the address of `cpu`'s value.
    #[inline(always)]
    fn cpu_ptr(&self, cpu: PossibleCpu) -> *mut T {
        self.raw.cpu_ptr(cpu)
    }

    per_cpu_num_ops!();

    /// Sets every CPU's value to zero.
    pub fn reset(&mut self) {
        for cpu in possible_cpus() {
            // SAFETY: `&mut self` excludes every other access to the allocation.
            unsafe { self.raw.cpu_ptr(cpu).write_volatile(T::default()) };
        }
    }
}

#[cfg(CONFIG_RUST_PERCPU_KUNIT_TEST)]
#[macros::kunit_tests(rust_kernel_percpu)]
mod tests {
    use super::*;
    use crate::alloc::flags::{GFP_KERNEL, GFP_NOWAIT};
    use crate::prelude::*;
    use crate::sync::{new_spinlock, new_spinlock_irq, Arc};
    use crate::time::{delay::fsleep, Delta};

    const ADDS: u64 = 10_000;

    #[test]
    fn each_cpu_sees_its_own_value() -> Result {
        let n = PerCpuNum::<u64>::new(GFP_KERNEL)?;
        let v = PerCpu::<u32>::new(GFP_KERNEL, |_| u32::MAX)?;
        on_each_cpu(&|| {
            let cpu = u32::from(CpuId::current());
            n.add(u64::from(cpu) + 100);
            if let Some(mut s) = v.local() {
                *s = cpu;
            }
        })?;
        let mut v = v;
        let mut ok = 0;
        let mut online = 0;
        for cpu in online_cpus() {
            online += 1;
            if n.get(cpu) == u64::from(u32::from(cpu)) + 100 && *v.get_mut(cpu) == u32::from(cpu) {
                ok += 1;
            }
        }
        assert!(online >= 1);
        assert_eq!(ok, online);
        Ok(())
    }

    #[test]
    fn concurrent_adds_sum_exactly() -> Result {
        let n = PerCpuNum::<u64>::new(GFP_KERNEL)?;
        let s = PerCpuNum::<i32>::new(GFP_KERNEL)?;
        on_each_cpu(&|| {
            for _ in 0..ADDS {
                n.inc();
                s.dec();
            }
            n.add(2);
            n.sub(1);
        })?;
        let cpus = online_cpus().count() as u64;
        assert_eq!(n.sum(), (ADDS + 1) * cpus);
        assert_eq!(i64::from(s.sum()), -((ADDS * cpus) as i64));
        Ok(())
    }

    #[test]
    fn exchange_and_add_return_from_interrupts() -> Result {
        let n = PerCpuNum::<u64>::new(GFP_KERNEL)?;
        let swaps = PerCpuNum::<u32>::new(GFP_KERNEL)?;
        // Every CPU, in interrupt context, counts with add_return and claims its slot once
        // with cmpxchg; xchg then reads and clears it.
        crate::irq_work::run_on_each_cpu(&|| {
            let mut last = 0;
            for _ in 0..ADDS {
                last = n.add_return(1);
            }
            if last >= ADDS && swaps.cmpxchg(0, 5) == 0 && swaps.cmpxchg(0, 6) == 5 {
                let old = swaps.xchg(1);
                swaps.add(old.wrapping_sub(1).wrapping_sub(4));
            }
        })?;
        let cpus = online_cpus().count();
        assert_eq!(n.sum(), ADDS * cpus as u64);
        // Each CPU's value went 0 -> 5 -> (xchg) 1 -> 1 + (5 - 5) = 1.
        assert_eq!(swaps.sum() as usize, cpus);
        Ok(())
    }

    #[test]
    fn task_context_numerics() -> Result {
        let mut n = PerCpuNum::<usize>::new(GFP_KERNEL)?;
        n.add(5);
        n.dec();
        let local = {
            let g = PreemptGuard::new();
            n.this_cpu_write(n.this_cpu_read() + 10);
            (n.this_cpu_read(), n.get(g.cpu()))
        };
        assert_eq!(local.0, local.1);
        assert_eq!(n.sum(), 14);
        n.reset();
        assert_eq!(n.sum(), 0);
        Ok(())
    }

    #[test]
    fn local_access_is_not_reentrant() -> Result {
        let v = PerCpu::<u64>::new_zeroed(GFP_KERNEL)?;
        let (first, second, after) = {
            let mut g = v.local().ok_or(EBUSY)?;
            *g += 1;
            let second = v.local().is_some();
            drop(g);
            (true, second, v.local().map(|g| *g))
        };
        assert!(first && !second);
        assert!(after == Some(1));
        Ok(())
    }

    #[test]
    fn values_are_dropped() -> Result {
        struct CountsDrops<'a>(&'a Atomic<i32>);
        impl Drop for CountsDrops<'_> {
            fn drop(&mut self) {
                self.0.add(1, ordering::Relaxed);
            }
        }
        let drops = Atomic::new(0i32);
        let v = PerCpu::new(GFP_KERNEL, |_| CountsDrops(&drops))?;
        let before = drops.load(ordering::Relaxed);
        drop(v);
        let after = drops.load(ordering::Relaxed);
        assert_eq!(before, 0);
        assert_eq!(after as usize, possible_cpus().count());
        Ok(())
    }

    #[test]
    fn drop_in_atomic_and_irq_context() -> Result {
        let lock = KBox::pin_init(new_spinlock!((), "kunit_percpu_drop_lock"), GFP_KERNEL)?;
        let n = PerCpuNum::<u64>::new(GFP_KERNEL)?;
        let p = PerCpu::<u64>::new_zeroed(GFP_KERNEL)?;
        {
            let _g = lock.lock();
            drop(n);
            drop(p);
        }
        // From interrupt context (an irq_work on every CPU; the first one drops it).
        let slot = KBox::pin_init(
            new_spinlock_irq!(
                Some(PerCpuNum::<u64>::new(GFP_KERNEL)?),
                "kunit_percpu_irq_slot"
            ),
            GFP_KERNEL,
        )?;
        crate::irq_work::run_on_each_cpu(&|| drop(slot.lock().take()))?;
        assert!(slot.lock().is_none());
        Ok(())
    }

    #[test]
    fn nowait_allocation_under_spinlock() -> Result {
        let lock = KBox::pin_init(new_spinlock!((), "kunit_percpu_nowait_lock"), GFP_KERNEL)?;
        let r = {
            let _g = lock.lock();
            PerCpuNum::<u64>::new(GFP_NOWAIT).map(|n| {
                n.inc();
                n.sum()
            })
        };
        assert!(r == Ok(1));
        Ok(())
    }

    #[test]
    fn zero_sized_and_rejected_types() -> Result {
        #[repr(align(8192))]
        struct OverAligned;

        let mut z = PerCpu::new(GFP_KERNEL, |_| [0u8; 0])?;
        let zl = z.local().is_some();
        z.for_each_mut(|_, _| {});
        let big = PerCpu::<[u8; MAX_SIZE + 1]>::new_zeroed(GFP_KERNEL).err();
        // `T` alone fits, but not with the 4-byte busy flag of each slot.
        let flag = PerCpu::<[u8; MAX_SIZE]>::new_zeroed(GFP_KERNEL).err();
        let flag_init =
            PerCpu::<[u8; MAX_SIZE - 3]>::new(GFP_KERNEL, |_| pin_init::init_zeroed()).err();
        let aligned = PerCpu::<OverAligned>::new(GFP_KERNEL, |_| OverAligned).err();
        let largest = PerCpu::<[u8; MAX_SIZE - 4]>::new_zeroed(GFP_KERNEL).is_ok();
        let num = PerCpuNum::<u64>::new(GFP_KERNEL).is_ok();
        assert!(zl);
        assert!(big == Some(E2BIG));
        assert!(flag == Some(E2BIG));
        assert!(flag_init == Some(E2BIG));
        assert!(aligned == Some(EINVAL));
        assert!(largest);
        assert!(num);
        Ok(())
    }

    #[test]
    fn in_place_initialisation() -> Result {
        // 16 KiB per CPU: the size of the whole kernel stack on x86_64, so it cannot pass through.
        let mut v = PerCpu::<[u64; 2048]>::new(GFP_KERNEL, |cpu| {
            pin_init::init_array_from_fn(move |i| (u64::from(cpu.as_u32()) << 32) | i as u64)
        })?;
        let mut bad = 0;
        v.for_each_mut(|cpu, a| {
            for (i, x) in a.iter().enumerate() {
                if *x != (u64::from(cpu.as_u32()) << 32) | i as u64 {
                    bad += 1;
                }
            }
        });
        assert_eq!(bad, 0);
        Ok(())
    }

    #[test]
    fn failed_initialiser_drops_the_others() -> Result {
        struct CountsDrops<'a>(&'a Atomic<i32>);
        impl Drop for CountsDrops<'_> {
            fn drop(&mut self) {
                self.0.add(1, ordering::Relaxed);
            }
        }
        let drops = Atomic::new(0i32);
        let inits = Atomic::new(0i32);
        let last = possible_cpus().last().ok_or(ENODEV)?;
        let r = PerCpu::<CountsDrops<'_>>::try_new(GFP_KERNEL, |cpu| {
            inits.add(1, ordering::Relaxed);
            if cpu == last {
                Err(EAGAIN)
            } else {
                Ok(CountsDrops(&drops))
            }
        });
        let err = r.err();
        let possible = possible_cpus().count() as i32;
        assert!(err == Some(EAGAIN));
        assert_eq!(inits.load(ordering::Relaxed), possible);
        assert_eq!(drops.load(ordering::Relaxed), possible - 1);
        Ok(())
    }

    #[test]
    fn only_possible_cpus_are_addressable() -> Result {
        let nr = crate::cpu::nr_cpu_ids();
        let mut possible = 0;
        let mut wrong_id = 0;
        for n in 0..nr {
            let cpu = CpuId::from_u32(n).ok_or(EINVAL)?;
            match PossibleCpu::new(cpu) {
                Some(p) if p.id() == cpu && PossibleCpu::from_u32(n) == Some(p) => possible += 1,
                Some(_) => wrong_id += 1,
                None => {}
            }
        }
        // `nr_cpu_ids` is one more than the highest possible CPU: that one is possible, the
        // next number is not.
        let highest = PossibleCpu::from_u32(nr - 1).is_some();
        let beyond =
            PossibleCpu::from_u32(nr).is_none() && PossibleCpu::from_u32(u32::MAX).is_none();
        let iterated = possible_cpus().count();
        let online = online_cpus().count();
        let online_are_possible = online_cpus().all(|c| PossibleCpu::new(c.id()) == Some(c));
        let current = PossibleCpu::new(CpuId::current()).is_some();
        assert_eq!(wrong_id, 0);
        assert_eq!(iterated, possible);
        assert!(online >= 1 && online <= possible);
        assert!(highest && beyond && online_are_possible && current);
        Ok(())
    }

    #[test]
    fn waiting_in_atomic_context_is_refused() -> Result {
        let spin = KBox::pin_init(new_spinlock!((), "kunit_percpu_atomic"), GFP_KERNEL)?;
        let irq = KBox::pin_init(new_spinlock_irq!((), "kunit_percpu_atomic_irq"), GFP_KERNEL)?;
        let hits = Atomic::new(0i32);
        let inc = || {
            hits.add(1, ordering::Relaxed);
        };
        let (run_spin, each_spin, ipi_spin) = {
            let _g = spin.lock();
            // Does not sleep: allowed with preemption disabled, as in C.
            let ipi = on_each_cpu(&inc);
            // Without `CONFIG_PREEMPT_COUNT` a held spinlock cannot be detected.
            if cfg!(CONFIG_PREEMPT_COUNT) {
                (
                    crate::irq_work::run_on(CpuId::current(), &inc),
                    crate::irq_work::run_on_each_cpu(&inc),
                    ipi,
                )
            } else {
                (Err(EDEADLK), Err(EDEADLK), ipi)
            }
        };
        let (run_irq, ipi_irq) = {
            let _g = irq.lock();
            (
                crate::irq_work::run_on(CpuId::current(), &inc),
                on_each_cpu(&inc),
            )
        };
        // From hard interrupt context: nested waits must fail, not hang.
        let nested = Atomic::new(0i32);
        crate::irq_work::run_on(CpuId::current(), &|| {
            if crate::irq_work::run_on(CpuId::current(), &|| {}) == Err(EDEADLK) {
                nested.add(1, ordering::Relaxed);
            }
            if on_each_cpu(&|| {}) == Err(EDEADLK) {
                nested.add(1, ordering::Relaxed);
            }
        })?;
        let online = online_cpus().count() as i32;
        // Only the `on_each_cpu()` under the plain spinlock ran; on PREEMPT_RT, where a
        // `SpinLockIrq` leaves interrupts enabled, also the one under it.
        let rt = cfg!(CONFIG_PREEMPT_RT);
        assert!(run_spin == Err(EDEADLK) && each_spin == Err(EDEADLK));
        assert!(run_irq == Err(EDEADLK));
        assert!(ipi_irq == if rt { Ok(()) } else { Err(EDEADLK) });
        assert!(ipi_spin == Ok(()));
        assert_eq!(
            hits.load(ordering::Relaxed),
            if rt { 2 * online } else { online }
        );
        // On PREEMPT_RT the `irq_work` runs in a thread, inside an RCU read-side section: the
        // nested wait is refused, the inter-processor call is allowed.
        assert_eq!(nested.load(ordering::Relaxed), if rt { 1 } else { 2 });
        Ok(())
    }

    #[test]
    fn deferred_publishes_once_under_racing_users() -> Result {
        let d = Arc::pin_init(DeferredPerCpuNum::<u64>::new(), GFP_KERNEL)?;
        let winners = Atomic::new(0i32);
        let errors = Atomic::new(0i32);
        // Every CPU races to publish, from interrupt context, so with GFP_NOWAIT.
        crate::irq_work::run_on_each_cpu(&|| match d.populate(GFP_NOWAIT) {
            Ok(true) => {
                winners.add(1, ordering::Relaxed);
            }
            Ok(false) => {}
            Err(_) => {
                errors.add(1, ordering::Relaxed);
            }
        })?;
        let again = d.populate(GFP_KERNEL)?;
        let published = d.get().is_some();
        assert_eq!(errors.load(ordering::Relaxed), 0);
        assert_eq!(winners.load(ordering::Relaxed), 1);
        assert!(!again && published);
        Ok(())
    }

    #[test]
    fn deferred_allocates_from_worker() -> Result {
        let d = Arc::pin_init(DeferredPerCpuNum::<u64>::new(), GFP_KERNEL)?;
        let first = {
            let lock = KBox::pin_init(new_spinlock!((), "kunit_percpu_submit"), GFP_KERNEL)?;
            // An atomic "submission path": must not allocate, so it queues the work.
            let _g = lock.lock();
            d.as_arc_borrow().add(1)
        };
        let mut waited = 0;
        while d.get().is_none() && waited < 200 {
            fsleep(Delta::from_millis(10));
            waited += 1;
        }
        let counted = d.as_arc_borrow().add(1);
        assert!(!first);
        assert!(counted);
        assert_eq!(d.missed(), 1);
        assert_eq!(d.sum(), 1);
        Ok(())
    }

    #[test]
    fn deferred_dropped_while_pending() -> Result {
        for _ in 0..16 {
            let d = Arc::pin_init(DeferredPerCpuNum::<u32>::new(), GFP_KERNEL)?;
            let _ = d.as_arc_borrow().add(1);
            // The queued work holds its own reference; the value is freed after it runs.
            drop(d);
        }
        Ok(())
    }
}

#[cfg(all(CONFIG_RUST_PERCPU_KUNIT_TEST, CONFIG_HOTPLUG_CPU))]
#[macros::kunit_tests(rust_kernel_percpu_hotplug)]
mod hotplug_tests {
    use super::*;
    use crate::alloc::flags::GFP_KERNEL;
    use crate::cpu::{add_cpu, nr_cpu_ids, remove_cpu};
    use crate::irq_work::{run_on, run_on_each_cpu};
    use crate::prelude::*;

    #[test]
    fn absent_cpus_are_enodev() -> Result {
        let (mut absent, mut offline, mut bad) = (0, 0, 0);
        for n in 0..nr_cpu_ids() {
            let cpu = CpuId::from_u32(n).ok_or(EINVAL)?;
            if online_cpus().any(|c| c.id() == cpu) {
                // Already online: nothing to do.
                if add_cpu(cpu).is_err() {
                    bad += 1;
                }
                continue;
            }
            // Not online: absent (no CPU device, or not possible), or present and offline.
            match add_cpu(cpu) {
                Err(e) if e == ENODEV => {
                    absent += 1;
                    if remove_cpu(cpu) != Err(ENODEV) {
                        bad += 1;
                    }
                }
                Ok(()) => {
                    offline += 1;
                    if remove_cpu(cpu).is_err() {
                        bad += 1;
                    }
                }
                Err(_) => bad += 1,
            }
        }
        pr_info!("{} CPU numbers absent, {} offline\n", absent, offline);
        assert_eq!(bad, 0);
        Ok(())
    }

    #[test]
    fn offline_cpu_is_enodev_and_keeps_its_values() -> Result {
        // The highest online CPU other than 0 goes offline.
        let Some(victim) = online_cpus().filter(|&cpu| cpu.as_u32() != 0).last() else {
            // Needs at least 2 CPUs.
            return Ok(());
        };
        let n = PerCpuNum::<u64>::new(GFP_KERNEL)?;
        let mut v = PerCpu::<u32>::new_zeroed(GFP_KERNEL)?;
        run_on_each_cpu(&|| n.inc())?;
        let removed = remove_cpu(victim.id());
        let offline_run = run_on(victim.id(), &|| n.add(100));
        let before = n.sum();
        run_on_each_cpu(&|| n.inc())?;
        let offline_hits = n.sum() - before;
        let offline_online = online_cpus().count() as u64;
        // An offline CPU is still possible: its values stay addressable.
        let offline_value = n.get(victim);
        *v.get_mut(victim) = 7;
        let added = add_cpu(victim.id());
        let online_run = run_on(victim.id(), &|| n.add(1000));
        assert!(removed.is_ok() && added.is_ok());
        assert!(offline_run == Err(ENODEV));
        assert!(online_run == Ok(()));
        assert_eq!(offline_hits, offline_online);
        assert_eq!(offline_value, 1);
        assert_eq!(n.get(victim), 1001);
        assert_eq!(*v.get_mut(victim), 7);
        Ok(())
    }
}
