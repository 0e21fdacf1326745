#!/usr/bin/env bash
# SPDX-License-Identifier: GPL-2.0
# Make $S = pristine 7.3 + patches/*.patch + the project's new files.
# Only files whose content changed are rewritten, so kbuild rebuilds only what
# depends on them.

. "$(dirname "$0")/../lib.sh"

P=$CACHE/pristine
[ -f "$P/Makefile" ] || die "no pristine tree at $P (run scripts/host/fetch-source.sh)"
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

# patches/NN-topic/series lists each topic's patches in order, each followed by the new files it
# adds (scripts/series.py).
listed=$(python3 "$TOP/scripts/series.py" files | sort)
ours=$(cd "$TOP" && git ls-files --cached --others --exclude-standard -- rust samples lib Documentation drivers | sort)
if [ "$listed" != "$ours" ]; then
	diff <(echo "$listed") <(echo "$ours") >&2 || true
	die "the topic series and the new files in the repo differ (< listed only, > repo only)"
fi

# Upstream files: pristine copy + the diffs of every patch, in series order; then the new files.
python3 "$TOP/scripts/series.py" overlay "$stage" "$PR" || die "the series does not apply to $PR"

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
