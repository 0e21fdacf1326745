// SPDX-License-Identifier: GPL-2.0

//! The per-CPU storage contract and the dynamic allocation every per-CPU type is built on.
//!
//! [`PerCpuStorage`] is what the numeric operations and the slot types need from their memory:
//! one live value per possible CPU at a per-CPU address. It is implemented by the dynamic
//! allocation ([`RawPerCpu`]), by the static per-CPU variables of
//! [`define_per_cpu!`](crate::define_per_cpu) and by the borrowed views of
//! [`DeferredPerCpuNum`](super::DeferredPerCpuNum) and [`SharedPerCpu`](super::SharedPerCpu).

use super::PreemptGuard;
use crate::{
    alloc::{
        memalloc::might_alloc,
        Flags, //
    },
    bindings,
    cpu::PossibleCpu,
    error::{
        code::*,
        Result, //
    },
    ffi::c_void,
};
use core::{
    marker::PhantomData,
    mem::{
        align_of,
        size_of, //
    },
    ptr::NonNull, //
};
use pin_init::Zeroable;

/// Largest size, in bytes, of one CPU's part of a per-CPU allocation (C's `PCPU_MIN_UNIT_SIZE`).
///
/// For a [`PerCpuNum<T>`](super::PerCpuNum) this is the size of `T`; a
/// [`PerCpu<T>`](super::PerCpu) also keeps a 4-byte flag per CPU, so its limit for `T` is smaller
/// (see [`PerCpu::new`](super::PerCpu::new)).
pub const MAX_SIZE: usize = bindings::PCPU_MIN_UNIT_SIZE;

/// Largest alignment of a per-CPU allocation.
pub const MAX_ALIGN: usize = crate::page::PAGE_SIZE;

/// Memory that holds one `Self::Item` for every possible CPU, at a per-CPU address.
///
/// The per-CPU types of this module are generic over their storage: [`PerCpuNum<T>`] is
/// [`Num`](super::Num) over a [`RawPerCpu<T>`], [`StaticPerCpuNum<T>`] the same operations over a
/// static per-CPU variable.
///
/// # Safety
///
/// Implementers guarantee, for as long as the implementing value is borrowed:
///
/// - [`percpu_ptr`](Self::percpu_ptr) returns the per-CPU address (C's `void __percpu *`) of one
///   initialised `Self::Item` for every possible CPU, which the `this_cpu_*()` operations and
///   `per_cpu_ptr()` accept;
/// - the memory stays allocated, and each CPU's value initialised, until the borrow ends;
/// - [`cpu_ptr`](Self::cpu_ptr) and [`this_cpu_ptr`](Self::this_cpu_ptr), if overridden, return
///   what the default implementations return: the address of that CPU's value;
/// - nothing but the owner of the storage creates references to the values: users of the trait
///   decide how the values are accessed.
///
/// [`PerCpuNum<T>`]: super::PerCpuNum
/// [`StaticPerCpuNum<T>`]: super::StaticPerCpuNum
pub unsafe trait PerCpuStorage {
    /// The type of each CPU's value.
    type Item;

    /// Returns the per-CPU address of the values, for the `this_cpu_*()` operations.
    fn percpu_ptr(&self) -> *mut Self::Item;

    /// Returns the address of `cpu`'s value (C's `per_cpu_ptr()`).
    #[inline]
    fn cpu_ptr(&self, cpu: PossibleCpu) -> *mut Self::Item {
        // SAFETY: By the safety requirements of the trait, `percpu_ptr()` is a live per-CPU
        // address.
        unsafe { per_cpu_ptr(self.percpu_ptr(), cpu) }
    }

    /// Returns the address of the current CPU's value (C's `this_cpu_ptr()`).
    #[inline]
    fn this_cpu_ptr(&self, preempt: &PreemptGuard) -> *mut Self::Item {
        // SAFETY: By the safety requirements of the trait, `percpu_ptr()` is a live per-CPU
        // address.
        unsafe { this_cpu_ptr(self.percpu_ptr(), preempt) }
    }
}

/// Returns the address of `cpu`'s copy of the per-CPU object at `ptr` (C's `per_cpu_ptr()`).
///
/// # Safety
///
/// `ptr` is the per-CPU address of a live per-CPU object (dangling if `T` is zero-sized).
#[inline(always)]
pub(crate) unsafe fn per_cpu_ptr<T>(ptr: *mut T, cpu: PossibleCpu) -> *mut T {
    if size_of::<T>() == 0 {
        return ptr;
    }
    // SAFETY: The caller guarantees that `ptr` is a live per-CPU address; by the type invariants
    // of `PossibleCpu`, `cpu` is a possible CPU, for which `per_cpu_ptr()` is defined.
    unsafe { bindings::per_cpu_ptr(ptr.cast(), cpu.as_u32()) }.cast()
}

/// Returns the address of the current CPU's copy of the per-CPU object at `ptr` (C's
/// `this_cpu_ptr()`).
///
/// # Safety
///
/// `ptr` is the per-CPU address of a live per-CPU object (dangling if `T` is zero-sized).
#[inline(always)]
pub(crate) unsafe fn this_cpu_ptr<T>(ptr: *mut T, _preempt: &PreemptGuard) -> *mut T {
    if size_of::<T>() == 0 {
        return ptr;
    }
    // SAFETY: The caller guarantees that `ptr` is a live per-CPU address; preemption is disabled,
    // as `this_cpu_ptr()` requires.
    unsafe { bindings::this_cpu_ptr(ptr.cast()) }.cast()
}

/// Allocates `size` zeroed bytes aligned to `align` for every possible CPU.
///
/// Returns [`E2BIG`] if `size` is larger than [`MAX_SIZE`], [`EINVAL`] if `size` is zero or
/// `align` is not a power of two no larger than [`MAX_ALIGN`], [`ENOMEM`] if the allocation fails.
/// The checks are the allocator's own, so it never warns about an illegal request.
#[inline]
pub(crate) fn alloc_bytes(size: usize, align: usize, flags: Flags) -> Result<NonNull<c_void>> {
    if size > MAX_SIZE {
        return Err(E2BIG);
    }
    if size == 0 || !align.is_power_of_two() || align > MAX_ALIGN {
        return Err(EINVAL);
    }
    // `pcpu_alloc()` has no allocation annotation of its own: tell lockdep and the atomic-sleep
    // checker what this allocation may do, even when it takes the fast path.
    might_alloc(flags);
    // SAFETY: `size` and `align` are valid for the per-CPU allocator (checked above).
    let ptr = unsafe { bindings::__alloc_percpu_gfp(size, align, flags.as_raw()) };
    NonNull::new(ptr).ok_or(ENOMEM)
}

/// Frees an allocation of [`alloc_bytes`].
///
/// `free_percpu()` takes the per-CPU allocator's `spinlock_t` with interrupts saved: see the
/// [module documentation](super) for the contexts where that is allowed (lockdep checks it on
/// every call).
///
/// # Safety
///
/// `ptr` was returned by [`alloc_bytes`] and is not used afterwards.
#[inline]
pub(crate) unsafe fn free_bytes(ptr: NonNull<c_void>) {
    // SAFETY: The caller guarantees that `ptr` came from `__alloc_percpu_gfp()` and is freed once.
    unsafe { bindings::free_percpu(ptr.as_ptr()) };
}

/// An owned dynamic per-CPU allocation of one `T` per possible CPU, zero-filled, without
/// initialisation bookkeeping: the storage of the dynamic per-CPU types.
///
/// It never drops the `T`s: the types built on it do.
///
/// # Invariants
///
/// If `T` is not zero-sized, `ptr` was returned by `alloc_bytes()` for `size_of::<T>()` bytes
/// aligned to `align_of::<T>()`, and is freed only by `Drop`. If `T` is zero-sized, `ptr` is
/// dangling and nothing was allocated.
pub struct RawPerCpu<T> {
    ptr: NonNull<T>,
    _p: PhantomData<T>,
}

// SAFETY: The allocation has no thread affinity and may be freed from any thread; `RawPerCpu`
// never accesses or drops a `T`.
unsafe impl<T> Send for RawPerCpu<T> {}

// SAFETY: `&RawPerCpu` only gives out addresses.
unsafe impl<T> Sync for RawPerCpu<T> {}

impl<T> RawPerCpu<T> {
    /// Allocates zeroed memory for one `T` per possible CPU.
    ///
    /// `T` is everything stored per CPU, bookkeeping included. Errors as [`alloc_bytes`].
    #[inline]
    pub(crate) fn alloc(flags: Flags) -> Result<Self> {
        if size_of::<T>() == 0 {
            // INVARIANT: Zero-sized: nothing to allocate.
            return Ok(Self {
                ptr: NonNull::dangling(),
                _p: PhantomData,
            });
        }
        // INVARIANT: The allocation has the size and alignment of `T`.
        Ok(Self {
            ptr: alloc_bytes(size_of::<T>(), align_of::<T>(), flags)?.cast(),
            _p: PhantomData,
        })
    }

    /// Returns the per-CPU address of the values.
    #[inline(always)]
    pub(crate) fn percpu(&self) -> *mut T {
        self.ptr.as_ptr()
    }

    /// Returns the address of `cpu`'s value.
    #[inline(always)]
    pub(crate) fn cpu(&self, cpu: PossibleCpu) -> *mut T {
        // SAFETY: By the type invariants `ptr` is a live per-CPU allocation of a `T`.
        unsafe { per_cpu_ptr(self.percpu(), cpu) }
    }

    /// Returns the address of the current CPU's value.
    #[inline(always)]
    pub(crate) fn this_cpu(&self, preempt: &PreemptGuard) -> *mut T {
        // SAFETY: By the type invariants `ptr` is a live per-CPU allocation of a `T`.
        unsafe { this_cpu_ptr(self.percpu(), preempt) }
    }
}

// SAFETY: `ptr` is the per-CPU address of one `T` per possible CPU (type invariants), live until
// `self` is dropped; the allocator zero-fills it, and zero bytes are a valid `T`. `RawPerCpu`
// creates no references to the values.
unsafe impl<T: Zeroable> PerCpuStorage for RawPerCpu<T> {
    type Item = T;

    #[inline(always)]
    fn percpu_ptr(&self) -> *mut T {
        self.percpu()
    }
}

impl<T> Drop for RawPerCpu<T> {
    #[inline]
    fn drop(&mut self) {
        if size_of::<T>() != 0 {
            // SAFETY: By the type invariants, `ptr` came from `alloc_bytes()` and is freed only
            // here.
            unsafe { free_bytes(self.ptr.cast()) };
        }
    }
}
