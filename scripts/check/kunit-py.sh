#!/usr/bin/env bash
# SPDX-License-Identifier: GPL-2.0
# The kunit.py path, as KUnit users run the suites (README): "kunit.py run
# --kunitconfig=rust/kernel" configures, builds and boots a kernel of its own. make check proves
# the two halves that cost little, on x86_64:
#   config  kunit.py config with rust/kernel/.kunitconfig in a scratch build directory: every
#           option of the file is satisfiable (no kernel is built)
#   exec    kunit.py exec on the test kernel make check built ($B), with its own QEMU command
#           line, a filter for two suites, and kunit.py's KTAP kept as a document of make check
. "$(dirname "$0")/../lib.sh"

KPY=$S/tools/testing/kunit/kunit.py
work=$CACHE/kunit-py
mkdir -p "$work/bin" "$ART/kunit-py"

ktap_begin kunit-py-config 1
if python3 "$KPY" config --kunitconfig="$S/rust/kernel" --build_dir="$work/build" \
	--arch=x86_64 --make_options LLVM=-19 >"$ART/kunit-py/config.log" 2>&1; then
	case_result kunit_py config_rust_kernel_kunitconfig pass
else
	case_result kunit_py config_rust_kernel_kunitconfig fail "$(tail -1 "$ART/kunit-py/config.log")"
fi
ktap_end

# kunit.py asks QEMU for KVM first; where /dev/kvm exists but cannot run a guest (vm_accel),
# a wrapper drops that request so that QEMU uses TCG.
real=$(command -v qemu-system-x86_64)
cat >"$work/bin/qemu-system-x86_64" <<WRAP
#!/usr/bin/env bash
args=()
while [ \$# -gt 0 ]; do
	if [ "\$1" = -accel ] && [ "\$2" != tcg ] && [ "$(vm_accel)" != kvm ]; then shift 2; continue; fi
	args+=("\$1"); shift
done
exec "$real" "\${args[@]}"
WRAP
chmod +x "$work/bin/qemu-system-x86_64"
doc=$ART/ktap/${CONFIG:-x86_64}/kunit-py.ktap
PATH=$work/bin:$PATH timeout 600 python3 "$KPY" exec --build_dir="$B" --arch=x86_64 \
	--kunitconfig="$S/rust/kernel" --timeout=500 --raw_output=kunit \
	'rust_kernel_cpu_possible*' >"$doc" 2>"$ART/kunit-py/exec.log" || true
say "kunit.py exec: $(grep -cE '^ +(not )?ok ' "$doc") results (KTAP: $doc)"
