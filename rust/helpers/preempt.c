// SPDX-License-Identifier: GPL-2.0

#include <linux/preempt.h>
#include <linux/rcupdate.h>

__rust_helper void rust_helper_preempt_disable(void)
{
	preempt_disable();
}

__rust_helper void rust_helper_preempt_enable(void)
{
	preempt_enable();
}

/* Always false without CONFIG_PREEMPT_COUNT. */
__rust_helper bool rust_helper_preemptible(void)
{
	return preemptible();
}

__rust_helper bool rust_helper_in_interrupt(void)
{
	return in_interrupt();
}

__rust_helper bool rust_helper_in_task(void)
{
	return in_task();
}

/*
 * Non-zero inside an RCU read-side critical section of preemptible RCU (on
 * PREEMPT_RT also while holding a spinlock_t); always 0 without
 * CONFIG_PREEMPT_RCU, where rcu_read_lock() disables preemption instead.
 */
__rust_helper int rust_helper_rcu_preempt_depth(void)
{
	return rcu_preempt_depth();
}
