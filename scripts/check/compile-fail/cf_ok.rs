// SPDX-License-Identifier: GPL-2.0
// expect: ok
//! Compile-fail case: the control: the same APIs used correctly must build.

use kernel::percpu::{PerCpu, PerCpuCell, SharedPerCpu, StaticPerCpu, StaticPerCpuNum};
use kernel::sync::{new_spinlock_irq, new_spinlock_irqsave, CondIrqSaveGuard};
use kernel::{define_per_cpu, new_local_lock, per_cpu_cells};

define_per_cpu!(static COPY: StaticPerCpu<(u32, u64)> = (0, 0););
define_per_cpu!(static NUM: StaticPerCpuNum<u64> = 0;);

per_cpu_cells! {
    struct Cells {
        a: PerCpuCell<u64>,
        b: [PerCpuCell<u32>; 2],
    }
}

fn case() -> Result {
    let a = KBox::pin_init(new_spinlock_irqsave!(0u32), GFP_KERNEL)?;
    let b = KBox::pin_init(new_spinlock_irqsave!(0u32), GFP_KERNEL)?;
    let c = KBox::pin_init(new_spinlock_irq!(0u32), GFP_KERNEL)?;
    a.lock_irqsave(|ga| {
        b.lock_irqsave(|gb| **gb += **ga);
        let mut gc = c.lock_with(ga.irq_disabled());
        *gc += 1;
    });
    let wb = CondIrqSaveGuard::begin(&c, || true);
    wb.end();
    let v = PerCpu::<u64>::new_zeroed(GFP_KERNEL)?;
    if let Some(mut g) = v.local() {
        *g += 1;
    }
    if let Some(mut g) = COPY.local() {
        g.0 += 1;
    }
    NUM.inc();
    let s = SharedPerCpu::<Cells>::new(GFP_KERNEL)?;
    s.add(|c| &c.b[1], 2);
    let l = KBox::init(new_local_lock!(GFP_KERNEL, |_| 0u64), GFP_KERNEL)?;
    let extra = s.sum(|c| &c.a) + NUM.sum();
    let _ = l.lock_irqsave(|v| *v += extra);
    kernel::memalloc_scope!(NoFs);
    let _ = kernel::alloc::memalloc::is_active::<kernel::alloc::memalloc::NoFs>();
    Ok(())
}
