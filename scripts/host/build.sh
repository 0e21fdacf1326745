#!/usr/bin/env bash
# SPDX-License-Identifier: GPL-2.0
# Overlay, configure (tinyconfig + the variant's fragments via merge_config.sh) and
# build the kernel and the in-tree modules in $B.
#   VARIANT=debug (default)  the test kernel, configs/*.config, in $CACHE/build
#   VARIANT=prod             the production kernel for make bench, configs/vng.config +
#                            configs/prod/*.config, in $CACHE/build-prod
#   VARIANT=arm64-rt|riscv64-kasan|riscv64-up
#                            the test kernel cross-built (same LLVM) with one more dimension
#                            (configs/matrix/rt.config, ...), in $CACHE/build-$VARIANT
# Every variant adds configs/arch/<its architecture>.config.

. "$(dirname "$0")/../lib.sh"

"$TOP/scripts/host/fetch-source.sh"
"$TOP/scripts/host/overlay.sh"
mkdir -p "$B"

# One build per tree at a time (make check and make stress, say): a second one waits here.
progress() { # START: a line on how far the build in $B/build.log got
	local step
	step=$(grep -E '^  [A-Z]' "$B/build.log" 2>/dev/null | tail -1 | sed 's/^ *//' || true)
	say "  build $VARIANT: $(( $(date +%s) - $1 ))s, $(grep -cE '^  [A-Z]' "$B/build.log" 2>/dev/null || true) steps, at: ${step:-configuring}"
}
exec 9>"$B.lock"
if ! flock -n 9; then
	say "waiting for another build in $B (log: $B/build.log)"
	waited=$(date +%s)
	until flock -w 30 9; do progress "$waited"; done
fi

# Configure only when the fragments, the tree or the toolchain changed.
key=$( (cat "${FRAGMENTS[@]}"; cat "$S/.pristine"; rustc --version; clang-19 --version | head -1) | sha256sum)
if [ "$(cat "$B/.config-key" 2>/dev/null)" != "$key" ] || [ ! -f "$B/.config" ]; then
	say "configuring $B ($VARIANT)"
	kmake -s rustavailable >/dev/null ||
		{ kmake rustavailable; die "Rust toolchain not usable (run scripts/host/setup.sh)"; }
	kmake -s tinyconfig
	"$S/scripts/kconfig/merge_config.sh" -m -O "$B" "$B/.config" "${FRAGMENTS[@]}" >/dev/null
	kmake -s olddefconfig
	# Every setting of the fragments must hold; a later fragment overrides an earlier one
	# (as merge_config.sh applies them), e.g. "# CONFIG_SMP is not set" in configs/matrix/up.config.
	missing=()
	declare -A want=()
	while read -r line; do
		case $line in
		CONFIG_*=*) want[${line%%=*}]=$line ;;
		"# CONFIG_"*" is not set") sym=${line#\# }; want[${sym%% *}]=$line ;;
		esac
	done < <(cat "${FRAGMENTS[@]}")
	for sym in "${!want[@]}"; do
		case ${want[$sym]} in
		\#*) if grep -q "^$sym=" "$B/.config"; then missing+=("${want[$sym]}"); fi ;;
		*) grep -qx "${want[$sym]}" "$B/.config" || missing+=("${want[$sym]}") ;;
		esac
	done
	if [ "$(rustc --version | awk '{print $2}')" != "$RUST_PIN" ]; then
		echo "WARNING: rustc is not $RUST_PIN: CONFIG_RUST_INLINE_HELPERS cannot be set" >&2
		missing=("${missing[@]/CONFIG_RUST_INLINE_HELPERS=y/}")
	fi
	# 7.3 inlines C helpers into Rust only on arm64 and x86_64 (lib/Kconfig.debug); elsewhere
	# every helper is a call.
	if [ "$KARCH" = riscv ]; then
		missing=("${missing[@]/CONFIG_RUST_INLINE_HELPERS=y/}")
	fi
	for m in "${missing[@]}"; do
		[ -n "$m" ] && echo "error: .config lacks '$m' (a dependency is missing, or something selects it)" >&2
	done
	[ -z "$(printf '%s' "${missing[@]}")" ] || exit 1
	echo "$key" >"$B/.config-key"
fi

say "building in $B (log: $B/build.log)"
start=$(date +%s)
# The compiler's lines go to the log; the terminal gets a line every 30 s (VERBOSE=1: all).
if [ -n "${VERBOSE:-}" ]; then
	kmake -j"$JOBS" "$KIMAGE" modules 2>&1 | tee "$B/build.log"
	rc=${PIPESTATUS[0]}
else
	kmake -j"$JOBS" "$KIMAGE" modules >"$B/build.log" 2>&1 &
	pid=$!
	while kill -0 "$pid" 2>/dev/null; do
		for _ in $(seq 30); do kill -0 "$pid" 2>/dev/null && sleep 1; done
		kill -0 "$pid" 2>/dev/null || break
		progress "$start"
	done
	set +e
	wait "$pid"
	rc=$?
	set -e
fi
[ "$rc" = 0 ] || { grep -E 'error|Error' "$B/build.log" | tail -20 >&2; die "kernel build failed"; }
say "build done in $(( $(date +%s) - start ))s"
