#!/usr/bin/env bash
# SPDX-License-Identifier: GPL-2.0
# Install what building and booting the test kernel needs. Idempotent: when
# everything is present it only checks versions.

. "$(dirname "$0")/../lib.sh"

APT_PKGS="clang-19 lld-19 llvm-19 libclang-19-dev flex bison bc libelf-dev libssl-dev
	xz-utils cpio python3 python3-venv make qemu-system-x86 busybox-static udev kmod
	file patch curl ca-certificates qemu-system-arm qemu-system-misc
	python3-sphinx"

missing=()
for p in $APT_PKGS; do
	dpkg-query -W -f='${Status}' "$p" 2>/dev/null | grep -q 'install ok installed' ||
		missing+=("$p")
done
if [ ${#missing[@]} -gt 0 ]; then
	say "installing Debian packages: ${missing[*]}"
	SUDO=; [ "$(id -u)" = 0 ] || SUDO=sudo
	export DEBIAN_FRONTEND=noninteractive
	$SUDO apt-get update -qq || true
	# One retry: a package's postinst can fail once on a fresh container.
	$SUDO apt-get install -y -qq --no-install-recommends "${missing[@]}" >/dev/null ||
		{ $SUDO dpkg --configure -a; $SUDO apt-get install -y -qq --no-install-recommends \
			"${missing[@]}" >/dev/null; } ||
		die "apt-get install failed; install these packages by hand: ${missing[*]}"
fi

command -v rustup >/dev/null || die "rustup not found: install it from https://rustup.rs (package: rustup)"
if ! rustup run "$RUST_PIN" rustc --version >/dev/null 2>&1 ||
   ! [ -d "$(rustup run "$RUST_PIN" rustc --print sysroot)/lib/rustlib/src/rust/library" ]; then
	say "installing rustc $RUST_PIN with rust-src"
	if ! rustup toolchain install "$RUST_PIN" --profile minimal \
		-c rust-src -c rustfmt -c clippy >/dev/null; then
		echo "WARNING: rustc $RUST_PIN could not be installed; falling back to $(rustc --version)." >&2
		echo "WARNING: its LLVM differs from clang-19, so CONFIG_RUST_INLINE_HELPERS is off" >&2
		echo "WARNING: and C helpers will not be inlined into Rust." >&2
		rustup component add rust-src >/dev/null || die "rustup component add rust-src failed"
	fi
fi

if ! bindgen --version 2>/dev/null | grep -q "$BINDGEN_PIN"; then
	say "installing bindgen-cli $BINDGEN_PIN"
	RUSTUP_TOOLCHAIN= cargo install --locked --quiet bindgen-cli --version "$BINDGEN_PIN" ||
		die "cargo install bindgen-cli failed (needs libclang-19-dev)"
fi

if ! "$VENV/bin/vng" --version 2>/dev/null | grep -q "$VNG_PIN"; then
	say "installing virtme-ng $VNG_PIN into $VENV"
	mkdir -p "$CACHE"
	python3 -m venv "$VENV" || die "python3 -m venv failed (package: python3-venv)"
	"$VENV/bin/pip" install -q "virtme-ng==$VNG_PIN" || die "pip install virtme-ng failed"
fi

# Tool -> where it comes from, for the error message.
for tp in clang-19:clang-19 ld.lld-19:lld-19 llvm-nm-19:llvm-19 llvm-objdump-19:llvm-19 \
	qemu-system-x86_64:qemu-system-x86 qemu-system-aarch64:qemu-system-arm \
	qemu-system-riscv64:qemu-system-misc sphinx-build:python3-sphinx \
	busybox:busybox-static udevadm:udev insmod:kmod \
	bindgen:"bindgen-cli (cargo install --locked bindgen-cli)" vng:"virtme-ng (pip, in $VENV)"; do
	t=${tp%%:*}
	command -v "$t" >/dev/null || [ -x "/bin/$t" ] || [ -x "/sbin/$t" ] ||
		die "$t not found after set-up: install ${tp#*:}"
done
# The toolchain the builds use: the pinned rustc when it is installed (lib.sh selects it).
rustc_used=$(rustup run "$RUST_PIN" rustc --version 2>/dev/null || rustc --version)
say "tools: $(clang-19 --version | head -1); $rustc_used; $(bindgen --version); vng $("$VENV/bin/vng" --version 2>&1 | tail -1)"
