// The alert engine's cost per run: 100 rules evaluated on the newest run of a label with
// 200 runs behind it (what `spyglass run --alerts` reads), parsing the rules file apart.
// Mixes: rules on the run and a baseline (thresholds fixed and adaptive, anomalies,
// forecasts, run state), the same with change-point and regression rules on every
// metric, whose history analysis is computed once per metric whatever the rule count,
// and change points alone, on a label that shifted long ago and on one whose shift is
// recent enough to fire (the costly case: every metric's cuts get their permutation test).

#include <benchmark/benchmark.h>

#include <random>
#include <string>
#include <vector>

#include "alerts.hpp"

namespace al = spyglass::alerts;
namespace mon = spyglass::monitor;

namespace {

const char* kMetrics[] = {"wall",          "cpu_user",   "cpu_sys",    "max_rss",
                          "tree_peak_rss", "read_bytes", "write_bytes"};

// A label's runs, newest first: 5% noise, the last `slower` runs 20% slower.
std::vector<mon::RunRecord> history(std::size_t n, std::size_t slower) {
  std::mt19937_64 rng(1);
  std::normal_distribution<double> noise(1.0, 0.05);
  std::vector<mon::RunRecord> runs;
  for (std::size_t i = 0; i < n; ++i) {
    const double f = noise(rng) * (i + slower >= n ? 1.2 : 1.0);
    mon::RunRecord r;
    r.id = static_cast<std::int64_t>(i + 1);
    r.label = "job";
    r.start_unix_ns = static_cast<std::int64_t>(i) * 3600000000000LL;
    r.duration_ns = static_cast<std::int64_t>(2e9 * f);
    r.user_cpu_ns = static_cast<std::uint64_t>(1.5e9 * f);
    r.sys_cpu_ns = static_cast<std::uint64_t>(0.2e9 * f);
    r.max_rss_bytes = static_cast<std::uint64_t>(300e6 * f);
    r.peak_tree_rss_bytes = static_cast<std::uint64_t>(400e6 * f);
    r.tree_peak_memory_bytes = r.peak_tree_rss_bytes;
    r.read_bytes = static_cast<std::uint64_t>(50e6 * f);
    r.write_bytes = static_cast<std::uint64_t>(20e6 * f);
    runs.push_back(r);
  }
  return {runs.rbegin(), runs.rend()};
}

// 100 rules cycling through the metrics and the conditions of `mix`: 0 the run and its
// baseline, 1 those and the history analyses, 2 change points only, 3 regressions only,
// 4 change points only (on the label whose shift is recent).
std::string rules_json(std::int64_t mix) {
  std::vector<std::string> kinds;
  if (mix <= 1) {
    kinds = {
        R"("condition": "threshold", "value": 1e12)",
        R"("condition": "threshold", "adaptive": {"k": 3})",
        R"("condition": "anomaly")",
        R"("condition": "forecast_breach", "limit": 1e12)",
    };
  }
  if (mix == 1 || mix == 2 || mix == 4) kinds.push_back(R"("condition": "change_point")");
  if (mix == 1 || mix == 3) kinds.push_back(R"("condition": "regression")");
  std::string out = R"({"rules": [)";
  for (int i = 0; i < 100; ++i) {
    if (i != 0) out += ",";
    out += R"({"name": "r)" + std::to_string(i) + "\", ";
    if (i % 10 == 9) {
      out += i % 20 == 9 ? R"("condition": "run_failed"})" : R"("condition": "killed_by_limit"})";
      continue;
    }
    out += R"("metric": ")" + std::string(kMetrics[i % 7]) + "\", " +
           kinds[static_cast<std::size_t>(i) % kinds.size()] + "}";
  }
  return out + "]}";
}

void BM_Evaluate100Rules(benchmark::State& state) {
  const auto rules = al::parse_rules(rules_json(state.range(0)), "bench.json");
  // The last 10 runs slower: a shift 5 runs too old for a change-point rule's `recent`;
  // the last 5: a shift it reports.
  const auto runs = history(200, state.range(0) == 4 ? 5 : 10);
  std::size_t alerts = 0;
  for (auto _ : state) {
    const auto a = al::evaluate_run(rules, runs, 1);
    alerts = a.size();
    benchmark::DoNotOptimize(a.data());
  }
  state.counters["rules"] = static_cast<double>(rules.rules.size());
  state.counters["alerts"] = static_cast<double>(alerts);
}
BENCHMARK(BM_Evaluate100Rules)->ArgName("mix")->DenseRange(0, 4)->Unit(benchmark::kMicrosecond);

void BM_Parse100Rules(benchmark::State& state) {
  const std::string text = rules_json(1);
  for (auto _ : state) benchmark::DoNotOptimize(al::parse_rules(text, "bench.json").rules.size());
  state.SetBytesProcessed(state.iterations() * static_cast<std::int64_t>(text.size()));
}
BENCHMARK(BM_Parse100Rules)->Unit(benchmark::kMicrosecond);

}  // namespace

BENCHMARK_MAIN();
