// SPDX-License-Identifier: GPL-2.0

//! Static per-CPU variables (C's `DEFINE_PER_CPU()`).
//!
//! [`define_per_cpu!`](crate::define_per_cpu) places a static in the per-CPU section
//! (`.data..percpu`, plain data without `CONFIG_SMP`). The kernel gives every possible CPU a copy
//! of the section, initialised from the static's initial value: at boot for built-in code, at
//! load time for a module (the module loader allocates and fills the module's per-CPU area).
//!
//! A module's per-CPU section, all of its statics together, comes from an area of
//! `PERCPU_MODULE_RESERVE` bytes (8 KiB) that every loaded module shares. A single static larger
//! than that does not compile in a module. Several statics that fit one by one may still not fit
//! together, or not beside the sections of the modules already loaded: the load then fails with
//! `ENOMEM`, and the kernel logs it (`percpu: allocation failed` with a stack dump, and a
//! `WARNING` from the per-CPU allocator if the section exceeds `PCPU_MIN_UNIT_SIZE`, 32 KiB), as
//! for a C module with too much `DEFINE_PER_CPU()` data. Keep module statics small (counters,
//! flags) and use [`PerCpu`](super::PerCpu) for anything large: dynamic per-CPU memory has no
//! such limit. Built-in code has none either: its statics are part of the kernel's own per-CPU
//! area. The static in the section is only the template of those copies: with `CONFIG_SMP` its
//! address is the per-CPU address of the variable, not the address of an object (for a module the
//! loader does not load the section at all), so Rust code must never hold a reference to it. The
//! macro keeps it out of reach and defines the named static as a handle holding that address;
//! every access goes through `this_cpu_*()` or `per_cpu_ptr()`, exactly as in C. Within the
//! defining crate the handle is a constant, and the compiler uses the address directly, as C does.
//!
//! - [`StaticPerCpuNum<T>`]: an integer per CPU, with the operations of
//!   [`PerCpuNum`](super::PerCpuNum).
//! - [`StaticPerCpu<T>`]: any `Copy + Send` value per CPU, reached through the same guard as
//!   [`PerCpu::local`](super::PerCpu::local).
//!
//! The initial value is a constant expression, evaluated at compile time. A type that cannot be
//! placed there, one whose copies could not simply be duplicated byte for byte (`Copy`) or that
//! may not move between tasks (`Send`), does not compile.

use super::{
    dynamic::Busy,
    slot::Slot,
    LocalGuard,
    Num,
    PerCpuInt,
    PerCpuStorage, //
};
use crate::preempt::PreemptGuard;
use core::cell::UnsafeCell;

/// Defines a static per-CPU variable.
///
/// `define_per_cpu!(static NAME: Type = initial value;)`, where `Type` is
/// [`StaticPerCpuNum<T>`] (the initial value is a `T`) or [`StaticPerCpu<T>`] (a `T` that is
/// `Copy + Send`). Attributes and a visibility may precede `static`.
///
/// # Examples
///
/// ```
/// use kernel::{define_per_cpu, percpu::{StaticPerCpu, StaticPerCpuNum}};
///
/// define_per_cpu! {
///     /// Packets seen by each CPU.
///     static PACKETS: StaticPerCpuNum<u64> = 0;
/// }
/// define_per_cpu!(static LAST: StaticPerCpu<(u32, u64)> = (0, 0););
///
/// PACKETS.add(3);
/// PACKETS.inc();
/// assert!(PACKETS.sum() >= 4);
/// if let Some(mut last) = LAST.local() {
///     last.0 += 1;
/// }
/// ```
///
/// The template of the copies in the per-CPU section cannot be named, not even from the initial
/// value:
///
/// ```compile_fail,E0425
/// use core::any::Any;
/// use kernel::{define_per_cpu, percpu::StaticPerCpu};
///
/// define_per_cpu!(
///     static LEAK: StaticPerCpu<Option<&'static (dyn Any + Sync)>> =
///         Some(&TEMPLATE as &(dyn Any + Sync)); // A per-CPU address, not an object.
/// );
/// ```
#[macro_export]
macro_rules! define_per_cpu {
    ($(#[$attr:meta])* $vis:vis static $name:ident: $ty:ty = $init:expr;) => {
        // C builds modules with `-mcmodel=large` (powerpc64 without PC-relative addressing) or
        // `model("extreme")` per-CPU accesses (LoongArch) to reach the kernel's per-CPU area,
        // which Rust code does not get: the module loader would truncate the address.
        #[cfg(all(
            MODULE,
            any(CONFIG_LOONGARCH, all(CONFIG_PPC64, not(CONFIG_PPC_KERNEL_PCREL)))
        ))]
        ::core::compile_error!("define_per_cpu! is not supported in modules on this architecture");
        // A module's per-CPU section is allocated at load time from the area that all modules
        // share, `PERCPU_MODULE_RESERVE` bytes: a larger static could never be loaded (the load
        // fails, and beyond `PCPU_MIN_UNIT_SIZE` the per-CPU allocator warns first).
        #[cfg(all(MODULE, CONFIG_SMP))]
        const _: () = ::core::assert!(
            ::core::mem::size_of::<<$ty as $crate::percpu::StaticPerCpuType>::Template>()
                <= $crate::bindings::PERCPU_MODULE_RESERVE as usize,
            "a static per-CPU variable of a module must fit in PERCPU_MODULE_RESERVE (8 KiB)"
        );
        $(#[$attr])*
        $vis static $name: $ty = {
            // The initial value, evaluated in this outer block, where the template below cannot be
            // named (items are visible in their whole block, but not in enclosing ones).
            const __PER_CPU_INIT: <$ty as $crate::percpu::StaticPerCpuType>::Value = $init;
            {
                // The template of the copies. With `CONFIG_SMP` its address is a per-CPU address,
                // not that of an object (for a module the loader does not even load the section):
                // only the macro can name it, and it takes only its address.
                #[cfg_attr(CONFIG_SMP, link_section = ".data..percpu")]
                static TEMPLATE: <$ty as $crate::percpu::StaticPerCpuType>::Template =
                    // SAFETY: This is the initial value of a static in the per-CPU section
                    // (without `CONFIG_SMP` a plain static is the only copy, as in C).
                    unsafe { <$ty>::new_template(__PER_CPU_INIT) };
                // SAFETY: `TEMPLATE` is the static in the per-CPU section defined just above,
                // which no other code can name.
                unsafe { <$ty>::from_template(::core::ptr::addr_of!(TEMPLATE)) }
            }
        };
    };
}

mod private {
    pub trait Sealed {}
}

/// The types [`define_per_cpu!`](crate::define_per_cpu) defines: the type of their initial value
/// and of their template. Sealed.
#[doc(hidden)]
pub trait StaticPerCpuType: private::Sealed {
    /// The initial value of every CPU's copy.
    type Value;
    /// The static placed in the per-CPU section.
    type Template;
}

/// The template of a [`StaticPerCpuNum`]: the static that
/// [`define_per_cpu!`](crate::define_per_cpu) places in the per-CPU section, reached only through
/// its address.
#[doc(hidden)]
#[repr(transparent)]
pub struct StaticPerCpuNumTemplate<T>(UnsafeCell<T>);

// SAFETY: A template is not accessed as an object: `define_per_cpu!` defines it where no other
// code can name it and takes only its address, a per-CPU address.
unsafe impl<T> Sync for StaticPerCpuNumTemplate<T> {}

/// The template of a [`StaticPerCpu`], as [`StaticPerCpuNumTemplate`] is of a
/// [`StaticPerCpuNum`].
#[doc(hidden)]
#[repr(transparent)]
pub struct StaticPerCpuTemplate<T>(Slot<Busy, T>);

// SAFETY: As for `StaticPerCpuNumTemplate`.
unsafe impl<T> Sync for StaticPerCpuTemplate<T> {}

/// The storage of a static per-CPU variable: the address of its template.
///
/// # Invariants
///
/// `percpu` is the address of a static in the per-CPU section, defined by
/// [`define_per_cpu!`](crate::define_per_cpu): the per-CPU address of one `T` per possible CPU,
/// each a copy of the initial value, live for as long as the code that defines it.
pub struct StaticStorage<T> {
    percpu: *mut T,
}

// SAFETY: `&StaticStorage` only gives out the per-CPU address; the types that hold one decide how
// the values are accessed.
unsafe impl<T> Sync for StaticStorage<T> {}

impl<T> StaticStorage<T> {
    /// Returns the storage whose template is at `template`.
    ///
    /// # Safety
    ///
    /// `template` is the address of a static in the per-CPU section, defined as
    /// [`define_per_cpu!`](crate::define_per_cpu) does, whose copies are `T`s.
    const unsafe fn new(template: *mut T) -> Self {
        // INVARIANT: The caller guarantees it.
        Self { percpu: template }
    }

    /// Returns the per-CPU address of the values.
    #[inline(always)]
    fn percpu(&self) -> *mut T {
        self.percpu
    }
}

// SAFETY: By the type invariants `percpu` is the per-CPU address of one initialised `T` per
// possible CPU (a copy of the initial value), live for as long as the code that can name the
// static. `StaticStorage` creates no references to the values.
unsafe impl<T> PerCpuStorage for StaticStorage<T> {
    type Item = T;

    #[inline(always)]
    fn percpu_ptr(&self) -> *mut T {
        self.percpu()
    }
}

/// An integer per possible CPU in a static per-CPU variable, defined with
/// [`define_per_cpu!`](crate::define_per_cpu).
///
/// The operations are those of [`PerCpuNum`](super::PerCpuNum) ([`Num`]): updates are one
/// `this_cpu_*()` operation (one instruction on x86 with a `%gs:` operand), safe in any context;
/// reads of other CPUs' values are racy snapshots that may tear for 64-bit integers on 32-bit
/// architectures.
pub type StaticPerCpuNum<T> = Num<StaticStorage<T>>;

impl<T: PerCpuInt> private::Sealed for StaticPerCpuNum<T> {}

impl<T: PerCpuInt> StaticPerCpuType for StaticPerCpuNum<T> {
    type Value = T;
    type Template = StaticPerCpuNumTemplate<T>;
}

impl<T: PerCpuInt> StaticPerCpuNum<T> {
    /// Returns the template of a static per-CPU variable whose copies start at `v`.
    ///
    /// # Safety
    ///
    /// The result must be the initial value of a static in the per-CPU section, as
    /// [`define_per_cpu!`](crate::define_per_cpu) defines it.
    #[doc(hidden)]
    pub const unsafe fn new_template(v: T) -> StaticPerCpuNumTemplate<T> {
        StaticPerCpuNumTemplate(UnsafeCell::new(v))
    }

    /// Returns the variable whose template is at `template`.
    ///
    /// # Safety
    ///
    /// `template` is the address of a static in the per-CPU section, made by
    /// [`new_template`](Self::new_template), as [`define_per_cpu!`](crate::define_per_cpu)
    /// defines it.
    #[doc(hidden)]
    pub const unsafe fn from_template(template: *const StaticPerCpuNumTemplate<T>) -> Self {
        // SAFETY: `StaticPerCpuNumTemplate` and `UnsafeCell` are transparent: `template` is the
        // per-CPU address of the `T`s, as the caller guarantees.
        Num::from_storage(unsafe { StaticStorage::new(template.cast_mut().cast()) })
    }
}

/// A `T` per possible CPU in a static per-CPU variable, defined with
/// [`define_per_cpu!`](crate::define_per_cpu).
///
/// The current CPU's value is reached with [`StaticPerCpu::local`], as for
/// [`PerCpu`](super::PerCpu): preemption is disabled while the guard exists, and a second access
/// on the same CPU (from an interrupt handler, or the same task) gets `None`. `T` must be `Copy`
/// (the kernel duplicates the initial value byte for byte, and never drops the copies) and `Send`
/// (each copy is used by whichever task runs on its CPU).
///
/// Other CPUs' copies cannot be reached: a static is never borrowed mutably, so there is no
/// `get_mut` or `for_each_mut` as on `PerCpu`. Values that other CPUs read belong in a
/// `StaticPerCpuNum` (`get(cpu)`, `sum()`).
///
/// # Examples
///
/// ```compile_fail,E0277
/// use core::cell::Cell;
/// use kernel::{define_per_cpu, percpu::StaticPerCpu};
///
/// define_per_cpu!(static C: StaticPerCpu<Cell<u32>> = Cell::new(0);); // `Cell` is not `Copy`.
/// ```
///
/// A value may not be aligned to more than `PAGE_SIZE`, the alignment the module loader gives a
/// module's per-CPU section:
///
/// ```compile_fail,E0080
/// use kernel::{define_per_cpu, percpu::StaticPerCpu};
///
/// #[derive(Clone, Copy)]
/// #[repr(align(1048576))]
/// struct Big(u8);
///
/// define_per_cpu!(static BIG: StaticPerCpu<Big> = Big(0);); // 1 MiB: more than any page size.
/// ```
pub struct StaticPerCpu<T: Copy + Send> {
    storage: StaticStorage<Slot<Busy, T>>,
}

// SAFETY: `&StaticPerCpu<T>` gives `&mut T` only to the holder of a CPU's `busy` flag, on that
// CPU; the values are used by the tasks of every CPU, so `T` must be `Send`.
unsafe impl<T: Copy + Send> Sync for StaticPerCpu<T> {}

impl<T: Copy + Send> private::Sealed for StaticPerCpu<T> {}

impl<T: Copy + Send> StaticPerCpuType for StaticPerCpu<T> {
    type Value = T;
    type Template = StaticPerCpuTemplate<T>;
}

impl<T: Copy + Send> StaticPerCpu<T> {
    /// Returns the template of a static per-CPU variable whose copies start at `v`.
    ///
    /// # Safety
    ///
    /// The result must be the initial value of a static in the per-CPU section, as
    /// [`define_per_cpu!`](crate::define_per_cpu) defines it.
    #[doc(hidden)]
    pub const unsafe fn new_template(v: T) -> StaticPerCpuTemplate<T> {
        // The module loader aligns a module's per-CPU section to at most `PAGE_SIZE` (with a
        // warning): a larger alignment would give misaligned copies.
        const {
            assert!(
                core::mem::align_of::<Slot<Busy, T>>() <= crate::page::PAGE_SIZE,
                "a static per-CPU value must not be aligned to more than PAGE_SIZE"
            )
        };
        StaticPerCpuTemplate(Slot::new(Busy::new(), v))
    }

    /// Returns the variable whose template is at `template`.
    ///
    /// # Safety
    ///
    /// `template` is the address of a static in the per-CPU section, made by
    /// [`new_template`](Self::new_template), as [`define_per_cpu!`](crate::define_per_cpu)
    /// defines it.
    #[doc(hidden)]
    pub const unsafe fn from_template(template: *const StaticPerCpuTemplate<T>) -> Self {
        Self {
            // SAFETY: `StaticPerCpuTemplate` is transparent: `template` is the per-CPU address of
            // the slots, as the caller guarantees.
            storage: unsafe { StaticStorage::new(template.cast_mut().cast()) },
        }
    }

    /// Gives exclusive access to the current CPU's value, with preemption disabled.
    ///
    /// Returns `None` if this CPU's value is already being accessed: by the current task, or by
    /// the task an interrupt handler calling this interrupted.
    #[inline]
    pub fn local(&'static self) -> Option<LocalGuard<'static, T>> {
        let preempt = PreemptGuard::new();
        let slot = self.storage.this_cpu_ptr(&preempt);
        // SAFETY: `slot` is the current CPU's copy, which lives as long as the static (for a
        // module, until it is unloaded, after which none of its code runs); every copy starts as
        // the initial value, and its value is accessed only under its `busy` flag.
        unsafe { LocalGuard::try_new(slot, preempt) }
    }
}

#[cfg(CONFIG_RUST_PERCPU_KUNIT_TEST)]
#[macros::kunit_tests(rust_kernel_percpu_static)]
mod tests {
    use super::*;
    use crate::{
        cpu::{
            online_cpus,
            possible_cpus,
            PossibleCpu, //
        },
        error::{
            code::*,
            Result, //
        },
        irq_work, //
    };

    define_per_cpu!(
        static SEEN: StaticPerCpuNum<u64> = 0;
    );
    define_per_cpu!(
        static OWN: StaticPerCpuNum<u32> = 7;
    );
    define_per_cpu!(
        static ADDS: StaticPerCpuNum<u64> = 0;
    );
    define_per_cpu!(
        static XCHG: StaticPerCpuNum<u64> = 0;
    );
    define_per_cpu!(
        static PAIR: StaticPerCpu<(u32, u32)> = (1, 2);
    );

    #[test]
    fn initial_value_on_every_cpu() -> Result {
        for cpu in possible_cpus() {
            assert_eq!(OWN.get(cpu), 7);
        }
        Ok(())
    }

    #[test]
    fn each_cpu_sees_its_own_value() -> Result {
        irq_work::run_on_each_cpu(&|| {
            SEEN.this_cpu_write(u64::from(PossibleCpu::current().as_u32()) + 1)
        })?;
        for cpu in online_cpus() {
            assert_eq!(SEEN.get(cpu), u64::from(cpu.as_u32()) + 1);
        }
        Ok(())
    }

    #[test]
    fn concurrent_adds_sum_exactly() -> Result {
        let before = ADDS.sum();
        for _ in 0..10 {
            irq_work::run_on_each_cpu(&|| {
                for _ in 0..1000 {
                    ADDS.inc();
                }
            })?;
            ADDS.add(1);
        }
        let cpus = online_cpus().count() as u64;
        assert_eq!(ADDS.sum() - before, 10 * (1000 * cpus + 1));
        Ok(())
    }

    #[test]
    fn xchg_cmpxchg_from_hardirq() -> Result {
        // In hard interrupt context on every CPU: exchange, then a failing and a succeeding
        // compare-and-exchange.
        irq_work::run_on_each_cpu(&|| {
            let cpu = u64::from(PossibleCpu::current().as_u32());
            let old = XCHG.xchg(cpu + 10);
            let failed = XCHG.cmpxchg(old.wrapping_add(1), 0) == cpu + 10;
            let done = XCHG.cmpxchg(cpu + 10, cpu + 20) == cpu + 10;
            if !(failed && done && XCHG.add_return(1) == cpu + 21) {
                XCHG.this_cpu_write(u64::MAX);
            }
        })?;
        for cpu in online_cpus() {
            assert_eq!(XCHG.get(cpu), u64::from(cpu.as_u32()) + 21);
        }
        Ok(())
    }

    #[test]
    fn local_guard() -> Result {
        let mut g = PAIR.local().ok_or(EINVAL)?;
        g.0 += g.1;
        assert!(PAIR.local().is_none());
        let v = *g;
        drop(g);
        assert!(v.0 >= 3);
        Ok(())
    }
}
