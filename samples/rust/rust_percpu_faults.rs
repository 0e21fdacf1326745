// SPDX-License-Identifier: GPL-2.0

//! Allocation failure tests for the per-CPU abstractions.
//!
//! Each constructor of `PerCpu`, `PerCpuNum`, `SharedPerCpu`, `LocalLock`, `PercpuCounter`,
//! `PercpuCounters` and `DeferredPerCpuNum` has its 1st, 2nd, ... allocation failed in turn
//! (`kernel::fault_inject::fail_nth`) until it succeeds without a fault being injected. Every
//! failed attempt must return `ENOMEM` and leave none of the values it initialised alive, every
//! completed one must give a working value, and a `DeferredPerCpuNum` must stay usable after a
//! failed `populate()`. Each case logs how many allocation points it failed.
//!
//! A second suite, `rust_percpu_chunk_faults`, fails the allocations the per-CPU allocator makes
//! itself (new chunks, pages populated) in the same way.
//!
//! Needs `failslab`, `fail_page_alloc` and `fail_percpu` set to fail allocations that may sleep
//! (`ignore-gfp-wait=N`, and for `fail_page_alloc` `min-order=0` and `ignore-gfp-highmem=N`):
//! the boot script sets them before loading the module. KUnit runs the suites when the module is
//! loaded (the boot script runs one suite per load, with `kunit.filter_glob`); the module itself
//! does nothing.

use kernel::prelude::*;

module! {
    type: RustPercpuFaults,
    name: "rust_percpu_faults",
    authors: ["Rust for Linux Contributors"],
    description: "Rust per-CPU allocation failure tests",
    license: "GPL",
}

struct RustPercpuFaults;

impl kernel::Module for RustPercpuFaults {
    fn init(_module: &'static ThisModule) -> Result<Self> {
        // The KUnit suite below runs once the module is live.
        Ok(Self)
    }
}

#[kunit_tests(rust_percpu_faults)]
mod tests {
    use kernel::{
        fault_inject::fail_nth,
        new_local_lock,
        new_percpu_counter,
        new_percpu_counters,
        per_cpu_cells,
        percpu::{
            possible_cpus,
            DeferredPerCpuNum,
            PerCpu,
            PerCpuCell,
            PerCpuNum,
            PossibleCpu,
            SharedPerCpu, //
        },
        percpu_counter::PercpuCounters,
        prelude::*,
        sync::atomic::{
            Atomic,
            Relaxed, //
        }, //
    };

    /// Fault points a path may reach beyond eight per possible CPU before the test gives up on
    /// it: far more than the constructors reach.
    const EXTRA_POINTS: u32 = 256;

    /// Number of counters of the `percpu_counters_new` case.
    const COUNTERS: usize = 4;

    /// Number of live [`Tracked`] values.
    static LIVE: Atomic<i64> = Atomic::new(0);

    /// A per-CPU value whose live instances are counted in [`LIVE`].
    struct Tracked {
        /// What the checks add up.
        payload: u64,
    }

    impl Tracked {
        /// Makes a value, counted as live until it is dropped.
        fn new(payload: u64) -> Self {
            LIVE.add(1i64, Relaxed);
            Self { payload }
        }
    }

    impl Drop for Tracked {
        fn drop(&mut self) {
            LIVE.add(-1i64, Relaxed);
        }
    }

    /// Returns a [`Tracked`] value of 1: a per-CPU initialiser.
    fn tracked(_cpu: PossibleCpu) -> Tracked {
        Tracked::new(1)
    }

    /// Returns a boxed [`Tracked`] value of 1: a per-CPU initialiser that allocates.
    fn boxed_tracked(_cpu: PossibleCpu) -> Result<KBox<Tracked>> {
        KBox::new(Tracked::new(1), GFP_KERNEL).map_err(Error::from)
    }

    per_cpu_cells! {
        /// The cells of the `shared_percpu_new` case.
        struct Cells {
            hits: PerCpuCell<u64>,
            sizes: [PerCpuCell<u32>; 2],
        }
    }

    /// What the injected faults of a path led to.
    #[derive(Default)]
    pub(crate) struct Tally {
        /// Fault points failed.
        pub(crate) points: u32,
        /// Attempts that failed with `ENOMEM`.
        pub(crate) recovered: u32,
        /// Attempts that succeeded although a fault was injected: it hit an allocation that has
        /// a fallback.
        pub(crate) absorbed: u32,
    }

    impl Tally {
        /// Adds the counts of `other`.
        pub(crate) fn add(&mut self, other: &Tally) {
            self.points = self.points.saturating_add(other.points);
            self.recovered = self.recovered.saturating_add(other.recovered);
            self.absorbed = self.absorbed.saturating_add(other.absorbed);
        }

        /// Logs the line that the boot script collects for `path` and returns the number of
        /// fault points failed.
        pub(crate) fn report(&self, path: &str) -> Result<u32> {
            // Every path allocates: reaching no fault point means fault injection is not set up.
            if self.points == 0 {
                pr_err!("{path}: no allocation point failed: is fault injection set up?\n");
                return Err(EINVAL);
            }
            pr_info!(
                "{}: {} allocation points failed, {} recovered with ENOMEM, {} absorbed\n",
                path,
                self.points,
                self.recovered,
                self.absorbed
            );
            Ok(self.points)
        }
    }

    /// Returns the number of live [`Tracked`] values.
    fn live() -> i64 {
        LIVE.load(Relaxed)
    }

    /// Returns the number of possible CPUs.
    fn possible_count() -> u32 {
        possible_cpus().fold(0u32, |n, _cpu| n.saturating_add(1))
    }

    /// Returns how many fault points a path may reach before the test gives up on it.
    pub(crate) fn point_budget() -> u32 {
        possible_count()
            .saturating_mul(8)
            .saturating_add(EXTRA_POINTS)
    }

    /// Returns `EINVAL`, after logging `what` failed, unless `ok`.
    pub(crate) fn require(ok: bool, what: &str) -> Result {
        if ok {
            return Ok(());
        }
        pr_err!("check failed: {what}\n");
        Err(EINVAL)
    }

    /// Returns `EINVAL`, after logging it, if [`Tracked`] values are alive `when`.
    fn require_none_live(path: &str, n: u32, when: &str) -> Result {
        let live = live();
        if live != 0 {
            pr_err!("{path}: {live} values left alive {when} {n}\n");
            return Err(EINVAL);
        }
        Ok(())
    }

    /// Logs that `path` still failed after the last fault point the test tries.
    fn exhausted<T>(path: &str) -> Result<T> {
        let budget = point_budget();
        pr_err!("{path}: still failing after {budget} fault points\n");
        Err(EINVAL)
    }

    /// Fails the 1st, 2nd, ... fault point that `attempt` reaches until it succeeds without a
    /// fault being injected; logs and returns the number of fault points failed.
    ///
    /// Every failed attempt must return `ENOMEM` and leave no [`Tracked`] value alive. `check`
    /// exercises the value of every attempt that succeeds; none of its values may outlive it.
    fn fail_each<T>(
        path: &str,
        attempt: impl FnMut() -> Result<T>,
        check: impl FnMut(T) -> Result,
    ) -> Result<u32> {
        fail_each_tally(path, attempt, check)?.report(path)
    }

    /// [`fail_each`] without the log line: returns what the injected faults led to.
    pub(crate) fn fail_each_tally<T>(
        path: &str,
        mut attempt: impl FnMut() -> Result<T>,
        mut check: impl FnMut(T) -> Result,
    ) -> Result<Tally> {
        // A value that an earlier case leaked has failed that case already.
        let stale = LIVE.xchg(0, Relaxed);
        if stale != 0 {
            pr_warn!("{path}: {stale} values of an earlier case were still alive\n");
        }
        let mut tally = Tally::default();
        for n in 1..=point_budget() {
            let (r, injected) = fail_nth(n, &mut attempt);
            match r {
                Ok(v) => {
                    if let Err(e) = check(v) {
                        pr_err!("{path}: the value of attempt {n} failed its check\n");
                        return Err(e);
                    }
                    require_none_live(path, n, "after the check of attempt")?;
                    if !injected {
                        tally.points = n - 1;
                        return Ok(tally);
                    }
                    tally.absorbed += 1;
                }
                Err(e) if injected => {
                    if e != ENOMEM {
                        pr_err!("{path}: fault point {n} made it return {e:?}, not ENOMEM\n");
                        return Err(EINVAL);
                    }
                    require_none_live(path, n, "by failed attempt")?;
                    tally.recovered += 1;
                }
                Err(e) => {
                    pr_err!("{path}: attempt {n} returned {e:?} without an injected fault\n");
                    return Err(EINVAL);
                }
            }
        }
        exhausted(path)
    }

    /// Checks that the integers of `d` are published and count an update.
    fn deferred_counts(d: &DeferredPerCpuNum<u64>) -> Result {
        require(d.get().is_some(), "deferred: not published")?;
        require(d.add(1), "deferred: an update dropped once published")?;
        require(d.sum() == 1, "deferred: the sum is not the update")
    }

    /// Checks that `d`, whose `populate()` failed, is unchanged and usable: updates are counted as
    /// missed, and a later `populate()` publishes the integers.
    fn deferred_after_failure(d: &DeferredPerCpuNum<u64>) -> Result {
        require(d.get().is_none(), "deferred: published by a failure")?;
        require(!d.add(1), "deferred: an update counted unpublished")?;
        require(d.missed() == 1, "deferred: a missed update not counted")?;
        // That update queued the worker, which may publish first: `populate()` then returns false.
        d.populate(GFP_KERNEL)?;
        deferred_counts(d)
    }

    #[test]
    fn percpu_new() -> Result {
        let cpus = possible_count();
        fail_each(
            "percpu_new",
            || PerCpu::<Tracked>::new(GFP_KERNEL, tracked),
            |mut v| {
                require(live() == i64::from(cpus), "not one value per CPU")?;
                let mut sum = 0;
                v.for_each_mut(|_cpu, t| sum += t.payload);
                require(sum == u64::from(cpus), "a value lost its payload")
            },
        )?;
        Ok(())
    }

    #[test]
    fn percpu_try_new_values_allocate() -> Result {
        let cpus = possible_count();
        // A fault at CPU k's value must drop the k values made before it.
        let points = fail_each(
            "percpu_try_new_values_allocate",
            || PerCpu::<KBox<Tracked>>::try_new(GFP_KERNEL, boxed_tracked),
            |mut v| {
                require(live() == i64::from(cpus), "not one value per CPU")?;
                let mut sum = 0;
                v.for_each_mut(|_cpu, b| sum += b.payload);
                require(sum == u64::from(cpus), "a value lost its payload")
            },
        )?;
        // The per-CPU allocation, then at least one slab allocation per CPU.
        assert!(points > cpus);
        Ok(())
    }

    #[test]
    fn percpu_new_zeroed() -> Result {
        fail_each(
            "percpu_new_zeroed",
            || PerCpu::<[u64; 4]>::new_zeroed(GFP_KERNEL),
            |mut v| {
                let mut nonzero = 0;
                v.for_each_mut(|_cpu, a| {
                    if *a != [0; 4] {
                        nonzero += 1;
                    }
                    a[3] = 1;
                });
                require(nonzero == 0, "a value is not zero")
            },
        )?;
        Ok(())
    }

    #[test]
    fn percpu_num_new() -> Result {
        fail_each(
            "percpu_num_new",
            || PerCpuNum::<u64>::new(GFP_KERNEL),
            |n| {
                n.add(3);
                require(n.sum() == 3, "the sum is not the update")
            },
        )?;
        Ok(())
    }

    #[test]
    fn shared_percpu_new() -> Result {
        fail_each(
            "shared_percpu_new",
            || SharedPerCpu::<Cells>::new(GFP_KERNEL),
            |s| {
                s.add(|c| &c.hits, 3);
                s.inc(|c| &c.sizes[1]);
                let hits = s.sum(|c| &c.hits);
                let sizes = [s.sum(|c| &c.sizes[0]), s.sum(|c| &c.sizes[1])];
                require(hits == 3 && sizes == [0, 1], "sums are not the updates")
            },
        )?;
        Ok(())
    }

    #[test]
    fn local_lock_new() -> Result {
        let cpus = possible_count();
        fail_each(
            "local_lock_new",
            || KBox::init(new_local_lock!(GFP_KERNEL, tracked), GFP_KERNEL),
            |mut l| {
                require(live() == i64::from(cpus), "not one value per CPU")?;
                l.lock_irqsave(|t| t.payload += 1).ok_or(EBUSY)?;
                let mut sum = 0;
                l.for_each_mut(|_cpu, t| sum += t.payload);
                require(sum == u64::from(cpus) + 1, "the update was lost")
            },
        )?;
        Ok(())
    }

    #[test]
    fn percpu_counter_new() -> Result {
        fail_each(
            "percpu_counter_new",
            || KBox::pin_init(new_percpu_counter!(5, GFP_KERNEL), GFP_KERNEL),
            |c| {
                c.add(2);
                require(c.sum() == 7, "the sum is not 5 + 2")
            },
        )?;
        Ok(())
    }

    #[test]
    fn percpu_counters_new() -> Result {
        fail_each(
            "percpu_counters_new",
            || -> Result<Pin<KBox<PercpuCounters<COUNTERS>>>> {
                KBox::pin_init(new_percpu_counters!(1, GFP_KERNEL), GFP_KERNEL)
            },
            |c| {
                require(c.len() == COUNTERS, "not 4 counters")?;
                let ones = c.iter().all(|counter| counter.sum() == 1);
                c.iter().for_each(|counter| counter.inc());
                let twos = c.iter().all(|counter| counter.sum() == 2);
                require(ones && twos, "a sum is not 1, then 2")
            },
        )?;
        Ok(())
    }

    #[test]
    fn deferred_new() -> Result {
        fail_each(
            "deferred_new",
            || DeferredPerCpuNum::<u64>::new(GFP_KERNEL),
            |d| {
                require(d.get().is_none(), "published by new()")?;
                d.populate(GFP_KERNEL)?;
                deferred_counts(&d)
            },
        )?;
        Ok(())
    }

    /// Fails each fault point of `populate()` on a new value, which must stay usable.
    #[test]
    fn deferred_populate() -> Result {
        let path = "deferred_populate";
        let mut tally = Tally::default();
        for n in 1..=point_budget() {
            let d = DeferredPerCpuNum::<u64>::new(GFP_KERNEL)?;
            match fail_nth(n, || d.populate(GFP_KERNEL)) {
                (Err(e), true) => {
                    if e != ENOMEM {
                        pr_err!("{path}: fault point {n} made it return {e:?}, not ENOMEM\n");
                        return Err(EINVAL);
                    }
                    deferred_after_failure(&d)?;
                    tally.recovered += 1;
                }
                (Ok(true), injected) => {
                    deferred_counts(&d)?;
                    if !injected {
                        tally.points = n - 1;
                        tally.report(path)?;
                        return Ok(());
                    }
                    tally.absorbed += 1;
                }
                (r, injected) => {
                    pr_err!("{path}: attempt {n} returned {r:?}, fault injected: {injected}\n");
                    return Err(EINVAL);
                }
            }
        }
        exhausted(path)
    }
}

/// The per-CPU allocator's own allocations: pages populated for an area, and new chunks.
///
/// Most per-CPU allocations are carved from chunks whose pages are populated, and reach only the
/// `fail_percpu` fault point at the allocator's entry. This suite keeps [`BLOCKS`] blocks of the
/// largest size, more than a booted kernel's chunks have free, so that their allocations
/// populate pages (`fail_page_alloc`) and create chunks (`failslab`, then pages; unless the
/// allocator's balance worker created the chunk first), and fails each fault point of each
/// block's allocation in turn. A suite of its own, so that the boot script
/// can count the faults injected of each kind while it runs (`kunit.filter_glob`).
#[kunit_tests(rust_percpu_chunk_faults)]
mod chunk_tests {
    use super::tests::{
        fail_each_tally,
        point_budget,
        require,
        Tally, //
    };
    use kernel::{
        percpu::{
            PerCpu,
            MAX_SIZE, //
        },
        prelude::*, //
    };

    /// One CPU's value of a block: with the 4-byte flag of each [`PerCpu`] slot, the largest
    /// per-CPU allocation.
    type Block = [u32; MAX_SIZE / 4 - 1];

    /// Blocks kept alive at once: 2 MiB per CPU, several chunks' worth on every architecture
    /// the tests run on (the unit of a chunk is 100 to 256 KiB per CPU there).
    const BLOCKS: usize = 64;

    #[test]
    fn percpu_chunks() -> Result {
        let path = "percpu_chunks";
        let mut kept = KVec::with_capacity(BLOCKS, GFP_KERNEL)?;
        let mut total = Tally::default();
        // Fault points inside the allocator: all but the entry's, which every attempt reaches
        // first.
        let mut inner = 0u32;
        // The most fault points one block's allocation reached, against the test's limit.
        let mut most = 0u32;
        for _ in 0..BLOCKS {
            let mut block = None;
            let tally = fail_each_tally(
                path,
                || PerCpu::<Block>::new_zeroed(GFP_KERNEL),
                |mut v| {
                    let mut nonzero = 0u32;
                    v.for_each_mut(|_cpu, b| {
                        nonzero += u32::from(b.iter().any(|&x| x != 0));
                        b[b.len() - 1] = 1;
                    });
                    block = Some(v);
                    require(nonzero == 0, "a block is not zero")
                },
            )?;
            inner = inner.saturating_add(tally.points.saturating_sub(1));
            most = most.max(tally.points);
            total.add(&tally);
            kept.push(block.ok_or(EINVAL)?, GFP_KERNEL)?;
        }
        pr_info!(
            "{path}: {BLOCKS} blocks of {MAX_SIZE} bytes per CPU, {inner} fault points inside the \
             per-CPU allocator, at most {most} for one block (limit {})\n",
            point_budget()
        );
        require(inner > 0, "no fault point inside the per-CPU allocator")?;
        total.report(path)?;
        Ok(())
    }
}
