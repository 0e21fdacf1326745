# SPDX-License-Identifier: GPL-2.0
# Boot helper for the cross-built kernels (VARIANT=arm64-rt|riscv64-kasan|riscv64-up), and for
# x86_64's must-detect boots of the selftests (VARIANT=debug); sourced after lib.sh.
# virtme-ng runs the host's (x86_64) programs in the guest, so these boots use QEMU directly:
# an initramfs with Debian's static busybox for the guest architecture, the checkout and the
# build tree shared read-only over 9p, and an output directory shared read-write. x86_64's test
# kernel has no initramfs support (virtme-ng does not need it): it mounts the same tree as its
# root over 9p. A must-detect boot needs no program of the host, and booted this way it skips
# virtme-ng-init's systemd-tmpfiles and udev coldplug, some 15 s of each boot under TCG.

XVM_TIMEOUT=${XVM_TIMEOUT:-900}

# debian_get DEBARCH DIR PACKAGE...: download the Debian (trixie) packages for that architecture
# with a private apt state (the machine's apt configuration is left alone) and extract them into
# DIR.
debian_get() {
	local arch=$1 dir=$2 A=$CACHE/apt-$1 APT mirror p
	shift 2
	mkdir -p "$A/lists/partial" "$A/cache/archives/partial"
	mirror=$(awk '$1 == "URIs:" { print $2; exit }' /etc/apt/sources.list.d/debian.sources 2>/dev/null || true)
	[ -n "$mirror" ] || mirror=http://deb.debian.org/debian
	echo "deb $mirror trixie main" >"$A/sources.list"
	APT=(-o "Dir::Etc::sourcelist=$A/sources.list" -o Dir::Etc::sourceparts=/nonexistent
	     -o "Dir::State::Lists=$A/lists" -o "Dir::Cache=$A/cache" -o Debug::NoLocking=1
	     -o "APT::Architecture=$arch" -o "APT::Architectures::=$arch")
	say "downloading Debian $* for $arch"
	apt-get "${APT[@]}" update -qq 2>/dev/null || die "apt-get update for $arch failed"
	rm -f "$A"/*.deb
	(cd "$A" && apt-get "${APT[@]}" download "${@/%/:$arch}" >/dev/null 2>&1) ||
		die "could not download $* for $arch"
	rm -rf "$dir" && mkdir -p "$dir"
	for p in "$A"/*.deb; do dpkg-deb -x "$p" "$dir"; done
}

# busybox_static DEBARCH: path of a static busybox for that Debian architecture, fetched once.
busybox_static() {
	local d=$CACHE/busybox-$1
	if [ ! -x "$d/bin/busybox" ]; then
		debian_get "$1" "$CACHE/apt-$1/x" busybox-static
		mkdir -p "$d/bin"
		cp "$(find "$CACHE/apt-$1/x" -path '*bin/busybox' -type f | head -1)" "$d/bin/busybox" ||
			die "no busybox in busybox-static:$1"
	fi
	echo "$d/bin/busybox"
}

# Debian's bash and minimal Python, with what they link to: rnull's failure cases
# (rnull-failure.sh, rnull_fuzz.py) need them in the riscv64-kasan clean boot.
XVM_USERLAND="bash libtinfo6 libc6 python3.13-minimal libpython3.13-minimal libexpat1 zlib1g"

# xvm_userland DEBARCH: a directory whose usr/ the guest mounts as its /usr, fetched once.
xvm_userland() {
	local d=$CACHE/userland-$1
	if [ "$(cat "$d/.packages" 2>/dev/null)" != "$XVM_USERLAND" ]; then
		# shellcheck disable=SC2086 # a list of package names
		debian_get "$1" "$d" $XVM_USERLAND
		[ -x "$d/usr/bin/bash" ] && [ -x "$d/usr/bin/python3.13" ] ||
			die "no bash or python3.13 in the packages for $1"
		echo "$XVM_USERLAND" >"$d/.packages"
	fi
	echo "$d"
}

# xvm_opensbi: Debian's (trixie) OpenSBI for the riscv64 boots, fetched once. QEMU 7.2 bundles
# OpenSBI 1.1, in which a hart's remote fence (SBI RFENCE, a kernel TLB flush) sometimes waits
# forever for a hart that CPU hotplug is stopping: that CPU then spins in the firmware and the
# guest reports an RCU stall on it.
xvm_opensbi() {
	local d=$CACHE/opensbi-riscv64
	local f=$d/usr/lib/riscv64-linux-gnu/opensbi/generic/fw_dynamic.bin
	[ -s "$f" ] || debian_get riscv64 "$d" opensbi
	[ -s "$f" ] || die "no OpenSBI fw_dynamic.bin in Debian's opensbi for riscv64"
	echo "$f"
}

# The initramfs: busybox and an /init that mounts the shares and runs guest-cross.sh.
xvm_initramfs() { # DEBARCH -> path of the cpio archive (amd64: of the root directory)
	local bb root=$B/xvm-root
	bb=$(busybox_static "$1")
	rm -rf "$root"; mkdir -p "$root/bin" "$root/dev" "$root/proc" "$root/sys" "$root/tmp" \
		"$root/top" "$root/mods" "$root/out" "$root/usr"
	ln -s usr/lib "$root/lib"
	cp "$bb" "$root/bin/busybox"
	# x86_64's root is this tree over 9p: its busybox runs here, and makes its links here.
	if [ "$1" = amd64 ]; then
		"$bb" --list | while read -r a; do [ "$a" = busybox ] || ln -s busybox "$root/bin/$a"; done
	fi
	cat >"$root/init" <<-'INIT'
	#!/bin/busybox sh
	[ -e /bin/sh ] || /bin/busybox --install -s /bin
	export PATH=/bin:/usr/bin
	mount -t proc proc /proc
	mount -t sysfs sys /sys
	mount -t devtmpfs dev /dev
	ln -s /proc/self/fd /dev/fd
	mount -t debugfs none /sys/kernel/debug
	o=trans=virtio,version=9p2000.L,msize=262144
	mount -t 9p -o "$o,ro" top /top && mount -t 9p -o "$o,ro" mods /mods &&
		mount -t 9p -o "$o" out /out
	# Debian's bash and Python, where the boot shares them (xvm_userland).
	if grep -q xuserland=1 /proc/cmdline; then
		mount -t 9p -o "$o,ro" usr /usr && ln -s /usr/bin/python3.13 /bin/python3
	fi
	boot=$(sed -n 's/.* xboot=\([^ ]*\).*/\1/p' /proc/cmdline)
	sh /top/scripts/guest/guest-cross.sh "$boot" /out /mods
	echo $? >/out/guest-rc
	sync
	poweroff -f
	INIT
	chmod +x "$root/init"
	[ "$1" = amd64 ] && { echo "$root"; return; }
	(cd "$root" && find . | cpio -o -H newc --quiet) >"$B/xvm-initramfs.cpio"
	echo "$B/xvm-initramfs.cpio"
}

# xvm_watchdog DIR MONITOR TIMEOUT: a boot about to time out, or whose console (DIR/console) has
# been silent for XVM_SILENCE seconds, has each vCPU's registers written to DIR/cpus through
# QEMU's monitor socket (scripts/monitor.py): a hang then shows where each CPU was, in the kernel
# or in the firmware. A silent boot is then stopped (DIR/silent: the seconds of silence) rather
# than left to its timeout. The quietest stretch of a boot that works is riscv64-kasan's Python
# fuzzing of rnull, some 140 s here.
XVM_SILENCE=${XVM_SILENCE:-600}
xvm_watchdog() {
	local dir=$1 mon=$2 timeout=$3 t=0 quiet=0 size=0 now
	while [ $t -lt $((timeout - 15)) ] && [ $quiet -lt "$XVM_SILENCE" ]; do
		sleep 5
		t=$((t + 5))
		now=$(stat -c %s "$dir/console" 2>/dev/null || echo 0)
		if [ "$now" = "$size" ]; then quiet=$((quiet + 5)); else quiet=0 size=$now; fi
	done
	python3 "$TOP/scripts/monitor.py" "$mon" "info registers -a" >"$dir/cpus" 2>&1 || :
	if [ $quiet -ge "$XVM_SILENCE" ]; then
		echo $quiet >"$dir/silent"
		python3 "$TOP/scripts/monitor.py" "$mon" quit || :
	fi
}

# xvm BOOT: boot the cross-built kernel (or x86_64's test kernel, for a selftest must-detect boot),
# run guest-cross.sh BOOT; output in $ART/$VARIANT-BOOT ($ART/BOOT for x86_64), laid out as vm()
# lays out its boots (dmesg, cases, ktap/, lockdep_stats, rc).
# The clean boot has 4 CPUs of which 3 come online at boot (maxcpus=3), as on x86_64 (one on
# riscv64-up); on riscv64-kasan it ends with the stress (xstress=1, guest-cross.sh) for
# STRESS_SECONDS (90 by default; make stress DURATION=...).
# The must-detect boots do not run the built-in KUnit suites (kunit.enable=0), as on x86_64.
# log_buf_len=8M: the stress of riscv64-kasan logs more than the default 128 KiB ring buffer
# holds, and the verdict reads the whole log (dmesg).
xvm() {
	local boot=$1 dir=$ART/$VARIANT-$1 rc start initrd cpus=2 append=kunit.enable=0
	local qemu machine console debarch fw label=$VARIANT accel=tcg
	case $VARIANT in
	debug)
		# x86_64: the must-detect boots of the selftests, laid out as vm()'s ($ART/BOOT). q35,
		# as virtme-ng's: under TCG the pc machine's ACPI took some 4 s per PCI interrupt link.
		[[ $boot == detect-[0-9]* ]] || die "xvm: x86_64 boots $boot with virtme-ng (vm)"
		accel=$(vm_accel) dir=$ART/$boot label=x86_64
		qemu=qemu-system-x86_64 machine=(-M "q35,accel=$accel" -cpu max)
		console=ttyS0 debarch=amd64 ;;
	arm64*)
		qemu=qemu-system-aarch64 machine=(-M virt -cpu max,pauth-impdef=on)
		console=ttyAMA0 debarch=arm64 ;;
	riscv64*)
		fw=$(xvm_opensbi) || die "no OpenSBI for riscv64"
		qemu=qemu-system-riscv64 machine=(-M virt -bios "$fw")
		console=ttyS0 debarch=riscv64 ;;
	*) die "xvm: VARIANT=$VARIANT is not a cross-built kernel" ;;
	esac
	local timeout=$XVM_TIMEOUT
	# The clean boot also runs the allocation failure and hostile-input tests, and the stress.
	[ "$boot" != clean ] || { cpus=4 append=maxcpus=3 timeout=$((XVM_TIMEOUT + 600 + ${STRESS_SECONDS:-90})); }
	case $VARIANT in
	*-up) cpus=1 append="${append#maxcpus=3} xup=1" ;;
	*-kasan)
		# rnull's failure cases (rnull-failure.sh) take some 10 minutes more under KASAN.
		[ "$boot" != clean ] || {
			append+=" xstress=1 xduration=${STRESS_SECONDS:-90} xuserland=1"
			# make stress: each of rnull's power-on fault points failed, not every 8th
			# (rnull-failure.sh).
			[ -z "${STRESS_SECONDS:-}" ] || append+=" xstride=1"
			timeout=$((timeout + 900))
		} ;;
	esac
	[ -z "${FUZZ_SEED:-}" ] || append+=" xseed=$FUZZ_SEED"
	local usr=() ud
	if [[ $append == *xuserland=1* ]]; then
		ud=$(xvm_userland "$debarch") || die "no bash and Python for $debarch"
		usr=(-virtfs "local,path=$ud/usr,mount_tag=usr,security_model=none,readonly=on")
	fi
	local key
	key=$(boot_key "$boot" "$cpus" "$append")
	boot_unchanged "$dir" "$key" && return 0
	initrd=$(xvm_initramfs "$debarch")
	local boot_args=(-initrd "$initrd") root_args=
	if [ "$debarch" = amd64 ]; then
		# The root over 9p, read-only.
		boot_args=(-fsdev "local,id=root,path=$initrd,security_model=none,readonly=on"
			-device virtio-9p-pci,fsdev=root,mount_tag=/dev/root)
		root_args="root=/dev/root rootfstype=9p rootflags=trans=virtio,version=9p2000.L ro init=/init"
	fi
	rm -rf "$dir"; mkdir -p "$dir"
	start=$(date +%s)
	local mon watchdog
	mon=$(mktemp -u /tmp/xvm-monitor.XXXXXX)
	xvm_watchdog "$dir" "$mon" "$timeout" </dev/null >/dev/null 2>&1 &
	watchdog=$!
	set +e
	timeout -k 10 "$timeout" "$qemu" "${machine[@]}" -smp "$cpus" -m 2G \
		-nographic -no-reboot -monitor "unix:$mon,server=on,wait=off" \
		-kernel "$(kimage)" "${boot_args[@]}" \
		-append "console=$console loglevel=7 log_buf_len=8M panic=-1 $root_args $append xboot=$boot" \
		-virtfs "local,path=$TOP,mount_tag=top,security_model=none,readonly=on" \
		-virtfs "local,path=$B,mount_tag=mods,security_model=none,readonly=on" \
		-virtfs "local,path=$dir,mount_tag=out,security_model=none" "${usr[@]}" \
		</dev/null >"$dir/console" 2>&1
	rc=$?
	set -e
	kill "$watchdog" 2>/dev/null
	rm -f "$mon"
	[ ! -e "$dir/silent" ] ||
		say "boot $boot: no console output for $(cat "$dir/silent") s, stopped; registers in $dir/cpus"
	# The guest's own verdict: the guest script ran to its end.
	[ "$rc" != 0 ] || [ "$(cat "$dir/guest-rc" 2>/dev/null)" = 0 ] || rc=1
	boot_result "$dir" "$rc" "$start" "$label $boot ($accel)"
	echo "$key" >"$dir/key"
}
