#!/usr/bin/env bash
# SPDX-License-Identifier: GPL-2.0
# make patches: turn the topic series of patches/ (scripts/series.py) + the new files into git
# format-patch series against the pristine 7.3 tree, one directory per topic in out/patches/,
# each with its cover letter; check that each applies with git am to 7.3 plus the series it
# depends on, and that all of them, in order, yield exactly the overlaid tree.
#   BUILD_EACH=1   also build the kernel after every patch (bisectability; see README)
#   BUILD_FROM=K   with BUILD_EACH, start the builds at the K-th patch (to resume after a fix)
#   SIGNOFF="Name <email>"   the Signed-off-by/author identity (default: the project's)

. "$(dirname "$0")/../lib.sh"

"$TOP/scripts/host/fetch-source.sh"
"$TOP/scripts/host/overlay.sh"
PR=$(readlink -f "$CACHE/pristine")
OUT=$TOP/out/patches
SIGNOFF=${SIGNOFF:-Rust per-CPU developers <rust-percpu@example.org>}
export GIT_AUTHOR_NAME=${SIGNOFF% <*} GIT_AUTHOR_EMAIL=${SIGNOFF##*<}
GIT_AUTHOR_EMAIL=${GIT_AUTHOR_EMAIL%>}
export GIT_COMMITTER_NAME=$GIT_AUTHOR_NAME GIT_COMMITTER_EMAIL=$GIT_AUTHOR_EMAIL
export GIT_AUTHOR_DATE="2026-01-01T00:00:00Z" GIT_COMMITTER_DATE="2026-01-01T00:00:00Z"
# (core.abbrev: the same blob ids in the patches whatever the repository's size)
git() { command git -C "$G" -c core.autocrlf=false -c core.abbrev=12 -c advice.detachedHead=false "$@"; }

# The repository the series is committed to and applied in: the pristine files the series
# changes, which is all that git am and git format-patch read (a second or so to create), or,
# for BUILD_EACH, the whole pristine tree (about a minute, once).
if [ -n "${BUILD_EACH:-}" ]; then
	G=$CACHE/series-git-full
	base="$PR (whole tree)"
else
	G=$CACHE/series-git
	# (.gitattributes: the diff drivers that name a hunk's function in its header)
	changed=$(echo .gitattributes
		while read -r f; do [ ! -f "$PR/$f" ] || echo "$f"; done <"$S/.overlay-manifest")
	base="$PR (the files the series changes: $(echo "$changed" | sha256sum | cut -c1-16))"
fi
if [ "$(cat "$G/.git/pristine" 2>/dev/null)" != "$base" ]; then
	say "creating a git repository of $base in $G"
	rm -rf "$G"; mkdir -p "$G"
	if [ -n "${BUILD_EACH:-}" ]; then
		cp -a "$PR/." "$G/"
	else
		(cd "$PR" && echo "$changed" | cpio -pdm --quiet "$G")
	fi
	git init -q
	# Debian's .gitignore ignores the whole top level.
	rm -f "$G/.gitignore"
	git add -A
	git commit -qm "Linux $(make -s -C "$PR" kernelversion 2>/dev/null || echo 7.3)"
	git tag -f base >/dev/null
	echo "$base" >"$G/.git/pristine"
fi
git checkout -qf -B series base
git clean -qfdx
python3 "$TOP/scripts/series.py" commits "$G" "$SIGNOFF" || die "the series does not apply"
mapfile -t commits < <(git rev-list --reverse base..series)
# The patches of one series directory, without its cover letter.
pl() { ls "$1"/*.patch | grep -v '/0000-'; }
n=${#commits[@]}

# One directory per topic series, with its cover letter; patches numbered 1..n in each.
rm -rf "$OUT"; mkdir -p "$OUT"
while read -r dir first last deps; do
	name=$(basename "$dir")
	from=$([ "$first" = 1 ] && echo base || echo "${commits[$((first - 2))]}")
	git format-patch -q --cover-letter -o "$OUT/$name" "$from..${commits[$((last - 1))]}"
	python3 - "$OUT/$name"/0000-cover-letter.patch "$dir" "$TOP/scripts/series.py" <<'PY'
import subprocess, sys
cover, d, tool = sys.argv[1:]
subject, _, blurb = subprocess.run(["python3", tool, "cover", d], capture_output=True,
                                   text=True, check=True).stdout.partition("\n")
s = open(cover).read()
s = s.replace("*** SUBJECT HERE ***", subject)
s = s.replace("*** BLURB HERE ***", blurb.rstrip("\n"))
open(cover, "w").write(s)
PY
done < <(python3 "$TOP/scripts/series.py" topics)

# Every series applies with git am to the pristine tree plus the series it depends on.
while read -r dir first last deps; do
	name=$(basename "$dir")
	git checkout -qf -B "am-$name" base
	for d in $deps; do
		git am -q $(pl "$(ls -d "$OUT"/[0-9][0-9]-"$d")") ||
			die "series $d (a dependency of $name) does not apply"
	done
	git am -q $(pl "$OUT/$name") || {
		git am --abort || true
		die "series $name does not apply with git am to v7.3 + ${deps:-nothing}"
	}
	say "series $name: $((last - first + 1)) patches, applies to v7.3${deps:+ + $deps}"
done < <(python3 "$TOP/scripts/series.py" topics)

# All series, in order, give exactly the overlaid tree.
git checkout -qf -B am-check base
git am -q $(for d in "$OUT"/[0-9][0-9]-*; do pl "$d"; done) || die "git am of the series failed"
git diff --quiet series am-check || die "git am result differs from the series"
bad=0
while read -r f; do
	cmp -s "$G/$f" "$S/$f" || { echo "differs from the overlaid tree: $f" >&2; bad=1; }
done <"$S/.overlay-manifest"
[ "$bad" = 0 ] || die "the series does not reproduce the overlaid tree"
say "series: $n patches in $(ls "$OUT" | wc -l) topic series in $OUT; git am to pristine reproduces the overlaid tree"
ls "$OUT" | sed 's/^/  /'

if [ -n "${BUILD_EACH:-}" ]; then
	# The x86_64 test configuration, built after each patch in series order. A patch that
	# changes no build input (documentation, MAINTAINERS, a .kunitconfig) leaves the build
	# as the previous patch left it. New compiler warnings fail, as upstream's W=0 would
	# be read by a reviewer.
	BE=$CACHE/build-each
	mkdir -p "$BE"
	i=0 built=0 start_all=$(date +%s)
	for c in $(git rev-list --reverse base..series); do
		i=$((i + 1))
		subject=$(git log -1 --format=%s "$c")
		[ "$i" -ge "${BUILD_FROM:-1}" ] || continue
		git checkout -qf "$c"
		if ! git diff --name-only "$c^" "$c" |
			grep -qvE '^(Documentation/|MAINTAINERS$)|\.kunitconfig$'; then
			say "[$i/$n] $subject: no build input changed"
			continue
		fi
		say "[$i/$n] building after: $subject"
		cp "$B/.config" "$BE/.config"
		start=$(date +%s)
		make -s -C "$G" O="$BE" LLVM=-19 olddefconfig >/dev/null
		make -s -C "$G" O="$BE" LLVM=-19 -j"$JOBS" vmlinux modules >"$BE/build.log" 2>&1 ||
			{ tail -30 "$BE/build.log"; die "build fails after: $subject"; }
		if grep -q 'warning:' "$BE/build.log"; then
			grep -B2 -A8 'warning:' "$BE/build.log" | head -60
			die "the build warns after: $subject"
		fi
		built=$((built + 1))
		say "  ok in $(( $(date +%s) - start ))s, no warning"
	done
	git checkout -qf series
	say "BUILD_EACH: patches ${BUILD_FROM:-1}-$n: $built built without a warning, the others change no build input; $(( $(date +%s) - start_all ))s"
fi
