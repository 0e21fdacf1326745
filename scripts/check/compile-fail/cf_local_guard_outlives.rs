// SPDX-License-Identifier: GPL-2.0
// expect: E0597
//! Compile-fail case: a PerCpu LocalGuard cannot outlive its PerCpu.

use kernel::percpu::PerCpu;

fn case() -> Result {
    let g;
    {
        let v = PerCpu::<u64>::new_zeroed(GFP_KERNEL)?;
        g = v.local(); // error here
    }
    drop(g);
    Ok(())
}
