// SPDX-License-Identifier: GPL-2.0
// expect: E0277
//! Compile-fail case: a PerCpu LocalGuard (preemption disabled on this CPU) cannot be sent to another thread.

use kernel::percpu::PerCpu;

fn assert_send<T: Send>(_: &T) {}

fn case() -> Result {
    let v = PerCpu::<u64>::new_zeroed(GFP_KERNEL)?;
    if let Some(g) = v.local() {
        assert_send(&g); // error here
    }
    Ok(())
}
