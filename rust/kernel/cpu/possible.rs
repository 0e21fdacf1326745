// SPDX-License-Identifier: GPL-2.0

//! Possible CPUs: the CPUs that per-CPU memory has a value for.

use super::CpuId;
use crate::bindings;

/// A possible CPU: one that has a value in every per-CPU allocation.
///
/// The ways to get a [`PossibleCpu`]:
///
/// - iterate: [`possible_cpus`], [`online_cpus`];
/// - the current CPU: [`PossibleCpu::current`], or the CPU a guard keeps the task on
///   ([`PreemptGuard::cpu`], [`LocalGuard::cpu`](crate::percpu::LocalGuard::cpu));
/// - from a CPU number: [`PossibleCpu::new`] (a [`CpuId`]) or [`PossibleCpu::from_u32`], both
///   `None` for a CPU that is not possible.
///
/// A `PossibleCpu` converts into a [`CpuId`] (`.into()` or [`PossibleCpu::id`]); the functions
/// that act on a CPU, such as [`irq_work::run_on`](crate::irq_work::run_on) and
/// [`remove_cpu`](super::remove_cpu), take either.
///
/// [`PreemptGuard::cpu`]: crate::preempt::PreemptGuard::cpu
///
/// Possible CPUs are those that may ever be online. Their set is fixed during early boot, before
/// any Rust code runs (`cpu_possible_mask` is `__ro_after_init`), so a `PossibleCpu` stays valid.
/// A [`CpuId`] may also name a CPU that is not possible when the possible CPUs are not numbered
/// contiguously; per-CPU memory has no value for it.
///
/// # Invariants
///
/// `cpu_possible(self.0)` is true.
///
/// # Examples
///
/// ```
/// use kernel::cpu::{CpuId, PossibleCpu};
///
/// let cpu = PossibleCpu::current();
/// assert!(PossibleCpu::new(CpuId::from(cpu)) == Some(cpu));
/// assert!(PossibleCpu::from_u32(kernel::cpu::nr_cpu_ids()).is_none());
/// ```
#[derive(Copy, Clone, PartialEq, Eq, Debug)]
pub struct PossibleCpu(CpuId);

impl PossibleCpu {
    /// Returns `cpu` if it is a possible CPU.
    #[inline]
    pub fn new(cpu: CpuId) -> Option<Self> {
        // SAFETY: `cpu_possible()` only tests a bit of the possible mask.
        if unsafe { bindings::cpu_possible(cpu.as_u32()) } {
            // INVARIANT: Just checked.
            Some(Self(cpu))
        } else {
            None
        }
    }

    /// Returns CPU number `cpu` if it is a possible CPU.
    #[inline]
    pub fn from_u32(cpu: u32) -> Option<Self> {
        CpuId::from_u32(cpu).and_then(Self::new)
    }

    /// Returns the CPU the code is currently running on.
    ///
    /// As for [`CpuId::current`], the task may move to another CPU right away unless preemption
    /// is disabled ([`PreemptGuard::cpu`](crate::preempt::PreemptGuard::cpu)).
    #[inline]
    pub fn current() -> Self {
        // INVARIANT: Every CPU that runs code is a possible CPU.
        Self(CpuId::current())
    }

    /// Returns the CPU number.
    #[inline]
    pub fn id(self) -> CpuId {
        self.0
    }

    /// Returns the CPU number as a `u32`.
    #[inline]
    pub fn as_u32(self) -> u32 {
        self.0.as_u32()
    }
}

impl From<PossibleCpu> for CpuId {
    #[inline]
    fn from(cpu: PossibleCpu) -> Self {
        cpu.0
    }
}

impl From<PossibleCpu> for u32 {
    #[inline]
    fn from(cpu: PossibleCpu) -> Self {
        cpu.as_u32()
    }
}

/// Returns an iterator over the possible CPUs.
///
/// Possible CPUs are those that may ever be online; per-CPU allocations have a value for each.
///
/// # Examples
///
/// ```
/// use kernel::cpu::{possible_cpus, PossibleCpu};
///
/// assert!(possible_cpus().count() >= 1);
/// assert!(possible_cpus().any(|cpu| cpu == PossibleCpu::current()));
/// ```
pub fn possible_cpus() -> impl Iterator<Item = PossibleCpu> {
    (0..crate::cpu::nr_cpu_ids()).filter_map(PossibleCpu::from_u32)
}

/// Returns an iterator over the CPUs that are online when each is visited.
///
/// CPUs may come and go during the iteration unless hotplug is excluded by the caller; an online
/// CPU is always a possible one.
pub fn online_cpus() -> impl Iterator<Item = PossibleCpu> {
    possible_cpus().filter(|&cpu| {
        // SAFETY: `cpu_online()` only tests a bit of the online mask.
        unsafe { bindings::cpu_online(cpu.as_u32()) }
    })
}

#[cfg(CONFIG_RUST_PERCPU_KUNIT_TEST)]
#[macros::kunit_tests(rust_kernel_cpu_possible)]
mod tests {
    use super::*;
    use crate::prelude::*;

    #[test]
    fn only_possible_cpus_are_addressable() -> Result {
        let nr = crate::cpu::nr_cpu_ids();
        let mut possible = 0;
        let mut wrong_id = 0;
        for n in 0..nr {
            let cpu = CpuId::from_u32(n).ok_or(EINVAL)?;
            match PossibleCpu::new(cpu) {
                Some(p) if p.id() == cpu && PossibleCpu::from_u32(n) == Some(p) => possible += 1,
                Some(_) => wrong_id += 1,
                None => {}
            }
        }
        // `nr_cpu_ids` is one more than the highest possible CPU: that one is possible, the
        // next number is not.
        let highest = PossibleCpu::from_u32(nr - 1).is_some();
        let beyond =
            PossibleCpu::from_u32(nr).is_none() && PossibleCpu::from_u32(u32::MAX).is_none();
        let iterated = possible_cpus().count();
        let online = online_cpus().count();
        let online_are_possible = online_cpus().all(|c| PossibleCpu::new(c.id()) == Some(c));
        let current = PossibleCpu::new(CpuId::current()).is_some();
        assert_eq!(wrong_id, 0);
        assert_eq!(iterated, possible);
        assert!(online >= 1 && online <= possible);
        assert!(highest && beyond && online_are_possible && current);
        Ok(())
    }
}
