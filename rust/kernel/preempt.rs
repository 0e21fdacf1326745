// SPDX-License-Identifier: GPL-2.0

//! Preemption control.
//!
//! C header: [`include/linux/preempt.h`](srctree/include/linux/preempt.h)

use crate::{
    bindings,
    cpu::PossibleCpu,
    types::NotThreadSafe, //
};

/// A guard that keeps the current task on its CPU by disabling preemption.
///
/// # Invariants
///
/// Preemption is disabled (once more) for as long as the object exists, and the object stays on
/// the task that created it.
#[must_use = "preemption is enabled again immediately when the guard is unused"]
pub struct PreemptGuard(NotThreadSafe);

impl PreemptGuard {
    /// Disables preemption until the guard is dropped.
    ///
    /// # Examples
    ///
    /// ```
    /// use kernel::preempt::PreemptGuard;
    ///
    /// let g = PreemptGuard::new();
    /// let cpu = g.cpu();
    /// assert!(cpu.id() == kernel::cpu::CpuId::current());
    /// ```
    #[inline]
    pub fn new() -> Self {
        // SAFETY: Disabling preemption is always allowed; `Drop` enables it again.
        unsafe { bindings::preempt_disable() };
        // INVARIANT: Preemption was just disabled.
        Self(NotThreadSafe)
    }

    /// Returns the CPU the task runs on, which cannot change while the guard exists.
    #[inline]
    pub fn cpu(&self) -> PossibleCpu {
        PossibleCpu::current()
    }
}

impl Default for PreemptGuard {
    fn default() -> Self {
        Self::new()
    }
}

impl Drop for PreemptGuard {
    #[inline]
    fn drop(&mut self) {
        // SAFETY: By the type invariants, this task disabled preemption when creating `self`.
        unsafe { bindings::preempt_enable() };
    }
}
