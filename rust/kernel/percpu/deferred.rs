// SPDX-License-Identifier: GPL-2.0

//! Per-CPU integers allocated on first use by a worker.
//!
//! I/O submission and other atomic paths must not allocate with `GFP_KERNEL`, and per-CPU
//! allocations with `GFP_NOWAIT` fail easily. [`DeferredPerCpuNum`] starts empty; the first
//! update queues a work item that allocates with `GFP_KERNEL` in process context and publishes
//! the allocation exactly once. Until then updates are dropped and counted in
//! [`missed`](DeferredPerCpuNum::missed), so callers proceed without waiting.

use super::{PerCpuInt, PerCpuNum};
use crate::{
    alloc::flags::GFP_KERNEL,
    alloc::Flags,
    error::Result,
    prelude::*,
    sync::{
        atomic::{ordering, Atomic},
        Arc, ArcBorrow, SetOnce,
    },
    workqueue::{self, impl_has_work, Work, WorkItem},
};

/// Lockdep name of the allocation work. Kept in a static, not a literal in the generic `new()`,
/// so that every crate instantiating `new()` passes the same name pointer with the same key.
static WORK_NAME: &CStr = crate::c_str!("DeferredPerCpuNum::work");

/// A [`PerCpuNum<T>`] allocated in process context when first needed.
///
/// Hold it in an [`Arc`]: a pending allocation work item keeps its own reference, so dropping
/// every other reference while the work is pending is fine; the memory is freed after the work
/// has run.
///
/// # Examples
///
/// ```
/// use kernel::percpu::DeferredPerCpuNum;
/// use kernel::sync::Arc;
///
/// let stats = Arc::pin_init(DeferredPerCpuNum::<u64>::new(), GFP_KERNEL)?;
/// // In atomic context: counted only once the worker has allocated.
/// let counted = stats.as_arc_borrow().add(512);
/// // In process context, the allocation can also be made directly.
/// stats.populate(GFP_KERNEL)?;
/// assert!(stats.as_arc_borrow().add(512));
/// assert_eq!(stats.sum() + if counted { 0 } else { 512 }, 1024);
/// # Ok::<(), Error>(())
/// ```
#[pin_data]
pub struct DeferredPerCpuNum<T: PerCpuInt> {
    value: SetOnce<PerCpuNum<T>>,
    queued: Atomic<i32>,
    missed: Atomic<u64>,
    #[pin]
    work: Work<DeferredPerCpuNum<T>>,
}

impl_has_work! {
    impl{T: PerCpuInt} HasWork<Self> for DeferredPerCpuNum<T> { self.work }
}

impl<T: PerCpuInt> DeferredPerCpuNum<T> {
    /// Creates an empty value; nothing is allocated yet.
    pub fn new() -> impl PinInit<Self> {
        pin_init!(Self {
            value: SetOnce::new(),
            queued: Atomic::new(0),
            missed: Atomic::new(0),
            work <- Work::new(WORK_NAME, crate::static_lock_class!()),
        })
    }

    /// Returns the per-CPU integers if they have been allocated.
    #[inline]
    pub fn get(&self) -> Option<&PerCpuNum<T>> {
        self.value.as_ref()
    }

    /// Allocates and publishes the per-CPU integers now, unless that has already happened.
    ///
    /// Returns whether this call published them; when several callers race, exactly one does
    /// and the others free what they allocated. Honours the task's memory allocation scopes.
    pub fn populate(&self, flags: Flags) -> Result<bool> {
        if self.value.as_ref().is_some() {
            return Ok(false);
        }
        Ok(self.value.populate(PerCpuNum::new(flags)?))
    }

    /// Adds `v` to the current CPU's value if allocated; otherwise queues the allocation and
    /// drops the update. Returns whether `v` was counted. Works in any context.
    #[inline]
    pub fn add(self: ArcBorrow<'_, Self>, v: T) -> bool {
        if let Some(n) = self.get() {
            n.add(v);
            return true;
        }
        self.add_unpublished();
        false
    }

    /// The slow path of [`add`](Self::add), out of line so that the published path stays short:
    /// counts the dropped update and queues the allocation.
    #[cold]
    #[inline(never)]
    fn add_unpublished(self: ArcBorrow<'_, Self>) {
        self.missed.add(1u64, ordering::Relaxed);
        if self.queued.xchg(1, ordering::Relaxed) == 0 {
            // A failure means the work is already queued, which is what we want.
            let _ = workqueue::system().enqueue(Arc::from(self));
        }
    }

    /// Returns the number of updates dropped before the allocation was published.
    pub fn missed(&self) -> u64 {
        self.missed.load(ordering::Relaxed)
    }

    /// Returns the sum over all CPUs, or zero before the allocation was published.
    pub fn sum(&self) -> T {
        self.get().map_or_else(T::default, PerCpuNum::sum)
    }
}

impl<T: PerCpuInt> WorkItem for DeferredPerCpuNum<T> {
    type Pointer = Arc<Self>;

    fn run(this: Arc<Self>) {
        // On failure the next update queues the work again.
        if this.populate(GFP_KERNEL).is_err() {
            this.queued.store(0, ordering::Relaxed);
        }
    }
}
