# SPDX-License-Identifier: GPL-2.0
# Boot helper; sourced after lib.sh.

VM_TIMEOUT=${VM_TIMEOUT:-600}

# vm BOOT [extra vng args...]: boot the test kernel, run guest.sh BOOT; output in $ART/BOOT.
# The clean boot has 4 vCPUs (NR_CPUS=8) of which only 3 come online at boot (maxcpus=3): CPU 3
# is possible and present but offline while the KUnit suites run, except when the hotplug suite
# brings it online and takes it down again. QEMU can hot-add 4 more (maxcpus=8): CPUs 4-7 are
# possible but not present, and have no CPU device (add_cpu()/remove_cpu() must give ENODEV).
# The other boots have 2 of 2 and do not run the built-in KUnit suites (kunit.enable=0): a
# must-detect boot exercises its scenario only, and lockdep's one report per boot is its own.
vm() {
	local boot=$1; shift
	local dir=$ART/$boot rc start cpus=(--cpus 2 --append kunit.enable=0) timeout=$VM_TIMEOUT
	if [ "$boot" = clean ]; then
		# Also the allocation failure and hostile-input tests: longer.
		timeout=$((VM_TIMEOUT + 600))
		cpus=(--cpus 4,maxcpus=8 --append maxcpus=3)
		# Linux counts QEMU's hot-pluggable CPUs as possible only under a hypervisor it
		# recognises (arch/x86/kernel/acpi/boot.c, acpi_is_processor_usable()). That is QEMU's
		# VMware backdoor port (vmport, on by default, under TCG and KVM alike), which Linux
		# probes when the CPU does not report a hypervisor and the DMI serial number names
		# VMware (arch/x86/kernel/cpu/vmware.c; configs/matrix/x86_64.config).
		cpus+=(--qemu-opts="-cpu max,-hypervisor -smbios type=1,serial=VMware-rust-percpu")
		# The seed of rnull's hostile-input generator (guest.sh, rnull_fuzz).
		[ -z "${FUZZ_SEED:-}" ] || cpus+=(--append "xseed=$FUZZ_SEED")
	fi
	local key
	key=$(boot_key "$boot" "${cpus[@]}" "$@")
	boot_unchanged "$dir" "$key" && return 0
	rm -rf "$dir"; mkdir -p "$dir"
	start=$(date +%s)
	set +e
	# shellcheck disable=SC2046 # vm_accel_args prints zero or one word
	timeout -k 10 "$timeout" vng -r "$B/arch/x86/boot/bzImage" \
		$(vm_accel_args) --force-9p "${cpus[@]}" --memory 2G -v \
		--append root=/dev/root --append loglevel=7 "$@" \
		--rwdir="$ART" -- "bash $TOP/scripts/guest/guest.sh $boot $dir $B" \
		</dev/null >"$dir/out" 2>"$dir/console"
	rc=$?
	set -e
	boot_result "$dir" "$rc" "$start" "$boot ($(vm_accel))"
	echo "$key" >"$dir/key"
}
