#!/usr/bin/env python3
# SPDX-License-Identifier: GPL-2.0
"""KTAP documents for every step of make check, and the one parser of their results.

  ktap.py write PLAN < cases.tsv > step.ktap
      cases.tsv: one "suite<TAB>case<TAB>pass|fail|skip<TAB>detail" line per case, in order.
      Writes one KTAP document (Documentation/dev-tools/ktap.rst): a test per suite, a subtest
      per case; the detail is a diagnostic line before the result. PLAN, if not 0, is the number
      of cases the step was expected to report: the document's plan says so, and kunit.py counts
      the missing results as a failure.
  ktap.py kunit-cases JSON
      "pass|fail|skip name" for each test case of a kunit.py JSON result (a boot's suites).
  ktap.py rows KUNIT_PY CONFIG DOC...
      Parses each document with "kunit.py parse --json", prints one
      "config<TAB>suite<TAB>case<TAB>pass|fail|skip<TAB>detail" line per case. A document that
      kunit.py cannot parse, or whose plan and results disagree, gives a failing case.
"""

import json
import os
import re
import subprocess
import sys
import tempfile


def write(plan):
    suites = {}
    for line in sys.stdin:
        line = line.rstrip("\n")
        if not line:
            continue
        suite, case, status, detail = (line.split("\t") + ["", "", "", ""])[:4]
        suites.setdefault(suite.replace(" ", "_"), []).append((case.replace(" ", "_"), status,
                                                               detail))
    total = sum(len(c) for c in suites.values())
    out = ["KTAP version 1"]
    missing = max(0, plan - total)
    out.append(f"1..{len(suites) + (1 if missing else 0)}")
    for n, (suite, cases) in enumerate(suites.items(), 1):
        out.append("    KTAP version 1")
        out.append(f"    # Subtest: {suite}")
        out.append(f"    1..{len(cases)}")
        ok = True
        for i, (case, status, detail) in enumerate(cases, 1):
            for d in detail.splitlines() or [""]:
                if d:
                    out.append(f"    # {case}: {d}")
            if status == "pass":
                out.append(f"    ok {i} {case}")
            elif status == "skip":
                out.append(f"    ok {i} {case} # SKIP {detail}".rstrip())
            else:
                ok = False
                out.append(f"    not ok {i} {case}")
        out.append(f"{'ok' if ok else 'not ok'} {n} {suite}")
    if missing:
        # The step ended before reporting every case it had to: a truncated document.
        out.append("    KTAP version 1")
        out.append("    # Subtest: missing")
        out.append(f"    1..{missing}")
        out.append(f"not ok {len(suites) + 1} missing")
    print("\n".join(out))


def details(doc):
    """{(suite, case): detail} from the diagnostic lines of a document written by write()."""
    out, suite, pending = {}, None, {}
    for line in open(doc, errors="replace"):
        line = line.rstrip("\n")
        m = re.match(r"^\s*# Subtest: (.*)$", line)
        if m:
            suite, pending = m.group(1), {}
            continue
        m = re.match(r"^\s{4}# (\S+): (.*)$", line)
        if m:
            pending.setdefault(m.group(1), []).append(m.group(2))
            continue
        m = re.match(r"^\s{4}(?:not )?ok \d+ (\S+)", line)
        if m and suite is not None:
            out[(suite, m.group(1))] = "; ".join(pending.pop(m.group(1), []))
    return out


STATUS = {"PASS": "pass", "SKIP": "skip"}


def rows(kunit_py, config, docs):
    for doc in docs:
        name = os.path.basename(doc).rsplit(".", 1)[0]
        with tempfile.NamedTemporaryFile(suffix=".json") as js:
            r = subprocess.run([sys.executable, kunit_py, "parse", f"--json={js.name}", doc],
                               capture_output=True, text=True)
            try:
                root = json.load(open(js.name))
            except (OSError, ValueError):
                print(f"{config}\t{name}\tktap_document\tfail\tkunit.py parse failed: "
                      f"{(r.stdout + r.stderr).strip().splitlines()[-1:]}")
                continue
        info = details(doc)
        cases = 0
        truncated = False
        for group in root.get("sub_groups") or []:
            if group["name"] == "missing":
                truncated = True
                n = len(group.get("test_cases") or [])
                print(f"{config}\t{name}\tmissing_results\tfail\t{n} cases never reported")
                continue
            for c in group.get("test_cases") or []:
                cases += 1
                st = STATUS.get(c.get("status"), "fail")
                d = info.get((group["name"], c["name"]), "")
                print(f"{config}\t{group['name']}\t{c['name']}\t{st}\t{d}")
        misc = root.get("misc") or {}
        if not truncated and (misc.get("errors") or misc.get("crashed") or cases == 0):
            print(f"{config}\t{name}\tktap_document\tfail\t{cases} cases, "
                  f"{misc.get('errors', 0)} parse errors, {misc.get('crashed', 0)} crashed "
                  f"(see {doc})")


def kunit_cases(path):
    """Prints "pass|fail|skip name" for every test case of a kunit.py JSON result."""
    def walk(t):
        for g in t.get("sub_groups") or []:
            yield from walk(g)
        for c in t.get("test_cases") or []:
            yield STATUS.get(c.get("status"), "fail"), c.get("name")
    for st, name in walk(json.load(open(path))):
        print(st, name)


def main():
    if len(sys.argv) == 3 and sys.argv[1] == "kunit-cases":
        kunit_cases(sys.argv[2])
    elif len(sys.argv) >= 2 and sys.argv[1] == "write":
        write(int(sys.argv[2]) if len(sys.argv) > 2 else 0)
    elif len(sys.argv) >= 4 and sys.argv[1] == "rows":
        rows(sys.argv[2], sys.argv[3], sys.argv[4:])
    else:
        raise SystemExit(__doc__)


if __name__ == "__main__":
    main()
