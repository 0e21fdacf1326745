#!/usr/bin/env bash
# SPDX-License-Identifier: GPL-2.0
# Make $S = pristine 7.3 + patches/*.patch + the project's new files.
# Only files whose content changed are rewritten, so kbuild rebuilds only what
# depends on them.

. "$(dirname "$0")/lib.sh"

P=$CACHE/pristine
[ -f "$P/Makefile" ] || die "no pristine tree at $P (run scripts/fetch-source.sh)"
PR=$(readlink -f "$P")

# A new pristine tree means a new source tree (and a new build tree).
if [ "$(cat "$S/.pristine" 2>/dev/null)" != "$PR" ]; then
	say "creating source tree $S from $PR"
	rm -rf "$S" "$B"
	mkdir -p "$(dirname "$S")"
	cp -al "$PR" "$S" 2>/dev/null || { rm -rf "$S"; cp -a "$PR" "$S"; }
	echo "$PR" >"$S/.pristine"
	: >"$S/.overlay-manifest"
fi

stage=$(mktemp -d)
manifest=$(mktemp)
trap 'rm -rf "$stage" "$manifest"' EXIT

# patches/series lists the patches in order, each followed by the new files it adds.
series=$TOP/patches/series
[ -f "$series" ] || die "no $series"
listed=$(grep -v '^#' "$series" | tr ' ' '\n' | grep -v '\.patch$' | grep . | sort || true)
ours=$(cd "$TOP" && git ls-files --cached --others --exclude-standard -- rust samples lib Documentation | sort)
if [ "$listed" != "$ours" ]; then
	diff <(echo "$listed") <(echo "$ours") >&2 || true
	die "patches/series and the new files in the repo differ (< listed only, > repo only)"
fi

# Existing upstream files: pristine copy + patches, applied in series order.
for p in $(grep -v '^#' "$series" | awk '{ print $1 }'); do
	p=$TOP/patches/$p
	[ -f "$p" ] || die "$p is listed in patches/series but missing"
	sed -n 's|^+++ b/\([^\t ]*\).*|\1|p' "$p" | while read -r f; do
		[ -e "$stage/$f" ] && continue
		mkdir -p "$stage/$(dirname "$f")"
		if [ -f "$PR/$f" ]; then cp "$PR/$f" "$stage/$f"; fi # else a new file
	done
	patch -s -p1 -d "$stage" --no-backup-if-mismatch -F0 <"$p" ||
		die "$(basename "$p") does not apply to $PR"
done

# New files at their upstream paths.
for f in $ours; do
	[ -f "$PR/$f" ] && die "$f exists upstream: change it with a patch in patches/"
	mkdir -p "$stage/$(dirname "$f")"
	cp "$TOP/$f" "$stage/$f"
done

(cd "$stage" && find . -type f | sed 's|^\./||' | sort) >"$manifest"
changed=0
while read -r f; do
	if ! cmp -s "$stage/$f" "$S/$f"; then
		mkdir -p "$S/$(dirname "$f")"
		cp --remove-destination "$stage/$f" "$S/$f"
		changed=$((changed + 1))
	fi
done <"$manifest"
# Files overlaid last time but not now: back to pristine (or gone).
comm -23 "$S/.overlay-manifest" "$manifest" | while read -r f; do
	if [ -f "$PR/$f" ]; then cp --remove-destination "$PR/$f" "$S/$f"; else rm -f "$S/$f"; fi
done
cp "$manifest" "$S/.overlay-manifest"
say "overlay: $(wc -l <"$S/.overlay-manifest") files, $changed updated"
