// SPDX-License-Identifier: GPL-2.0
// expect: E0080
//! Compile-fail case: a static per-CPU value aligned to more than `PAGE_SIZE` (the module loader
//! aligns a module's per-CPU section to at most `PAGE_SIZE`, so the copies would be misaligned).

use kernel::{define_per_cpu, percpu::StaticPerCpu};

#[derive(Clone, Copy)]
#[repr(align(65536))]
struct Big(u8);

define_per_cpu!(static BIG: StaticPerCpu<Big> = Big(0););

fn case() -> Result {
    if let Some(mut b) = BIG.local() {
        b.0 += 1;
    }
    Ok(())
}
