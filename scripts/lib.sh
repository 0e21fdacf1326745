# SPDX-License-Identifier: GPL-2.0
# Shared settings for the harness scripts; sourced, not run.

set -euo pipefail

TOP=$(cd "$(dirname "${BASH_SOURCE[0]}")/.." && pwd)
CACHE=${CACHE:-${XDG_CACHE_HOME:-$HOME/.cache}/rust-percpu}
# Build variant: debug (the test kernel: lockdep, KUnit) or prod (no lock debugging, for
# make bench). Each has its own build tree; both use the one overlaid source tree $S.
VARIANT=${VARIANT:-debug}
case $VARIANT in
debug)
	B=${B:-$CACHE/build}    # kernel build tree (O=)
	FRAGMENTS=("$TOP"/configs/*.config)
	;;
prod)
	B=${B:-$CACHE/build-prod}
	FRAGMENTS=("$TOP/configs/vng.config" "$TOP"/configs/prod/*.config)
	;;
*)
	echo "error: unknown VARIANT=$VARIANT (debug or prod)" >&2
	exit 1
	;;
esac
S=${S:-$CACHE/src}              # overlaid source tree
ART=${ART:-$TOP/results}        # per-boot console, dmesg, KTAP
VENV=${VENV:-$CACHE/venv}
RUST_PIN=1.85.0
BINDGEN_PIN=0.71.1
VNG_PIN=1.42
JOBS=${JOBS:-$(nproc)}

export LLVM=-19
export PATH="$HOME/.cargo/bin:$VENV/bin:$PATH"
export LIBCLANG_PATH=${LIBCLANG_PATH:-/usr/lib/llvm-19/lib}

# The pinned toolchain if present (its LLVM matches clang-19, so C helpers inline).
if [ -z "${RUSTUP_TOOLCHAIN:-}" ] && rustup run "$RUST_PIN" rustc --version >/dev/null 2>&1; then
	export RUSTUP_TOOLCHAIN=$RUST_PIN
fi

say() { printf '==> %s\n' "$*" >&2; }

# KVM or TCG for the test boots: KVM=1 forces KVM, KVM=0 forces TCG; by default KVM is used when
# /dev/kvm is usable and the CPU advertises hardware virtualisation (vmx/svm). Here /dev/kvm can
# exist without vmx, and a KVM boot then hangs. The icount benchmark always uses TCG.
vm_accel() {
	case ${KVM:-auto} in
	1) echo kvm ;;
	0) echo tcg ;;
	*)
		if [ -r /dev/kvm ] && [ -w /dev/kvm ] && grep -qwE 'vmx|svm' /proc/cpuinfo; then
			echo kvm
		else
			echo tcg
		fi
		;;
	esac
}
vm_accel_args() { # the vng arguments for vm_accel
	[ "$(vm_accel)" = kvm ] || echo --disable-kvm
}
die() { printf 'error: %s\n' "$*" >&2; exit 1; }
kmake() { make -C "$S" O="$B" LLVM=-19 "$@"; }
