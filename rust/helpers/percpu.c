// SPDX-License-Identifier: GPL-2.0

#include <linux/percpu.h>
#include <linux/smp.h>

__rust_helper void __percpu *rust_helper___alloc_percpu_gfp(size_t size,
							    size_t align,
							    gfp_t gfp)
{
	return __alloc_percpu_gfp(size, align, gfp);
}

__rust_helper void *rust_helper_per_cpu_ptr(void __percpu *ptr,
					    unsigned int cpu)
{
	return per_cpu_ptr(ptr, cpu);
}

__rust_helper void *rust_helper_this_cpu_ptr(void __percpu *ptr)
{
	return this_cpu_ptr(ptr);
}

__rust_helper void rust_helper_on_each_cpu(smp_call_func_t func, void *info,
					   int wait)
{
	on_each_cpu(func, info, wait);
}

/*
 * this_cpu_*() are type-generic macros: one helper per operand size. They
 * compile to a single instruction with a segment prefix on x86.
 */
__rust_helper void rust_helper_this_cpu_add_u32(u32 __percpu *ptr, u32 val)
{
	this_cpu_add(*ptr, val);
}

__rust_helper void rust_helper_this_cpu_add_u64(u64 __percpu *ptr, u64 val)
{
	this_cpu_add(*ptr, val);
}

__rust_helper u32 rust_helper_this_cpu_read_u32(u32 __percpu *ptr)
{
	return this_cpu_read(*ptr);
}

__rust_helper u64 rust_helper_this_cpu_read_u64(u64 __percpu *ptr)
{
	return this_cpu_read(*ptr);
}

__rust_helper void rust_helper_this_cpu_write_u32(u32 __percpu *ptr, u32 val)
{
	this_cpu_write(*ptr, val);
}

__rust_helper void rust_helper_this_cpu_write_u64(u64 __percpu *ptr, u64 val)
{
	this_cpu_write(*ptr, val);
}

__rust_helper u32 rust_helper_this_cpu_xchg_u32(u32 __percpu *ptr, u32 val)
{
	return this_cpu_xchg(*ptr, val);
}

__rust_helper u32 rust_helper_this_cpu_cmpxchg_u32(u32 __percpu *ptr, u32 old, u32 new)
{
	return this_cpu_cmpxchg(*ptr, old, new);
}

__rust_helper u32 rust_helper_this_cpu_add_return_u32(u32 __percpu *ptr, u32 val)
{
	return this_cpu_add_return(*ptr, val);
}

__rust_helper u64 rust_helper_this_cpu_xchg_u64(u64 __percpu *ptr, u64 val)
{
	return this_cpu_xchg(*ptr, val);
}

__rust_helper u64 rust_helper_this_cpu_cmpxchg_u64(u64 __percpu *ptr, u64 old, u64 new)
{
	return this_cpu_cmpxchg(*ptr, old, new);
}

__rust_helper u64 rust_helper_this_cpu_add_return_u64(u64 __percpu *ptr, u64 val)
{
	return this_cpu_add_return(*ptr, val);
}
