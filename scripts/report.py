#!/usr/bin/env python3
# SPDX-License-Identifier: GPL-2.0
"""results/index.html: one self-contained page with the results of make check.

  report.py write ART KUNIT_PY CONFIG...   write ART/index.html from the KTAP documents of
                                           ART/ktap/<config>/, the bench (ART/bench/bench.json)
                                           and the boots' logs
  report.py check ART CONFIG...            parse ART/index.html back: every configuration and
                                           every bench row present; prints one
                                           "report<TAB>case<TAB>pass|fail<TAB>detail" line each

No network and no script: the matrix is a table, the bench a bar chart in inline SVG.
"""

import html
import json
import os
import sys
from html.parser import HTMLParser

sys.path.insert(0, os.path.dirname(os.path.abspath(__file__)))
import ktap  # noqa: E402

CSS = """
body { font-family: sans-serif; margin: 2em; color: #222; }
table { border-collapse: collapse; margin: 1em 0; }
th, td { border: 1px solid #bbb; padding: 0.25em 0.6em; text-align: left; }
th { background: #eee; }
td.pass { background: #dfd; } td.fail { background: #fdd; } td.none { color: #999; }
.total { font-size: 1.3em; font-weight: bold; }
"""


def rows_of(art, kunit_py, config):
    """[(suite, case, status, detail, doc)] of one configuration."""
    out = []
    d = os.path.join(art, "ktap", config)
    if not os.path.isdir(d):
        return out
    for doc in sorted(os.listdir(d)):
        if not doc.endswith(".ktap"):
            continue
        path = os.path.join(d, doc)
        import contextlib
        import io
        buf = io.StringIO()
        with contextlib.redirect_stdout(buf):
            ktap.rows(kunit_py, config, [path])
        for line in buf.getvalue().splitlines():
            _, suite, case, st, detail = (line.split("\t") + [""] * 5)[:5]
            out.append((suite, case, st, detail, doc[:-5]))
    return out


def boot_links(art, config, step):
    """Links to a boot's console and dmesg, if the step is a boot with logs."""
    prefix = "" if config == "x86_64" else config + "-"
    d = os.path.join(art, prefix + step)
    links = []
    for f in ("console", "dmesg"):
        if os.path.isfile(os.path.join(d, f)):
            links.append(f'<a href="{html.escape(prefix + step)}/{f}">{f}</a>')
    return " ".join(links)


def matrix(art, kunit_py, configs):
    parts = ["<h2>Matrix</h2>", "<table id='matrix'><tr><th>configuration</th><th>step</th>"
             "<th>suite</th><th>passed</th><th>failed</th><th>skipped</th><th>logs</th></tr>"]
    totals = [0, 0, 0]
    for c in configs:
        groups = {}
        for suite, case, st, detail, doc in rows_of(art, kunit_py, c):
            g = groups.setdefault((doc, suite), [0, 0, 0, []])
            i = {"pass": 0, "fail": 1, "skip": 2}.get(st, 1)
            g[i] += 1
            totals[i] += 1
            if i == 1:
                g[3].append(f"{case}: {detail}")
        if not groups:
            totals[1] += 1
            parts.append(f"<tr data-config='{c}'><td>{c}</td><td colspan=6 class='fail'>"
                         "no results</td></tr>")
        for (doc, suite), (p, f, s, failed) in groups.items():
            cls = "fail" if f else "pass"
            title = html.escape("; ".join(failed))
            parts.append(f"<tr data-config='{c}'><td>{c}</td><td>{html.escape(doc)}</td>"
                         f"<td>{html.escape(suite)}</td><td class='{cls}'>{p}</td>"
                         f"<td class='{cls}' title='{title}'>{f}</td><td>{s}</td>"
                         f"<td>{boot_links(art, c, doc)}</td></tr>")
    parts.append("</table>")
    head = (f"<p class='total'>{totals[0]} passed, {totals[1]} failed, {totals[2]} skipped</p>")
    return head + "\n".join(parts)


def bench(art):
    try:
        b = json.load(open(os.path.join(art, "bench", "bench.json")))
    except (OSError, ValueError):
        return "<h2>Bench</h2><p id='bench-missing'>No bench results.</p>"
    rows = [r for r in b["rows"] if r.get("ratio") is not None]
    width, bar_h, label_w, scale = 900, 18, 420, 300
    h = (len(rows) + 1) * (bar_h + 6) + 20
    svg = [f"<svg id='bench' xmlns='http://www.w3.org/2000/svg' width='{width}' height='{h}'"
           " font-size='12' font-family='sans-serif'>"]
    x0 = label_w
    one = x0 + scale
    svg.append(f"<line x1='{one}' y1='0' x2='{one}' y2='{h}' stroke='#444'/>")
    svg.append(f"<text x='{one + 3}' y='12'>Rust/C = 1</text>")
    for i, r in enumerate(rows):
        y = 20 + i * (bar_h + 6)
        ratio = r["ratio"]
        w = min(ratio, 2.5) * scale
        judged = r.get("budget") is not None
        ok = r["status"] == "pass"
        color = "#6a6" if ok else ("#c44" if judged else "#99b")
        svg.append(f"<g class='row' data-id='{html.escape(r['id'])}'>")
        svg.append(f"<text x='0' y='{y + 13}'>{html.escape(r['operation'][:62])}</text>")
        svg.append(f"<rect x='{x0}' y='{y}' width='{w:.0f}' height='{bar_h}' fill='{color}'/>")
        if judged:
            bx = x0 + r["budget"] * scale
            svg.append(f"<line x1='{bx:.0f}' y1='{y - 2}' x2='{bx:.0f}' y2='{y + bar_h + 2}'"
                       " stroke='#000' stroke-width='2'/>")
        note = f"{ratio:.2f}" + (f" (budget {r['budget']:.2f})" if judged else " (information)")
        svg.append(f"<text x='{x0 + w + 4:.0f}' y='{y + 13}'>{note}</text></g>")
    svg.append("</svg>")
    table = ["<table id='bench-table'><tr><th>operation</th><th>C</th><th>Rust</th>"
             "<th>Rust/C</th><th>budget</th><th>reason</th></tr>"]
    for r in b["rows"]:
        ratio = "-" if r.get("ratio") is None else f"{r['ratio']:.2f}"
        budget = "-" if r.get("budget") is None else f"{r['budget']:.2f}"
        table.append(f"<tr data-id='{html.escape(r['id'])}'><td>{html.escape(r['operation'])}"
                     f"</td><td>{r.get('c_ps')}</td><td>{r.get('rust_ps')}</td><td>{ratio}</td>"
                     f"<td>{budget}</td><td>{html.escape(r.get('reason') or '')}</td></tr>")
    table.append("</table>")
    rn = b.get("rnull") or {}
    rnull = ""
    if rn:
        rnull = (f"<h2>rnull</h2><p id='rnull'>Instructions per request: "
                 f"{rn['with_stats']:.0f} with per-CPU statistics, {rn['without_stats']:.0f} "
                 f"without; {rn['counted']}/{rn['expected']} requests counted.</p>")
    return ("<h2>Bench</h2><p>Instructions per operation under QEMU <code>-icount shift=0"
            "</code>, Rust/C; the black mark is the budget of a judged row.</p>"
            + "\n".join(svg) + "\n".join(table) + rnull)


def write(art, kunit_py, configs):
    page = ["<!DOCTYPE html><html><head><meta charset='utf-8'><title>make check</title>",
            f"<style>{CSS}</style></head><body><h1>make check</h1>",
            f"<p>Configurations: {' '.join(configs)}</p>",
            matrix(art, kunit_py, configs)]
    if "prod" in configs:
        page.append(bench(art))
    page.append("</body></html>")
    open(os.path.join(art, "index.html"), "w").write("\n".join(page))


class Parse(HTMLParser):
    def __init__(self):
        super().__init__()
        self.configs, self.bench_rows, self.svg_rows = set(), set(), set()

    def handle_starttag(self, tag, attrs):
        a = dict(attrs)
        if tag == "tr" and "data-config" in a:
            self.configs.add(a["data-config"])
        if tag == "tr" and "data-id" in a:
            self.bench_rows.add(a["data-id"])
        if tag == "g" and a.get("class") == "row":
            self.svg_rows.add(a.get("data-id"))


def check(art, configs):
    p = Parse()
    try:
        p.feed(open(os.path.join(art, "index.html")).read())
    except OSError as e:
        print(f"report\tindex_html_written\tfail\t{e}")
        return
    print("report\tindex_html_written\tpass\t")
    for c in configs:
        st = "pass" if c in p.configs else "fail"
        print(f"report\tindex_html_has_{c}\t{st}\t")
    if "prod" in configs:
        try:
            b = json.load(open(os.path.join(art, "bench", "bench.json")))
            want = {r["id"] for r in b["rows"]}
            charted = {r["id"] for r in b["rows"] if r.get("ratio") is not None}
        except (OSError, ValueError):
            want, charted = {"bench.json"}, set()
        missing = sorted(want - p.bench_rows) + sorted(charted - p.svg_rows)
        st = "pass" if not missing else "fail"
        print(f"report\tindex_html_has_every_bench_row\t{st}\t{len(want)} rows"
              + (f", missing {' '.join(missing)}" if missing else ""))


def main():
    if sys.argv[1:2] == ["write"]:
        write(sys.argv[2], sys.argv[3], sys.argv[4:])
    elif sys.argv[1:2] == ["check"]:
        check(sys.argv[2], sys.argv[3:])
    else:
        raise SystemExit(__doc__)


if __name__ == "__main__":
    main()
