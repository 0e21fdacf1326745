// SPDX-License-Identifier: GPL-2.0
// expect: E0308
//! Compile-fail case: per-CPU values are addressed by possible CPUs only, not by any
//! CPU number.

use kernel::prelude::*;

module! {
    type: Case,
    name: "cf_percpu_get_any_cpu",
    authors: ["Rust for Linux Contributors"],
    description: "compile-fail case",
    license: "GPL",
}

struct Case;

impl kernel::Module for Case {
    fn init(_module: &'static ThisModule) -> Result<Self> {
        case()?;
        Ok(Case)
    }
}

use kernel::{cpu::CpuId, percpu::PerCpuNum};

fn case() -> Result {
    let n = PerCpuNum::<u64>::new(GFP_KERNEL)?;
    let cpu = CpuId::current();
    let _ = n.get(cpu);
    Ok(())
}
