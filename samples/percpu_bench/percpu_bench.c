// SPDX-License-Identifier: GPL-2.0
/*
 * Per-CPU, percpu_counter, irqsave lock and memalloc scope microbenchmarks:
 * the C side of a pair with samples/rust/rust_percpu_bench.rs.
 *
 * Both modules run the same operations with the same loop structure: each
 * operation is a noinline function, called through a function pointer from
 * one timing loop, and the same loop calling an empty function is the
 * baseline. Every repetition times both; the median of each over the
 * repetitions is taken and the baseline subtracted, so what remains is the
 * cost of the operation's function body. Results are printed one per line:
 *
 *   percpu_bench: lang=c op=NAME cpus=P iters=N reps=R ps_per_op=X op_ns=A empty_ns=B
 *
 * where P is the number of possible CPUs and X = (A - B) * 1000 / N. Under
 * QEMU's "-icount shift=0" the guest clock advances 1 ns per executed
 * instruction, so ps_per_op is thousandths of an instruction per operation.
 *
 * Run it by writing 1 (or 2: only the operations that visit every CPU) to
 * /sys/module/percpu_bench/parameters/run. Build it in to include
 * percpu_counter_limited_add(), which modules cannot call.
 */

#define pr_fmt(fmt) KBUILD_MODNAME ": " fmt

#include <linux/cpumask.h>
#include <linux/hardirq.h>
#include <linux/ktime.h>
#include <linux/local_lock.h>
#include <linux/module.h>
#include <linux/mutex.h>
#include <linux/percpu.h>
#include <linux/percpu_counter.h>
#include <linux/rcupdate.h>
#include <linux/sched/mm.h>
#include <linux/slab.h>
#include <linux/sort.h>
#include <linux/spinlock.h>

#define BENCH_MAX_REPS 31

static unsigned int iters = 20000;
module_param(iters, uint, 0644);
MODULE_PARM_DESC(iters, "Iterations per timed loop (1000-10000000)");

static unsigned int reps = 7;
module_param(reps, uint, 0644);
MODULE_PARM_DESC(reps, "Repetitions per operation, the median is reported (1-31)");

/* A per-CPU statistics struct (SharedPerCpu on the Rust side). */
struct bench_cells {
	u32 a;
	u64 b;
};

/* Per-CPU data under a local lock (LocalLock on the Rust side). */
struct bench_ll {
	local_trylock_t lock;
	u64 v;
};

static DEFINE_PER_CPU(u64, bench_static);

struct bench {
	u64 __percpu *num;
	struct bench_cells __percpu *cells;
	struct bench_ll __percpu *ll;
	u64 __percpu *local;
	u64 __percpu *deferred;
	struct percpu_counter pcc;
	spinlock_t irqsave_lock;	/* protects irqsave_val */
	u64 irqsave_val;
	spinlock_t irq_lock;		/* protects irq_val */
	u64 irq_val;
	spinlock_t wb_lock;		/* protects wb_val */
	u64 wb_val;
	int yes;
	int no;
	s64 near;
	u64 sink;
};

static noinline void op_empty(struct bench *b, u64 i)
{
}

static noinline void op_num_add(struct bench *b, u64 i)
{
	this_cpu_add(*b->num, i);
}

static noinline void op_num_inc(struct bench *b, u64 i)
{
	this_cpu_inc(*b->num);
}

static noinline void op_num_sum(struct bench *b, u64 i)
{
	u64 sum = 0;
	int cpu;

	for_each_possible_cpu(cpu)
		sum += READ_ONCE(*per_cpu_ptr(b->num, cpu));
	WRITE_ONCE(b->sink, sum);
}

static noinline void op_local_modify(struct bench *b, u64 i)
{
	u64 *p = get_cpu_ptr(b->local);

	*p += i;
	put_cpu_ptr(b->local);
}

static noinline void op_static_add(struct bench *b, u64 i)
{
	this_cpu_add(bench_static, i);
}

static noinline void op_shared_add(struct bench *b, u64 i)
{
	this_cpu_add(b->cells->b, i);
}

static noinline void op_num_xchg(struct bench *b, u64 i)
{
	WRITE_ONCE(b->sink, this_cpu_xchg(*b->num, i));
}

static noinline void op_num_cmpxchg(struct bench *b, u64 i)
{
	WRITE_ONCE(b->sink, this_cpu_cmpxchg(*b->num, i, i + 1));
}

static noinline void op_num_add_return(struct bench *b, u64 i)
{
	WRITE_ONCE(b->sink, this_cpu_add_return(*b->num, i));
}

static noinline void op_local_trylock(struct bench *b, u64 i)
{
	if (local_trylock(&b->ll->lock)) {
		this_cpu_ptr(b->ll)->v += i;
		local_unlock(&b->ll->lock);
	}
}

static noinline void op_local_lock(struct bench *b, u64 i)
{
	local_lock(&b->ll->lock);
	this_cpu_ptr(b->ll)->v += i;
	local_unlock(&b->ll->lock);
}

static noinline void op_local_lock_irqsave(struct bench *b, u64 i)
{
	unsigned long flags;

	local_lock_irqsave(&b->ll->lock, flags);
	this_cpu_ptr(b->ll)->v += i;
	local_unlock_irqrestore(&b->ll->lock, flags);
}

static noinline void op_local_trylock_irqsave(struct bench *b, u64 i)
{
	unsigned long flags;

	if (local_trylock_irqsave(&b->ll->lock, flags)) {
		this_cpu_ptr(b->ll)->v += i;
		local_unlock_irqrestore(&b->ll->lock, flags);
	}
}

static noinline void op_pcc_add(struct bench *b, u64 i)
{
	percpu_counter_add(&b->pcc, 1);
}

static noinline void op_pcc_read(struct bench *b, u64 i)
{
	WRITE_ONCE(b->sink, percpu_counter_read(&b->pcc));
}

static noinline void op_pcc_sum(struct bench *b, u64 i)
{
	WRITE_ONCE(b->sink, percpu_counter_sum(&b->pcc));
}

static noinline void op_pcc_compare(struct bench *b, u64 i)
{
	WRITE_ONCE(b->sink, percpu_counter_compare(&b->pcc, 1LL << 40) < 0);
}

static noinline void op_pcc_compare_near(struct bench *b, u64 i)
{
	WRITE_ONCE(b->sink, percpu_counter_compare(&b->pcc, READ_ONCE(b->near)) < 0);
}

#ifndef MODULE
/* __percpu_counter_limited_add() is not exported: built in only. */
static noinline void op_pcc_limited_add(struct bench *b, u64 i)
{
	WRITE_ONCE(b->sink, percpu_counter_limited_add(&b->pcc, 1LL << 40, 1));
}
#endif

static noinline void op_irqsave(struct bench *b, u64 i)
{
	unsigned long flags;

	spin_lock_irqsave(&b->irqsave_lock, flags);
	b->irqsave_val += i;
	spin_unlock_irqrestore(&b->irqsave_lock, flags);
}

/* The sequence of unlocked_inode_to_wb_begin() and _end(), with a spinlock. */
static __always_inline void wb_cookie_irqsave(struct bench *b, u64 i, int *cond)
{
	unsigned long flags = 0;
	bool locked;

	rcu_read_lock();
	locked = READ_ONCE(*cond);
	if (unlikely(locked))
		spin_lock_irqsave(&b->wb_lock, flags);
	if (locked)
		b->wb_val += i;
	if (unlikely(locked))
		spin_unlock_irqrestore(&b->wb_lock, flags);
	rcu_read_unlock();
}

/* The same with the refcounted interrupt disabling of spin_lock_irq_disable(). */
static __always_inline void wb_cookie_irq_disable(struct bench *b, u64 i, int *cond)
{
	bool locked;

	rcu_read_lock();
	locked = READ_ONCE(*cond);
	if (unlikely(locked))
		spin_lock_irq_disable(&b->wb_lock);
	if (locked)
		b->wb_val += i;
	if (unlikely(locked))
		spin_unlock_irq_enable(&b->wb_lock);
	rcu_read_unlock();
}

static noinline void op_cookie_true(struct bench *b, u64 i)
{
	wb_cookie_irqsave(b, i, &b->yes);
}

static noinline void op_cookie_false(struct bench *b, u64 i)
{
	wb_cookie_irqsave(b, i, &b->no);
}

static noinline void op_cookie_irq_disable_true(struct bench *b, u64 i)
{
	wb_cookie_irq_disable(b, i, &b->yes);
}

static noinline void op_cookie_irq_disable_false(struct bench *b, u64 i)
{
	wb_cookie_irq_disable(b, i, &b->no);
}

static noinline void op_irq_disable(struct bench *b, u64 i)
{
	spin_lock_irq_disable(&b->irq_lock);
	b->irq_val += i;
	spin_unlock_irq_enable(&b->irq_lock);
}

static noinline void op_spin_lock_irq(struct bench *b, u64 i)
{
	spin_lock_irq(&b->irq_lock);
	b->irq_val += i;
	spin_unlock_irq(&b->irq_lock);
}

static noinline void op_memalloc_nofs(struct bench *b, u64 i)
{
	unsigned int flags = memalloc_nofs_save();

	barrier();
	memalloc_nofs_restore(flags);
}

static noinline void op_num_new_drop(struct bench *b, u64 i)
{
	free_percpu(alloc_percpu_gfp(u64, GFP_KERNEL));
}

static noinline void op_deferred_add(struct bench *b, u64 i)
{
	/* Pairs with the publication of the allocation (here: before the run). */
	u64 __percpu *p = smp_load_acquire(&b->deferred);

	if (likely(p))
		this_cpu_add(*p, i);
}

struct bench_op {
	const char *name;
	void (*fn)(struct bench *b, u64 i);
	/* Iterations are iters / div (for the slow operations). */
	unsigned int div;
	/* Visits every CPU (run for "run=2"). */
	bool all_cpus;
};

static const struct bench_op bench_ops[] = {
	{ "num_add", op_num_add, 1, false },
	{ "num_inc", op_num_inc, 1, false },
	{ "num_sum", op_num_sum, 1, true },
	{ "local_modify", op_local_modify, 1, false },
	{ "static_add", op_static_add, 1, false },
	{ "shared_add", op_shared_add, 1, false },
	{ "num_xchg", op_num_xchg, 1, false },
	{ "num_cmpxchg", op_num_cmpxchg, 1, false },
	{ "num_add_return", op_num_add_return, 1, false },
	{ "local_trylock", op_local_trylock, 1, false },
	{ "local_lock", op_local_lock, 1, false },
	{ "local_lock_irqsave", op_local_lock_irqsave, 1, false },
	{ "local_trylock_irqsave", op_local_trylock_irqsave, 1, false },
	{ "pcc_add", op_pcc_add, 1, false },
	{ "pcc_read", op_pcc_read, 1, false },
	{ "pcc_sum", op_pcc_sum, 1, true },
	{ "pcc_compare", op_pcc_compare, 1, false },
	{ "pcc_compare_near", op_pcc_compare_near, 1, true },
#ifndef MODULE
	{ "pcc_limited_add", op_pcc_limited_add, 1, false },
#endif
	{ "irqsave", op_irqsave, 1, false },
	{ "cookie_true", op_cookie_true, 1, false },
	{ "cookie_false", op_cookie_false, 1, false },
	{ "cookie_irq_disable_true", op_cookie_irq_disable_true, 1, false },
	{ "cookie_irq_disable_false", op_cookie_irq_disable_false, 1, false },
	{ "irq_disable", op_irq_disable, 1, false },
	{ "spin_lock_irq", op_spin_lock_irq, 1, false },
	{ "memalloc_nofs", op_memalloc_nofs, 1, false },
	{ "num_new_drop", op_num_new_drop, 20, false },
	{ "deferred_add", op_deferred_add, 1, false },
};

static noinline u64 bench_loop(struct bench *b, void (*fn)(struct bench *, u64),
			       u64 n)
{
	u64 i, t0 = ktime_get_ns();

	for (i = 0; i < n; i++)
		fn(b, i);
	return ktime_get_ns() - t0;
}

static int cmp_u64(const void *a, const void *b)
{
	u64 x = *(const u64 *)a, y = *(const u64 *)b;

	return x < y ? -1 : x > y;
}

static u64 median(u64 *v, unsigned int n)
{
	sort(v, n, sizeof(*v), cmp_u64, NULL);
	return v[n / 2];
}

static void bench_run(struct bench *b, const struct bench_op *op)
{
	u64 t_op[BENCH_MAX_REPS], t_empty[BENCH_MAX_REPS], a, e;
	u64 n = iters / op->div;
	unsigned int r;

	for (r = 0; r < reps; r++) {
		t_empty[r] = bench_loop(b, op_empty, n);
		t_op[r] = bench_loop(b, op->fn, n);
	}
	a = median(t_op, reps);
	e = median(t_empty, reps);
	pr_info("lang=c op=%s cpus=%u iters=%llu reps=%u ps_per_op=%lld op_ns=%llu empty_ns=%llu\n",
		op->name, num_possible_cpus(), n, reps,
		div64_s64(((s64)a - (s64)e) * 1000, n), a, e);
}

static int bench_all(bool only_all_cpus)
{
	struct bench *b;
	unsigned int k;
	int cpu, err = -ENOMEM;

	if (iters < 1000 || iters > 10000000 || reps < 1 || reps > BENCH_MAX_REPS) {
		pr_err("invalid iters=%u or reps=%u\n", iters, reps);
		return -EINVAL;
	}
	b = kzalloc(sizeof(*b), GFP_KERNEL);
	if (!b)
		return -ENOMEM;
	b->num = alloc_percpu(u64);
	b->cells = alloc_percpu(struct bench_cells);
	b->ll = alloc_percpu(struct bench_ll);
	b->local = alloc_percpu(u64);
	b->deferred = alloc_percpu(u64);
	if (!b->num || !b->cells || !b->ll || !b->local || !b->deferred)
		goto out;
	for_each_possible_cpu(cpu)
		local_trylock_init(&per_cpu_ptr(b->ll, cpu)->lock);
	err = percpu_counter_init(&b->pcc, 0, GFP_KERNEL);
	if (err)
		goto out;
	spin_lock_init(&b->irqsave_lock);
	spin_lock_init(&b->irq_lock);
	spin_lock_init(&b->wb_lock);
	b->yes = 1;

	for (k = 0; k < ARRAY_SIZE(bench_ops); k++) {
		if (only_all_cpus && !bench_ops[k].all_cpus)
			continue;
		WRITE_ONCE(b->near, percpu_counter_sum(&b->pcc));
		bench_run(b, &bench_ops[k]);
	}
	pr_info("done\n");
	percpu_counter_destroy(&b->pcc);
out:
	free_percpu(b->deferred);
	free_percpu(b->local);
	free_percpu(b->ll);
	free_percpu(b->cells);
	free_percpu(b->num);
	kfree(b);
	return err;
}

static DEFINE_MUTEX(bench_mutex);

/*
 * Writing 1 (every operation) or 2 (only those that visit every CPU) to
 * the "run" parameter runs the benchmarks. Built in, this is the way to run
 * them after boot: /sys/module/percpu_bench/parameters/run.
 */
static int run_set(const char *val, const struct kernel_param *kp)
{
	unsigned int v;
	int err = kstrtouint(val, 0, &v);

	if (err)
		return err;
	if (v != 1 && v != 2)
		return -EINVAL;
	mutex_lock(&bench_mutex);
	err = bench_all(v == 2);
	mutex_unlock(&bench_mutex);
	return err;
}

static const struct kernel_param_ops run_ops = {
	.set = run_set,
};
module_param_cb(run, &run_ops, NULL, 0200);
MODULE_PARM_DESC(run, "Write 1 to run every benchmark, 2 for those that visit every CPU");

MODULE_DESCRIPTION("Per-CPU, percpu_counter and irqsave lock microbenchmarks (C)");
MODULE_LICENSE("GPL");
