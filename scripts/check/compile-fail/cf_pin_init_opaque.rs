// SPDX-License-Identifier: GPL-2.0
// expect: E0277
//! Compile-fail case: nor inside an `Opaque`, which does not drop its value either.

use pin_init::Wrapper;
use kernel::new_percpu_counter;
use kernel::percpu_counter::PercpuCounter;
use kernel::types::Opaque;

fn case() -> Result {
    let c = KBox::pin_init(
        <Opaque<PercpuCounter> as Wrapper<PercpuCounter>>::pin_init( // error here
            new_percpu_counter!(7, GFP_KERNEL),
        ),
        GFP_KERNEL,
    )?;
    drop(c);
    Ok(())
}
