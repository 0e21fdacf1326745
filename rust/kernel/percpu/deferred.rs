// SPDX-License-Identifier: GPL-2.0

//! Per-CPU integers allocated on first use by a worker.
//!
//! I/O submission and other atomic paths must not allocate with `GFP_KERNEL`, and per-CPU
//! allocations with `GFP_NOWAIT` fail easily. [`DeferredPerCpuNum`] starts empty; the first
//! update queues a work item that allocates with `GFP_KERNEL` in process context and publishes
//! the allocation exactly once. Until then updates are dropped and counted in
//! [`missed`](DeferredPerCpuNum::missed), so callers proceed without waiting.
//!
//! # Work items and module unload
//!
//! The work item is queued behind the caller's back, so it may still be pending, or running, when
//! the module that queued it is unloaded. Everything the worker executes (the work function, the
//! allocation, and the destructor it runs if it drops the last reference) is therefore in a
//! non-generic part compiled into the kernel crate only: no code of the calling module runs from
//! the workqueue. The generic [`DeferredPerCpuNum<T>`] only holds a reference to it and
//! gives the published memory its type.

use super::{
    num::{
        Borrowed,
        PerCpuNumRef, //
    },
    raw::{
        alloc_bytes,
        free_bytes, //
    },
    Num,
    PerCpuInt,
    MAX_ALIGN,
    MAX_SIZE, //
};
use crate::{
    alloc::{
        flags::GFP_KERNEL,
        Flags, //
    },
    bindings,
    error::{
        code::*,
        Result, //
    },
    ffi::c_void,
    prelude::*,
    sync::{
        atomic::{
            ordering,
            Atomic, //
        },
        Arc,
        ArcBorrow,
        SetOnce, //
    },
    workqueue::{
        self,
        impl_has_work,
        Work,
        WorkItem, //
    }, //
};
use core::{
    marker::PhantomData,
    mem::{
        align_of,
        size_of, //
    },
    ptr::NonNull, //
};

/// Lockdep name of the allocation work; its key is the one `static_lock_class!()` in
/// [`Core::try_new`], in the kernel crate.
static WORK_NAME: &CStr = crate::c_str!("DeferredPerCpuNum::work");

/// An owned per-CPU allocation of untyped, zeroed bytes.
///
/// # Invariants
///
/// `0` was returned by [`alloc_bytes`] and is freed only by `Drop`.
struct RawBytes(NonNull<c_void>);

// SAFETY: A per-CPU allocation has no thread affinity and may be freed from any thread.
unsafe impl Send for RawBytes {}

// SAFETY: `&RawBytes` only gives out the pointer.
unsafe impl Sync for RawBytes {}

impl RawBytes {
    /// Allocates `size` zeroed bytes aligned to `align` for every possible CPU.
    #[inline(never)]
    fn alloc(size: usize, align: usize, flags: Flags) -> Result<Self> {
        // INVARIANT: The allocation is owned by the returned object.
        Ok(Self(alloc_bytes(size, align, flags)?))
    }
}

impl Drop for RawBytes {
    #[inline(never)]
    fn drop(&mut self) {
        // SAFETY: By the type invariants, the pointer came from `alloc_bytes()` and is freed only
        // here.
        unsafe { free_bytes(self.0) };
    }
}

/// The untyped part of a [`DeferredPerCpuNum`], shared with its allocation work item.
///
/// Not generic, and its functions are not inlined into other crates: the work function, the
/// allocation and the destructor live in the kernel crate, so a work item that runs after the
/// module that queued it was unloaded executes no code of that module.
///
/// # Invariants
///
/// `size` is in `1..=MAX_SIZE` and `align` is a power of two no larger than `MAX_ALIGN`; a
/// published `value` is an allocation of `size` bytes aligned to `align`.
#[pin_data]
struct Core {
    size: usize,
    align: usize,
    value: SetOnce<RawBytes>,
    queued: Atomic<i32>,
    missed: Atomic<u64>,
    _live: test_hooks::Live,
    #[pin]
    work: Work<Core>,
}

impl_has_work! {
    impl HasWork<Self> for Core { self.work }
}

impl Core {
    /// Allocates the shared part for values of `size` bytes aligned to `align`.
    #[inline(never)]
    fn try_new(size: usize, align: usize, flags: Flags) -> Result<Arc<Self>> {
        if size == 0 || size > MAX_SIZE || !align.is_power_of_two() || align > MAX_ALIGN {
            return Err(EINVAL);
        }
        // INVARIANT: `size` and `align` were checked above; nothing is published yet.
        Arc::pin_init(
            pin_init!(Self {
                size,
                align,
                value: SetOnce::new(),
                queued: Atomic::new(0),
                missed: Atomic::new(0),
                _live: test_hooks::Live::new(),
                work <- Work::new(WORK_NAME, crate::static_lock_class!()),
            }),
            flags,
        )
    }

    /// Returns the published per-CPU allocation.
    #[inline]
    fn published(&self) -> Option<NonNull<c_void>> {
        self.value.as_ref().map(|raw| raw.0)
    }

    /// Allocates and publishes the memory unless that has already happened.
    #[inline(never)]
    fn populate(&self, flags: Flags) -> Result<bool> {
        if self.value.as_ref().is_some() {
            return Ok(false);
        }
        // INVARIANT: The allocation has the size and alignment of the type invariants.
        Ok(self
            .value
            .populate(RawBytes::alloc(self.size, self.align, flags)?))
    }

    /// Counts a dropped update and queues the allocation, unless it is queued already.
    ///
    /// Out of line and cold, so that the published path of `add()` stays short.
    #[cold]
    #[inline(never)]
    fn miss(this: ArcBorrow<'_, Self>) {
        this.missed.add(1u64, ordering::Relaxed);
        // SAFETY: `in_nmi()` only reads the preemption count of the current CPU.
        if unsafe { bindings::in_nmi() } {
            // `queue_work()` takes the pool's lock: not from NMI. A later update queues.
            return;
        }
        if this.queued.xchg(1, ordering::Relaxed) == 0 {
            // A failure means the work is already queued, which is what we want.
            let _ = workqueue::system_dfl().enqueue(Arc::from(this));
        }
    }
}

impl WorkItem for Core {
    type Pointer = Arc<Self>;

    fn run(this: Arc<Self>) {
        test_hooks::wait_while_held();
        // On failure the next update queues the work again.
        if this.populate(GFP_KERNEL).is_err() {
            this.queued.store(0, ordering::Relaxed);
        }
    }
}

/// A [`PerCpuNum<T>`](super::PerCpuNum) allocated in process context when first needed.
///
/// Updates ([`add`](Self::add)) work in any context but NMI: before the allocation is published
/// they are dropped and counted, and the first of them queues the allocation on the system
/// unbound workqueue (`system_dfl_wq`); in NMI the update is counted as missed but nothing is
/// queued, as `queue_work()` is not NMI-safe. The queued work item holds its own reference to
/// the untyped part of the value, so the value may be dropped, and the module that created it
/// unloaded, while the work is pending: the memory is freed once the work has run.
///
/// # Examples
///
/// ```
/// use kernel::percpu::DeferredPerCpuNum;
///
/// let stats = DeferredPerCpuNum::<u64>::new(GFP_KERNEL)?;
/// // In atomic context: counted only once the worker has allocated.
/// let counted = stats.add(512);
/// // In process context, the allocation can also be made directly.
/// stats.populate(GFP_KERNEL)?;
/// assert!(stats.add(512));
/// assert_eq!(stats.sum() + if counted { 0 } else { 512 }, 1024);
/// # Ok::<(), Error>(())
/// ```
pub struct DeferredPerCpuNum<T: PerCpuInt> {
    core: Arc<Core>,
    _type: PhantomData<T>,
}

impl<T: PerCpuInt> DeferredPerCpuNum<T> {
    /// Creates an empty value: no per-CPU memory is allocated yet.
    ///
    /// Allocates the small shared part (with its work item) with `flags`; the per-CPU memory is
    /// allocated later, with `GFP_KERNEL`, by the worker or by [`populate`](Self::populate).
    /// Returns [`EINVAL`] if `T` is zero-sized and [`ENOMEM`] if the allocation fails; nothing is
    /// left allocated then.
    pub fn new(flags: Flags) -> Result<Self> {
        Ok(Self {
            core: Core::try_new(size_of::<T>(), align_of::<T>(), flags)?,
            _type: PhantomData,
        })
    }

    /// Returns the per-CPU integers if they have been allocated.
    #[inline]
    pub fn get(&self) -> Option<PerCpuNumRef<'_, T>> {
        let ptr = self.core.published()?;
        // SAFETY: By the type invariants of `Core`, a published allocation is zeroed and has
        // `T`'s size and alignment (`new()`); it is freed with `Core`, after `self`'s borrow ends.
        // Only `Num`'s per-CPU operations access it.
        let storage = unsafe { Borrowed::new(ptr.cast().as_ptr()) };
        Some(Num::from_storage(storage))
    }

    /// Allocates and publishes the per-CPU integers now, unless that has already happened.
    ///
    /// Returns whether this call published them; when several callers race, exactly one does
    /// and the others free what they allocated. Honours the task's memory allocation scopes.
    ///
    /// This is also the way to wait for the allocation: once it returns `Ok`, [`get`](Self::get)
    /// returns the integers, whether this call or the worker published them. On failure
    /// ([`ENOMEM`]) nothing changes and the value stays usable: updates keep being counted as
    /// missed and queue the worker again.
    pub fn populate(&self, flags: Flags) -> Result<bool> {
        self.core.populate(flags)
    }

    /// Adds `v` to the current CPU's value if allocated; otherwise queues the allocation and
    /// drops the update. Returns whether `v` was counted.
    ///
    /// Works in any context; in NMI, an update made before the allocation is published does not
    /// queue it.
    #[inline]
    pub fn add(&self, v: T) -> bool {
        if let Some(n) = self.get() {
            n.add(v);
            return true;
        }
        Core::miss(self.core.as_arc_borrow());
        false
    }

    /// Returns the number of updates dropped before the allocation was published.
    pub fn missed(&self) -> u64 {
        self.core.missed.load(ordering::Relaxed)
    }

    /// Returns the sum over all CPUs, or zero before the allocation was published.
    pub fn sum(&self) -> T {
        self.get().map_or_else(T::default, |n| n.sum())
    }
}

/// Hooks for the selftests: hold allocation workers, count the live untyped parts.
///
/// Only with `CONFIG_RUST_PERCPU_KUNIT_TEST`; without it they compile to nothing. They are not
/// part of the Rust API: holding the workers stalls every deferred allocation of the system, so
/// the selftests reach them only through the C symbols `rust_percpu_deferred_test_*`, declared
/// `extern "C"` on their side and called from `unsafe` code, like any raw C function.
mod test_hooks {
    #[cfg(CONFIG_RUST_PERCPU_KUNIT_TEST)]
    use crate::{
        sync::atomic::{
            ordering,
            Atomic, //
        },
        time::{
            delay::fsleep,
            Delta, //
        },
    };

    #[cfg(CONFIG_RUST_PERCPU_KUNIT_TEST)]
    static HOLD: Atomic<i32> = Atomic::new(0);
    #[cfg(CONFIG_RUST_PERCPU_KUNIT_TEST)]
    static HELD: Atomic<u64> = Atomic::new(0);
    #[cfg(CONFIG_RUST_PERCPU_KUNIT_TEST)]
    static RELEASED: Atomic<u64> = Atomic::new(0);
    #[cfg(CONFIG_RUST_PERCPU_KUNIT_TEST)]
    static LIVE: Atomic<i64> = Atomic::new(0);

    /// Longest time a worker is held, so that a forgotten release cannot hang it.
    #[cfg(CONFIG_RUST_PERCPU_KUNIT_TEST)]
    const MAX_HOLD_MS: u32 = 30_000;

    /// Counts itself among the live untyped parts.
    pub(super) struct Live;

    impl Live {
        pub(super) fn new() -> Self {
            #[cfg(CONFIG_RUST_PERCPU_KUNIT_TEST)]
            LIVE.add(1i64, ordering::Relaxed);
            Live
        }
    }

    impl Drop for Live {
        #[inline(never)]
        fn drop(&mut self) {
            #[cfg(CONFIG_RUST_PERCPU_KUNIT_TEST)]
            LIVE.add(-1i64, ordering::Relaxed);
        }
    }

    /// With `hold` true, makes allocation workers that start from now on wait (at most 30 s)
    /// until called with `hold` false, which lets held workers go on.
    #[cfg(CONFIG_RUST_PERCPU_KUNIT_TEST)]
    #[no_mangle]
    extern "C" fn rust_percpu_deferred_test_hold(hold: bool) {
        HOLD.store(i32::from(hold), ordering::Release);
    }

    /// Returns how many workers were held since boot.
    #[cfg(CONFIG_RUST_PERCPU_KUNIT_TEST)]
    #[no_mangle]
    extern "C" fn rust_percpu_deferred_test_held() -> u64 {
        HELD.load(ordering::Acquire)
    }

    /// Returns how many held workers went on since boot.
    #[cfg(CONFIG_RUST_PERCPU_KUNIT_TEST)]
    #[no_mangle]
    extern "C" fn rust_percpu_deferred_test_released() -> u64 {
        RELEASED.load(ordering::Acquire)
    }

    /// Returns the number of untyped parts alive (not yet freed), pending work items included.
    #[cfg(CONFIG_RUST_PERCPU_KUNIT_TEST)]
    #[no_mangle]
    extern "C" fn rust_percpu_deferred_test_live() -> i64 {
        LIVE.load(ordering::Relaxed)
    }

    /// Called by each allocation worker before it allocates.
    #[inline(never)]
    pub(super) fn wait_while_held() {
        #[cfg(CONFIG_RUST_PERCPU_KUNIT_TEST)]
        if HOLD.load(ordering::Acquire) != 0 {
            HELD.add(1u64, ordering::Relaxed);
            let mut waited = 0;
            while HOLD.load(ordering::Acquire) != 0 && waited < MAX_HOLD_MS {
                fsleep(Delta::from_millis(10));
                waited += 10;
            }
            RELEASED.add(1u64, ordering::Relaxed);
        }
    }
}

#[cfg(CONFIG_RUST_PERCPU_KUNIT_TEST)]
#[macros::kunit_tests(rust_kernel_percpu_deferred)]
mod tests {
    use super::*;
    use crate::{
        alloc::flags::GFP_NOWAIT,
        sync::new_spinlock,
        time::{
            delay::fsleep,
            Delta, //
        }, //
    };

    #[test]
    fn publishes_once_under_racing_users() -> Result {
        let d = DeferredPerCpuNum::<u64>::new(GFP_KERNEL)?;
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
    fn allocates_from_worker() -> Result {
        let d = DeferredPerCpuNum::<u64>::new(GFP_KERNEL)?;
        let first = {
            let lock = KBox::pin_init(new_spinlock!((), "kunit_percpu_submit"), GFP_KERNEL)?;
            // An atomic "submission path": must not allocate, so it queues the work.
            let _g = lock.lock();
            d.add(1)
        };
        let mut waited = 0;
        // Polling is what a test does; code that may sleep calls `populate()` instead.
        while d.get().is_none() && waited < 200 {
            fsleep(Delta::from_millis(10));
            waited += 1;
        }
        let counted = d.add(1);
        assert!(!first);
        assert!(counted);
        assert_eq!(d.missed(), 1);
        assert_eq!(d.sum(), 1);
        Ok(())
    }

    #[test]
    fn dropped_while_pending() -> Result {
        for _ in 0..16 {
            let d = DeferredPerCpuNum::<u32>::new(GFP_KERNEL)?;
            let _ = d.add(1);
            // The queued work holds its own reference; the value is freed after it runs.
            drop(d);
        }
        Ok(())
    }
}
