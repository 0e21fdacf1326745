// SPDX-License-Identifier: GPL-2.0
// expect: E0080
//! Compile-fail case: a `SharedPerCpu` struct that implements `Drop` (the per-CPU copies are never
//! dropped, and updates build a zeroed one on the stack to find a field's offset) is rejected when
//! `SharedPerCpu::new` is instantiated for it.

use kernel::{
    per_cpu_cells,
    percpu::{PerCpuCell, SharedPerCpu},
};

per_cpu_cells! {
    struct Stats {
        hits: PerCpuCell<u64>,
    }
}

impl Drop for Stats {
    fn drop(&mut self) {
        pr_info!("dropped\n");
    }
}

fn case() -> Result {
    let s = SharedPerCpu::<Stats>::new(GFP_KERNEL)?;
    s.inc(|c| &c.hits);
    Ok(())
}
