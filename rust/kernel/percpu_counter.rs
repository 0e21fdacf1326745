// SPDX-License-Identifier: GPL-2.0

//! Per-CPU counters (`struct percpu_counter`).
//!
//! A [`PercpuCounter`] is the kernel's `struct percpu_counter`: each CPU accumulates a small
//! local delta and folds it into the shared count once it exceeds a batch, so updates rarely
//! touch shared state. [`PercpuCounters`] holds several counters in one per-CPU allocation.
//!
//! The ways to read a counter trade cost for precision:
//!
//! - [`read`](PercpuCounter::read) is cheap but approximate: it may be off by up to about
//!   `batch × number of online CPUs`. The default batch is `max(32, 2 × online CPUs)`.
//! - [`sum`](PercpuCounter::sum) is precise and visits every CPU under the counter's lock. Pay
//!   for it when an exact value matters, such as for limits and user-visible totals, not on every
//!   update.
//! - [`compare`](PercpuCounter::compare) uses `read` when the difference is large and falls back
//!   to `sum` only near the boundary.
//!
//! The bound on `read`, and with it the precision of [`compare`](PercpuCounter::compare) and
//! [`limited_add`](PercpuCounter::limited_add), holds only while every update used a batch no
//! larger than the default: [`add_local`](PercpuCounter::add_local) and a larger
//! [`add_batch`](PercpuCounter::add_batch) leave up to that batch on each CPU. Use
//! [`compare_batch`](PercpuCounter::compare_batch) with the largest batch used, or `sum`, on such
//! counters.
//!
//! When a CPU goes offline, its delta is folded into the count, so no update is lost.
//!
//! C header: [`include/linux/percpu_counter.h`](srctree/include/linux/percpu_counter.h)

use crate::{
    alloc::{
        memalloc::might_alloc,
        Flags, //
    },
    bindings,
    error::to_result,
    prelude::*,
    sync::LockClassKey,
    types::Opaque, //
};
use core::cmp::Ordering;

mod array;
#[doc(inline)]
pub use self::array::{
    new_percpu_counters,
    PercpuCounters, //
};

/// Creates a [`PercpuCounter`] initialiser with a lock class for this call site.
///
/// Arguments: the initial value and the allocation [`Flags`].
///
/// # Examples
///
/// ```
/// use kernel::{
///     new_percpu_counter,
///     percpu_counter::PercpuCounter, //
/// };
///
/// let c = KBox::pin_init(new_percpu_counter!(10, GFP_KERNEL), GFP_KERNEL)?;
/// c.add(5);
/// assert_eq!(c.sum(), 15);
/// # Ok::<(), Error>(())
/// ```
#[macro_export]
macro_rules! new_percpu_counter {
    ($value:expr, $flags:expr $(,)?) => {
        $crate::percpu_counter::PercpuCounter::new($value, $flags, $crate::static_lock_class!())
    };
}
pub use new_percpu_counter;

/// A `struct percpu_counter`.
///
/// Dropping the counter destroys it: that frees its per-CPU memory and, with
/// `CONFIG_HOTPLUG_CPU`, removes it from the hotplug list, under `spinlock_t` locks.
///
/// # Context
///
/// - Updates and reads: task, softirq and hard interrupt context, as in C.
/// - Drop: where a `spinlock_t` may be taken, such as under a [`SpinLock`] or in an `irq_work`;
///   not under a raw spinlock or in an inter-processor interrupt.
/// - `PREEMPT_RT`: those `spinlock_t` locks sleep, so the drop may sleep.
///
/// [`SpinLock`]: crate::sync::SpinLock
///
/// # Invariants
///
/// `inner` was initialised by `__percpu_counter_init_many()`, stays pinned, and is destroyed only
/// by `PinnedDrop` (or, for counters inside a [`PercpuCounters`], by that type's `PinnedDrop`).
#[repr(transparent)]
#[pin_data(PinnedDrop)]
pub struct PercpuCounter {
    #[pin]
    inner: Opaque<bindings::percpu_counter>,
}

// SAFETY: A `percpu_counter` may be used and destroyed from any thread.
unsafe impl Send for PercpuCounter {}

// SAFETY: All operations through `&PercpuCounter` are synchronised by the C implementation: its
// raw spinlock and interrupt-safe per-CPU operations.
unsafe impl Sync for PercpuCounter {}

impl PercpuCounter {
    /// Creates a counter with the value `value`.
    ///
    /// Use [`new_percpu_counter!`] for a lock class per call site. Allocates per-CPU memory with
    /// `flags`, after telling lockdep about it with [`might_alloc`], and honours the task's
    /// [memory allocation scopes](crate::alloc::memalloc).
    ///
    /// Fails with [`ENOMEM`] if the per-CPU allocation fails; the counter is then not
    /// initialised, nothing is left allocated and, with `KBox::pin_init()`, the box is freed.
    ///
    /// [`ENOMEM`]: crate::error::code::ENOMEM
    pub fn new(
        value: i64,
        flags: Flags,
        key: Pin<&'static LockClassKey>,
    ) -> impl PinInit<Self, Error> {
        try_pin_init!(Self {
            // INVARIANT: On success the C initialiser created a valid counter, which stays pinned
            // until `PinnedDrop` runs.
            inner <- Opaque::try_ffi_init(move |ptr: *mut bindings::percpu_counter| {
                might_alloc(flags);
                // SAFETY: `ptr` is valid uninitialised memory for one counter; `key` is static.
                to_result(unsafe {
                    bindings::__percpu_counter_init_many(
                        ptr,
                        value,
                        flags.as_raw(),
                        1,
                        key.as_ptr(),
                    )
                })
            }),
        })
    }

    #[inline]
    fn as_raw(&self) -> *mut bindings::percpu_counter {
        self.inner.get()
    }

    /// Adds `amount` (C's `percpu_counter_add()`).
    ///
    /// As in C, `amount` must not be [`i64::MIN`]: C compares its absolute value with the batch,
    /// which overflows. What happens then is neither undefined behaviour nor a warning:
    ///
    /// - If this CPU's pending delta is 0, the update is lost.
    /// - Otherwise it is folded into the shared count with wrapping arithmetic: `add(1)` then
    ///   `add(i64::MIN)` leaves `i64::MIN + 1`.
    ///
    /// The same holds for [`sub`](Self::sub) of [`i64::MIN`] and for the other `add_*`/`sub_*`
    /// methods.
    #[inline]
    pub fn add(&self, amount: i64) {
        // SAFETY: By the type invariants, the counter is initialised.
        unsafe { bindings::percpu_counter_add(self.as_raw(), amount) }
    }

    /// Subtracts `amount` (C's `percpu_counter_sub()`).
    #[inline]
    pub fn sub(&self, amount: i64) {
        // SAFETY: By the type invariants, the counter is initialised.
        unsafe { bindings::percpu_counter_sub(self.as_raw(), amount) }
    }

    /// Adds one (C's `percpu_counter_inc()`).
    #[inline]
    pub fn inc(&self) {
        // SAFETY: By the type invariants, the counter is initialised.
        unsafe { bindings::percpu_counter_inc(self.as_raw()) }
    }

    /// Subtracts one (C's `percpu_counter_dec()`).
    #[inline]
    pub fn dec(&self) {
        // SAFETY: By the type invariants, the counter is initialised.
        unsafe { bindings::percpu_counter_dec(self.as_raw()) }
    }

    /// Adds `amount`, folding the local delta into the count once it exceeds `batch` (C's
    /// `percpu_counter_add_batch()`).
    #[inline]
    pub fn add_batch(&self, amount: i64, batch: i32) {
        // SAFETY: By the type invariants, the counter is initialised.
        unsafe { bindings::percpu_counter_add_batch(self.as_raw(), amount, batch) }
    }

    /// Adds `amount` with a very large batch (C's `percpu_counter_add_local()`).
    ///
    /// For counters updated often and read rarely with [`sum`](Self::sum): [`read`](Self::read)
    /// is then imprecise. Without `CONFIG_SMP` every update goes straight to the count, as with
    /// [`add`](Self::add).
    #[inline]
    pub fn add_local(&self, amount: i64) {
        // SAFETY: By the type invariants, the counter is initialised.
        unsafe { bindings::percpu_counter_add_local(self.as_raw(), amount) }
    }

    /// Subtracts `amount` with a very large batch (C's `percpu_counter_sub_local()`).
    ///
    /// The counterpart of [`add_local`](Self::add_local).
    #[inline]
    pub fn sub_local(&self, amount: i64) {
        // SAFETY: By the type invariants, the counter is initialised.
        unsafe { bindings::percpu_counter_sub_local(self.as_raw(), amount) }
    }

    /// Returns the approximate value (C's `percpu_counter_read()`).
    ///
    /// That is the shared count without the CPUs' local deltas:
    ///
    /// - It is off by at most about `batch × online CPUs` from [`sum`](Self::sum) when only
    ///   [`add`](Self::add) is used; [`add_local`](Self::add_local) widens the bound.
    /// - On 32-bit architectures the 64-bit shared count is read without its lock, as in C, so a
    ///   read that races with a fold may be torn, wrong by up to 2^32. The comparisons built on
    ///   it share that limit there. Use [`sum`](Self::sum) where that matters.
    #[inline]
    pub fn read(&self) -> i64 {
        // SAFETY: By the type invariants, the counter is initialised.
        unsafe { bindings::percpu_counter_read(self.as_raw()) }
    }

    /// Like [`read`](Self::read), but returns zero instead of a negative value (C's
    /// `percpu_counter_read_positive()`).
    ///
    /// Also without `CONFIG_SMP`, where C's version returns the count as it is: C assumes that
    /// such a counter never goes negative.
    #[inline]
    pub fn read_positive(&self) -> i64 {
        // SAFETY: By the type invariants, the counter is initialised.
        let v = unsafe { bindings::percpu_counter_read_positive(self.as_raw()) };
        #[cfg(not(CONFIG_SMP))]
        let v = v.max(0);
        v
    }

    /// Returns the precise value (C's `percpu_counter_sum()`).
    ///
    /// It adds every CPU's delta to the count under the counter's lock.
    #[inline]
    pub fn sum(&self) -> i64 {
        // SAFETY: By the type invariants, the counter is initialised.
        unsafe { bindings::percpu_counter_sum(self.as_raw()) }
    }

    /// Like [`sum`](Self::sum), but returns zero instead of a negative value (C's
    /// `percpu_counter_sum_positive()`).
    ///
    /// Also without `CONFIG_SMP`, as [`read_positive`](Self::read_positive).
    #[inline]
    pub fn sum_positive(&self) -> i64 {
        // SAFETY: By the type invariants, the counter is initialised.
        let v = unsafe { bindings::percpu_counter_sum_positive(self.as_raw()) };
        #[cfg(not(CONFIG_SMP))]
        let v = v.max(0);
        v
    }

    /// Compares the counter with `rhs` (C's `percpu_counter_compare()`).
    ///
    /// It uses the cheap [`read`](Self::read) when the counter is far enough from `rhs`, and
    /// [`sum`](Self::sum) otherwise. Up to updates that run concurrently, the result is precise
    /// only if every update of the counter used a batch no larger than the
    /// [default](Self::default_batch): not after [`add_local`](Self::add_local) or
    /// [`add_batch`](Self::add_batch) with a larger batch. Use
    /// [`compare_batch`](Self::compare_batch) for those.
    #[inline]
    pub fn compare(&self, rhs: i64) -> Ordering {
        self.compare_batch(rhs, Self::default_batch())
    }

    /// Compares the counter with `rhs`, assuming that no update used a batch above `batch` (C's
    /// `__percpu_counter_compare()`).
    ///
    /// Like [`compare`](Self::compare), precise if every update used a batch no larger than
    /// `batch`. Unlike C, which multiplies `batch` by the number of online CPUs in 32 bits, the
    /// bound is computed without overflow, so any `batch` up to [`i32::MAX`], which is what
    /// [`add_local`](Self::add_local) uses, is precise. `rhs` may be any value.
    pub fn compare_batch(&self, rhs: i64, batch: i32) -> Ordering {
        let count = self.read();
        // Every CPU (online or dying) holds a delta below the largest batch used: `read()` is
        // off by less than `batch × CPUs`. `nr_cpu_ids` bounds the number of CPUs.
        let bound = u64::from(batch.max(0).unsigned_abs()) * u64::from(crate::cpu::nr_cpu_ids());
        if count.abs_diff(rhs) > bound {
            return count.cmp(&rhs);
        }
        self.sum().cmp(&rhs)
    }

    /// Sets the counter to `amount`, clearing every CPU's delta (C's `percpu_counter_set()`).
    ///
    /// Updates running concurrently on other CPUs may be lost, as in C. On a
    /// `Pin<KBox<PercpuCounter>>`, [`Pin::set`] shadows this method: call it on a
    /// `&PercpuCounter`.
    #[inline]
    pub fn set(&self, amount: i64) {
        // SAFETY: By the type invariants, the counter is initialised.
        unsafe { bindings::percpu_counter_set(self.as_raw(), amount) }
    }

    /// Adds `amount` if the result stays within `limit`, and returns whether it did (C's
    /// `percpu_counter_limited_add()`).
    ///
    /// Within `limit` means at or below it for a positive `amount`, and at or above it for a
    /// negative one. An `amount` of zero adds nothing and returns `true`, even if the counter is
    /// already past `limit`. Like [`compare`](Self::compare), the check is precise only if every
    /// update used a batch no larger than the default.
    ///
    /// C assumes that the counter, `limit` and `amount` are far from [`i64::MIN`] and
    /// [`i64::MAX`]: it adds them and `batch * online CPUs` without overflow checks. Keep them
    /// within about +/- 2^62, or the arithmetic wraps and the answer may be wrong. The kernel is
    /// built with `-fno-strict-overflow`, so that is a wrong answer, not undefined behaviour.
    #[inline]
    pub fn limited_add(&self, limit: i64, amount: i64) -> bool {
        // SAFETY: By the type invariants, the counter is initialised.
        unsafe { bindings::percpu_counter_limited_add(self.as_raw(), limit, amount) }
    }

    /// Folds the current CPU's delta into the count (C's `percpu_counter_sync()`).
    #[inline]
    pub fn sync(&self) {
        // SAFETY: By the type invariants, the counter is initialised.
        unsafe { bindings::percpu_counter_sync(self.as_raw()) }
    }

    /// Returns the default batch (C's `percpu_counter_batch`).
    ///
    /// It is `max(32, 2 × online CPUs)`. Without `CONFIG_SMP` there is no per-CPU delta, every
    /// update goes straight to the count and C has no `percpu_counter_batch`: the batch is 0.
    #[inline]
    pub fn default_batch() -> i32 {
        #[cfg(CONFIG_SMP)]
        // SAFETY: `percpu_counter_batch` is an `int` that the kernel updates on CPU hotplug; a
        // racy read gives the old or the new batch, both valid.
        let batch = unsafe { core::ptr::addr_of!(bindings::percpu_counter_batch).read_volatile() };
        #[cfg(not(CONFIG_SMP))]
        let batch = 0;
        batch
    }
}

#[pinned_drop]
impl PinnedDrop for PercpuCounter {
    fn drop(self: Pin<&mut Self>) {
        // SAFETY: By the type invariants, the counter is initialised and is destroyed only here.
        unsafe { bindings::percpu_counter_destroy_many(self.as_raw(), 1) };
    }
}

#[cfg(CONFIG_RUST_PERCPU_COUNTER_KUNIT_TEST)]
mod tests;
