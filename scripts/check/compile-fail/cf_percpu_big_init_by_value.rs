// SPDX-License-Identifier: GPL-2.0
// expect: E0080
//! Compile-fail case: a large per-CPU value cannot be passed by value through the
//! stack: its initialiser must be in place.

use kernel::percpu::PerCpu;

fn case() -> Result {
    let v = PerCpu::new(GFP_KERNEL, |_| [0u8; 4096])?;
    drop(v);
    Ok(())
}
