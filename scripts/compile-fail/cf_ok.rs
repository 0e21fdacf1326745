// SPDX-License-Identifier: GPL-2.0
// expect: ok
//! Compile-fail case: the control: the same APIs used correctly must build.

use kernel::percpu::PerCpu;
use kernel::sync::{new_spinlock_irq, new_spinlock_irqsave, WbLockCookie};

fn case() -> Result {
    let a = KBox::pin_init(new_spinlock_irqsave!(0u32), GFP_KERNEL)?;
    let b = KBox::pin_init(new_spinlock_irqsave!(0u32), GFP_KERNEL)?;
    let c = KBox::pin_init(new_spinlock_irq!(0u32), GFP_KERNEL)?;
    a.lock_irqsave(|ga| {
        b.lock_irqsave(|gb| **gb += **ga);
        let mut gc = c.lock_with(ga.irq_disabled());
        *gc += 1;
    });
    let cookie = WbLockCookie::begin(&c, || true);
    cookie.end();
    let v = PerCpu::<u64>::new_zeroed(GFP_KERNEL)?;
    if let Some(mut g) = v.local() {
        *g += 1;
    }
    kernel::memalloc_scope!(NoFs);
    let _ = kernel::alloc::memalloc::is_active::<kernel::alloc::memalloc::NoFs>();
    Ok(())
}
