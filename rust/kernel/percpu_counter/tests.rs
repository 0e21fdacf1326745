// SPDX-License-Identifier: GPL-2.0

//! KUnit tests for per-CPU counters.

#[macros::kunit_tests(rust_kernel_percpu_counter)]
mod kunit {
    use crate::{
        new_percpu_counter,
        new_percpu_counters,
        percpu::online_cpus,
        percpu_counter::{
            PercpuCounter,
            PercpuCounters, //
        },
        prelude::*,
        smp::on_each_cpu, //
    };
    use core::cmp::Ordering::{
        Equal,
        Greater,
        Less, //
    };

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

#[cfg(CONFIG_HOTPLUG_CPU)]
#[macros::kunit_tests(rust_kernel_percpu_counter_hotplug)]
mod hotplug {
    use crate::{
        cpu::{
            add_cpu,
            remove_cpu, //
        },
        new_percpu_counter,
        percpu::online_cpus,
        prelude::*,
        smp::on_each_cpu, //
    };

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
