// SPDX-License-Identifier: GPL-2.0

#ifdef CONFIG_X86_LOCAL_APIC
#include <asm/apic.h>

/*
 * Sends an NMI to @cpu: for NMI_VECTOR, the APIC drivers' send_IPI() sets the
 * NMI delivery mode (__prepare_ICR()).
 */
__rust_helper void rust_helper_apic_send_nmi(int cpu)
{
	apic->send_IPI(cpu, NMI_VECTOR);
}
#endif
