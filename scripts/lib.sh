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
die() { printf 'error: %s\n' "$*" >&2; exit 1; }
kmake() { make -C "$S" O="$B" LLVM=-19 "$@"; }
