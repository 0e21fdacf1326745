// SPDX-License-Identifier: GPL-2.0

#include <linux/preempt.h>

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

__rust_helper bool rust_helper_in_nmi(void)
{
	return in_nmi();
}
