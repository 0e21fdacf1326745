# SPDX-License-Identifier: GPL-2.0
# Entry points; see README.md.

.PHONY: run check build setup source shell clean-build bench

run:
	@scripts/host/run.sh

check:
	@scripts/check/check.sh

# Rust against C by instruction count on the production kernel (README: "make bench").
bench:
	@scripts/check/bench.sh

build:
	@scripts/host/setup.sh && scripts/host/build.sh

setup:
	@scripts/host/setup.sh

source:
	@scripts/host/fetch-source.sh

# Boot the test kernel with an interactive shell (for debugging; needs a terminal).
shell:
	@. scripts/lib.sh && vng -r "$$B/arch/x86/boot/bzImage" $$(vm_accel_args) --force-9p \
		--cpus 2 --memory 2G --append root=/dev/root

clean-build:
	@. scripts/lib.sh && rm -rf "$$B" "$$S" "$$CACHE/build-prod"

.PHONY: lint patches stress
# The riscv64-kasan stress for DURATION seconds (default 600): README, "make stress".
stress:
	@DURATION=$(DURATION) scripts/check/stress.sh

lint:
	@scripts/check/lint.sh

# BUILD_EACH=1 also builds after every patch.
patches:
	@scripts/host/patches.sh
