#!/usr/bin/env bash
# Runs every benchmark executable of a build tree and keeps the raw results as JSON next to
# the console output, under build/<preset>/bench-results/, then prints the figures that
# BENCHMARKS.md quotes, each beside its peer from the same run and as a ratio (medians
# when the run has --benchmark_repetitions). Extra arguments go to every executable.
#
#   ./scripts/bench.sh build/bench --benchmark_repetitions=5 --benchmark_report_aggregates_only=true
#   ./scripts/bench.sh build/bench --summary    # only the summary of the results already there
#
# The LTTng-UST peer needs lttng-tools and liblttng-ust-dev; the benchmarks start a session
# daemon themselves when run as root, and skip the peer (saying why) when they cannot.
set -euo pipefail
build=${1:-build/bench}
out="$build/bench-results"
mkdir -p "$out"
if [[ "${2:-}" != "--summary" ]]; then
  rm -f "$out"/*.json
  for exe in $(find "$build/benchmarks" -type f -executable -name 'spyglass_bench_*' | sort); do
    name=$(basename "$exe")
    echo "== $name"
    "$exe" --benchmark_out="$out/$name.json" --benchmark_out_format=json "${@:2}"
  done
  echo "== load average at the end: $(cut -d' ' -f1-3 /proc/loadavg)"
fi
python3 - "$out" <<'PY'
import glob, json, os, statistics, sys

out = sys.argv[1]
runs = {}  # executable -> run name -> list of result dicts (one per repetition)
medians = {}
means = {}
repetitions = {}
for path in sorted(glob.glob(os.path.join(out, "*.json"))):
    exe = os.path.basename(path)[:-5]
    with open(path) as f:
        data = json.load(f)
    for b in data.get("benchmarks", []):
        if b.get("error_occurred"):
            continue
        name = b.get("run_name", b["name"])
        if b.get("run_type") == "aggregate":
            if b.get("aggregate_name") == "median":
                medians.setdefault(exe, {})[name] = b
            if b.get("aggregate_name") == "mean":
                means.setdefault(exe, {})[name] = b
                repetitions[(exe, name)] = b.get("repetitions", 1)
        else:
            runs.setdefault(exe, {}).setdefault(name, []).append(b)


def get(exe, name, key):
    """Median over repetitions of `key` (cpu_time, real_time or a counter), or None."""
    m = medians.get(exe, {}).get(name)
    if m is not None and key in m:
        return m[key]
    vals = [r[key] for r in runs.get(exe, {}).get(name, []) if key in r]
    return statistics.median(vals) if vals else None


def lossless_runs(exe, name):
    """'k/n': in how many of the n repetitions the rate was lossless."""
    m = means.get(exe, {}).get(name)
    if m is not None:
        n = repetitions[(exe, name)]
        return f"{round(m['lossless'] * n)}/{n}"
    vals = [r["lossless"] for r in runs.get(exe, {}).get(name, [])]
    return f"{int(sum(vals))}/{len(vals)}"


def fmt(v, unit=""):
    return "n/a" if v is None else f"{v:.3g}{unit}"


def ratio(a, b):
    return "n/a" if a is None or b is None or b == 0 else f"{a / b:.2f}x"


print("\n== Summary (medians over repetitions)")
print("\n-- Hot path: CPU time per op of the calling thread(s), ns")
for exe in ("spyglass_bench_core", "spyglass_bench_core_shared"):
    floor = get(exe, "bench_floor_clock_and_enqueue", "cpu_time")
    s1 = get(exe, "bench_scope/real_time/threads:1", "cpu_time")
    s2 = get(exe, "bench_scope/real_time/threads:2", "cpu_time")
    w2 = get(exe, "bench_scope/real_time/threads:2", "thread_wall_ns")
    w1 = get(exe, "bench_scope/real_time/threads:1", "thread_wall_ns")
    sa = get(exe, "bench_scope_accepted", "cpu_time")
    print(f"{exe}: floor {fmt(floor)} | scope, accepted path {fmt(sa)} = {ratio(sa, floor)} floor"
          f" (rejected {fmt(get(exe, 'bench_scope_accepted', 'rejected_pct'), '%')})"
          f" | scope 1 thread {fmt(s1)} = {ratio(s1, floor)} floor"
          f" | scope 2 threads {fmt(s2)} per event = {ratio(s2, s1)} the 1-thread figure"
          f" | wall per event per thread: 1 thread {fmt(w1)}, 2 threads {fmt(w2)}")
s_static = get("spyglass_bench_core", "bench_scope_accepted", "cpu_time")
s_shared = get("spyglass_bench_core_shared", "bench_scope_accepted", "cpu_time")
print(f"shared / static scope: {ratio(s_shared, s_static)}")

exe = "spyglass_bench_core"
lt = get(exe, "bench_lttng_entry_exit/real_time", "cpu_time")
le = get(exe, "bench_lttng_span_event/real_time", "cpu_time")
if lt is not None:
    print("\n-- LTTng-UST peer, same run (CPU ns per span)")
    print(f"scope {fmt(s_static)} | LTTng entry+exit {fmt(lt)} (scope = {ratio(s_static, lt)} LTTng)"
          f" | LTTng one span event {fmt(le)} (scope = {ratio(s_static, le)})")
    print(f"tight-loop loss: spyglass rejected {fmt(get(exe, 'bench_scope/real_time/threads:1', 'rejected_pct'), '%')}"
          f" | LTTng entry+exit discarded {fmt(get(exe, 'bench_lttng_entry_exit/real_time', 'discarded_pct'), '%')}"
          f" | LTTng span event discarded {fmt(get(exe, 'bench_lttng_span_event/real_time', 'discarded_pct'), '%')}")
print("\n-- Per call in bursts of 20 (ns, net of timing overhead): p50 / p90 / p99 / p99.9")
for label, name in (("scope", "bench_scope_burst_percentiles"), ("floor", "bench_floor_burst_percentiles"),
                    ("LTTng entry+exit", "bench_lttng_burst_percentiles")):
    iters = name + "/iterations:20000"
    vals = [get(exe, iters, k) for k in ("p50_ns", "p90_ns", "p99_ns", "p999_ns")]
    if vals[0] is not None:
        print(f"{label}: " + " / ".join(fmt(v) for v in vals))

exe = "spyglass_bench_lossless"
if exe in runs or exe in medians:
    print("\n-- Lossless rate: 1 ms bursts, 2 s per rate, default settings")
    print("peer | threads | target M/s | achieved M/s | lost | rejected (transit) | dropped (buffer) | failed"
          " | collector ns/ev | stage ns/ev | consumerd ns/ev | producer CPU ns/ev | lossless runs")
    for peer in ("discard", "jsonl", "lttng"):
        for threads in (1, 2):
            best, all_ok = None, True
            for kps in (500, 1000, 2000, 4000, 6000, 8000, 10000, 12000, 16000):
                n = f"bench_lossless_{peer}/kps:{kps}/threads:{threads}/iterations:1/manual_time"
                if get(exe, n, "target_Mps") is None:
                    continue
                g = lambda k: get(exe, n, k)
                ok = g("lossless") == 1
                all_ok = all_ok and ok
                if all_ok:
                    best = kps / 1000
                print(f"{peer} | {threads} | {fmt(g('target_Mps'))} | {fmt(g('achieved_Mps'))} | {fmt(g('lost'))}"
                      f" | {fmt(g('rejected'))} | {fmt(g('dropped'))} | {fmt(g('failed'))} | {fmt(g('collector_ns'))}"
                      f" | {fmt(g('stage_ns'))} | {fmt(g('consumerd_ns'))} | {fmt(g('producer_ns'))} | {lossless_runs(exe, n)}")
            print(f"{peer}, {threads} thread(s): highest rate up to which every rate was lossless in most runs: {fmt(best, ' M/s')}")

exe = "spyglass_bench_fork"
bare = get(exe, "bench_fork_bare/manual_time", "real_time")
if bare is not None:
    idle = get(exe, "bench_fork_idle_exporter/manual_time", "real_time")
    stuck = get(exe, "bench_fork_stuck_exporter/iterations:50/manual_time", "real_time")
    print("\n-- fork() in the parent, us")
    print(f"bare {fmt(bare)} | idle exporter {fmt(idle)} ({ratio(idle, bare)}) | stuck exporter {fmt(stuck)} ({ratio(stuck, bare)})")
PY
