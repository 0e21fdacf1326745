// SPDX-License-Identifier: GPL-2.0

//! Several per-CPU counters in one per-CPU allocation.

use crate::{
    alloc::{
        memalloc::might_alloc,
        Flags, //
    },
    bindings,
    error::to_result,
    percpu_counter::PercpuCounter,
    prelude::*,
    sync::LockClassKey,
    types::Opaque, //
};
use core::ops::Deref;

/// Creates a [`PercpuCounters`] initialiser with a lock class for this call site.
///
/// Arguments: the initial value of every counter and the allocation [`Flags`]. The number of
/// counters is the type's `N`; they share one per-CPU allocation.
///
/// # Examples
///
/// ```
/// use kernel::{
///     new_percpu_counters,
///     percpu_counter::{
///         PercpuCounter,
///         PercpuCounters, //
///     }, //
/// };
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

/// `N` counters in one per-CPU allocation (C's `percpu_counter_init_many()`).
///
/// It dereferences to a slice of [`PercpuCounter`]: index it to reach each counter.
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

// SAFETY: The `N` counters may be used and destroyed from any thread, as a `PercpuCounter`.
unsafe impl<const N: usize> Send for PercpuCounters<N> {}

// SAFETY: All operations through `&PercpuCounters<N>` go through a `&PercpuCounter`, which is
// `Sync`.
unsafe impl<const N: usize> Sync for PercpuCounters<N> {}

impl<const N: usize> PercpuCounters<N> {
    /// Largest supported `N`: C allocates one `s32` per counter and CPU in a single per-CPU
    /// allocation, which is limited to `PCPU_MIN_UNIT_SIZE` bytes.
    pub const MAX_COUNTERS: usize = bindings::PCPU_MIN_UNIT_SIZE / core::mem::size_of::<i32>();

    /// Creates `N` counters with the value `value`.
    ///
    /// Use [`new_percpu_counters!`] for a lock class per call site. Returns [`EINVAL`] if `N` is
    /// zero, and [`E2BIG`] if `N` is above [`MAX_COUNTERS`](Self::MAX_COUNTERS): the `N` per-CPU
    /// `s32` deltas would not fit in one per-CPU allocation. Fails with [`ENOMEM`] if the
    /// per-CPU allocation fails; no counter is initialised then and nothing is left allocated.
    ///
    /// [`ENOMEM`]: crate::error::code::ENOMEM
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
                // The per-CPU allocator warns about larger allocations, and fails them.
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
        // `self`. They are destroyed by `Self`, which is why only `&PercpuCounter` is handed out,
        // never an owned counter.
        unsafe { core::slice::from_raw_parts(self.inner.get().cast::<PercpuCounter>(), N) }
    }
}

impl<const N: usize> Deref for PercpuCounters<N> {
    type Target = [PercpuCounter];

    #[inline]
    fn deref(&self) -> &[PercpuCounter] {
        self.as_slice()
    }
}

#[pinned_drop]
impl<const N: usize> PinnedDrop for PercpuCounters<N> {
    fn drop(self: Pin<&mut Self>) {
        // CAST: `N` fits `u32`, since initialisation succeeded.
        // SAFETY: By the type invariants, the `N` counters are initialised and are destroyed only
        // here.
        unsafe { bindings::percpu_counter_destroy_many(self.inner.get().cast(), N as u32) };
    }
}
