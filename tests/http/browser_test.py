#!/usr/bin/env python3
"""The in-app page in headless Chromium, fed by the instrumented example under load.

Starts examples/inapp (a token set, a fixed number of requests per worker, then idle),
loads http://127.0.0.1:PORT/#token=... with tests/browser/page_check.mjs while the load
runs, waits until the charts hold points and the collector is quiet, then checks the
numbers the page shows against /metrics.json fetched here with Python's urllib and json.

  browser_test.py --example EXE --page-check MJS --node NODE --screenshot PNG
"""
import argparse
import json
import os
import re
import subprocess
import sys
import threading
import urllib.request

ap = argparse.ArgumentParser()
ap.add_argument("--example", required=True)
ap.add_argument("--page-check", required=True)
ap.add_argument("--node", required=True)
ap.add_argument("--screenshot", required=True)
args = ap.parse_args()

TOKEN = "browser-test-token"
failures = []


def check(cond, what):
    if not cond:
        failures.append(what)


proc = subprocess.Popen([args.example, "--listen", "127.0.0.1:0", "--token", TOKEN, "--seconds", "0",
                         "--requests", "5000"], stdout=subprocess.PIPE, text=True)
lines = []
# The first line names the address; a watchdog ends a program that never prints it.
watchdog = threading.Timer(120, proc.kill)
watchdog.start()
first = proc.stdout.readline()
watchdog.cancel()
m = re.search(r"http://127\.0\.0\.1:(\d+)/", first)
if not m:
    proc.kill()
    sys.exit("the example printed no address: %r" % first)
base = "http://127.0.0.1:%s/" % m.group(1)
try:
    quiet = ("spyglassPage.throughput.length >= 3 && spyglassPage.throughput.slice(-2).every(p => p.eps === 0) && "
             "spyglassPage.last.collector.in_transit === 0 && spyglassPage.last.exporters.every(e => e.pending === 0)")
    wait_for = ("window.spyglassPage && spyglassPage.points() >= 3 && spyglassPage.flames >= 1 && "
                "document.getElementById('flame').contentDocument !== null && " + quiet)
    cells = "(id) => [...document.querySelectorAll('#' + id + ' tbody tr')].map(r => [...r.cells].map(c => [c.textContent, c.dataset.v]))"
    evaluate = ("(() => { const t = " + cells + "; return {routes: t('routes'), queries: t('queries'), errors: t('errors'), "
                "dropped: document.getElementById('dropped').textContent, "
                "latency_points: +document.getElementById('chart-latency').dataset.points, "
                "throughput_points: +document.getElementById('chart-throughput').dataset.points, "
                "lines: document.querySelectorAll('svg.plot polyline.line').length, "
                "max_eps: Math.max(...spyglassPage.throughput.map(p => p.eps)), "
                "offered: spyglassPage.last.collector.offered, "
                "flame_frames: document.getElementById('flame').contentDocument.querySelectorAll('rect').length}; })()")
    out = subprocess.run([args.node, args.page_check, base + "#token=" + TOKEN, "--wait-for", wait_for,
                          "--eval", evaluate, "--screenshot", args.screenshot, "--timeout-ms", "180000"],
                         capture_output=True, text=True, timeout=300)
    if out.returncode != 0:
        sys.exit("page_check failed (%d): %s %s" % (out.returncode, out.stdout, out.stderr))
    report = json.loads(out.stdout)
    page = report["result"]

    req = urllib.request.Request(base + "metrics.json?errors=20", headers={"Authorization": "Bearer " + TOKEN})
    with urllib.request.urlopen(req, timeout=30) as r:
        metrics = json.loads(r.read().decode("utf-8"))

    check(report["http_status"] == 200, "page status %s" % report["http_status"])
    for k in ("console_errors", "page_errors", "failed_requests", "external_requests"):
        check(report[k] == [], "%s: %s" % (k, report[k]))
    check(os.path.getsize(args.screenshot) > 10000, "screenshot saved")
    check(page["latency_points"] >= 3 and page["throughput_points"] >= 3 and page["lines"] == 5,
          "charts hold points: %s" % page)
    check(page["max_eps"] > 0, "a refresh saw the load running")
    check(page["flame_frames"] > 3, "the flame graph drew frames")
    check(page["offered"] == metrics["collector"]["offered"], "page saw %d events, /metrics.json %d" %
          (page["offered"], metrics["collector"]["offered"]))

    def ms_matches(text, ns):
        m = re.fullmatch(r"([0-9.]+) ms", text)
        return m is not None and abs(float(m.group(1)) - ns / 1e6) <= 0.0005 + 1e-9

    def pct_matches(text, rate):
        m = re.fullmatch(r"([0-9.]+) %", text)
        return m is not None and abs(float(m.group(1)) - rate * 100) <= 0.005 + 1e-9

    requests = sorted([s for s in metrics["series"] if s["kind"] == "request"],
                      key=lambda s: (-s["error_rate"], -s["count"], s["name"]))
    check([row[0][0] for row in page["routes"]] == [s["name"] for s in requests],
          "routes: %s" % [row[0][0] for row in page["routes"]])
    check(len(requests) == 3, "the example's three routes")
    for row, s in zip(page["routes"], requests):
        name, count, errors, rate, p50, p99 = (c[0] for c in row)
        check(count == str(s["count"]) and errors == str(s["errors"]), "%s counts %s %s vs %s" % (name, count, errors, s))
        check(pct_matches(rate, s["error_rate"]), "%s error rate %s vs %s" % (name, rate, s["error_rate"]))
        check(ms_matches(p50, s["p50_ns"]) and ms_matches(p99, s["p99_ns"]), "%s latency %s %s vs %s" % (name, p50, p99, s))
    check(sum(s["errors"] for s in requests) > 0, "the load had errors")

    queries = sorted([s for s in metrics["series"] if s["kind"] == "db"], key=lambda s: (-s["p99_ns"], s["name"]))[:10]
    check([row[0][0] for row in page["queries"]] == [s["name"] for s in queries], "queries: %s" % page["queries"])
    for row, s in zip(page["queries"], queries):
        check(row[1][0] == str(s["count"]) and ms_matches(row[3][0], s["p99_ns"]) and ms_matches(row[4][0], s["max_ns"]),
              "query %s: %s vs %s" % (s["name"], row, s))
    # Redacted as the core redacts them: no literal of the example's SQL is shown.
    for lit in ("19.99", "2026-01-01", "= 1"):
        check(all(lit not in row[0][0] for row in page["queries"]), "literal %s shown" % lit)

    check([row[5][1] for row in page["errors"]] == [e["trace_id"] for e in metrics["recent_errors"]],
          "recent errors differ")
    check(len(page["errors"]) == 20, "20 recent errors shown")
    check(page["dropped"] == str(metrics["dropped_events"]), "dropped %s vs %s" % (page["dropped"], metrics["dropped_events"]))
finally:
    proc.terminate()
    proc.wait(timeout=60)

if failures:
    print("\n".join(failures))
    sys.exit(1)
print("ok: %d routes, %d queries, %d errors shown; screenshot %s" %
      (len(page["routes"]), len(page["queries"]), len(page["errors"]), args.screenshot))
