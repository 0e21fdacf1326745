#!/usr/bin/env python3
# SPDX-License-Identifier: GPL-2.0
"""Merge the counts of make check jobs that each ran one configuration (hosted CI).

  merge.py SUMMARY...   each results/summary-<config>.tsv that check.sh wrote: one line
                        "config<TAB>passed<TAB>failed<TAB>skipped<TAB>seconds"

Prints a line per configuration and the closing "N passed, N failed, N skipped" line; fails if
a configuration of the matrix has no summary, failed, or passed nothing.
"""

import sys

MATRIX = ["x86_64", "prod", "arm64-rt", "riscv64-kasan", "riscv64-up", "lint"]


def main(paths):
    seen = {}
    for p in paths:
        try:
            for line in open(p):
                c, passed, failed, skipped, secs = line.rstrip("\n").split("\t")
                seen[c] = (int(passed), int(failed), int(skipped), int(secs))
        except (OSError, ValueError) as e:
            print(f"{p}: unreadable ({e})")
    bad = False
    total = [0, 0, 0]
    longest = 0
    for c in MATRIX:
        if c not in seen:
            print(f"{c:<13} no result (the job did not finish)")
            bad = True
            continue
        p, f, s, t = seen[c]
        print(f"{c:<13} {p:4d} passed, {f} failed, {s} skipped in {t}s")
        total = [total[0] + p, total[1] + f, total[2] + s]
        longest = max(longest, t)
        bad |= f > 0 or p == 0
    print(f"longest configuration: {longest}s")
    print(f"{total[0]} passed, {total[1]} failed, {total[2]} skipped")
    return 1 if bad else 0


if __name__ == "__main__":
    sys.exit(main(sys.argv[1:]))
