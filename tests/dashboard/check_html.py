#!/usr/bin/env python3
"""Checks a page of `spyglass serve` or `spyglass report` with Python's html.parser and
NumPy, independently of the code that wrote it:
  - well-formed: every element that is not void is closed, in order;
  - self-contained: no src/href/xlink:href to another host (only paths, queries, fragments
    and data: URLs);
  - with --db, each baseline band's data-low/data-high are NumPy's quartiles
    (numpy.percentile, linear) of its runs' metric read from the history with sqlite3.
Prints "ok: N elements, M bands" or the first problems, exiting 1."""
import sqlite3
import sys
from html.parser import HTMLParser

import numpy as np

VOID = {"area", "base", "br", "col", "embed", "hr", "img", "input", "link", "meta", "source", "track", "wbr"}
# The history's columns behind each metric, as a user would compute them.
METRICS = {
    "wall": "duration_ns / 1e9",
    "cpu_user": "user_cpu_ns / 1e9",
    "cpu_sys": "sys_cpu_ns / 1e9",
    "max_rss": "max_rss_bytes",
    "tree_peak_rss": "peak_tree_rss_bytes",
    "read_bytes": "read_bytes",
    "write_bytes": "write_bytes",
}


class Checker(HTMLParser):
    def __init__(self):
        super().__init__(convert_charrefs=True)
        self.stack, self.problems, self.bands, self.elements = [], [], [], 0
        self.metric = None

    def handle_starttag(self, tag, attrs):
        self.elements += 1
        a = dict(attrs)
        for k in ("src", "href", "xlink:href", "action"):
            v = a.get(k)
            if v is not None and not (v.startswith("/") or v.startswith("?") or v.startswith("#")
                                      or v.startswith("data:")):
                self.problems.append(f"line {self.getpos()[0]}: <{tag} {k}={v!r}> leaves the page")
        if tag == "figure" and "data-metric" in a:
            self.metric = a["data-metric"]
        if "baseline-band" in a.get("class", "").split():
            self.bands.append((self.metric, a))
        if tag not in VOID:
            self.stack.append((tag, self.getpos()[0]))

    def handle_startendtag(self, tag, attrs):
        self.handle_starttag(tag, attrs)
        if tag not in VOID:
            self.stack.pop()

    def handle_endtag(self, tag):
        if not self.stack or self.stack[-1][0] != tag:
            top = self.stack[-1] if self.stack else ("nothing", 0)
            self.problems.append(f"line {self.getpos()[0]}: </{tag}> closes <{top[0]}> of line {top[1]}")
            return
        self.stack.pop()


def main():
    path = sys.argv[1]
    db = sys.argv[sys.argv.index("--db") + 1] if "--db" in sys.argv else None
    with open(path, encoding="utf-8") as f:
        text = f.read()
    c = Checker()
    c.feed(text)
    c.close()
    problems = list(c.problems)
    if not text.startswith("<!DOCTYPE html>"):
        problems.append("no <!DOCTYPE html>")
    if c.stack:
        problems.append(f"unclosed: {c.stack[-5:]}")
    if db:
        con = sqlite3.connect(f"file:{db}?mode=ro", uri=True)
        for metric, a in c.bands:
            ids = [int(x) for x in a["data-runs"].split(",")]
            values = [con.execute(f"SELECT {METRICS[metric]} FROM runs WHERE id = ?", (i,)).fetchone()[0]
                      for i in ids]
            q1, q3 = np.percentile(values, [25, 75])
            low, high = float(a["data-low"]), float(a["data-high"])
            for name, got, want in (("low", low, q1), ("high", high, q3), ("median", float(a["data-median"]),
                                                                             np.median(values))):
                if abs(got - want) > 1e-8 * max(1.0, abs(want)):
                    problems.append(f"{metric} band {name} {got!r}, numpy says {want!r}")
    if problems:
        print("\n".join(problems[:20]))
        sys.exit(1)
    print(f"ok: {c.elements} elements, {len(c.bands)} bands")


main()
