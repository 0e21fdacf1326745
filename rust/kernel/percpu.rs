// SPDX-License-Identifier: GPL-2.0

//! Per-CPU memory: one value for every possible CPU.
//!
//! Code running on a CPU updates that CPU's value without any lock or shared cache line; readers
//! combine the values of all CPUs when they need a total.
//!
//! # Which type do I use?
//!
//! - An integer updated from any context, summed or read from any CPU: [`PerCpuNum<T>`]
//!   (C: `alloc_percpu()` + `this_cpu_add()`).
//! - The same, known at build time: [`StaticPerCpuNum<T>`] via [`define_per_cpu!`]
//!   (C: `DEFINE_PER_CPU()` + `this_cpu_add()`).
//! - A struct of counters that each CPU updates and any CPU reads meanwhile: [`SharedPerCpu<T>`]
//!   with [`per_cpu_cells!`] (C: `this_cpu_add()` on a field + `per_cpu_ptr()` and `READ_ONCE()`).
//! - Any `T` that the current CPU mutates briefly with preemption disabled: [`PerCpu<T>`] and
//!   [`PerCpu::local`] (C: `get_cpu_ptr()` / `put_cpu_ptr()`).
//! - The same for a `Copy + Send` value known at build time: [`StaticPerCpu<T>`] via
//!   [`define_per_cpu!`] (C: `DEFINE_PER_CPU()` + `get_cpu_var()`).
//! - Any `T` mutated from task context and interrupts, seen by lockdep, preemptible on
//!   `PREEMPT_RT`: [`LocalLock<T>`] (C: `local_lock_t` in a per-CPU struct).
//! - Counters created on a path that must not allocate with `GFP_KERNEL`:
//!   [`DeferredPerCpuNum<T>`] (C: an allocation from a work item, published once).
//! - A global count read approximately often and exactly rarely: [`PercpuCounter`]
//!   (C: `struct percpu_counter`).
//!
//! # Allocation
//!
//! Every dynamic constructor takes the caller's [`Flags`] ([`DeferredPerCpuNum::new`] takes them
//! for its small shared part, and allocates the per-CPU memory later from a worker):
//!
//! - [`GFP_KERNEL`] in process context;
//! - [`GFP_NOWAIT`] in atomic context that is atomic on every configuration: under a
//!   [`SpinLockIrq`] or a `SpinLock`, in an interrupt handler;
//! - nothing under a guard that only disables preemption ([`PerCpu::local`], [`PreemptGuard`]) on
//!   `PREEMPT_RT`, whatever the flags: the per-CPU and slab allocators take `spinlock_t`s, which
//!   sleep there.
//!
//! The allocator applies the task's [memory allocation scopes](crate::alloc::memalloc), and every
//! allocating constructor calls [`might_alloc`] first: the per-CPU allocator has no such
//! annotation of its own, so without it lockdep could not see a reclaim dependency or a sleeping
//! allocation in atomic context until memory actually ran short. A constructor that fails leaves
//! nothing allocated and drops every value it initialised.
//!
//! # Freeing
//!
//! Freeing (`free_percpu()`) takes the per-CPU allocator's `spinlock_t` with interrupts saved. The
//! types may be dropped:
//!
//! - in process context, under a `SpinLock` or [`SpinLockIrq`], in an interrupt handler and in an
//!   `irq_work` ([`irq_work::run_on`]);
//! - not under a raw spinlock, in an inter-processor function call ([`on_each_cpu`]) or in NMI
//!   context: taking a `spinlock_t` there is an invalid wait context (lockdep reports it with
//!   `CONFIG_PROVE_RAW_LOCK_NESTING`) and sleeps on `PREEMPT_RT`.
//!
//! # CPUs
//!
//! Other CPUs' values are addressed by a [`PossibleCpu`]: per-CPU memory exists only for possible
//! CPUs. [`PossibleCpu`] lists the ways to get one.
//!
//! # Design
//!
//! The types are built on one contract, [`PerCpuStorage`]: memory that holds one value per
//! possible CPU at a per-CPU address. The numeric operations are written once, in [`Num`], for
//! every storage; [`PerCpu`], [`StaticPerCpu`] and [`LocalLock`] share one slot type that keeps a
//! CPU's value behind its access flag or lock.
//!
//! C header: [`include/linux/percpu.h`](srctree/include/linux/percpu.h)
//!
//! [`GFP_KERNEL`]: crate::alloc::flags::GFP_KERNEL
//! [`GFP_NOWAIT`]: crate::alloc::flags::GFP_NOWAIT
//! [`SpinLockIrq`]: crate::sync::SpinLockIrq
//! [`irq_work::run_on`]: crate::irq_work::run_on
//! [`on_each_cpu`]: crate::smp::on_each_cpu
//! [`LocalLock<T>`]: crate::local_lock::LocalLock
//! [`LocalLock`]: crate::local_lock::LocalLock
//! [`PercpuCounter`]: crate::percpu_counter::PercpuCounter
//! [`PreemptGuard`]: crate::preempt::PreemptGuard
//! [`might_alloc`]: crate::alloc::memalloc::might_alloc
//! [`Flags`]: crate::alloc::Flags
//! [`define_per_cpu!`]: crate::define_per_cpu
//! [`per_cpu_cells!`]: crate::per_cpu_cells

mod cell;
mod deferred;
mod dynamic;
mod num;
mod raw;
pub(crate) mod slot;
mod statics;

#[doc(hidden)]
pub use self::statics::{
    StaticPerCpuNumTemplate,
    StaticPerCpuTemplate,
    StaticPerCpuType, //
};
pub use self::{
    cell::{
        PerCpuCell,
        PerCpuCells,
        SharedPerCpu, //
    },
    deferred::DeferredPerCpuNum,
    dynamic::{
        LocalGuard,
        PerCpu,
        MAX_INIT_SIZE, //
    },
    num::{
        Borrowed,
        Num,
        PerCpuInt,
        PerCpuNum,
        PerCpuNumRef, //
    },
    raw::{
        PerCpuStorage,
        RawPerCpu,
        MAX_ALIGN,
        MAX_SIZE, //
    },
    statics::{
        StaticPerCpu,
        StaticPerCpuNum,
        StaticStorage, //
    },
};

// The CPU identity and the preemption guard, where the per-CPU API was first documented.
pub use crate::{
    cpu::{
        online_cpus,
        possible_cpus,
        PossibleCpu, //
    },
    preempt::PreemptGuard, //
};
