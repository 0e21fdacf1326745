// SPDX-License-Identifier: GPL-2.0

#include <linux/percpu_counter.h>

__rust_helper void rust_helper_percpu_counter_add(struct percpu_counter *fbc,
						  s64 amount)
{
	percpu_counter_add(fbc, amount);
}

__rust_helper void rust_helper_percpu_counter_sub(struct percpu_counter *fbc,
						  s64 amount)
{
	percpu_counter_sub(fbc, amount);
}

__rust_helper void rust_helper_percpu_counter_inc(struct percpu_counter *fbc)
{
	percpu_counter_inc(fbc);
}

__rust_helper void rust_helper_percpu_counter_dec(struct percpu_counter *fbc)
{
	percpu_counter_dec(fbc);
}

__rust_helper void
rust_helper_percpu_counter_add_local(struct percpu_counter *fbc, s64 amount)
{
	percpu_counter_add_local(fbc, amount);
}

__rust_helper void
rust_helper_percpu_counter_sub_local(struct percpu_counter *fbc, s64 amount)
{
	percpu_counter_sub_local(fbc, amount);
}

__rust_helper s64 rust_helper_percpu_counter_read(struct percpu_counter *fbc)
{
	return percpu_counter_read(fbc);
}

__rust_helper s64
rust_helper_percpu_counter_read_positive(struct percpu_counter *fbc)
{
	return percpu_counter_read_positive(fbc);
}

__rust_helper s64 rust_helper_percpu_counter_sum(struct percpu_counter *fbc)
{
	return percpu_counter_sum(fbc);
}

__rust_helper s64
rust_helper_percpu_counter_sum_positive(struct percpu_counter *fbc)
{
	return percpu_counter_sum_positive(fbc);
}

__rust_helper bool
rust_helper_percpu_counter_limited_add(struct percpu_counter *fbc, s64 limit,
				       s64 amount)
{
	return percpu_counter_limited_add(fbc, limit, amount);
}

#ifndef CONFIG_SMP
/*
 * Without CONFIG_SMP these are static inline functions of the header (a percpu_counter is
 * then a plain s64 and has no lock, so @key is not used).
 */
__rust_helper int
rust_helper___percpu_counter_init_many(struct percpu_counter *fbc, s64 amount,
				       gfp_t gfp, u32 nr_counters,
				       struct lock_class_key *key)
{
	return percpu_counter_init_many(fbc, amount, gfp, nr_counters);
}

__rust_helper void
rust_helper_percpu_counter_destroy_many(struct percpu_counter *fbc,
					u32 nr_counters)
{
	percpu_counter_destroy_many(fbc, nr_counters);
}

__rust_helper void rust_helper_percpu_counter_set(struct percpu_counter *fbc,
						  s64 amount)
{
	percpu_counter_set(fbc, amount);
}

__rust_helper void
rust_helper_percpu_counter_add_batch(struct percpu_counter *fbc, s64 amount,
				     s32 batch)
{
	percpu_counter_add_batch(fbc, amount, batch);
}

__rust_helper void rust_helper_percpu_counter_sync(struct percpu_counter *fbc)
{
	percpu_counter_sync(fbc);
}
#endif
