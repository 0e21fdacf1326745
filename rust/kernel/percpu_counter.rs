// SPDX-License-Identifier: GPL-2.0

//! Per-CPU counters (`struct percpu_counter`).
//!
//! A [`PercpuCounter`] is the kernel's `struct percpu_counter`: each CPU accumulates a small
//! local delta and folds it into the shared count once it exceeds a batch, so updates rarely
//! touch shared state. [`read`](PercpuCounter::read) is cheap but approximate: it may be off by up
//! to about `batch × number of online CPUs` (the default batch is
//! `max(32, 2 × online CPUs)`). [`sum`](PercpuCounter::sum) is precise and visits every CPU under
//! the counter's lock: pay for it when an exact value matters (limits, user-visible totals), not
//! on every update. [`compare`](PercpuCounter::compare) uses `read` when the difference is large
//! and falls back to `sum` only near the boundary.
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
    alloc::{memalloc::might_alloc, Flags},
    bindings,
    error::to_result,
    prelude::*,
    sync::LockClassKey,
    types::Opaque,
};
use core::cmp::Ordering;

/// Creates a [`PercpuCounter`] initialiser with a lock class for this call site.
///
/// Arguments: the initial value and the allocation [`Flags`].
///
/// # Examples
///
/// ```
/// use kernel::new_percpu_counter;
/// use kernel::percpu_counter::PercpuCounter;
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

/// Creates a [`PercpuCounters`] initialiser (several counters in one per-CPU allocation) with a
/// lock class for this call site.
///
/// Arguments: the initial value of every counter and the allocation [`Flags`]; the number of
/// counters is the type's `N`.
///
/// # Examples
///
/// ```
/// use kernel::new_percpu_counters;
/// use kernel::percpu_counter::{PercpuCounter, PercpuCounters};
///
/// let c: Pin<KBox<PercpuCounters<3>>> =
///     KBox::pin_init(new_percpu_counters!(0, GFP_KERNEL), GFP_KERNEL)?;
/// let (reads, bytes) = (c.first().ok_or(EINVAL)?, c.get(2).ok_or(EINVAL)?);
/// reads.inc();
/// bytes.add(7);
/// let sums: [i64; 3] = core::array::from_fn(|i| c.get(i).map_or(-1, PercpuCounter::sum));
/// assert_eq!(sums, [1, 0, 7]);
/// # Ok::<(), Error>(())
/// ```
#[macro_export]
macro_rules! new_percpu_counters {
    ($value:expr, $flags:expr $(,)?) => {
        $crate::percpu_counter::PercpuCounters::new($value, $flags, $crate::static_lock_class!())
    };
}
pub use new_percpu_counters;

/// A `struct percpu_counter`.
///
/// Updates work from any context C allows (task, softirq and hard interrupt). Dropping the
/// counter destroys it: that frees per-CPU memory and, with `CONFIG_HOTPLUG_CPU`, removes it from
/// the hotplug list, under `spinlock_t` locks. So drop it where a `spinlock_t` may be taken:
/// under a `SpinLock` or in an `irq_work` is fine, under a raw spinlock or in an inter-processor
/// interrupt is not, and on `PREEMPT_RT` those locks sleep.
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

// SAFETY: All operations through `&PercpuCounter` are synchronised by the C implementation (its
// raw spinlock and interrupt-safe per-CPU operations).
unsafe impl Sync for PercpuCounter {}

impl PercpuCounter {
    /// Creates a counter with the value `value`. Use [`new_percpu_counter!`] for a lock class per
    /// call site.
    ///
    /// Allocates per-CPU memory with `flags`, after telling lockdep about it ([`might_alloc`]),
    /// and honours the task's [memory allocation scopes](crate::alloc::memalloc).
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
    /// which overflows. If this CPU's pending delta is 0 the update is lost; otherwise it is
    /// folded into the shared count with wrapping arithmetic (`add(1); add(i64::MIN)` leaves
    /// `i64::MIN + 1`). Neither is undefined behaviour or warns. The same holds for
    /// [`sub`](Self::sub) of [`i64::MIN`] and for the other `add_*`/`sub_*` methods.
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

    /// Adds `amount` with a very large batch, for counters updated often and read rarely with
    /// [`sum`](Self::sum) (C's `percpu_counter_add_local()`); [`read`](Self::read) is then
    /// imprecise. Without `CONFIG_SMP` every update goes straight to the count, as with
    /// [`add`](Self::add).
    #[inline]
    pub fn add_local(&self, amount: i64) {
        // SAFETY: By the type invariants, the counter is initialised.
        unsafe { bindings::percpu_counter_add_local(self.as_raw(), amount) }
    }

    /// Subtracts `amount` like [`add_local`](Self::add_local) (C's
    /// `percpu_counter_sub_local()`).
    #[inline]
    pub fn sub_local(&self, amount: i64) {
        // SAFETY: By the type invariants, the counter is initialised.
        unsafe { bindings::percpu_counter_sub_local(self.as_raw(), amount) }
    }

    /// Returns the approximate value: the shared count without the CPUs' local deltas (C's
    /// `percpu_counter_read()`).
    ///
    /// Off by at most about `batch × online CPUs` from [`sum`](Self::sum) when only
    /// [`add`](Self::add) is used; [`add_local`](Self::add_local) widens the bound. On 32-bit
    /// architectures the 64-bit shared count is read without its lock, as in C, so a read that
    /// races with a fold may be torn (wrong by up to 2^32); the comparisons built on it share that
    /// limit there. Use [`sum`](Self::sum) where that matters.
    #[inline]
    pub fn read(&self) -> i64 {
        // SAFETY: By the type invariants, the counter is initialised.
        unsafe { bindings::percpu_counter_read(self.as_raw()) }
    }

    /// Like [`read`](Self::read), but returns zero instead of a negative value (C's
    /// `percpu_counter_read_positive()`).
    ///
    /// Also without `CONFIG_SMP`, where C's returns the count as it is (C assumes that such a
    /// counter never goes negative).
    #[inline]
    pub fn read_positive(&self) -> i64 {
        // SAFETY: By the type invariants, the counter is initialised.
        let v = unsafe { bindings::percpu_counter_read_positive(self.as_raw()) };
        #[cfg(not(CONFIG_SMP))]
        let v = v.max(0);
        v
    }

    /// Returns the precise value, adding every CPU's delta under the counter's lock (C's
    /// `percpu_counter_sum()`).
    #[inline]
    pub fn sum(&self) -> i64 {
        // SAFETY: By the type invariants, the counter is initialised.
        unsafe { bindings::percpu_counter_sum(self.as_raw()) }
    }

    /// Like [`sum`](Self::sum), but returns zero instead of a negative value (C's
    /// `percpu_counter_sum_positive()`), also without `CONFIG_SMP` (see
    /// [`read_positive`](Self::read_positive)).
    #[inline]
    pub fn sum_positive(&self) -> i64 {
        // SAFETY: By the type invariants, the counter is initialised.
        let v = unsafe { bindings::percpu_counter_sum_positive(self.as_raw()) };
        #[cfg(not(CONFIG_SMP))]
        let v = v.max(0);
        v
    }

    /// Compares the counter with `rhs`, using the cheap [`read`](Self::read) when it is far
    /// enough from `rhs` and [`sum`](Self::sum) otherwise (C's `percpu_counter_compare()`).
    ///
    /// Precise (up to updates that run concurrently) only if every update of the counter used a
    /// batch no larger than the [default](Self::default_batch): not after
    /// [`add_local`](Self::add_local) or [`add_batch`](Self::add_batch) with a larger batch. Use
    /// [`compare_batch`](Self::compare_batch) for those.
    #[inline]
    pub fn compare(&self, rhs: i64) -> Ordering {
        self.compare_batch(rhs, Self::default_batch())
    }

    /// Like [`compare`](Self::compare), precise if every update used a batch no larger than
    /// `batch` (C's `__percpu_counter_compare()`).
    ///
    /// Unlike C, which multiplies `batch` by the number of online CPUs in 32 bits, the bound is
    /// computed without overflow, so any `batch` up to [`i32::MAX`] (what
    /// [`add_local`](Self::add_local) uses) is precise; `rhs` may be any value.
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

    /// Adds `amount` only if the result stays at or below `limit` (for a positive `amount`) or
    /// at or above it (for a negative one); returns whether it was added (C's
    /// `percpu_counter_limited_add()`).
    ///
    /// An `amount` of zero adds nothing and returns `true`, even if the counter is already past
    /// `limit`. Like [`compare`](Self::compare), the check is precise only if every update used a
    /// batch no larger than the default.
    ///
    /// C assumes that the counter, `limit` and `amount` are far from [`i64::MIN`] and
    /// [`i64::MAX`] (it adds them and `batch * online CPUs` without overflow checks): keep them
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

    /// Returns the default batch (C's `percpu_counter_batch`): `max(32, 2 × online CPUs)`.
    ///
    /// Without `CONFIG_SMP` every update goes straight to the count (there is no per-CPU
    /// delta and C has no `percpu_counter_batch`): the batch is 0.
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
        // Destruction does not sleep.
        unsafe { bindings::percpu_counter_destroy_many(self.as_raw(), 1) };
    }
}

/// `N` counters in one per-CPU allocation (C's `percpu_counter_init_many()`).
///
/// Index it to reach each [`PercpuCounter`].
///
/// # Invariants
///
/// `inner` was initialised by `__percpu_counter_init_many()` with `N` counters, stays pinned, and
/// is destroyed only by `PinnedDrop` (with `percpu_counter_destroy_many()`).
#[pin_data(PinnedDrop)]
pub struct PercpuCounters<const N: usize> {
    #[pin]
    inner: Opaque<[bindings::percpu_counter; N]>,
}

// SAFETY: See `PercpuCounter`.
unsafe impl<const N: usize> Send for PercpuCounters<N> {}

// SAFETY: See `PercpuCounter`.
unsafe impl<const N: usize> Sync for PercpuCounters<N> {}

impl<const N: usize> PercpuCounters<N> {
    /// Largest supported `N`: C allocates one `s32` per counter and CPU in a single per-CPU
    /// allocation, which is limited to `PCPU_MIN_UNIT_SIZE` bytes.
    pub const MAX_COUNTERS: usize = bindings::PCPU_MIN_UNIT_SIZE / core::mem::size_of::<i32>();

    /// Creates `N` counters with the value `value`. Use [`new_percpu_counters!`] for a lock class
    /// per call site.
    ///
    /// Returns [`EINVAL`] if `N` is zero, and [`E2BIG`] if the `N` per-CPU `s32` deltas do not
    /// fit in one per-CPU allocation ([`MAX_COUNTERS`](Self::MAX_COUNTERS)).
    pub fn new(
        value: i64,
        flags: Flags,
        key: Pin<&'static LockClassKey>,
    ) -> impl PinInit<Self, Error> {
        try_pin_init!(Self {
            // INVARIANT: On success the C initialiser created `N` valid counters, which stay
            // pinned until `PinnedDrop` runs.
            inner <- Opaque::try_ffi_init(move |ptr: *mut [bindings::percpu_counter; N]| {
                if N == 0 {
                    return Err(EINVAL);
                }
                // The per-CPU allocator WARNs about (and fails) larger allocations.
                if N > Self::MAX_COUNTERS {
                    return Err(E2BIG);
                }
                let n = u32::try_from(N).map_err(|_| E2BIG)?;
                might_alloc(flags);
                // SAFETY: `ptr` is valid uninitialised memory for `N` counters; `key` is static.
                to_result(unsafe {
                    bindings::__percpu_counter_init_many(
                        ptr.cast(),
                        value,
                        flags.as_raw(),
                        n,
                        key.as_ptr(),
                    )
                })
            }),
        })
    }

    /// Returns the counters as a slice.
    pub fn as_slice(&self) -> &[PercpuCounter] {
        // CAST: `PercpuCounter` is a transparent wrapper of `Opaque<percpu_counter>`, which has
        // the layout of `percpu_counter`.
        // SAFETY: By the type invariants the `N` counters are initialised and live as long as
        // `self`; they are destroyed by `Self`, which is why `&PercpuCounter` (never an owned
        // one) is handed out.
        unsafe { core::slice::from_raw_parts(self.inner.get().cast::<PercpuCounter>(), N) }
    }
}

impl<const N: usize> core::ops::Deref for PercpuCounters<N> {
    type Target = [PercpuCounter];

    fn deref(&self) -> &[PercpuCounter] {
        self.as_slice()
    }
}

#[pinned_drop]
impl<const N: usize> PinnedDrop for PercpuCounters<N> {
    fn drop(self: Pin<&mut Self>) {
        // SAFETY: By the type invariants, the `N` counters are initialised and are destroyed only
        // here; `N` fits `u32` since initialisation succeeded.
        unsafe { bindings::percpu_counter_destroy_many(self.inner.get().cast(), N as u32) };
    }
}

#[cfg(CONFIG_RUST_PERCPU_COUNTER_KUNIT_TEST)]
#[macros::kunit_tests(rust_kernel_percpu_counter)]
mod tests {
    use super::*;
    use crate::alloc::flags::GFP_KERNEL;
    use crate::percpu::{on_each_cpu, online_cpus};
    use crate::{new_percpu_counter, new_percpu_counters};
    use core::cmp::Ordering::{Equal, Greater, Less};

    #[test]
    fn basic_operations() -> Result {
        let c = KBox::pin_init(new_percpu_counter!(100, GFP_KERNEL), GFP_KERNEL)?;
        c.add(10);
        c.sub(5);
        c.inc();
        c.dec();
        c.add_batch(3, 1);
        c.add_local(7);
        c.sub_local(2);
        let s1 = c.sum();
        c.sync();
        // `Pin::set` shadows `PercpuCounter::set` on a `Pin<KBox<_>>`: call it on a reference.
        let r: &PercpuCounter = &c;
        r.set(-5);
        let (r, rp, s, sp) = (c.read(), c.read_positive(), c.sum(), c.sum_positive());
        assert_eq!(s1, 113);
        assert_eq!((r, rp, s, sp), (-5, 0, -5, 0));
        // Without `CONFIG_SMP` the batch is 0.
        let smp_batch = PercpuCounter::default_batch() >= 32;
        assert_eq!(smp_batch, cfg!(CONFIG_SMP));
        Ok(())
    }

    #[test]
    fn compare_at_and_around_boundary() -> Result {
        let c = KBox::pin_init(new_percpu_counter!(0, GFP_KERNEL), GFP_KERNEL)?;
        // Local deltas below the batch: `read()` lags, `compare()` must still be exact.
        for _ in 0..20 {
            c.inc();
        }
        let r = [
            c.compare(19),
            c.compare(20),
            c.compare(21),
            c.compare(-1000),
            c.compare(1000),
        ];
        // A batch large enough to cover the local deltas makes the comparison exact.
        let b = [
            c.compare_batch(20, 1000),
            c.compare_batch(21, 1000),
            c.compare_batch(19, 1000),
        ];
        assert!(r == [Greater, Equal, Less, Greater, Less]);
        assert!(b == [Equal, Less, Greater]);
        Ok(())
    }

    #[test]
    fn limited_add_both_directions() -> Result {
        let c = KBox::pin_init(new_percpu_counter!(0, GFP_KERNEL), GFP_KERNEL)?;
        let up = [
            c.limited_add(10, 10),
            c.limited_add(10, 1),
            c.limited_add(10, 0),
        ];
        let s_up = c.sum();
        let down = [
            c.limited_add(0, -10),
            c.limited_add(0, -1),
            c.limited_add(5, -6),
        ];
        let s_down = c.sum();
        assert!(up == [true, false, true]);
        assert_eq!(s_up, 10);
        assert!(down == [true, false, false]);
        assert_eq!(s_down, 0);
        Ok(())
    }

    #[test]
    fn concurrent_adds_and_read_bound() -> Result {
        const ADDS: i64 = 10_000;
        let c = KBox::pin_init(new_percpu_counter!(0, GFP_KERNEL), GFP_KERNEL)?;
        on_each_cpu(&|| {
            for _ in 0..ADDS {
                c.add(1);
            }
        })?;
        let cpus = online_cpus().count() as i64;
        let (read, sum) = (c.read(), c.sum());
        let bound = i64::from(PercpuCounter::default_batch()) * cpus;
        assert_eq!(sum, ADDS * cpus);
        assert!((sum - read).abs() <= bound);
        Ok(())
    }

    #[test]
    fn init_many_destroy_many() -> Result {
        let c: Pin<KBox<PercpuCounters<4>>> =
            KBox::pin_init(new_percpu_counters!(5, GFP_KERNEL), GFP_KERNEL)?;
        for (i, k) in c.iter().enumerate() {
            k.add(i as i64);
        }
        let mut sums = [0i64; 4];
        for (s, k) in sums.iter_mut().zip(c.iter()) {
            *s = k.sum();
        }
        assert_eq!(c.len(), 4);
        assert!(sums == [5, 6, 7, 8]);
        Ok(())
    }

    #[test]
    fn drop_in_atomic_and_irq_context() -> Result {
        let lock = KBox::pin_init(
            crate::new_spinlock!((), "kunit_percpu_counter_drop_lock"),
            GFP_KERNEL,
        )?;
        let c = KBox::pin_init(new_percpu_counter!(0, GFP_KERNEL), GFP_KERNEL)?;
        {
            let _g = lock.lock();
            drop(c);
        }
        let slot = KBox::pin_init(
            crate::new_spinlock_irq!(
                Some(KBox::pin_init(
                    new_percpu_counter!(0, GFP_KERNEL),
                    GFP_KERNEL
                )?),
                "kunit_percpu_counter_irq_slot"
            ),
            GFP_KERNEL,
        )?;
        // Updated and dropped from interrupt context (an irq_work on every CPU).
        crate::irq_work::run_on_each_cpu(&|| {
            if let Some(c) = slot.lock().take() {
                c.add(1);
            }
        })?;
        assert!(slot.lock().is_none());
        Ok(())
    }

    #[test]
    fn compare_precision_with_large_batches() -> Result {
        const DELTA: i64 = 1_000_000;
        let c = KBox::pin_init(new_percpu_counter!(0, GFP_KERNEL), GFP_KERNEL)?;
        // `add_local` keeps the whole delta on this CPU: `read()` stays 0 (without `CONFIG_SMP`
        // it adds to the count, and every comparison is precise).
        c.add_local(DELTA);
        let (read, sum) = (c.read(), c.sum());
        // Documented: `compare()` assumes the default batch and is fooled by `read()`.
        let rough = c.compare(DELTA / 2);
        // With the batch that was used (`i32::MAX`, whose product with the CPU count overflows
        // 32 bits with 3 or more CPUs), the comparison is precise.
        let precise = [
            c.compare_batch(DELTA / 2, i32::MAX),
            c.compare_batch(DELTA, i32::MAX),
            c.compare_batch(DELTA + 1, i32::MAX),
        ];
        // Extreme `rhs` values do not overflow.
        let extremes = [
            c.compare(i64::MIN),
            c.compare(i64::MAX),
            c.compare_batch(i64::MIN, i32::MAX),
            c.compare_batch(i64::MAX, i32::MIN),
        ];
        if cfg!(CONFIG_SMP) {
            assert_eq!((read, sum), (0, DELTA));
            assert!(rough == Less);
        } else {
            assert_eq!((read, sum), (DELTA, DELTA));
            assert!(rough == Greater);
        }
        assert!(precise == [Greater, Equal, Less]);
        assert!(extremes == [Greater, Less, Greater, Less]);
        Ok(())
    }

    #[test]
    fn too_many_counters_rejected() -> Result {
        const MAX: usize = PercpuCounters::<1>::MAX_COUNTERS;
        // Without the check, the per-CPU allocator would WARN "illegal size".
        let big = VBox::pin_init(new_percpu_counters!(0, GFP_KERNEL), GFP_KERNEL)
            .map(|c: Pin<VBox<PercpuCounters<{ MAX + 1 }>>>| c.len());
        let max = VBox::pin_init(new_percpu_counters!(3, GFP_KERNEL), GFP_KERNEL)
            .map(|c: Pin<VBox<PercpuCounters<MAX>>>| (c.len(), c[MAX - 1].sum()));
        assert!(big.err() == Some(E2BIG));
        assert!(max == Ok((MAX, 3)));
        Ok(())
    }

    #[test]
    fn limited_add_range_and_zero() -> Result {
        let c = KBox::pin_init(new_percpu_counter!(5, GFP_KERNEL), GFP_KERNEL)?;
        // Zero adds nothing and succeeds, even past the limit.
        let zero = c.limited_add(0, 0);
        // Large values well inside the documented range.
        let big = c.limited_add(1 << 61, 1 << 60);
        let s = c.sum();
        assert!(zero);
        assert!(big);
        assert_eq!(s, 5 + (1 << 60));
        Ok(())
    }

    #[test]
    fn zero_counters_rejected() {
        let r = KBox::pin_init(new_percpu_counters!(0, GFP_KERNEL), GFP_KERNEL)
            .map(|c: Pin<KBox<PercpuCounters<0>>>| c.len());
        assert!(r.err() == Some(EINVAL));
    }
}

#[cfg(all(CONFIG_RUST_PERCPU_COUNTER_KUNIT_TEST, CONFIG_HOTPLUG_CPU))]
#[macros::kunit_tests(rust_kernel_percpu_counter_hotplug)]
mod hotplug_tests {
    use super::*;
    use crate::alloc::flags::GFP_KERNEL;
    use crate::cpu::{add_cpu, remove_cpu};
    use crate::new_percpu_counter;
    use crate::percpu::{on_each_cpu, online_cpus};

    #[test]
    fn offline_cpu_delta_is_folded() -> Result {
        const ADDS: i64 = 1000;
        let c = KBox::pin_init(new_percpu_counter!(0, GFP_KERNEL), GFP_KERNEL)?;
        // The highest online CPU other than 0 goes offline.
        let Some(victim) = online_cpus().filter(|&cpu| u32::from(cpu) != 0).last() else {
            // Needs at least 2 CPUs.
            return Ok(());
        };
        let before = online_cpus().count() as i64;
        // Local deltas stay on each CPU (`add_local` has a huge batch).
        on_each_cpu(&|| {
            for _ in 0..ADDS {
                c.add_local(1);
            }
        })?;
        let removed = remove_cpu(victim.id());
        // The remaining CPUs keep adding while the victim is offline.
        on_each_cpu(&|| {
            for _ in 0..ADDS {
                c.add_local(1);
            }
        })?;
        let offline_count = online_cpus().count() as i64;
        // `sum()` visits online CPUs only: this is exact only if the victim's delta was folded.
        let sum_offline = c.sum();
        let added = add_cpu(victim.id());
        on_each_cpu(&|| c.add_local(1))?;
        let after = online_cpus().count() as i64;
        let sum = c.sum();
        assert!(removed.is_ok());
        assert!(added.is_ok());
        assert_eq!(offline_count, before - 1);
        assert_eq!(sum_offline, ADDS * before + ADDS * offline_count);
        assert_eq!(sum, ADDS * before + ADDS * offline_count + after);
        Ok(())
    }
}
