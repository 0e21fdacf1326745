// SPDX-License-Identifier: GPL-2.0
// expect: E0308
//! Compile-fail case: per-CPU values are addressed by possible CPUs only, not by any
//! CPU number.

use kernel::{cpu::CpuId, percpu::PerCpuNum};

fn case() -> Result {
    let n = PerCpuNum::<u64>::new(GFP_KERNEL)?;
    let cpu = CpuId::current();
    let _ = n.get(cpu); // error here
    Ok(())
}
