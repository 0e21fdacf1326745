// SPDX-License-Identifier: GPL-2.0

//! KUnit tests for memory allocation scopes.

#[macros::kunit_tests(rust_kernel_memalloc)]
mod kunit {
    use crate::{
        alloc::{
            flags::*,
            memalloc::{
                current_gfp_context,
                is_active,
                memalloc_scope,
                might_alloc,
                restore,
                scope,
                NoFs,
                NoIo,
                NoMovable,
                NoReclaim,
                Scope,
                ScopeKind, //
            }, //
        },
        bindings,
        prelude::*, //
    };
    use core::{
        future::Future,
        pin::pin,
        task::{
            Context,
            Poll,
            Waker, //
        }, //
    };

    /// A future that is pending when first polled and ready when polled again.
    struct YieldOnce(bool);

    impl Future for YieldOnce {
        type Output = ();

        fn poll(mut self: Pin<&mut Self>, _cx: &mut Context<'_>) -> Poll<()> {
            if self.0 {
                Poll::Ready(())
            } else {
                self.0 = true;
                Poll::Pending
            }
        }
    }

    /// Polls `f` once with a waker that does nothing.
    fn poll_once<F: Future>(f: Pin<&mut F>) -> Poll<F::Output> {
        f.poll(&mut Context::from_waker(Waker::noop()))
    }

    /// Returns whether `PF_MEMALLOC` is set on the current task, read without a scope kind.
    fn pf_memalloc() -> bool {
        // SAFETY: `get_current()` returns the current task, valid for the duration of this call,
        // and only the task itself changes its `PF_MEMALLOC` flag.
        let flags = unsafe { (*bindings::get_current()).flags };
        flags & bindings::PF_MEMALLOC != 0
    }

    #[test]
    fn gfp_flag_values() {
        assert!(GFP_KERNEL.contains(__GFP_FS | __GFP_IO | __GFP_DIRECT_RECLAIM));
        assert!(GFP_NOFS == GFP_KERNEL & !__GFP_FS);
        assert!(GFP_NOIO == GFP_KERNEL & !(__GFP_FS | __GFP_IO));
        assert!(!GFP_NOWAIT.contains(__GFP_DIRECT_RECLAIM));
        assert!(!GFP_ATOMIC.contains(__GFP_DIRECT_RECLAIM));
        assert!(!(__GFP_NORETRY | __GFP_RETRY_MAYFAIL).contains(__GFP_FS));
        assert!(__GFP_NORETRY != __GFP_RETRY_MAYFAIL);
    }

    #[test]
    fn scope_sets_and_clears_task_flag() {
        let before = (
            is_active::<NoFs>(),
            is_active::<NoIo>(),
            is_active::<NoMovable>(),
        );
        let inside = {
            memalloc_scope!(NoFs);
            (
                is_active::<NoFs>(),
                is_active::<NoIo>(),
                current_gfp_context(GFP_KERNEL),
            )
        };
        let after = is_active::<NoFs>();
        assert_eq!(before, (false, false, false));
        assert!(inside.0 && !inside.1);
        assert!(inside.2 == GFP_NOFS);
        assert!(!after);
    }

    #[test]
    fn gfp_context_in_each_scope() {
        let nofs = scope::<NoFs, _>(|| current_gfp_context(GFP_KERNEL));
        let noio = scope::<NoIo, _>(|| current_gfp_context(GFP_KERNEL));
        let pin =
            scope::<NoMovable, _>(|| (is_active::<NoMovable>(), current_gfp_context(GFP_KERNEL)));
        let nowait = scope::<NoIo, _>(|| current_gfp_context(GFP_NOWAIT));
        assert!(nofs == GFP_NOFS);
        assert!(noio == GFP_NOIO);
        assert!(pin.0 && pin.1 == GFP_KERNEL);
        assert!(nowait == GFP_NOWAIT);
        assert!(!is_active::<NoMovable>());
    }

    #[test]
    fn nofs_inside_noio_keeps_outer() {
        let (inner, outer_after) = scope::<NoIo, _>(|| {
            let inner = scope::<NoFs, _>(|| current_gfp_context(GFP_KERNEL));
            (
                inner,
                (
                    is_active::<NoIo>(),
                    is_active::<NoFs>(),
                    current_gfp_context(GFP_KERNEL),
                ),
            )
        });
        assert!(inner == GFP_NOIO);
        assert!(outer_after.0 && !outer_after.1);
        assert!(outer_after.2 == GFP_NOIO);
        assert!(!is_active::<NoIo>());
    }

    #[test]
    fn noio_inside_nofs_keeps_outer() {
        let (inner, outer_after) = {
            memalloc_scope!(NoFs);
            let inner = {
                memalloc_scope!(NoIo);
                current_gfp_context(GFP_KERNEL)
            };
            (
                inner,
                (
                    is_active::<NoFs>(),
                    is_active::<NoIo>(),
                    current_gfp_context(GFP_KERNEL),
                ),
            )
        };
        assert!(inner == GFP_NOIO);
        assert!(outer_after.0 && !outer_after.1);
        assert!(outer_after.2 == GFP_NOFS);
        assert!(!is_active::<NoFs>());
    }

    #[test]
    fn scope_does_not_clear_flag_it_did_not_set() {
        let (inner, still_active) = scope::<NoFs, _>(|| {
            let inner = {
                // The flag is already set: this scope must not clear it when it ends.
                memalloc_scope!(NoFs);
                is_active::<NoFs>()
            };
            (inner, is_active::<NoFs>())
        });
        assert!(inner);
        assert!(still_active);
        assert!(!is_active::<NoFs>());
    }

    #[test]
    fn closure_restores_on_early_return() {
        fn fails() -> Result<u32> {
            scope::<NoFs, _>(|| {
                if is_active::<NoFs>() {
                    return Err(EAGAIN);
                }
                Ok(1)
            })
        }
        let r = fails();
        assert!(r == Err(EAGAIN));
        assert!(!is_active::<NoFs>());
    }

    #[test]
    fn allocation_inside_nofs_scope_under_mutex() -> Result {
        // The shape of the btrfs bug: a GFP_KERNEL allocation, annotated with `might_alloc()`,
        // under a lock that filesystem reclaim also takes. Inside the scope lockdep records no
        // reclaim dependency (the clean boot checks that no report appears).
        let m = KBox::pin_init(
            crate::new_mutex!(0u32, "memalloc_kunit_fs_lock"),
            GFP_KERNEL,
        )?;
        let b = {
            memalloc_scope!(NoFs);
            let _g = m.lock();
            might_alloc(GFP_KERNEL);
            KBox::new(7u64, GFP_KERNEL)?
        };
        assert_eq!(*b, 7);
        Ok(())
    }

    #[test]
    fn async_scope_stays_in_force_between_polls() {
        let mut fut = pin!(async {
            memalloc_scope!(NoFs);
            YieldOnce(false).await;
            current_gfp_context(GFP_KERNEL)
        });
        let first = poll_once(fut.as_mut());
        // Documented: the pending future's scope is in force for the code that polled it.
        let between = (is_active::<NoFs>(), current_gfp_context(GFP_KERNEL));
        let second = poll_once(fut.as_mut());
        let after = is_active::<NoFs>();
        assert!(first.is_pending());
        assert!(between.0 && between.1 == GFP_NOFS);
        assert!(matches!(second, Poll::Ready(f) if f == GFP_NOFS));
        assert!(!after);
    }

    #[test]
    fn async_scope_polled_once_then_dropped_inside_another_scope() {
        let (pending, inside, after_inner) = {
            let (pending, inner) = {
                let mut fut = pin!(async {
                    memalloc_scope!(NoFs);
                    YieldOnce(false).await;
                });
                let pending = poll_once(fut.as_mut()).is_pending();
                // Entered after the future's scope: the flag is already set, so this one saves
                // nothing.
                (pending, Scope::<NoFs>::enter())
                // Out of order: the future, and with it its scope (which set the flag), is
                // dropped here, before `inner`.
            };
            // Documented: the flag is cleared although `inner` has not ended.
            let inside = is_active::<NoFs>();
            drop(inner);
            (pending, inside, is_active::<NoFs>())
        };
        assert!(pending);
        assert!(!inside);
        assert!(!after_inner);
    }

    #[test]
    fn forgotten_scope_leaves_flag_until_enclosing_scope_ends() {
        // What a future holding a scope and never dropped amounts to.
        let in_outer = scope::<NoFs, _>(|| {
            core::mem::forget(Scope::<NoFs>::enter());
            is_active::<NoFs>()
        });
        // The enclosing scope set the flag, so it clears it; the forgotten one set nothing.
        let after_outer = is_active::<NoFs>();
        let outermost = {
            core::mem::forget(Scope::<NoFs>::enter());
            // Documented: a forgotten outermost scope leaves the flag set on the task.
            let left = (is_active::<NoFs>(), current_gfp_context(GFP_KERNEL));
            // The only way out (for this test, inside the module): clear the flag explicitly.
            restore::<NoFs>(NoFs::TASK_FLAG);
            (left, is_active::<NoFs>())
        };
        assert!(in_outer && !after_outer);
        assert!(outermost.0 .0 && outermost.0 .1 == GFP_NOFS);
        assert!(!outermost.1);
    }

    #[test]
    fn noreclaim_sets_and_clears_pf_memalloc() {
        let before = pf_memalloc();
        let inside = {
            memalloc_scope!(NoReclaim);
            (
                pf_memalloc(),
                is_active::<NoReclaim>(),
                is_active::<NoFs>(),
                current_gfp_context(GFP_KERNEL),
            )
        };
        let after = (pf_memalloc(), is_active::<NoReclaim>());
        assert_eq!(NoReclaim::TASK_FLAG, bindings::PF_MEMALLOC);
        assert!(!before);
        assert!(inside.0 && inside.1 && !inside.2);
        // Documented: the page allocator reads `PF_MEMALLOC` itself, the GFP context is unchanged.
        assert!(inside.3 == GFP_KERNEL);
        assert_eq!(after, (false, false));
    }

    #[test]
    fn noreclaim_nesting_restores_previous_state() {
        let (inner, outer_after_inner, nofs, outer_after_nofs) = {
            memalloc_scope!(NoReclaim);
            let inner = {
                // `PF_MEMALLOC` is already set: this scope saves nothing and clears nothing.
                memalloc_scope!(crate::alloc::memalloc::NoReclaim);
                pf_memalloc()
            };
            let outer_after_inner = pf_memalloc();
            let nofs = scope::<NoFs, _>(|| (pf_memalloc(), current_gfp_context(GFP_KERNEL)));
            let outer_after_nofs = (pf_memalloc(), is_active::<NoFs>());
            (inner, outer_after_inner, nofs, outer_after_nofs)
        };
        let after_outer = pf_memalloc();
        // The other way round: a `NoReclaim` scope inside a `NoFs` scope.
        let (in_nofs, nofs_after) = scope::<NoFs, _>(|| {
            let inner = scope::<NoReclaim, _>(|| (pf_memalloc(), current_gfp_context(GFP_KERNEL)));
            (inner, (pf_memalloc(), current_gfp_context(GFP_KERNEL)))
        });
        let after = (pf_memalloc(), is_active::<NoFs>());
        assert!(inner);
        assert!(outer_after_inner);
        assert!(nofs.0 && nofs.1 == GFP_NOFS);
        assert_eq!(outer_after_nofs, (true, false));
        assert!(!after_outer);
        assert!(in_nofs.0 && in_nofs.1 == GFP_NOFS);
        assert!(!nofs_after.0 && nofs_after.1 == GFP_NOFS);
        assert_eq!(after, (false, false));
    }
}
