#!/usr/bin/env bash
# SPDX-License-Identifier: GPL-2.0
# make run: build if needed, boot, insmod the sample, show its output and the lockdep state.
. "$(dirname "$0")/../lib.sh"
. "$TOP/scripts/launch/vm.sh"
"$TOP/scripts/host/setup.sh"
"$TOP/scripts/host/build.sh"
mkdir -p "$ART"
vm run
cat "$ART/run/out"
[ "$(cat "$ART/run/rc")" = 0 ]
