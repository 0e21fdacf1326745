#!/usr/bin/env bash
# SPDX-License-Identifier: GPL-2.0
# Compile-fail cases: every "does not compile" claim of the API is a small module in
# scripts/check/compile-fail/ that must fail to build with the error named on its "// expect:" line
# (a rustc error code, or the message where rustc gives none), pointing at the line marked
# "// error here" when the case marks one; each file holds the use lines and
# a `fn case() -> Result`, and the script wraps it in a module. cf_ok.rs is the control: it uses
# the same APIs correctly and must build. Built as external modules against $B.
# One case each, in a KTAP document (ktap_begin in lib.sh).

. "$(dirname "$0")/../lib.sh"

[ -f "$B/Module.symvers" ] || die "no kernel build in $B"
work=$B/compile-fail
rm -rf "$work"
mkdir -p "$work"
rc=0
ktap_begin compile-fail "$(ls "$TOP"/scripts/check/compile-fail/*.rs | wc -l)"
result() { # case pass|fail [detail]
	case_result compile_fail "$1" "$2" "${3:-}"
	[ "$2" = pass ] || rc=1
}
for src in "$TOP"/scripts/check/compile-fail/*.rs; do
	name=$(basename "$src" .rs)
	want=$(sed -n 's|^// expect: *||p' "$src" | head -1)
	dir=$work/$name
	mkdir -p "$dir"
	# The case is a function `case() -> Result`; the module around it is the same for every case.
	{
		cat "$src"
		cat <<-EOT

		use kernel::prelude::*;

		module! {
		    type: Case,
		    name: "$name",
		    authors: ["Rust for Linux Contributors"],
		    description: "compile-fail case",
		    license: "GPL",
		}

		struct Case;

		impl kernel::Module for Case {
		    fn init(_module: &'static ThisModule) -> Result<Self> {
		        case()?;
		        Ok(Case)
		    }
		}
		EOT
	} >"$dir/$name.rs"
	echo "obj-m := $name.o" >"$dir/Kbuild"
	if kmake M="$dir" modules >"$dir/log" 2>&1; then built=1; else built=0; fi
	if [ "$want" = ok ]; then
		if [ "$built" = 1 ]; then result "$name" pass; else
			result "$name" fail "control did not build: $(grep -m1 -E '^error' "$dir/log")"
		fi
		continue
	fi
	# The line marked "// error here", if any, is where the expected error must point.
	line=$(grep -n '// error here' "$src" | head -1 | cut -d: -f1 || true)
	if [[ $want == E[0-9]* ]]; then hdr="^error\[$want\]"; else hdr="^error: $want"; fi
	at=$(grep -A4 -E "$hdr" "$dir/log" | grep -oE -- "--> $name\.rs:[0-9]+" | cut -d: -f2 | sort -u |
		paste -sd' ' || true)
	if [ "$built" = 1 ]; then
		result "$name" fail "built, expected $want"
	elif ! grep -qE -- "$hdr" "$dir/log"; then
		result "$name" fail "expected '$want', got: $(grep -m1 -E '^error' "$dir/log")"
	elif [ -n "$line" ] && ! [[ " $at " == *" $line "* ]]; then
		result "$name" fail "$want at line(s) '$at' of the case, expected line $line"
	elif [ -n "$line" ]; then
		result "$name" pass "($want at line $line)"
	elif [[ $want == E[0-9]* ]] || grep -qF -- "error: $want" "$dir/log"; then
		result "$name" pass
	else
		result "$name" fail "expected '$want', got: $(grep -m1 -E '^error' "$dir/log")"
	fi
done
ktap_end
exit $rc
