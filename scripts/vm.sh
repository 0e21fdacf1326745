# SPDX-License-Identifier: GPL-2.0
# Boot helper; sourced after lib.sh.

VM_TIMEOUT=${VM_TIMEOUT:-600}

# vm BOOT [extra vng args...]: boot the test kernel, run guest.sh BOOT; output in $ART/BOOT.
vm() {
	local boot=$1; shift
	local dir=$ART/$boot rc start
	rm -rf "$dir"; mkdir -p "$dir"
	start=$(date +%s)
	set +e
	timeout -k 10 "$VM_TIMEOUT" vng -r "$B/arch/x86/boot/bzImage" \
		--disable-kvm --force-9p --cpus 2 --memory 2G -v \
		--append root=/dev/root --append loglevel=7 "$@" \
		--rwdir="$ART" -- "bash $TOP/scripts/guest.sh $boot $dir $B" \
		</dev/null >"$dir/out" 2>"$dir/console"
	rc=$?
	set -e
	echo "$rc" >"$dir/rc"
	say "boot $boot: exit $rc in $(( $(date +%s) - start ))s"
	if [ "$rc" != 0 ]; then
		echo "--- tail of $dir/console ---" >&2
		tail -25 "$dir/console" >&2
	fi
	return 0
}
