// SPDX-License-Identifier: GPL-2.0
// expect: E0277
//! Compile-fail case: every field of a per_cpu_cells! struct must be a per-CPU cell; a plain
//! integer field would be read by other CPUs while its owner writes it.

use kernel::{per_cpu_cells, percpu::PerCpuCell};

per_cpu_cells! {
    struct Mixed {
        ops: PerCpuCell<u64>,
        last: u64, // error here
    }
}

fn case() -> Result {
    let _ = core::mem::size_of::<Mixed>();
    Ok(())
}
