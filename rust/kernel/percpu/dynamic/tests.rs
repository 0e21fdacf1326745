// SPDX-License-Identifier: GPL-2.0

//! KUnit tests for [`PerCpu`](super::PerCpu) and [`LocalGuard`](super::LocalGuard), and for
//! per-CPU values across CPU hotplug.

#[macros::kunit_tests(rust_kernel_percpu)]
mod kunit {
    use super::super::*;
    use crate::{
        alloc::flags::GFP_KERNEL,
        cpu::CpuId,
        percpu::{
            online_cpus,
            possible_cpus,
            PerCpuNum,
            MAX_SIZE, //
        },
        prelude::*,
        smp::on_each_cpu,
        sync::{
            new_spinlock,
            new_spinlock_irq, //
        }, //
    };

    #[test]
    fn each_cpu_sees_its_own_value() -> Result {
        let n = PerCpuNum::<u64>::new(GFP_KERNEL)?;
        let v = PerCpu::<u32>::new(GFP_KERNEL, |_| u32::MAX)?;
        on_each_cpu(&|| {
            let cpu = u32::from(CpuId::current());
            n.add(u64::from(cpu) + 100);
            if let Some(mut s) = v.local() {
                *s = cpu;
            }
        })?;
        let mut v = v;
        let mut ok = 0;
        let mut online = 0;
        for cpu in online_cpus() {
            online += 1;
            if n.get(cpu) == u64::from(u32::from(cpu)) + 100 && *v.get_mut(cpu) == u32::from(cpu) {
                ok += 1;
            }
        }
        assert!(online >= 1);
        assert_eq!(ok, online);
        Ok(())
    }

    #[test]
    fn local_access_is_not_reentrant() -> Result {
        let v = PerCpu::<u64>::new_zeroed(GFP_KERNEL)?;
        let (first, second, after) = {
            let mut g = v.local().ok_or(EBUSY)?;
            *g += 1;
            let second = v.local().is_some();
            drop(g);
            (true, second, v.local().map(|g| *g))
        };
        assert!(first && !second);
        assert!(after == Some(1));
        Ok(())
    }

    #[test]
    fn values_are_dropped() -> Result {
        struct CountsDrops<'a>(&'a Atomic<i32>);
        impl Drop for CountsDrops<'_> {
            fn drop(&mut self) {
                self.0.add(1, ordering::Relaxed);
            }
        }
        let drops = Atomic::new(0i32);
        let v = PerCpu::new(GFP_KERNEL, |_| CountsDrops(&drops))?;
        let before = drops.load(ordering::Relaxed);
        drop(v);
        let after = drops.load(ordering::Relaxed);
        assert_eq!(before, 0);
        assert_eq!(after as usize, possible_cpus().count());
        Ok(())
    }

    #[test]
    fn drop_in_atomic_and_irq_context() -> Result {
        let lock = KBox::pin_init(new_spinlock!((), "kunit_percpu_drop_lock"), GFP_KERNEL)?;
        let n = PerCpuNum::<u64>::new(GFP_KERNEL)?;
        let p = PerCpu::<u64>::new_zeroed(GFP_KERNEL)?;
        {
            let _g = lock.lock();
            drop(n);
            drop(p);
        }
        // From interrupt context (an irq_work on every CPU; the first one drops it).
        let slot = KBox::pin_init(
            new_spinlock_irq!(
                Some(PerCpuNum::<u64>::new(GFP_KERNEL)?),
                "kunit_percpu_irq_slot"
            ),
            GFP_KERNEL,
        )?;
        crate::irq_work::run_on_each_cpu(&|| drop(slot.lock().take()))?;
        assert!(slot.lock().is_none());
        Ok(())
    }

    #[test]
    fn zero_sized_and_rejected_types() -> Result {
        #[repr(align(8192))]
        struct OverAligned;

        let mut z = PerCpu::new(GFP_KERNEL, |_| [0u8; 0])?;
        let zl = z.local().is_some();
        z.for_each_mut(|_, _| {});
        let big = PerCpu::<[u8; MAX_SIZE + 1]>::new_zeroed(GFP_KERNEL).err();
        // `T` alone fits, but not with the 4-byte busy flag of each slot.
        let flag = PerCpu::<[u8; MAX_SIZE]>::new_zeroed(GFP_KERNEL).err();
        let flag_init =
            PerCpu::<[u8; MAX_SIZE - 3]>::new(GFP_KERNEL, |_| pin_init::init_zeroed()).err();
        let aligned = PerCpu::<OverAligned>::new(GFP_KERNEL, |_| OverAligned).err();
        let largest = PerCpu::<[u8; MAX_SIZE - 4]>::new_zeroed(GFP_KERNEL).is_ok();
        let num = PerCpuNum::<u64>::new(GFP_KERNEL).is_ok();
        assert!(zl);
        assert!(big == Some(E2BIG));
        assert!(flag == Some(E2BIG));
        assert!(flag_init == Some(E2BIG));
        assert!(aligned == Some(EINVAL));
        assert!(largest);
        assert!(num);
        Ok(())
    }

    #[test]
    fn in_place_initialisation() -> Result {
        // 16 KiB per CPU: the size of the whole kernel stack on x86_64, so it cannot pass through.
        let mut v = PerCpu::<[u64; 2048]>::new(GFP_KERNEL, |cpu| {
            pin_init::init_array_from_fn(move |i| (u64::from(cpu.as_u32()) << 32) | i as u64)
        })?;
        let mut bad = 0;
        v.for_each_mut(|cpu, a| {
            for (i, x) in a.iter().enumerate() {
                if *x != (u64::from(cpu.as_u32()) << 32) | i as u64 {
                    bad += 1;
                }
            }
        });
        assert_eq!(bad, 0);
        Ok(())
    }

    #[test]
    fn failed_initialiser_drops_the_others() -> Result {
        struct CountsDrops<'a>(&'a Atomic<i32>);
        impl Drop for CountsDrops<'_> {
            fn drop(&mut self) {
                self.0.add(1, ordering::Relaxed);
            }
        }
        let drops = Atomic::new(0i32);
        let inits = Atomic::new(0i32);
        let last = possible_cpus().last().ok_or(ENODEV)?;
        let r = PerCpu::<CountsDrops<'_>>::try_new(GFP_KERNEL, |cpu| {
            inits.add(1, ordering::Relaxed);
            if cpu == last {
                Err(EAGAIN)
            } else {
                Ok(CountsDrops(&drops))
            }
        });
        let err = r.err();
        let possible = possible_cpus().count() as i32;
        assert!(err == Some(EAGAIN));
        assert_eq!(inits.load(ordering::Relaxed), possible);
        assert_eq!(drops.load(ordering::Relaxed), possible - 1);
        Ok(())
    }
}

#[cfg(CONFIG_HOTPLUG_CPU)]
#[macros::kunit_tests(rust_kernel_percpu_hotplug)]
mod hotplug {
    use super::super::*;
    use crate::{
        alloc::flags::GFP_KERNEL,
        cpu::{
            add_cpu,
            nr_cpu_ids,
            remove_cpu,
            CpuId, //
        },
        irq_work::{
            run_on,
            run_on_each_cpu, //
        },
        percpu::{
            online_cpus,
            PerCpuNum, //
        },
        prelude::*, //
    };

    #[test]
    fn absent_cpus_are_enodev() -> Result {
        let (mut absent, mut offline, mut bad) = (0, 0, 0);
        for n in 0..nr_cpu_ids() {
            let cpu = CpuId::from_u32(n).ok_or(EINVAL)?;
            if online_cpus().any(|c| c.id() == cpu) {
                // Already online: nothing to do.
                if add_cpu(cpu).is_err() {
                    bad += 1;
                }
                continue;
            }
            // Not online: absent (no CPU device, or not possible), or present and offline.
            match add_cpu(cpu) {
                Err(e) if e == ENODEV => {
                    absent += 1;
                    if remove_cpu(cpu) != Err(ENODEV) {
                        bad += 1;
                    }
                }
                Ok(()) => {
                    offline += 1;
                    if remove_cpu(cpu).is_err() {
                        bad += 1;
                    }
                }
                Err(_) => bad += 1,
            }
        }
        pr_info!("{} CPU numbers absent, {} offline\n", absent, offline);
        assert_eq!(bad, 0);
        Ok(())
    }

    #[test]
    fn offline_cpu_is_enodev_and_keeps_its_values() -> Result {
        // The highest online CPU other than 0 goes offline.
        let Some(victim) = online_cpus().filter(|&cpu| cpu.as_u32() != 0).last() else {
            // Needs at least 2 CPUs.
            return Ok(());
        };
        let n = PerCpuNum::<u64>::new(GFP_KERNEL)?;
        let mut v = PerCpu::<u32>::new_zeroed(GFP_KERNEL)?;
        run_on_each_cpu(&|| n.inc())?;
        let removed = remove_cpu(victim.id());
        let offline_run = run_on(victim.id(), &|| n.add(100));
        let before = n.sum();
        run_on_each_cpu(&|| n.inc())?;
        let offline_hits = n.sum() - before;
        let offline_online = online_cpus().count() as u64;
        // An offline CPU is still possible: its values stay addressable.
        let offline_value = n.get(victim);
        *v.get_mut(victim) = 7;
        let added = add_cpu(victim.id());
        let online_run = run_on(victim.id(), &|| n.add(1000));
        assert!(removed.is_ok() && added.is_ok());
        assert!(offline_run == Err(ENODEV));
        assert!(online_run == Ok(()));
        assert_eq!(offline_hits, offline_online);
        assert_eq!(offline_value, 1);
        assert_eq!(n.get(victim), 1001);
        assert_eq!(*v.get_mut(victim), 7);
        Ok(())
    }
}
