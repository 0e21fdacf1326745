// SPDX-License-Identifier: GPL-2.0

//! KUnit tests of [`run_on`](super::run_on) and its variants.

#[macros::kunit_tests(rust_kernel_irq_work)]
mod kunit {
    use super::super::*;
    use crate::{
        cpu::nr_cpu_ids,
        percpu::{
            online_cpus,
            PerCpuNum, //
        },
        prelude::*,
        sync::{
            atomic::{
                ordering,
                Atomic, //
            },
            new_spinlock, //
        },
    };

    #[test]
    fn cpuslocked_runs_on_every_online_cpu() -> Result {
        let hits = PerCpuNum::<u32>::new(GFP_KERNEL)?;
        let wrong_cpu = Atomic::new(0i32);
        let lock = KBox::pin_init(new_spinlock!((), "kunit_irq_work_cpuslocked"), GFP_KERNEL)?;
        let cpus = CpusReadGuard::new()?;
        // CPU hotplug is held off: the online CPUs stay the same until `cpus` is dropped.
        let each = run_on_each_cpu_cpuslocked(&cpus, &|| hits.inc());
        let (mut ran, mut enodev, mut bad) = (0, 0, 0);
        for n in 0..nr_cpu_ids() {
            let cpu = CpuId::from_u32(n).ok_or(EINVAL)?;
            let online = online_cpus().any(|c| c.id() == cpu);
            let r = run_on_cpuslocked(&cpus, cpu, &|| {
                if CpuId::current() == cpu {
                    hits.add(100);
                } else {
                    wrong_cpu.add(1, ordering::Relaxed);
                }
            });
            match r {
                Ok(()) if online => ran += 1,
                Err(e) if e == ENODEV && !online => enodev += 1,
                _ => bad += 1,
            }
        }
        // SAFETY: This task holds the CPU hotplug lock through `cpus`, which outlives every use
        // of `held`.
        let held = unsafe { CpusLocked::assume_held() };
        let assumed = run_on_each_cpu_cpuslocked(held, &|| hits.inc());
        // In atomic context the proof does not help: the wait is refused, not attempted.
        let (atomic_one, atomic_each) = if cfg!(CONFIG_PREEMPT_COUNT) {
            let _g = lock.lock();
            (
                run_on_cpuslocked(&cpus, CpuId::current(), &|| hits.add(1000)),
                run_on_each_cpu_cpuslocked(&cpus, &|| hits.add(1000)),
            )
        } else {
            (Err(EDEADLK), Err(EDEADLK))
        };
        let online = online_cpus().count();
        let each_cpu_got_all = online_cpus().all(|c| hits.get(c) == 102);
        let sum = hits.sum();
        drop(cpus);
        // Without the hotplug lock now: a guard is refused in atomic context too.
        let atomic_guard = if cfg!(CONFIG_PREEMPT_COUNT) {
            let _g = lock.lock();
            CpusReadGuard::new().err()
        } else {
            Some(EDEADLK)
        };
        assert!(each == Ok(()) && assumed == Ok(()));
        assert!(atomic_one == Err(EDEADLK) && atomic_each == Err(EDEADLK));
        assert!(atomic_guard == Some(EDEADLK));
        assert_eq!(bad, 0);
        assert_eq!(wrong_cpu.load(ordering::Relaxed), 0);
        assert_eq!(ran, online);
        assert_eq!(ran + enodev, nr_cpu_ids() as usize);
        assert!(each_cpu_got_all);
        assert_eq!(sum as usize, 102 * online);
        Ok(())
    }
}
