// SPDX-License-Identifier: GPL-2.0
// expect: E0277
//! Compile-fail case: a static per-CPU variable holds only `Copy` values (the kernel copies the
//! initial value byte for byte to every CPU and never drops the copies); a `Cell` is not `Copy`.

use core::cell::Cell;
use kernel::{define_per_cpu, percpu::StaticPerCpu};

define_per_cpu!(static NOT_COPY: StaticPerCpu<Cell<u32>> = Cell::new(0);); // error here

fn case() -> Result {
    let _ = NOT_COPY.local().is_some();
    Ok(())
}
