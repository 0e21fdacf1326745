#!/usr/bin/env bash
# SPDX-License-Identifier: GPL-2.0
# Developer aid: write patches/NAME.patch as the diff between the pristine tree
# and an edit tree (EDIT=dir holding edited copies of upstream files).
#   scripts/host/mkpatch.sh NAME path/in/tree...
. "$(dirname "$0")/../lib.sh"
name=$1; shift
out=$TOP/patches/$name.patch
: >"$out"
for f in "$@"; do
	diff -u --label "a/$f" --label "b/$f" "$CACHE/pristine/$f" "${EDIT:-/work/edit}/$f" >>"$out" || true
done
[ -s "$out" ] || die "no changes for $name"
echo "$out: $(grep -c '^[-+][^-+]' "$out") changed lines"
