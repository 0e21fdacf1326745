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
 * local_lock() on this CPU's lock, unless this CPU already holds it: then the
 * caller interrupted (or is) the holder, and taking it again would give two
 * owners. Lockdep sees a plain (not a try) acquisition, so it checks the
 * interrupt contexts the lock is used in. On PREEMPT_RT the lock is a per-CPU
 * spinlock_t that a preempting task waits for.
 */
__rust_helper bool rust_helper_local_lock_checked(local_trylock_t __percpu *l)
{
#ifndef CONFIG_PREEMPT_RT
	preempt_disable();
	if (READ_ONCE(this_cpu_ptr(l)->acquired)) {
		preempt_enable();
		return false;
	}
	__local_lock_acquire(this_cpu_ptr(l));
#else
	local_lock(l);
#endif
	return true;
}

__rust_helper void rust_helper_local_unlock(local_trylock_t __percpu *l)
{
	local_unlock(l);
}
