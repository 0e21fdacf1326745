#!/usr/bin/env bash
# SPDX-License-Identifier: GPL-2.0
# make patches: turn patches/series + the new files into a git format-patch series against the
# pristine 7.3 tree (out/patches/), check that it applies with git am and yields exactly the
# overlaid tree.
#   BUILD_EACH=1   also build the kernel after every patch (bisectability; see README)
#   SIGNOFF="Name <email>"   the Signed-off-by/author identity (default: the project's)

. "$(dirname "$0")/lib.sh"

"$TOP/scripts/fetch-source.sh"
"$TOP/scripts/overlay.sh"
PR=$(readlink -f "$CACHE/pristine")
G=$CACHE/series-git
OUT=$TOP/out/patches
SIGNOFF=${SIGNOFF:-Rust per-CPU developers <rust-percpu@example.org>}
export GIT_AUTHOR_NAME=${SIGNOFF% <*} GIT_AUTHOR_EMAIL=${SIGNOFF##*<}
GIT_AUTHOR_EMAIL=${GIT_AUTHOR_EMAIL%>}
export GIT_COMMITTER_NAME=$GIT_AUTHOR_NAME GIT_COMMITTER_EMAIL=$GIT_AUTHOR_EMAIL
export GIT_AUTHOR_DATE="2026-01-01T00:00:00Z" GIT_COMMITTER_DATE="2026-01-01T00:00:00Z"
git() { command git -C "$G" -c core.autocrlf=false -c advice.detachedHead=false "$@"; }

if [ "$(cat "$G/.git/pristine" 2>/dev/null)" != "$PR" ]; then
	say "creating a git repository of the pristine tree in $G (once; about a minute)"
	rm -rf "$G"; mkdir -p "$G"
	cp -a "$PR/." "$G/"
	git init -q
	# Debian's .gitignore ignores the whole top level.
	rm -f "$G/.gitignore"
	git add -A
	git commit -qm "Linux $(make -s -C "$PR" kernelversion 2>/dev/null || echo 7.3)"
	git tag -f base >/dev/null
	echo "$PR" >"$G/.git/pristine"
fi
git checkout -qf -B series base
git clean -qfdx

n=0
while read -r p files; do
	case $p in ''|'#'*) continue ;; esac
	n=$((n + 1))
	git apply --index "$TOP/patches/$p" || die "$p does not apply"
	for f in $files; do
		mkdir -p "$G/$(dirname "$f")"
		cp "$TOP/$f" "$G/$f"
		git add -f "$f"
	done
	subject=$(sed -n 's/^Subject: //p;/^---$/q' "$TOP/patches/$p" | head -1)
	body=$(sed -n '/^Subject: /,/^---$/p' "$TOP/patches/$p" | sed '1d;$d' | sed '1{/^$/d}')
	git commit -q -F - <<MSG
$subject

$body

Signed-off-by: $SIGNOFF
MSG
done <"$TOP/patches/series"

rm -rf "$OUT"; mkdir -p "$OUT"
git format-patch -q --cover-letter -o "$OUT" base..series
cover=$(ls "$OUT"/0000-*.patch)
python3 - "$cover" "$n" <<'PY'
import sys
p, n = sys.argv[1], sys.argv[2]
s = open(p).read()
s = s.replace("*** SUBJECT HERE ***", "rust: per-CPU memory, percpu_counter, memalloc scopes and an irqsave cookie")
s = s.replace("*** BLURB HERE ***", """This series adds safe Rust abstractions for dynamic per-CPU memory
(PerCpu, PerCpuNum, DeferredPerCpuNum) and struct percpu_counter, memory
allocation scopes (NOFS/NOIO) with the GFP flags that go with them, and a
spinlock guard that saves and restores the interrupt state, with a
writeback-cookie style conditional guard.

Each abstraction exists to prevent a deadlock that was found late in C:
btrfs initialising a percpu_counter with GFP_KERNEL inside a NOFS
transaction, spin_unlock_irq() inside an outer irqsave region in the
writeback cookie, blk-throttle allocating per-CPU stats with GFP_KERNEL on
the I/O submission path, and NOFS/NOIO applied at the wrong layer. Every
allocating constructor calls might_alloc() (the per-CPU allocator has no
annotation of its own), so lockdep sees these inversions without memory
pressure. The last patches add lockdep selftests that provoke each bug
class with the C pattern and show the Rust API staying silent, a sample,
documentation and a MAINTAINERS entry.

Tested with KUnit (doctests and the new suites), the selftests in one boot
per scenario, on x86_64 with PROVE_LOCKING, DEBUG_ATOMIC_SLEEP and
CONFIG_RUST_INLINE_HELPERS, where PerCpuNum::add() compiles to a single
%gs:-relative add.""")
open(p, "w").write(s)
PY

# The series applies with git am to the pristine tree and gives exactly the overlaid tree.
git checkout -qf -B am-check base
git am -q $(ls "$OUT"/*.patch | grep -v '/0000-') || die "git am of the series failed"
git diff --quiet series am-check || die "git am result differs from the series"
bad=0
while read -r f; do
	cmp -s "$G/$f" "$S/$f" || { echo "differs from the overlaid tree: $f" >&2; bad=1; }
done <"$S/.overlay-manifest"
[ "$bad" = 0 ] || die "the series does not reproduce the overlaid tree"
say "series: $n patches + cover letter in $OUT; git am to pristine reproduces the overlaid tree"
ls "$OUT" | sed 's/^/  /'

if [ -n "${BUILD_EACH:-}" ]; then
	BE=$CACHE/build-each
	mkdir -p "$BE"
	for c in $(git rev-list --reverse base..series); do
		git checkout -qf "$c"
		say "building after: $(git log -1 --format=%s "$c")"
		cp "$B/.config" "$BE/.config"
		start=$(date +%s)
		make -s -C "$G" O="$BE" LLVM=-19 olddefconfig >/dev/null
		make -s -C "$G" O="$BE" LLVM=-19 -j"$JOBS" vmlinux modules >"$BE/build.log" 2>&1 ||
			{ tail -30 "$BE/build.log"; die "build fails after: $(git log -1 --format=%s "$c")"; }
		say "  ok in $(( $(date +%s) - start ))s"
	done
	git checkout -qf series
fi
