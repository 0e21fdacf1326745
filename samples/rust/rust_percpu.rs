// SPDX-License-Identifier: GPL-2.0

//! Rust per-CPU sample.
//!
//! A driver-style example: I/O statistics kept per CPU and updated on a hot path (here run on
//! every CPU from an inter-processor interrupt), a per-CPU histogram that any CPU reads, a static
//! per-CPU counter, a [`PercpuCounter`] of bytes in flight with a limit, allocation inside a
//! memory allocation scope, and a writeback-cookie style lock taken only while a "switch" is in
//! progress.

use kernel::{
    alloc::memalloc::{
        self,
        NoFs, //
    },
    define_per_cpu,
    new_percpu_counter,
    per_cpu_cells,
    percpu::{
        online_cpus,
        PerCpuCell,
        PerCpuNum,
        SharedPerCpu,
        StaticPerCpuNum, //
    },
    percpu_counter::PercpuCounter,
    prelude::*,
    smp::on_each_cpu,
    sync::{
        new_spinlock_irq,
        new_spinlock_irqsave,
        CondIrqSaveGuard,
        SpinLockIrq,
        SpinLockIrqSave, //
    }, //
};

module! {
    type: RustPercpu,
    name: "rust_percpu",
    authors: ["Rust for Linux Contributors"],
    description: "Rust per-CPU sample",
    license: "GPL",
    params: {
        ops: u32 {
            default: 1000,
            description: "Operations per CPU on the simulated hot path (1-1000000)",
        },
        op_bytes: u32 {
            default: 4096,
            description: "Bytes per operation (1-1048576)",
        },
        inflight_limit: i64 {
            default: 1 << 20,
            description: "Limit of bytes in flight (positive)",
        },
    },
}

per_cpu_cells! {
    /// Per-CPU histogram of request sizes: each CPU counts its own requests, any CPU reads them
    /// all.
    struct Histogram {
        buckets: [PerCpuCell<u32>; 4],
    }
}

define_per_cpu! {
    /// Requests refused by the in-flight limit, per CPU (a static per-CPU variable of the
    /// module).
    static REFUSED: StaticPerCpuNum<u64> = 0;
}

#[pin_data]
struct Stats {
    ops: PerCpuNum<u64>,
    bytes: PerCpuNum<u64>,
    hist: SharedPerCpu<Histogram>,
    #[pin]
    inflight: PercpuCounter,
    #[pin]
    queue: SpinLockIrqSave<u64>,
    #[pin]
    wb: SpinLockIrq<u64>,
}

struct RustPercpu {
    stats: Pin<KBox<Stats>>,
}

/// Checks that a module parameter is within `lo..=hi`.
fn param_in<T: Copy + Into<i64>>(name: &str, v: T, lo: i64, hi: i64) -> Result<T> {
    let x: i64 = v.into();
    if x < lo || x > hi {
        pr_err!("invalid {}={}: must be within {}..={}\n", name, x, lo, hi);
        return Err(EINVAL);
    }
    Ok(v)
}

impl Stats {
    /// One I/O on the hot path: lock-free per-CPU updates, and a bounded in-flight count.
    fn submit(&self, bytes: u32, limit: i64) -> bool {
        if !self.inflight.limited_add(limit, i64::from(bytes)) {
            REFUSED.inc();
            return false;
        }
        self.ops.inc();
        self.bytes.add(u64::from(bytes));
        let bucket = match bytes {
            0..=511 => 0,
            512..=4095 => 1,
            4096..=65535 => 2,
            _ => 3,
        };
        self.hist.inc(|h| &h.buckets[bucket]);
        true
    }

    fn complete(&self, bytes: u32) {
        self.inflight.sub(i64::from(bytes));
    }

    /// Accounts a completion while the queue lock is held with interrupts saved; the per-inode
    /// writeback lock is taken only while a switch is in progress (the `wb_lock_cookie`
    /// pattern), and its end restores the saved interrupt state instead of enabling interrupts.
    fn account_writeback(&self, switching: bool) {
        self.queue.lock_irqsave(|q| {
            **q += 1;
            let mut cookie = CondIrqSaveGuard::begin(&self.wb, || switching);
            if let Some(wb) = cookie.data() {
                *wb += 1;
            }
            cookie.end();
        });
    }
}

impl kernel::Module for RustPercpu {
    fn init(_module: &'static ThisModule) -> Result<Self> {
        let ops = param_in("ops", module_parameters::ops.value(), 1, 1_000_000)?;
        let op_bytes = param_in("op_bytes", module_parameters::op_bytes.value(), 1, 1 << 20)?;
        let limit = param_in(
            "inflight_limit",
            module_parameters::inflight_limit.value(),
            1,
            i64::MAX,
        )?;

        // This sample plays a filesystem that sets up its statistics inside a transaction: if
        // reclaim re-entered the filesystem here it could wait on the transaction we hold, so
        // every allocation below, including the per-CPU ones, is made without __GFP_FS.
        let stats = memalloc::scope::<NoFs, _>(|| {
            KBox::pin_init(
                try_pin_init!(Stats {
                    ops: PerCpuNum::new(GFP_KERNEL)?,
                    bytes: PerCpuNum::new(GFP_KERNEL)?,
                    hist: SharedPerCpu::new(GFP_KERNEL)?,
                    inflight <- new_percpu_counter!(0, GFP_KERNEL),
                    queue <- new_spinlock_irqsave!(0, "rust_percpu_queue"),
                    wb <- new_spinlock_irq!(0, "rust_percpu_wb"),
                }? Error),
                GFP_KERNEL,
            )
        })?;

        // The hot path, on every CPU in interrupt context.
        on_each_cpu(&|| {
            for _ in 0..ops {
                if stats.submit(op_bytes, limit) {
                    stats.complete(op_bytes);
                }
            }
        })?;
        stats.account_writeback(false);
        stats.account_writeback(true);

        pr_info!(
            "Rust per-CPU sample (init): {} ops of {} bytes per CPU\n",
            ops,
            op_bytes
        );
        for cpu in online_cpus() {
            pr_info!(
                "cpu{}: ops={} bytes={} refused={}\n",
                u32::from(cpu),
                stats.ops.get(cpu),
                stats.bytes.get(cpu),
                REFUSED.get(cpu)
            );
        }
        pr_info!(
            "total: ops={} bytes={} inflight read={} sum={} writebacks={} switched={}\n",
            stats.ops.sum(),
            stats.bytes.sum(),
            stats.inflight.read(),
            stats.inflight.sum(),
            stats.queue.lock_irqsave(|q| **q),
            *stats.wb.lock()
        );
        Ok(RustPercpu { stats })
    }
}

impl Drop for RustPercpu {
    fn drop(&mut self) {
        // Every CPU's histogram, read through `&self` while nothing needs to stop.
        for (cpu, h) in self.stats.hist.iter() {
            let b = &h.buckets;
            if b.iter().any(|c| c.get() != 0) {
                pr_info!(
                    "Rust per-CPU sample (exit): cpu{} histogram=[{}, {}, {}, {}]\n",
                    cpu.as_u32(),
                    b[0].get(),
                    b[1].get(),
                    b[2].get(),
                    b[3].get()
                );
            }
        }
        pr_info!(
            "Rust per-CPU sample (exit): ops={} refused={}\n",
            self.stats.ops.sum(),
            REFUSED.sum()
        );
    }
}
