# SPDX-License-Identifier: GPL-2.0
# Guest-side steps shared by guest.sh (x86_64, bash) and guest-cross.sh (arm64 and riscv64,
# busybox sh): POSIX sh only. Sourced after $out and $mods are set.
sample=$mods/samples/rust/rust_percpu.ko
selftest=$mods/samples/rust/rust_percpu_lockdep.ko
log() { echo "guest: $*"; echo "guest: $*" >/dev/kmsg; }
res() { echo "$1 $2" >>"$out/cases"; }  # NAME pass|fail
# xparam NAME: the value of NAME= on the kernel command line, or nothing. The launchers pass
# the boot's test parameters there (xseed, xstride, xstress, xduration, xup).
xparam() {
	for w in $(cat /proc/cmdline); do
		case $w in "$1"=*) echo "${w#*=}"; return 0 ;; esac
	done
}

# Built-in suites and doctests ran at boot; keep every KTAP document.
guest_ktap() {
	mkdir -p "$out/ktap"
	for d in /sys/kernel/debug/kunit/*/; do
		s=$(basename "$d")
		cp "$d/results" "$out/ktap/$s.ktap"
	done
}

# The sample and the selftests' safe scenarios, loaded and unloaded.
guest_modules() {
	ok=pass
	for i in 1 2 3 4 5; do
		insmod "$sample" ops=$((200 * i)) || ok=fail
		grep -q '^rust_percpu ' /proc/modules || ok=fail
		rmmod rust_percpu || ok=fail
	done
	res sample_load_unload_x5 $ok
	ok=pass
	for bad in ops=0 ops=1000001 op_bytes=0 inflight_limit=-1; do
		if insmod "$sample" $bad 2>/dev/null; then ok=fail; rmmod rust_percpu; fi
	done
	grep -q '^rust_percpu ' /proc/modules && ok=fail
	dmesg | grep -q 'invalid ops=0: must be within 1..=1000000' || ok=fail
	res sample_rejects_bad_params $ok
	if insmod "$selftest" scenario=7 2>/dev/null; then res selftest_rejects_bad_param fail; rmmod rust_percpu_lockdep
	else res selftest_rejects_bad_param pass; fi
	if insmod "$selftest" && dmesg | grep -q 'all safe scenarios done'; then
		res safe_scenarios pass
	else
		res safe_scenarios fail
	fi
	rmmod rust_percpu_lockdep 2>/dev/null
	# A DeferredPerCpuNum work item must run no code of the module that queued it: hold its
	# worker inside the work function, unload the module, then release the worker.
	ok=pass
	insmod "$selftest" deferred_unload=1 || ok=fail
	rmmod rust_percpu_lockdep || ok=fail
	insmod "$selftest" deferred_unload=2 || ok=fail
	rmmod rust_percpu_lockdep 2>/dev/null
	dmesg | grep -q 'deferred_unload: worker finished after unload' || ok=fail
	res deferred_work_after_module_unload $ok
}

# One must-detect scenario of the selftests.
guest_detect() { # N
	insmod "$selftest" scenario="$1"
	echo "insmod=$?" >"$out/insmod"
	sleep 1
}

# Hostile module parameters. param_try KO MODULE PARAM VALUE ok|fail: insmod KO PARAM=VALUE
# must load the module (then unloaded) or be refused, leaving nothing loaded, as the last
# argument says. PARAM_EXTRA: more parameters for every load.
param_try() {
	if insmod "$1" "$3=$4" $PARAM_EXTRA 2>/dev/null; then
		grep -q "^$2 " /proc/modules && rmmod "$2" && [ "$5" = ok ]
	else
		! grep -q "^$2 " /proc/modules && [ "$5" = fail ]
	fi
}

# PARAM:VALUE:EXPECT triples for the sample: what the kernel's integer parser (decimal, 0x, 0o,
# 0b, a leading 0 for octal, a leading + or -) and the sample's ranges accept, and what not.
SAMPLE_PARAMS="ops::fail ops:0:fail ops:1:ok ops:1000001:fail ops:0x10:ok
ops:0o17:ok ops:0b11:ok ops:017:ok ops:08:fail ops:+5:ok ops:-1:fail ops:-0:fail
ops:4294967295:fail ops:4294967296:fail ops:18446744073709551616:fail ops:1x:fail ops:x1:fail
ops:1.5:fail ops:1e3:fail ops:0x:fail ops:0xg:fail ops:--1:fail ops:+-1:fail ops:one:fail
op_bytes:0:fail op_bytes:1048576:ok op_bytes:1048577:fail op_bytes:-4096:fail
inflight_limit:0:fail inflight_limit:-1:fail inflight_limit:9223372036854775807:ok
inflight_limit:9223372036854775808:fail inflight_limit:-9223372036854775808:fail
inflight_limit:0x7fffffffffffffff:ok inflight_limit:1k:fail"
# The selftests: only values that are refused (1-6 would provoke a lockdep report).
SELFTEST_PARAMS="scenario:7:fail scenario:4294967296:fail scenario:-1:fail scenario:x:fail
scenario::fail scenario:0x7:fail scenario:010:fail scenario:1x:fail scenario:+7:fail
deferred_unload:3:fail deferred_unload:-1:fail deferred_unload:0x3:fail deferred_unload:y:fail"

# The tables above and 3000-digit values, then SEED's random values (xseed= on the command line, 1
# by default) for every parameter of the sample: ops below 2000 (a load runs ops operations per
# CPU) or above the range up to 2^33, op_bytes in range or up to twice it, and words without a
# digit or radix prefix (refused); each checked with param_try.
guest_params() {
	seed=$(xparam xseed) PARAM_EXTRA=
	seed=${seed:-1}
	ok=pass n=0
	long=$(awk 'BEGIN { while (i++ < 3000) printf "9" }')
	for t in $SAMPLE_PARAMS ops:$long:fail "inflight_limit:$long:fail"; do
		p=${t%%:*} r=${t#*:} v=${r%:*} e=${r##*:} PARAM_EXTRA=
		[ "$p" = ops ] || PARAM_EXTRA=ops=1
		param_try "$sample" rust_percpu "$p" "$v" "$e" || { ok=fail; log "params: $p=${v%"${v#??????????}"}... not $e"; }
		n=$((n + 1))
	done
	for t in $SELFTEST_PARAMS; do
		p=${t%%:*} r=${t#*:} v=${r%:*} e=${r##*:} PARAM_EXTRA=
		param_try "$selftest" rust_percpu_lockdep "$p" "$v" "$e" || { ok=fail; log "params: $p=$v not $e"; }
		n=$((n + 1))
	done
	awk -v seed="$seed" 'BEGIN {
		srand(seed)
		for (i = 0; i < 15; i++) {
			# A load runs ops operations per CPU: values taken are kept small.
			v = 1000001 + int(rand() * 8588934591)
			if (rand() < 0.5) v = int(rand() * 2000)
			printf "ops %.0f %s\n", v, (v >= 1 && v <= 1000000) ? "ok" : "fail"
			b = int(rand() * 2097152)
			printf "op_bytes %d %s\n", b, (b >= 1 && b <= 1048576) ? "ok" : "fail"
			w = ""
			n = 1 + int(rand() * 12)
			for (j = 0; j < n; j++) w = w substr("ghijklmnpqrstuvwyz_-+.,%@#", 1 + int(rand() * 27), 1)
			printf "inflight_limit %s fail\n", w
		}
	}' >/tmp/params
	while read -r p v e; do
		PARAM_EXTRA=
		[ "$p" = ops ] || PARAM_EXTRA=ops=1
		param_try "$sample" rust_percpu "$p" "$v" "$e" || { ok=fail; log "params: $p=$v not $e"; }
		n=$((n + 1))
	done </tmp/params
	PARAM_EXTRA=
	log "params: $n insmods with hostile parameters (seed $seed)"
	res module_params_hostile $ok
}

# Fault injection (configurations with CONFIG_FAULT_INJECTION): failslab, fail_page_alloc and
# fail_percpu also fail allocations that may sleep, of any order, one line per injected fault.
# The fault points only fail for a task whose fail-nth is set (probability stays 0).
fault_knobs() { # Y|N: Y restores the defaults
	for f in failslab fail_page_alloc fail_percpu; do
		echo "$1" >/sys/kernel/debug/$f/ignore-gfp-wait || return 1
		[ "$1" = Y ] && echo 2 >/sys/kernel/debug/$f/verbose || echo 1 >/sys/kernel/debug/$f/verbose
	done
	echo "$1" >/sys/kernel/debug/fail_page_alloc/ignore-gfp-highmem
	[ "$1" = Y ] && echo 1 >/sys/kernel/debug/fail_page_alloc/min-order ||
		echo 0 >/sys/kernel/debug/fail_page_alloc/min-order
}

# The allocation failure suites (KUnit, in a module so that they run after fault_knobs):
# rust_percpu_faults fails each allocation of each constructor of the API in turn;
# rust_percpu_chunk_faults those inside the per-CPU allocator (new chunks, page population).
# Each suite's KTAP document joins the boot's; each path's count of failed allocation points
# is logged, and so are the faults injected of each kind per suite.
guest_faults() {
	faults=$mods/samples/rust/rust_percpu_faults.ko
	[ -e "$faults" ] || return 0
	ok=pass
	: >"$out/faults.kinds"
	fault_knobs N || ok=fail
	fault_suite rust_percpu_faults || ok=fail
	fault_suite rust_percpu_chunk_faults || ok=fail
	fault_knobs Y
	dmesg | sed -n -e 's/.*rust_percpu_faults: \(.*allocation points failed.*\)/\1/p' \
		-e 's/.*rust_percpu_faults: \(.*inside the per-CPU allocator.*\)/\1/p' >"$out/faults"
	while read -r line; do log "faults: $line"; done <"$out/faults"
	[ -s "$out/faults" ] || ok=fail
	res fault_injection_suite_ran $ok
	# Inside the per-CPU allocator, page allocations (population) failed. Slab allocations (a new
	# chunk) fail there too when the test task creates the chunk; the allocator's balance worker
	# sometimes creates it first, so their count is logged, not judged.
	ok=fail
	grep -q "^rust_percpu_chunk_faults fail_page_alloc [1-9]" "$out/faults.kinds" && ok=pass
	res percpu_allocator_page_faults $ok
}

# fault_suite SUITE: run SUITE of the faults module alone (kunit.filter_glob) and copy its KTAP
# document; log the faults injected of each kind meanwhile (the fault attributes' "times" count
# down once per fault that fail-nth injects).
fault_suite() {
	r=0
	# No newline: a charp parameter keeps it, and the glob would match nothing.
	printf %s "$1" >/sys/module/kunit/parameters/filter_glob || return 1
	for f in failslab fail_page_alloc fail_percpu; do
		echo 1000000 >/sys/kernel/debug/$f/times
	done
	insmod "$faults" || r=1
	cp "/sys/kernel/debug/kunit/$1/results" "$out/ktap/$1.ktap" || r=1
	rmmod rust_percpu_faults || r=1
	printf %s '*.*' >/sys/module/kunit/parameters/filter_glob
	kinds=
	for f in failslab fail_page_alloc fail_percpu; do
		n=$((1000000 - $(cat /sys/kernel/debug/$f/times)))
		echo 1 >/sys/kernel/debug/$f/times
		echo "$1 $f $n" >>"$out/faults.kinds"
		kinds="$kinds, $f $n"
	done
	log "faults: $1: faults injected: ${kinds#, }"
	return $r
}

# fail_nth_write FILE VALUE N: write VALUE to FILE with the N-th fault point that the write
# reaches made to fail (as syzkaller does). Sets FNW_RC (the write's status), FNW_INJECTED (1 if
# the fault was injected) and FNW_ERR (the error message). Every file is opened before fail-nth
# is set, so that only the write itself reaches fault points.
fail_nth_write() {
	exec 9>"$1" 8>/tmp/fnw.err 7>/proc/self/fail-nth 6</proc/self/fail-nth || return 1
	echo "$3" >&7
	echo "$2" >&9 2>&8
	FNW_RC=$?
	read -r left <&6
	echo 0 >&7
	exec 9>&- 8>&- 7>&- 6<&-
	FNW_INJECTED=0
	[ "$left" = 0 ] && FNW_INJECTED=1
	# (read, not a cat process: a sweep makes hundreds of attempts)
	FNW_ERR=
	read -r FNW_ERR </tmp/fnw.err || :
}

guest_finish() {
	grep -E '^ *debug_locks:' /proc/lockdep_stats >"$out/lockdep_stats" 2>/dev/null
	dmesg >"$out/dmesg"
	sync
}
