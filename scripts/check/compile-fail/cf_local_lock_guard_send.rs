// SPDX-License-Identifier: GPL-2.0
// expect: E0277
//! Compile-fail case: a LocalLock guard (this CPU's lock, held by this task) cannot be sent to
//! another thread.

use kernel::new_local_lock;

fn assert_send<T: Send>(_: &T) {}

fn case() -> Result {
    let l = KBox::init(new_local_lock!(GFP_KERNEL, |_| 0u64), GFP_KERNEL)?;
    if let Some(g) = l.lock() {
        assert_send(&g); // error here
    }
    Ok(())
}
