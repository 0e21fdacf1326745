// SPDX-License-Identifier: GPL-2.0

//! Per-CPU structures that every CPU can read while their owners update them.
//!
//! C code keeps per-CPU statistics in a struct, updates the current CPU's fields with
//! `this_cpu_add()` and reads every CPU's copy with `per_cpu_ptr()` and `READ_ONCE()`. Here the
//! fields are [`PerCpuCell`]s, the struct is declared with [`per_cpu_cells!`](crate::per_cpu_cells)
//! (which checks that it holds nothing else) and [`SharedPerCpu<T>`] keeps one per possible CPU:
//! updates name the field with a closure (`|s| &s.reads`) and compile to the same single
//! `this_cpu_*()` operation as C's; [`SharedPerCpu::iter`] gives `&T` for every CPU.

use super::{
    num::{
        Borrowed,
        PerCpuNumRef, //
    },
    possible_cpus,
    Num,
    PerCpuInt,
    PossibleCpu,
    RawPerCpu, //
};
use crate::{
    alloc::Flags,
    error::Result, //
};
use core::{
    cell::UnsafeCell,
    mem::size_of, //
};
use pin_init::Zeroable;

/// An integer in per-CPU memory that its CPU updates and any CPU reads.
///
/// Reads ([`PerCpuCell::get`]) are single volatile loads (C's `READ_ONCE()`): a value that its CPU
/// updates concurrently is read as either the old or the new value, except for 64-bit integers on
/// 32-bit architectures, whose two halves may come from different updates. Writes happen only
/// through [`SharedPerCpu`], on the current CPU's copy, with `this_cpu_*()` operations.
#[repr(transparent)]
pub struct PerCpuCell<T: PerCpuInt>(UnsafeCell<T>);

// SAFETY: Through `&PerCpuCell` the value is only read, with volatile loads; it is written only by
// `SharedPerCpu` with per-CPU operations, which are single instructions or atomic with respect to
// the CPU that owns the copy.
unsafe impl<T: PerCpuInt> Sync for PerCpuCell<T> {}

// SAFETY: A zero integer is valid.
unsafe impl<T: PerCpuInt> Zeroable for PerCpuCell<T> {}

impl<T: PerCpuInt> PerCpuCell<T> {
    /// Returns a cell holding `v`.
    pub const fn new(v: T) -> Self {
        Self(UnsafeCell::new(v))
    }

    /// Reads the value (C's `READ_ONCE()`).
    #[inline]
    pub fn get(&self) -> T {
        // SAFETY: The pointer is valid; the read is volatile because the owning CPU may update
        // the value at any time, and any bit pattern is a valid integer.
        unsafe { self.0.get().read_volatile() }
    }
}

/// Types made only of [`PerCpuCell`]s: the values a [`SharedPerCpu`] holds.
///
/// Implemented for cells and arrays of such types; declare structs with
/// [`per_cpu_cells!`](crate::per_cpu_cells).
///
/// # Safety
///
/// Every byte of the type that is not padding belongs to a [`PerCpuCell`], at an offset that is
/// the same in every value of the type (no variants), and all-zero bytes are a valid value.
pub unsafe trait PerCpuCells: Zeroable + Sync + 'static {}

// SAFETY: A cell is made of itself.
unsafe impl<T: PerCpuInt> PerCpuCells for PerCpuCell<T> {}

// SAFETY: An array of such types has no bytes of its own but padding, and no variants.
unsafe impl<C: PerCpuCells, const N: usize> PerCpuCells for [C; N] {}

/// Declares a struct of per-CPU cells that implements [`PerCpuCells`].
///
/// Each field must be a [`PerCpuCell`], an array of them, or another such struct; anything else
/// does not compile.
///
/// # Examples
///
/// ```
/// use kernel::{per_cpu_cells, percpu::PerCpuCell};
///
/// per_cpu_cells! {
///     /// Per-CPU I/O statistics.
///     pub struct IoStats {
///         pub reads: PerCpuCell<u64>,
///         pub bytes: PerCpuCell<u64>,
///         pub sizes: [PerCpuCell<u32>; 4],
///     }
/// }
/// ```
///
/// A field that is not a cell does not compile:
///
/// ```compile_fail,E0277
/// use kernel::{per_cpu_cells, percpu::PerCpuCell};
///
/// per_cpu_cells! {
///     struct Mixed {
///         ops: PerCpuCell<u64>,
///         last: u64, // Not a cell: other CPUs would read it while its CPU writes it.
///     }
/// }
/// ```
#[macro_export]
macro_rules! per_cpu_cells {
    (
        $(#[$attr:meta])*
        $vis:vis struct $name:ident {
            $($(#[$fattr:meta])* $fvis:vis $field:ident: $fty:ty),* $(,)?
        }
    ) => {
        $(#[$attr])*
        $vis struct $name {
            $($(#[$fattr])* $fvis $field: $fty),*
        }

        const _: () = {
            const fn assert_cells<T: $crate::percpu::PerCpuCells>() {}
            $(assert_cells::<$fty>();)*
        };

        // SAFETY: Every field is `PerCpuCells` (checked above), so every byte that is not padding
        // belongs to a cell, and a struct has no variants; all-zero fields are valid.
        unsafe impl $crate::prelude::Zeroable for $name {}

        // SAFETY: As above.
        unsafe impl $crate::percpu::PerCpuCells for $name {}
    };
}

/// A struct of [`PerCpuCell`]s per possible CPU: each CPU updates its own copy with single
/// `this_cpu_*()` operations, and any CPU reads every copy through `&self`.
///
/// An update names its field with a closure from `&T` to the cell (`|s| &s.bytes`, or
/// `|s| &s.hist[i]`). The closure runs on some value of `T` (which one is unspecified) only to
/// find the field's offset; the update itself is one `this_cpu_*()` operation on the current CPU's
/// copy (with a constant field the offset is computed at compile time). A closure that returns a
/// cell that is not part of the `&T` it is given makes the update do nothing.
///
/// Reads ([`SharedPerCpu::iter`], [`SharedPerCpu::sum`]) see each cell as of some moment: the
/// fields of one CPU are read one after the other, not as a snapshot of the whole struct, and a
/// 64-bit cell may tear on 32-bit architectures (see [`PerCpuCell`]).
///
/// # Examples
///
/// ```
/// use kernel::{per_cpu_cells, percpu::{PerCpuCell, SharedPerCpu}};
///
/// per_cpu_cells! {
///     struct Stats {
///         ops: PerCpuCell<u64>,
///         hist: [PerCpuCell<u32>; 4],
///     }
/// }
///
/// let stats = SharedPerCpu::<Stats>::new(GFP_KERNEL)?;
/// stats.inc(|s| &s.ops);
/// let bucket = 2;
/// stats.add(|s| &s.hist[bucket], 5);
/// for (_cpu, s) in stats.iter() {
///     let _ = (s.ops.get(), s.hist[2].get());
/// }
/// assert_eq!(stats.sum(|s| &s.ops), 1);
/// assert_eq!(stats.sum(|s| &s.hist[2]), 5);
/// # Ok::<(), Error>(())
/// ```
///
/// A `T` that is not made of cells does not compile:
///
/// ```compile_fail,E0277
/// use kernel::percpu::SharedPerCpu;
///
/// let s = SharedPerCpu::<u64>::new(GFP_KERNEL)?; // Not made of cells: use a `PerCpuNum`.
/// # Ok::<(), Error>(())
/// ```
///
/// # Invariants
///
/// Every possible CPU's copy in `raw` is an initialised `T` (zero-filled by the allocator, and
/// zero is a valid `T`); its cells are written only with `this_cpu_*()` operations of their own
/// CPU and read with volatile loads.
pub struct SharedPerCpu<T: PerCpuCells> {
    raw: RawPerCpu<T>,
}

// SAFETY: `T` is made of integers, which have no thread affinity.
unsafe impl<T: PerCpuCells> Send for SharedPerCpu<T> {}

// SAFETY: Through `&self` values are read with volatile loads, and written with per-CPU
// operations on the current CPU's copy.
unsafe impl<T: PerCpuCells> Sync for SharedPerCpu<T> {}

impl<T: PerCpuCells> SharedPerCpu<T> {
    /// Allocates a zeroed `T` for every possible CPU.
    ///
    /// Returns [`E2BIG`] if `T` is larger than [`MAX_SIZE`](super::MAX_SIZE), [`EINVAL`] if its
    /// alignment is larger than [`MAX_ALIGN`](super::MAX_ALIGN) and [`ENOMEM`] if the allocation
    /// fails, leaving nothing allocated.
    ///
    /// A `T` that implements [`Drop`] does not compile: the copies are never dropped, and
    /// updates build a zeroed `T` on the stack to find a field's offset.
    ///
    /// [`E2BIG`]: crate::error::code::E2BIG
    /// [`EINVAL`]: crate::error::code::EINVAL
    /// [`ENOMEM`]: crate::error::code::ENOMEM
    ///
    /// # Examples
    ///
    /// ```compile_fail,E0080
    /// use kernel::{per_cpu_cells, percpu::{PerCpuCell, SharedPerCpu}};
    ///
    /// per_cpu_cells!(struct Stats { hits: PerCpuCell<u64> });
    ///
    /// impl Drop for Stats {
    ///     fn drop(&mut self) {}
    /// }
    ///
    /// let s = SharedPerCpu::<Stats>::new(GFP_KERNEL)?; // `Stats` implements `Drop`.
    /// # Ok::<(), Error>(())
    /// ```
    pub fn new(flags: Flags) -> Result<Self> {
        const {
            assert!(
                !core::mem::needs_drop::<T>(),
                "a SharedPerCpu struct must not implement Drop"
            )
        };
        // INVARIANT: The allocator zero-fills, and zero is a valid `T`; `SharedPerCpu` writes
        // cells only through `cell()`, with per-CPU operations.
        Ok(Self {
            raw: RawPerCpu::alloc(flags)?,
        })
    }

    /// Returns `cpu`'s copy.
    #[inline]
    pub fn get(&self, cpu: PossibleCpu) -> &T {
        // SAFETY: `cpu_ptr()` is `cpu`'s initialised copy (zero-filled, a valid `T`), live as long
        // as `self`. Every byte of it is in a cell, so a shared reference allows the concurrent
        // writes of its CPU.
        unsafe { &*self.raw.cpu(cpu) }
    }

    /// Returns an iterator over every possible CPU and its copy.
    pub fn iter(&self) -> impl Iterator<Item = (PossibleCpu, &T)> + '_ {
        possible_cpus().map(move |cpu| (cpu, self.get(cpu)))
    }

    /// Returns the per-CPU address of the cell `field` selects, or `None` if it is not a cell of
    /// the `&T` it is given.
    ///
    /// `field` runs on a zeroed `T` on the stack when `T` is small (then, with a constant field,
    /// the compiler folds the whole computation into a constant offset), otherwise on the current
    /// CPU's copy. Only the offset of the result matters, and it is the same in every value of
    /// `T` (see [`PerCpuCells`]).
    #[inline(always)]
    fn field<N: PerCpuInt>(&self, field: impl FnOnce(&T) -> &PerCpuCell<N>) -> Option<*mut N> {
        /// The offset of the cell `field` returns within `base`, if it lies within `base`.
        #[inline(always)]
        fn offset<T, N: PerCpuInt>(
            base: &T,
            field: impl FnOnce(&T) -> &PerCpuCell<N>,
        ) -> Option<usize> {
            let cell: *const PerCpuCell<N> = field(base);
            let off = (cell as usize).wrapping_sub(core::ptr::from_ref(base) as usize);
            match off.checked_add(size_of::<PerCpuCell<N>>()) {
                Some(end) if end <= size_of::<T>() => Some(off),
                _ => None,
            }
        }
        let off = if size_of::<T>() <= 256 {
            offset(&T::zeroed(), field)?
        } else {
            offset(self.get(PossibleCpu::current()), field)?
        };
        // By the safety requirements of `PerCpuCells` the same offset holds the same cell in
        // every CPU's copy: its per-CPU address is at that offset from the copies' per-CPU
        // address.
        Some(self.raw.percpu().cast::<u8>().wrapping_add(off).cast())
    }

    /// Returns the cell `field` selects in every CPU's copy, with all the operations of
    /// [`PerCpuNum`](super::PerCpuNum) ([`Num`]): `add`, `sub`, `inc`, `dec`, `this_cpu_read`,
    /// `this_cpu_write`, `xchg`, `cmpxchg`, `add_return`, `get`, `sum`.
    ///
    /// Returns `None` if `field` does not return a cell of the `&T` it is given.
    ///
    /// # Examples
    ///
    /// ```
    /// use kernel::{per_cpu_cells, percpu::{PerCpuCell, SharedPerCpu}};
    ///
    /// per_cpu_cells! {
    ///     struct Stats {
    ///         inflight: PerCpuCell<i32>,
    ///     }
    /// }
    ///
    /// let stats = SharedPerCpu::<Stats>::new(GFP_KERNEL)?;
    /// let inflight = stats.cell(|s| &s.inflight).ok_or(EINVAL)?;
    /// inflight.inc();
    /// inflight.dec();
    /// assert_eq!(inflight.add_return(2), 2);
    /// assert_eq!(inflight.sum(), 2);
    /// # Ok::<(), Error>(())
    /// ```
    #[inline(always)]
    pub fn cell<N: PerCpuInt>(
        &self,
        field: impl FnOnce(&T) -> &PerCpuCell<N>,
    ) -> Option<PerCpuNumRef<'_, N>> {
        let p = self.field(field)?;
        // SAFETY: `p` is the per-CPU address of one cell per possible CPU in our live, zero-filled
        // allocation, borrowed with `self`. Cells are written only with `this_cpu_*()` operations
        // and read with volatile loads (`PerCpuCell` gives no other access).
        Some(Num::from_storage(unsafe { Borrowed::new(p) }))
    }

    /// Adds `v` to the current CPU's `field` (see [`SharedPerCpu::cell`] for the other
    /// operations).
    #[inline]
    pub fn add<N: PerCpuInt>(&self, field: impl FnOnce(&T) -> &PerCpuCell<N>, v: N) {
        if let Some(c) = self.cell(field) {
            c.add(v);
        }
    }

    /// Subtracts `v` from the current CPU's `field`.
    #[inline]
    pub fn sub<N: PerCpuInt>(&self, field: impl FnOnce(&T) -> &PerCpuCell<N>, v: N) {
        self.add(field, v.wrapping_neg())
    }

    /// Adds one to the current CPU's `field`.
    #[inline]
    pub fn inc<N: PerCpuInt>(&self, field: impl FnOnce(&T) -> &PerCpuCell<N>) {
        self.add(field, N::ONE)
    }

    /// Subtracts one from the current CPU's `field`.
    #[inline]
    pub fn dec<N: PerCpuInt>(&self, field: impl FnOnce(&T) -> &PerCpuCell<N>) {
        self.sub(field, N::ONE)
    }

    /// Sets the current CPU's `field` to `v`.
    #[inline]
    pub fn this_cpu_write<N: PerCpuInt>(&self, field: impl FnOnce(&T) -> &PerCpuCell<N>, v: N) {
        if let Some(c) = self.cell(field) {
            c.this_cpu_write(v);
        }
    }

    /// Returns the sum of `field` over all possible CPUs (not a snapshot).
    pub fn sum<N: PerCpuInt>(&self, field: impl Fn(&T) -> &PerCpuCell<N>) -> N {
        self.iter()
            .fold(N::default(), |acc, (_, t)| acc.wrapping_add(field(t).get()))
    }
}

#[cfg(CONFIG_RUST_PERCPU_KUNIT_TEST)]
#[macros::kunit_tests(rust_kernel_percpu_shared)]
mod tests {
    use super::*;
    use crate::{
        alloc::flags::GFP_KERNEL,
        cpu::online_cpus,
        error::Result,
        irq_work,
        prelude::*,
        sync::{
            atomic::{
                ordering,
                Atomic, //
            },
            Arc, Completion,
        },
        time::{
            delay::fsleep,
            Delta, //
        },
        workqueue,
    };

    per_cpu_cells! {
        struct Stats {
            ops: PerCpuCell<u64>,
            bytes: PerCpuCell<u64>,
            hist: [PerCpuCell<u32>; 4],
        }
    }

    #[test]
    fn updates_own_cpu_fields() -> Result {
        let s = SharedPerCpu::<Stats>::new(GFP_KERNEL)?;
        irq_work::run_on_each_cpu(&|| {
            let cpu = PossibleCpu::current().as_u32();
            s.inc(|t| &t.ops);
            s.add(|t| &t.bytes, u64::from(cpu) + 512);
            s.add(|t| &t.hist[(cpu % 4) as usize], 2);
            s.sub(|t| &t.hist[(cpu % 4) as usize], 1);
        })?;
        for (cpu, t) in s.iter() {
            let online = online_cpus().any(|c| c == cpu);
            let n = cpu.as_u32();
            assert_eq!(t.ops.get(), u64::from(online));
            assert_eq!(t.bytes.get(), if online { u64::from(n) + 512 } else { 0 });
            for (i, h) in t.hist.iter().enumerate() {
                assert_eq!(h.get(), u32::from(online && i as u32 == n % 4));
            }
        }
        assert_eq!(s.sum(|t| &t.ops), online_cpus().count() as u64);
        Ok(())
    }

    #[test]
    fn foreign_cell_is_not_written() -> Result {
        static OUTSIDE: PerCpuCell<u64> = PerCpuCell::new(5);
        let s = SharedPerCpu::<Stats>::new(GFP_KERNEL)?;
        s.add(|_| &OUTSIDE, 1);
        s.this_cpu_write(|_| &OUTSIDE, 9);
        assert_eq!(OUTSIDE.get(), 5);
        assert_eq!(s.sum(|t| &t.ops), 0);
        Ok(())
    }

    /// The owners update while a worker reads: every sum it reads is one the counters passed
    /// through (they only grow), and the total is exact once the updates stop.
    #[test]
    fn remote_reads_while_owners_update() -> Result {
        const ROUNDS: u64 = 100;
        const PER_ROUND: u64 = 100;

        #[pin_data]
        struct Shared {
            stats: SharedPerCpu<Stats>,
            stop: Atomic<i32>,
            reads: Atomic<i32>,
            went_back: Atomic<i32>,
            #[pin]
            done: Completion,
        }

        let sh = Arc::pin_init(
            try_pin_init!(Shared {
                stats: SharedPerCpu::new(GFP_KERNEL)?,
                stop: Atomic::new(0),
                reads: Atomic::new(0),
                went_back: Atomic::new(0),
                done <- Completion::new(),
            }? Error),
            GFP_KERNEL,
        )?;
        let reader = sh.clone();
        workqueue::system_dfl().try_spawn(GFP_KERNEL, move || {
            let mut last = 0u64;
            loop {
                let stopped = reader.stop.load(ordering::Relaxed) != 0;
                let now = reader.stats.sum(|t| &t.ops);
                if now < last {
                    reader.went_back.store(1, ordering::Relaxed);
                }
                last = now;
                reader.reads.add(1, ordering::Relaxed);
                if stopped {
                    break;
                }
                fsleep(Delta::from_micros(20));
            }
            reader.done.complete_all();
        })?;
        for _ in 0..ROUNDS {
            irq_work::run_on_each_cpu(&|| {
                for _ in 0..PER_ROUND {
                    sh.stats.inc(|t| &t.ops);
                }
            })?;
        }
        sh.stop.store(1, ordering::Relaxed);
        sh.done.wait_for_completion();
        pr_info!(
            "shared per-CPU reads during updates: {}\n",
            sh.reads.load(ordering::Relaxed)
        );
        assert_eq!(sh.went_back.load(ordering::Relaxed), 0);
        assert_eq!(
            sh.stats.sum(|t| &t.ops),
            ROUNDS * PER_ROUND * online_cpus().count() as u64
        );
        Ok(())
    }
}
