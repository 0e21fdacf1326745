// SPDX-License-Identifier: GPL-2.0

//! Per-CPU integers updated with the kernel's `this_cpu_*()` operations.
//!
//! The operations are written once, in [`Num<S>`], for every [`PerCpuStorage`] `S`:
//! [`PerCpuNum<T>`] is `Num` over a dynamic allocation, [`StaticPerCpuNum<T>`] over a static
//! per-CPU variable, [`PerCpuNumRef`] over the published memory of a
//! [`DeferredPerCpuNum`](super::DeferredPerCpuNum), and [`SharedPerCpu::cell`] over one field of a
//! [`SharedPerCpu`].
//!
//! [`StaticPerCpuNum<T>`]: super::StaticPerCpuNum
//! [`SharedPerCpu`]: super::SharedPerCpu
//! [`SharedPerCpu::cell`]: super::SharedPerCpu::cell

use super::{
    possible_cpus,
    PerCpuStorage,
    RawPerCpu, //
};
use crate::{
    alloc::Flags,
    bindings,
    cpu::PossibleCpu,
    error::Result, //
};
use core::marker::PhantomData;
use pin_init::Zeroable;

mod private {
    pub trait Sealed {}
}

/// The integer types of [`PerCpuNum`] and the other per-CPU numeric types.
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
/// [`add`]: Num::add
/// [`sub`]: Num::sub
/// [`inc`]: Num::inc
/// [`dec`]: Num::dec
/// [`get`]: Num::get
/// [`sum`]: Num::sum
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
pub type PerCpuNum<T> = Num<RawPerCpu<T>>;

/// The [`PerCpuNum<T>`] of a [`DeferredPerCpuNum<T>`](super::DeferredPerCpuNum), once allocated.
pub type PerCpuNumRef<'a, T> = Num<Borrowed<'a, T>>;

/// Per-CPU integers in the storage `S`, with the kernel's `this_cpu_*()` operations.
///
/// Use it through its aliases: [`PerCpuNum<T>`], [`StaticPerCpuNum<T>`](super::StaticPerCpuNum),
/// [`PerCpuNumRef`]. Updates are atomic with respect to interrupts and preemption on the current
/// CPU and need no guard; reads of other CPUs' values are racy snapshots (see [`PerCpuNum`]).
pub struct Num<S> {
    storage: S,
}

impl<S: PerCpuStorage<Item = T>, T: PerCpuInt> Num<S> {
    /// Returns the integers in `storage`.
    #[inline(always)]
    pub const fn from_storage(storage: S) -> Self {
        Self { storage }
    }

    /// Adds `v` to the current CPU's value.
    #[inline]
    pub fn add(&self, v: T) {
        // SAFETY: By the safety requirements of `PerCpuStorage`, `percpu_ptr()` is the per-CPU
        // address of one initialised `T` per possible CPU, live while `self` is borrowed.
        unsafe { T::this_cpu_add(self.storage.percpu_ptr(), v) }
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
        // SAFETY: By the safety requirements of `PerCpuStorage`, `percpu_ptr()` is the per-CPU
        // address of one initialised `T` per possible CPU, live while `self` is borrowed.
        unsafe { T::this_cpu_read(self.storage.percpu_ptr()) }
    }

    /// Sets the current CPU's value.
    #[inline]
    pub fn this_cpu_write(&self, v: T) {
        // SAFETY: By the safety requirements of `PerCpuStorage`, `percpu_ptr()` is the per-CPU
        // address of one initialised `T` per possible CPU, live while `self` is borrowed.
        unsafe { T::this_cpu_write(self.storage.percpu_ptr(), v) }
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
    /// use kernel::{percpu::PerCpuNum, preempt::PreemptGuard};
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
        // SAFETY: By the safety requirements of `PerCpuStorage`, `percpu_ptr()` is the per-CPU
        // address of one initialised `T` per possible CPU, live while `self` is borrowed.
        unsafe { T::this_cpu_xchg(self.storage.percpu_ptr(), v) }
    }

    /// Sets the current CPU's value to `new` if it is `old`; returns the value found (C's
    /// `this_cpu_cmpxchg()`). The exchange happened if the result equals `old`.
    #[inline]
    pub fn cmpxchg(&self, old: T, new: T) -> T {
        // SAFETY: By the safety requirements of `PerCpuStorage`, `percpu_ptr()` is the per-CPU
        // address of one initialised `T` per possible CPU, live while `self` is borrowed.
        unsafe { T::this_cpu_cmpxchg(self.storage.percpu_ptr(), old, new) }
    }

    /// Adds `v` to the current CPU's value and returns the new value (C's
    /// `this_cpu_add_return()`).
    #[inline]
    pub fn add_return(&self, v: T) -> T {
        // SAFETY: By the safety requirements of `PerCpuStorage`, `percpu_ptr()` is the per-CPU
        // address of one initialised `T` per possible CPU, live while `self` is borrowed.
        unsafe { T::this_cpu_add_return(self.storage.percpu_ptr(), v) }
    }

    /// Returns `cpu`'s value (C's `per_cpu()`).
    ///
    /// A racy snapshot: on 32-bit architectures a 64-bit value may tear (see the
    /// documentation of `PerCpuNum`).
    ///
    /// # Examples
    ///
    /// Only possible CPUs have a value:
    ///
    /// ```compile_fail,E0308
    /// use kernel::{cpu::CpuId, percpu::PerCpuNum};
    ///
    /// let n = PerCpuNum::<u64>::new(GFP_KERNEL)?;
    /// let v = n.get(CpuId::current()); // Not a `PossibleCpu`: it need not be possible.
    /// # Ok::<(), Error>(())
    /// ```
    #[inline]
    pub fn get(&self, cpu: PossibleCpu) -> T {
        // SAFETY: By the safety requirements of `PerCpuStorage`, `cpu_ptr(cpu)` is `cpu`'s
        // initialised value. The read is volatile (`READ_ONCE()`) because that CPU may update
        // its value concurrently; a torn read on 32-bit gives a valid integer.
        unsafe { self.storage.cpu_ptr(cpu).read_volatile() }
    }

    /// Returns the sum of all possible CPUs' values.
    ///
    /// Not a snapshot: updates that run concurrently may or may not be included.
    pub fn sum(&self) -> T {
        possible_cpus().fold(T::default(), |acc, cpu| acc.wrapping_add(self.get(cpu)))
    }
}

impl<T: PerCpuInt> Num<RawPerCpu<T>> {
    /// Allocates a zero value for every possible CPU.
    ///
    /// On failure nothing is left allocated: returns [`ENOMEM`] if the allocation fails.
    ///
    /// [`ENOMEM`]: crate::error::code::ENOMEM
    #[inline]
    pub fn new(flags: Flags) -> Result<Self> {
        Ok(Self {
            storage: RawPerCpu::alloc(flags)?,
        })
    }

    /// Sets every CPU's value to zero.
    pub fn reset(&mut self) {
        for cpu in possible_cpus() {
            // SAFETY: `cpu_ptr(cpu)` is `cpu`'s value; `&mut self` excludes every other access
            // through `self`, but the CPU may still update it: the write is volatile.
            unsafe { self.storage.cpu_ptr(cpu).write_volatile(T::default()) };
        }
    }
}

/// Per-CPU integers that another value owns, borrowed for `'a`.
///
/// # Invariants
///
/// `ptr` is the per-CPU address of one initialised `T` per possible CPU, live for `'a`, whose
/// values are accessed only with `this_cpu_*()` operations and volatile reads and writes.
pub struct Borrowed<'a, T> {
    ptr: *mut T,
    _p: PhantomData<&'a T>,
}

// SAFETY: Integers have no thread affinity; `Borrowed` does not own the memory.
unsafe impl<T: PerCpuInt> Send for Borrowed<'_, T> {}

// SAFETY: `&Borrowed` only gives out the per-CPU address.
unsafe impl<T: PerCpuInt> Sync for Borrowed<'_, T> {}

impl<T: PerCpuInt> Borrowed<'_, T> {
    /// Borrows the per-CPU integers at `ptr`.
    ///
    /// # Safety
    ///
    /// `ptr` is the per-CPU address of one initialised `T` per possible CPU, live for `'a`, whose
    /// values are accessed only with `this_cpu_*()` operations and volatile reads and writes for
    /// `'a`.
    #[inline(always)]
    pub(crate) unsafe fn new(ptr: *mut T) -> Self {
        // INVARIANT: The caller guarantees it.
        Self {
            ptr,
            _p: PhantomData,
        }
    }
}

// SAFETY: By the type invariants, `ptr` is the per-CPU address of one initialised `T` per
// possible CPU, live while `self` is borrowed.
unsafe impl<T: PerCpuInt> PerCpuStorage for Borrowed<'_, T> {
    type Item = T;

    #[inline(always)]
    fn percpu_ptr(&self) -> *mut T {
        self.ptr
    }
}

#[cfg(CONFIG_RUST_PERCPU_KUNIT_TEST)]
#[macros::kunit_tests(rust_kernel_percpu_num)]
mod tests {
    use super::*;
    use crate::{
        alloc::flags::{
            GFP_KERNEL,
            GFP_NOWAIT, //
        },
        percpu::online_cpus,
        preempt::PreemptGuard,
        prelude::*,
        smp::on_each_cpu,
        sync::new_spinlock, //
    };

    const ADDS: u64 = 10_000;

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
}
