// SPDX-License-Identifier: GPL-2.0

#include <linux/local_lock.h>

/*
 * local_trylock_init() with the caller's lock class key: the C macro defines a
 * static key per call site, Rust passes the key of its own call site.
 */
__rust_helper void rust_helper_local_trylock_init_key(local_trylock_t *l,
						      const char *name,
						      struct lock_class_key *key)
{
#ifndef CONFIG_PREEMPT_RT
	debug_check_no_locks_freed((void *)l, sizeof(*l));
#ifdef CONFIG_DEBUG_LOCK_ALLOC
	lockdep_init_map_type(&l->dep_map, name, key, 0, LD_WAIT_CONFIG,
			      LD_WAIT_INV, LD_LOCK_PERCPU);
	l->owner = NULL;
#endif
	l->acquired = 0;
#else
	__spin_lock_init(l, name, key, true);
#endif
}

/*
 * local_lock() on this CPU's lock, unless that cannot be done safely: returns
 * this CPU's lock, held, or NULL. Without PREEMPT_RT, NULL if this CPU holds
 * the lock already (the caller interrupted, or is, the holder: taking it again
 * would give two owners) or in NMI; lockdep sees a plain (not a try)
 * acquisition, so it checks the interrupt contexts the lock is used in. On
 * PREEMPT_RT the lock is a per-CPU spinlock_t and this is local_trylock(): NULL
 * in hard interrupt or NMI context (a sleeping lock cannot be taken there) and
 * while any task holds this CPU's lock (a holder that is the caller would
 * otherwise wait for itself forever).
 */
__rust_helper local_trylock_t *
rust_helper_local_lock_checked(local_trylock_t __percpu *l)
{
#ifndef CONFIG_PREEMPT_RT
	local_trylock_t *tl;

	if (in_nmi())
		return NULL;
	preempt_disable();
	tl = this_cpu_ptr(l);
	if (READ_ONCE(tl->acquired)) {
		preempt_enable();
		return NULL;
	}
	__local_lock_acquire(tl);
	return tl;
#else
	if (!local_trylock(l))
		return NULL;
	return this_cpu_ptr(l);
#endif
}

/*
 * local_unlock() of the lock returned by rust_helper_local_lock_checked(),
 * through its address: the lock of the CPU it was taken on, even if a bug made
 * the holder sleep and move.
 */
__rust_helper void rust_helper_local_lock_release(local_trylock_t *tl)
{
	__local_unlock(tl);
}

/*
 * C's local_trylock_irqsave() on this CPU's lock. Without PREEMPT_RT it saves
 * the interrupt state and disables interrupts, then tests and sets the lock's
 * acquired flag, in any context, NMI included. On PREEMPT_RT it is
 * local_trylock(), which fails in hard interrupt and NMI context. On success
 * the task stays on its CPU until the lock is released, so the caller finds
 * the lock taken with this_cpu_ptr().
 */
__rust_helper bool
rust_helper_local_trylock_irqsave(local_trylock_t __percpu *l,
				  unsigned long *flags)
{
	return local_trylock_irqsave(l, *flags);
}

/*
 * local_unlock_irqrestore() of the lock taken by
 * rust_helper_local_trylock_irqsave(), through its address, as
 * rust_helper_local_lock_release() does for local_unlock().
 */
__rust_helper void
rust_helper_local_lock_release_irqrestore(local_trylock_t *tl,
					  unsigned long flags)
{
	__local_unlock_irqrestore(tl, flags);
}

/*
 * Whether the lock at @tl (one CPU's, not necessarily this CPU's) is held: a
 * guard passed to mem::forget() leaves it held for ever.
 */
__rust_helper bool rust_helper_local_lock_is_held(local_trylock_t *tl)
{
#ifndef CONFIG_PREEMPT_RT
	return READ_ONCE(tl->acquired);
#else
	return rt_mutex_base_is_locked(&tl->lock);
#endif
}
