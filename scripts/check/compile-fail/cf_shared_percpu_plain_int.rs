// SPDX-License-Identifier: GPL-2.0
// expect: E0277
//! Compile-fail case: a SharedPerCpu holds only per-CPU cells, which other CPUs may read while
//! their owner updates them; a plain integer is not one.

use kernel::percpu::SharedPerCpu;

fn case() -> Result {
    let _s = SharedPerCpu::<u64>::new(GFP_KERNEL)?; // error here
    Ok(())
}
