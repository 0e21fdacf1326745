// SPDX-License-Identifier: GPL-2.0
// expect: E0080
//! Compile-fail case: a module's static per-CPU variable larger than the per-CPU area reserved for
//! modules (`PERCPU_MODULE_RESERVE`, 8 KiB) could never be loaded: the module loader's allocation
//! fails, with a `WARNING` from the per-CPU allocator for this size (32784 bytes).

use kernel::{define_per_cpu, percpu::StaticPerCpu};

define_per_cpu!(static BIG: StaticPerCpu<[u64; 4097]> = [0; 4097];); // error here

fn case() -> Result {
    if let Some(mut b) = BIG.local() {
        b[0] += 1;
    }
    Ok(())
}
