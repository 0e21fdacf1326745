#!/usr/bin/env bash
# SPDX-License-Identifier: GPL-2.0
# Compile-fail cases: every "does not compile" claim of the API is a small module in
# scripts/compile-fail/ that must fail to build with the error named on its "// expect:" line
# (a rustc error code, or the message where rustc gives none), pointing at the line marked
# "// error here" when the case marks one; each file holds the use lines and
# a `fn case() -> Result`, and the script wraps it in a module. cf_ok.rs is the control: it uses
# the same APIs correctly and must build. Built as external modules against $B.
# Prints one line per case: "NAME pass|fail [detail]".

. "$(dirname "$0")/lib.sh"

[ -f "$B/Module.symvers" ] || die "no kernel build in $B"
work=$B/compile-fail
rm -rf "$work"
mkdir -p "$work"
rc=0
for src in "$TOP"/scripts/compile-fail/*.rs; do
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
		if [ "$built" = 1 ]; then echo "$name pass"; else
			echo "$name fail control did not build: $(grep -m1 -E '^error' "$dir/log")"; rc=1
		fi
		continue
	fi
	# The line marked "// error here", if any, is where the expected error must point.
	line=$(grep -n '// error here' "$src" | head -1 | cut -d: -f1 || true)
	if [[ $want == E[0-9]* ]]; then hdr="^error\[$want\]"; else hdr="^error: $want"; fi
	at=$(grep -A4 -E "$hdr" "$dir/log" | grep -oE -- "--> $name\.rs:[0-9]+" | cut -d: -f2 | sort -u |
		paste -sd' ' || true)
	if [ "$built" = 1 ]; then
		echo "$name fail built, expected $want"; rc=1
	elif ! grep -qE -- "$hdr" "$dir/log"; then
		echo "$name fail expected '$want', got: $(grep -m1 -E '^error' "$dir/log")"; rc=1
	elif [ -n "$line" ] && ! [[ " $at " == *" $line "* ]]; then
		echo "$name fail $want at line(s) '$at' of the case, expected line $line"; rc=1
	elif [ -n "$line" ]; then
		echo "$name pass ($want at line $line)"
	elif [[ $want == E[0-9]* ]] || grep -qF -- "error: $want" "$dir/log"; then
		echo "$name pass"
	else
		echo "$name fail expected '$want', got: $(grep -m1 -E '^error' "$dir/log")"; rc=1
	fi
done
exit $rc
