# SPDX-License-Identifier: GPL-2.0
# Shared settings for the harness scripts; sourced, not run.

set -euo pipefail

TOP=$(cd "$(dirname "${BASH_SOURCE[0]}")/.." && pwd)
CACHE=${CACHE:-${XDG_CACHE_HOME:-$HOME/.cache}/rust-percpu}
# Build variant: debug (the test kernel: lockdep, KUnit) or prod (no lock debugging, for
# make bench), both x86_64; the others are the debug kernel cross-built, each adding one
# dimension of the configuration matrix (configs/matrix/):
#   arm64-rt       arm64 with PREEMPT_RT
#   riscv64-kasan  riscv64 with generic KASAN and kmemleak
#   riscv64-up     riscv64 without SMP
# Each has its own build tree; all use the one overlaid source tree $S.
VARIANT=${VARIANT:-debug}
KARCH=x86 KIMAGE=bzImage
case $VARIANT in
debug)
	B=${B:-$CACHE/build}    # kernel build tree (O=)
	FRAGMENTS=("$TOP"/configs/*.config "$TOP/configs/arch/x86_64.config"
		"$TOP/configs/matrix/x86_64.config")
	;;
prod)
	B=${B:-$CACHE/build-prod}
	FRAGMENTS=("$TOP/configs/vng.config" "$TOP/configs/slim.config" "$TOP"/configs/prod/*.config
		"$TOP/configs/arch/x86_64.config")
	;;
arm64-rt | riscv64-kasan | riscv64-up)
	B=${B:-$CACHE/build-$VARIANT}
	FRAGMENTS=("$TOP"/configs/*.config "$TOP/configs/arch/${VARIANT%%-*}.config"
		"$TOP/configs/matrix/${VARIANT#*-}.config")
	KIMAGE=Image
	case $VARIANT in arm64*) KARCH=arm64 ;; *) KARCH=riscv ;; esac
	;;
*)
	echo "error: unknown VARIANT=$VARIANT (debug, prod, arm64-rt, riscv64-kasan or riscv64-up)" >&2
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
# boot_result DIR RC START LABEL: record a boot's exit status, say how it went, and show the
# console's tail when it failed.
boot_result() {
	echo "$2" >"$1/rc"
	say "boot $4: exit $2 in $(( $(date +%s) - $3 ))s"
	if [ "$2" != 0 ]; then
		echo "--- tail of $1/console ---" >&2
		tail -25 "$1/console" >&2
	fi
}
kmake() { make -C "$S" O="$B" ARCH="$KARCH" LLVM=-19 "$@"; }
kimage() { echo "$B/arch/$KARCH/boot/$KIMAGE"; }

# Cases. Every step of make check (disassembly, compile-fail, each boot's verdict, the bench, the
# lint gates) reports its cases with case_result between ktap_begin and ktap_end, which writes
# them as one KTAP document, $ART/ktap/<configuration>/<step>.ktap (scripts/ktap.py). check.sh
# parses every document with kunit.py; a step that stops early leaves no document, a failure.
ktap_begin() { # STEP [PLAN: the number of cases the step must report]
	KTAP_TSV=$ART/ktap/${CONFIG:-$VARIANT}/$1.tsv KTAP_PLAN=${2:-0}
	mkdir -p "$(dirname "$KTAP_TSV")"
	: >"$KTAP_TSV"
}
case_result() { # SUITE CASE pass|fail|skip [DETAIL]
	printf '%s\t%s\t%s\t%s\n' "$1" "$2" "$3" "$(printf '%s' "${4:-}" | tr '\t\n' '  ')" \
		>>"$KTAP_TSV"
	printf '%-20s %-44s %s %s\n' "$1" "$2" "$3" "${4:-}"
}
ktap_end() {
	python3 "$TOP/scripts/ktap.py" write "$KTAP_PLAN" <"$KTAP_TSV" >"${KTAP_TSV%.tsv}.ktap"
	rm -f "$KTAP_TSV"
}

# A boot whose inputs have not changed since its last successful run (the kernel image, every
# module of the build, the harness scripts, the boot's name and parameters) is not repeated:
# its logs and results stand, and its verdict is evaluated again. FORCE=1 repeats every boot. A
# fresh clone has no results, so every boot runs there.
boot_key() { # BOOT [PARAMETERS...]
	{
		echo "$* $VARIANT"
		cat "$B/arch/$KARCH/boot/$KIMAGE"
		find "$B/samples" "$B/drivers" -name '*.ko' -print0 2>/dev/null | sort -z | xargs -0r cat
		cat "$TOP"/scripts/*.sh "$TOP"/scripts/*/*.sh "$TOP"/scripts/guest/*.py \
			"$TOP"/configs/*.config "$TOP"/configs/*/*.config
	} | sha256sum | cut -d' ' -f1
}
boot_unchanged() { # DIR KEY: say so and succeed if DIR holds a successful boot with KEY
	[ -z "${FORCE:-}" ] && [ "$(cat "$1/key" 2>/dev/null)" = "$2" ] &&
		[ "$(cat "$1/rc" 2>/dev/null)" = 0 ] || return 1
	say "boot $(basename "$1"): unchanged since its last run, results kept (FORCE=1 repeats it)"
}
