#!/usr/bin/env bash
# SPDX-License-Identifier: GPL-2.0
# make lint: the kernel's own gates (rustfmt, WERROR, clippy, rustdoc, htmldocs, checkpatch)
# on the overlaid tree and the patch series, each reported by name. Only findings in the
# project's files count (the tree's own are not ours to fix).

. "$(dirname "$0")/../lib.sh"

if [ -z "${NOBUILD:-}" ]; then
	"$TOP/scripts/host/setup.sh"
	"$TOP/scripts/host/build.sh" >/dev/null
fi
mkdir -p "$ART"

# Gates whose inputs did not change since they last all passed (the project's files, the
# harness, the test kernel's configuration, the toolchain) are not run again: their document
# stands (FORCE=1 runs them), as a boot's does (boot_unchanged in lib.sh).
KEEP=$ART/lint-kept
key=$({
	cd "$TOP"
	git ls-files -z --cached --others --exclude-standard -- rust samples lib drivers \
		Documentation patches configs scripts | sort -z | xargs -0r cat
	cat "$B/.config" "$S/.pristine"
	rustc --version; clang-19 --version | head -1
} | sha256sum | cut -d' ' -f1)
if [ -z "${FORCE:-}" ] && [ "$(cat "$KEEP/key" 2>/dev/null)" = "$key" ] && [ -f "$KEEP/lint.ktap" ]; then
	say "lint: unchanged since its gates last passed, results kept (FORCE=1 repeats them)"
	mkdir -p "$ART/ktap/${CONFIG:-lint}"
	cp "$KEEP/lint.ktap" "$ART/ktap/${CONFIG:-lint}/lint.ktap"
	cat "$KEEP/output"
	exit 0
fi
rm -rf "$KEEP"
"$TOP/scripts/host/patches.sh" >"$ART/patches.log" 2>&1 || { cat "$ART/patches.log"; }
L=$ART/lint
rm -rf "$L"; mkdir -p "$L"
if grep -q 'reproduces the overlaid tree' "$ART/patches.log"; then
	gate_series=pass
else
	gate_series=fail
fi
ours=$(python3 "$TOP/scripts/series.py" files | paste -sd'|')
pass=0 fail=0
ktap_begin lint
gate() { # name pass|fail detail
	case_result lint "$1" "$2" "${3:-}"
	if [ "$2" = pass ]; then pass=$((pass + 1)); else fail=$((fail + 1)); fi
}

gate patch_series_git_am "$gate_series" "$(grep -o '[0-9]* patches in [0-9]* topic series' "$ART/patches.log")"

# rustfmt: the kernel's configuration, on our files.
if kmake -s rustfmtcheck >"$L/rustfmt.txt" 2>&1; then
	gate rustfmtcheck pass
else
	hits=$(grep -E "$ours" "$L/rustfmt.txt" | grep -c '^Diff in' || true)
	[ "$hits" = 0 ] && gate rustfmtcheck pass "(tree-wide diffs outside our files)" ||
		gate rustfmtcheck fail "$hits diffs in our files, see $L/rustfmt.txt"
fi

# W=e equivalent: the test kernel is built with CONFIG_WERROR=y (Rust warnings are errors).
if grep -qx CONFIG_WERROR=y "$B/.config"; then gate werror_build pass; else gate werror_build fail; fi

# Clippy over the kernel crate, the doctests and our modules, in a build tree of its own (so
# that the test kernel is not rebuilt afterwards). Lints are capped to warnings so that a
# finding in one file does not stop the others.
BC=$CACHE/build-clippy
mkdir -p "$BC"
cmp -s "$B/.config" "$BC/.config" || cp "$B/.config" "$BC/.config"
clippy() { make -C "$S" O="$BC" LLVM=-19 -j"$JOBS" CLIPPY=1 KRUSTFLAGS=--cap-lints=warn "$@"; }
{ clippy olddefconfig && clippy prepare &&
  clippy rust/ samples/rust/rust_percpu.o samples/rust/rust_percpu_lockdep.o \
		samples/rust/rust_percpu_bench.o; } >"$L/clippy.txt" 2>&1
rc=$?
hits=$(grep -E -A3 '^(warning|error)' "$L/clippy.txt" | grep -E "^ *--> .*($ours)" | sort -u || true)
if [ "$rc" = 0 ] && [ -z "$hits" ]; then
	gate clippy pass
else
	gate clippy fail "$(echo "$hits" | grep -c .) findings (exit $rc), see $L/clippy.txt"
fi

# rustdoc: broken links, bad backticks, missing srctree/ targets in our items.
kmake -j"$JOBS" rustdoc >"$L/rustdoc.txt" 2>&1 || true
hits=$(grep -E -A3 '^(warning|error)' "$L/rustdoc.txt" | grep -E "^ *--> .*($ours)" | sort -u || true)
if [ -z "$hits" ] && [ -f "$B/Documentation/output/rust/rustdoc/kernel/percpu/index.html" ]; then
	gate rustdoc pass
else
	gate rustdoc fail "$(echo "$hits" | grep -c . ) findings, see $L/rustdoc.txt"
fi

# Sphinx (make htmldocs) over Documentation/rust/: no warning or error from our page.
if command -v sphinx-build >/dev/null; then
	kmake SPHINXDIRS=rust htmldocs >"$L/htmldocs.txt" 2>&1
	rc=$?
	hits=$(grep -E 'Documentation/rust/percpu\.rst:.*(WARNING|ERROR|CRITICAL|SEVERE)' "$L/htmldocs.txt" || true)
	if [ "$rc" = 0 ] && [ -z "$hits" ] && [ -f "$B/Documentation/output/rust/percpu.html" ]; then
		gate htmldocs pass "(Documentation/rust/percpu.rst)"
	else
		gate htmldocs fail "$(echo "$hits" | grep -c .) findings (exit $rc), see $L/htmldocs.txt"
	fi
else
	gate htmldocs fail "sphinx-build not found (package: python3-sphinx)"
fi

# checkpatch --strict on every patch of the series: no errors or warnings.
bad=0
for p in "$TOP"/out/patches/*/0*.patch; do
	case $p in */0000-*) continue ;; esac
	"$S/scripts/checkpatch.pl" --strict --no-tree -q --ignore FILE_PATH_CHANGES "$p" \
		>"$L/checkpatch-$(basename "$p" .patch).txt" 2>&1 || true
	grep -qE '^(ERROR|WARNING)' "$L/checkpatch-$(basename "$p" .patch).txt" && bad=$((bad + 1))
done
[ "$bad" = 0 ] && gate checkpatch pass || gate checkpatch fail "$bad patches with errors/warnings, see $L/"

ktap_end
echo "$pass passed, $fail failed"
[ "$fail" = 0 ] || exit 1
mkdir -p "$KEEP"
cp "${KTAP_TSV%.tsv}.ktap" "$KEEP/lint.ktap"
echo "$pass passed, $fail failed (kept from $(date -u '+%F %T') UTC)" >"$KEEP/output"
echo "$key" >"$KEEP/key"
