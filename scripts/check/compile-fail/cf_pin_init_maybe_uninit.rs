// SPDX-License-Identifier: GPL-2.0
// expect: E0277
//! Compile-fail case: a pinned value cannot be pin-initialised inside a `MaybeUninit`, which frees
//! its memory without running the value's `PinnedDrop` (here: a `struct percpu_counter` left on
//! the global `percpu_counters` list, then written through after it was freed).

use core::mem::MaybeUninit;
use pin_init::Wrapper;
use kernel::new_percpu_counter;
use kernel::percpu_counter::PercpuCounter;

fn case() -> Result {
    let c = KBox::pin_init(
        <MaybeUninit<PercpuCounter> as Wrapper<PercpuCounter>>::pin_init( // error here
            new_percpu_counter!(7, GFP_KERNEL),
        ),
        GFP_KERNEL,
    )?;
    drop(c);
    Ok(())
}
