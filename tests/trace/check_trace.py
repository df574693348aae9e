#!/usr/bin/env python3
"""Independent checks of `spyglass trace` output, reading the JSONL with Python's json module.

  check_trace.py events TRACE.json JSONL...   the Trace Event Format's rules, and every span
                                              (ids, times to the ns, args, flows) against the JSONL
  check_trace.py folded FOLDED JSONL...       folded stacks recomputed from the JSONL

Prints what is wrong and exits 1, or prints "ok ..." and exits 0.
"""
import collections
import datetime
import json
import sys
from decimal import Decimal

errors = []


def err(msg):
    if len(errors) < 30:
        errors.append(msg)


def read_spans(paths):
    """(pid, span) for each JSONL line; pid is the 1-based file index, as spyglass numbers them."""
    spans = []
    for pid, path in enumerate(paths, 1):
        with open(path, encoding="utf-8") as f:
            for line in f:
                if line.strip():
                    spans.append((pid, json.loads(line)))
    return spans


def unix_ns(ts):
    # "YYYY-MM-DDTHH:MM:SS.nnnnnnnnnZ"; datetime keeps microseconds only, so split the fraction.
    whole, _, frac = ts[:-1].partition(".")
    dt = datetime.datetime.strptime(whole, "%Y-%m-%dT%H:%M:%S").replace(tzinfo=datetime.timezone.utc)
    return int(dt.timestamp()) * 10**9 + int(frac.ljust(9, "0"))


def is_num(v):
    return isinstance(v, (int, float, Decimal)) and not isinstance(v, bool)


def check_events(trace_path, jsonl_paths):
    with open(trace_path, encoding="utf-8") as f:
        doc = json.load(f, parse_float=Decimal)  # exact: ts carries nanoseconds as decimals
    if not isinstance(doc, dict) or not isinstance(doc.get("traceEvents"), list):
        err("not the JSON object form with a traceEvents array")
        return
    if doc.get("displayTimeUnit") not in ("ms", "ns"):
        err("displayTimeUnit must be ms or ns")
    events = doc["traceEvents"]
    origin = int(doc["otherData"]["ts_origin_unix_ns"])

    # Required fields per phase.
    by_ph = collections.Counter()
    for i, e in enumerate(events):
        ph = e.get("ph")
        by_ph[ph] += 1
        where = f"event {i} ({ph})"
        if not isinstance(e.get("pid"), int) or not isinstance(e.get("tid"), int):
            err(f"{where}: pid and tid must be integers")
        if not isinstance(e.get("name"), str):
            err(f"{where}: no name")
        if ph == "X":
            if not is_num(e.get("ts")) or not is_num(e.get("dur")) or e["dur"] < 0:
                err(f"{where}: ts and dur must be numbers, dur >= 0")
            if not isinstance(e.get("cat"), str) or not isinstance(e.get("args"), dict):
                err(f"{where}: cat and args required")
        elif ph == "M":
            if e["name"] not in ("process_name", "thread_name", "process_sort_index", "thread_sort_index"):
                err(f"{where}: unknown metadata {e['name']}")
            if not isinstance(e.get("args", {}).get("name"), str):
                err(f"{where}: metadata without args.name")
        elif ph in ("s", "t", "f"):
            if not is_num(e.get("ts")) or "id" not in e or not isinstance(e.get("cat"), str):
                err(f"{where}: flow events need ts, id and cat")
            if ph == "f" and e.get("bp") not in (None, "e"):
                err(f"{where}: bp must be e")
        else:
            err(f"{where}: unexpected phase")

    # Complete events on one thread nest: sorted by start (longest first on ties), each one
    # ends within the one enclosing it.
    slices = collections.defaultdict(list)
    for e in events:
        if e["ph"] == "X":
            slices[(e["pid"], e["tid"])].append(e)
    for key, xs in slices.items():
        xs.sort(key=lambda e: (e["ts"], -e["dur"]))
        stack = []
        last = None
        for e in xs:
            if last is not None and e["ts"] < last:
                err(f"{key}: ts not monotonic")
            last = e["ts"]
            while stack and stack[-1]["ts"] + stack[-1]["dur"] <= e["ts"]:
                stack.pop()
            if stack and e["ts"] + e["dur"] > stack[-1]["ts"] + stack[-1]["dur"]:
                err(f"{key}: {e['name']} at {e['ts']} overlaps {stack[-1]['name']} without nesting in it")
            stack.append(e)

    # Every flow start has exactly one end with the same id and cat, and the reverse.
    flows = collections.defaultdict(dict)
    for e in events:
        if e["ph"] in ("s", "f"):
            k = (e["cat"], e["id"])
            if e["ph"] in flows[k]:
                err(f"flow {k}: two {e['ph']} events")
            flows[k][e["ph"]] = e
    for k, pair in flows.items():
        if set(pair) != {"s", "f"}:
            err(f"flow {k}: has {sorted(pair)} only")

    # Every span is there, exactly as in the JSONL.
    spans = read_spans(jsonl_paths)
    xs_by_id = {}
    for e in events:
        if e["ph"] == "X":
            xs_by_id[e["args"]["span_id"]] = e
    if len(xs_by_id) != len(spans) or by_ph["X"] != len(spans):
        err(f"{by_ph['X']} complete events for {len(spans)} JSONL lines")
    place = {}
    for pid, s in spans:
        e = xs_by_id.get(s["span_id"])
        if e is None:
            err(f"span {s['span_id']} missing")
            continue
        start = unix_ns(s["ts"])
        place[s["span_id"]] = (pid, s["thread"], start, start + s["dur_ns"])
        if origin + int(e["ts"] * 1000) != start or int(e["dur"] * 1000) != s["dur_ns"]:
            err(f"span {s['span_id']}: ts/dur {e['ts']}/{e['dur']} for {s['ts']}/{s['dur_ns']}")
        if (e["pid"], e["tid"], e["name"], e["cat"]) != (pid, s["thread"], s["name"], s["kind"]):
            err(f"span {s['span_id']}: pid/tid/name/cat differ")
        a = e["args"]
        for k in ("trace_id", "parent_span_id", "status", "http_status", "rows", "method", "db_system",
                  "bytes_in", "bytes_out"):
            if a.get(k) != s.get(k):
                err(f"span {s['span_id']}: args.{k} is {a.get(k)!r}, JSONL has {s.get(k)!r}")
    names = {(e["pid"], e["tid"]) for e in events if e["ph"] == "M" and e["name"] == "thread_name"}
    if set(slices) - names:
        err(f"threads without a thread_name: {set(slices) - names}")

    # A flow joins each child to its parent when they ran on different threads: the start
    # inside the parent on the parent's thread, the end at the child's start on its thread.
    expected = collections.Counter()
    for pid, s in spans:
        p = place.get(s.get("parent_span_id"))
        c = place[s["span_id"]]
        if p and p[:2] != c[:2]:
            expected[(p[0], p[1], c[0], c[1], c[2])] += 1
    got = collections.Counter()
    for pair in flows.values():
        if set(pair) == {"s", "f"}:
            s_, f_ = pair["s"], pair["f"]
            got[(s_["pid"], s_["tid"], f_["pid"], f_["tid"], origin + int(f_["ts"] * 1000))] += 1
    if expected != got:
        err(f"flows: expected {sum(expected.values())}, got {sum(got.values())}")
    # Each start lies inside a slice of its thread (the parent), which it binds to.
    for pair in flows.values():
        s_ = pair.get("s")
        if s_ and not any(x["ts"] <= s_["ts"] <= x["ts"] + x["dur"] for x in slices.get((s_["pid"], s_["tid"]), [])):
            err(f"flow {s_['id']}: its start is in no slice of thread {s_['tid']}")
    print(f"ok: {len(spans)} spans, {by_ph['s']} flows, {len(slices)} threads")


def folded_from_jsonl(jsonl_paths):
    spans = read_spans(jsonl_paths)
    by_id = {s["span_id"]: (pid, s) for pid, s in spans}
    self_ns = {}
    for pid, s in spans:
        self_ns[s["span_id"]] = s["dur_ns"]
    for pid, s in spans:
        p = by_id.get(s.get("parent_span_id"))
        if p and p[0] == pid and p[1]["thread"] == s["thread"]:
            self_ns[p[1]["span_id"]] -= s["dur_ns"]

    def frame(s):
        name = s["name"] or "[" + s["kind"] + "]"
        return "".join(" " if ord(c) < 0x20 or c == "\x7f" else (":" if c == ";" else c) for c in name)

    out = collections.Counter()
    for pid, s in spans:
        stack = [frame(s)]
        p = by_id.get(s.get("parent_span_id"))
        while p:
            stack.append(frame(p[1]))
            p = by_id.get(p[1].get("parent_span_id"))
        out[";".join(reversed(stack))] += self_ns[s["span_id"]]
    return {k: v for k, v in out.items() if v > 0}


def check_folded(folded_path, jsonl_paths):
    got = {}
    with open(folded_path, encoding="utf-8") as f:
        for line in f:
            stack, _, value = line.rstrip("\n").rpartition(" ")
            got[stack] = int(value)
    want = folded_from_jsonl(jsonl_paths)
    for k in sorted(set(got) | set(want)):
        if got.get(k) != want.get(k):
            err(f"{k}: spyglass {got.get(k)}, recomputed {want.get(k)}")
    print(f"ok: {len(got)} stacks, {sum(got.values())} ns")


if __name__ == "__main__":
    mode, out, inputs = sys.argv[1], sys.argv[2], sys.argv[3:]
    {"events": check_events, "folded": check_folded}[mode](out, inputs)
    for e in errors:
        print(e)
    sys.exit(1 if errors else 0)
