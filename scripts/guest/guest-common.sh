# SPDX-License-Identifier: GPL-2.0
# Guest-side steps shared by guest.sh (x86_64, bash) and guest-cross.sh (arm64 and riscv64,
# busybox sh): POSIX sh only. Sourced after $out and $mods are set.
sample=$mods/samples/rust/rust_percpu.ko
selftest=$mods/samples/rust/rust_percpu_lockdep.ko
log() { echo "guest: $*"; echo "guest: $*" >/dev/kmsg; }
res() { echo "$1 $2" >>"$out/cases"; }  # NAME pass|fail
: >"$out/cases"

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

guest_finish() {
	grep -E '^ *debug_locks:' /proc/lockdep_stats >"$out/lockdep_stats" 2>/dev/null
	dmesg >"$out/dmesg"
	sync
}
