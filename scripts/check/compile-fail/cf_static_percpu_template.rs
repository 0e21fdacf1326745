// SPDX-License-Identifier: GPL-2.0
// expect: E0425
//! Compile-fail case: the per-CPU template of a static per-CPU variable cannot be named, not even
//! from its own initial value; a reference to it would point at a per-CPU address, which is not
//! an object (a module's per-CPU section is not even loaded). Before the template moved out of
//! the initial value's scope, this built and `LEAK.local()` handed out that reference.

use core::any::Any;
use kernel::{define_per_cpu, percpu::StaticPerCpu};

define_per_cpu!(
    static LEAK: StaticPerCpu<Option<&'static (dyn Any + Sync)>> =
        Some(&TEMPLATE as &(dyn Any + Sync)); // error here
);

fn case() -> Result {
    let _ = LEAK.local().is_some();
    Ok(())
}
