#!/usr/bin/env python3
"""Reads /metrics.json with Python's own HTTP client and json module and checks its shape
and the relations between its fields (see README.md, "In-app page").

  check_metrics.py URL [--token T] [--expect KIND NAME COUNT ERRORS]... [--errors N]
Exits 0 and prints "ok" when every check passes, else prints what failed and exits 1.
"""
import argparse
import json
import sys
import urllib.request

ap = argparse.ArgumentParser()
ap.add_argument("url")
ap.add_argument("--token")
ap.add_argument("--expect", nargs=4, action="append", default=[], metavar=("KIND", "NAME", "COUNT", "ERRORS"))
ap.add_argument("--errors", type=int, help="recent_errors must hold exactly this many")
args = ap.parse_args()

req = urllib.request.Request(args.url)
if args.token:
    req.add_header("Authorization", "Bearer " + args.token)
with urllib.request.urlopen(req, timeout=30) as r:
    assert r.headers.get_content_type() == "application/json", r.headers
    m = json.loads(r.read().decode("utf-8"))

failures = []


def check(cond, what):
    if not cond:
        failures.append(what)


def is_uint(v):
    return isinstance(v, int) and not isinstance(v, bool) and v >= 0


def is_num(v):
    return isinstance(v, (int, float)) and not isinstance(v, bool)


check(set(m) == {"window_start_unix_ns", "window_end_unix_ns", "window_seconds", "series", "stats", "collector",
                 "exporters", "dropped_events", "recent_errors"}, "top-level keys: %s" % sorted(m))
check(is_uint(m["window_start_unix_ns"]) and m["window_start_unix_ns"] <= m["window_end_unix_ns"], "window bounds")
check(is_num(m["window_seconds"]) and m["window_seconds"] > 0, "window_seconds")
keys = []
for s in m["series"]:
    where = "%s %r" % (s.get("kind"), s.get("name"))
    check(s["kind"] in ("request", "function", "db", "custom"), where + ": kind")
    check(isinstance(s["name"], str), where + ": name")
    check(is_uint(s["count"]) and s["count"] > 0 and is_uint(s["errors"]) and s["errors"] <= s["count"], where + ": counts")
    # Both written to six decimals: within half a millionth, plus the rounding of a double.
    check(abs(s["error_rate"] - s["errors"] / s["count"]) <= 5.000001e-7, where + ": error_rate")
    check(abs(s["rate_per_s"] - s["count"] / m["window_seconds"]) <= 5.000001e-7 + 1e-12 * s["rate_per_s"],
          where + ": rate_per_s")
    check(0 <= s["p50_ns"] <= s["p90_ns"] <= s["p99_ns"] <= s["max_ns"], where + ": percentiles in order")
    check(0 <= s["mean_ns"] <= s["max_ns"], where + ": mean")
    keys.append((s["kind"], s["name"]))
order = {"request": 0, "function": 1, "db": 2, "custom": 3}
check(keys == sorted(keys, key=lambda k: (order[k[0]], k[1])), "series sorted by kind, then name")
check(all(is_uint(m["stats"][k]) for k in ("overflowed", "dropped_old", "dropped_future")), "stats counters")
c = m["collector"]
check(all(is_uint(c[k]) for k in ("offered", "rejected", "dispatched", "pre_fork", "in_transit")), "collector counters")
check(c["offered"] >= c["rejected"] + c["dispatched"] + c["pre_fork"], "offered covers the rest")
check(any(e["name"] == "http" for e in m["exporters"]), "the server's own exporter is listed")
for e in m["exporters"]:
    check(e["produced"] >= e["sent"] + e["failed"] + e["dropped"], "exporter %s accounting" % e["name"])
check(m["dropped_events"] == c["rejected"] + sum(e["dropped"] for e in m["exporters"]), "dropped_events")
times = [e["time_unix_ns"] for e in m["recent_errors"]]
check(times == sorted(times, reverse=True), "recent errors newest first")
for e in m["recent_errors"]:
    check(len(e["trace_id"]) == 32 and int(e["trace_id"], 16) >= 0, "trace_id")
    check(e["kind"] in order and is_uint(e["duration_ns"]) and is_uint(e["http_status"]), "error event fields")
if args.errors is not None:
    check(len(m["recent_errors"]) == args.errors, "recent_errors: %d, expected %d" % (len(m["recent_errors"]), args.errors))
for kind, name, count, errors in args.expect:
    found = [s for s in m["series"] if s["kind"] == kind and s["name"] == name]
    check(len(found) == 1, "series %s %r present once" % (kind, name))
    if found:
        check(found[0]["count"] == int(count) and found[0]["errors"] == int(errors),
              "series %s %r: count %d errors %d, expected %s %s" % (kind, name, found[0]["count"], found[0]["errors"], count, errors))

if failures:
    print("\n".join(failures))
    sys.exit(1)
print("ok")
