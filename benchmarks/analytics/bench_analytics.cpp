// Analytics numbers: the statistics of spyglass::analytics beside SciPy/NumPy computing
// the same on the same data in the same run (scipy_peer.py), change points and the
// streaming detector on long series, and the commands end to end (process start
// included): `detect` on a 20,000-point CSV, `analyze --label` over 10,000 runs.

#include <benchmark/benchmark.h>

#include <cstdio>
#include <filesystem>
#include <fstream>
#include <random>
#include <sstream>
#include <string>
#include <vector>

#include "../support/spawn.hpp"
#include "spyglass/monitor/analytics.hpp"
#include "spyglass/monitor/detectors.hpp"
#include "spyglass/monitor/history.hpp"

namespace an = spyglass::analytics;
namespace mon = spyglass::monitor;

namespace {

// Gaussian noise around `level`, with the level 20% higher from `shift_at` on.
std::vector<double> shifted(std::size_t n, std::size_t shift_at, double level, unsigned seed) {
  std::mt19937_64 rng(seed);
  std::normal_distribution<double> noise(0, level * 0.05);
  std::vector<double> v(n);
  for (std::size_t i = 0; i < n; ++i) v[i] = (i >= shift_at ? level * 1.2 : level) + noise(rng);
  return v;
}

const std::vector<double>& series() {
  static const auto v = shifted(10000, 6000, 100, 1);
  return v;
}
const std::vector<double>& baseline() {
  static const auto v = shifted(5000, 5000, 100, 2);
  return v;
}
const std::vector<double>& current() {
  static const auto v = shifted(5000, 5000, 103, 3);
  return v;
}
const std::vector<double>& index() {
  static const auto v = [] {
    std::vector<double> x(series().size());
    for (std::size_t i = 0; i < x.size(); ++i) x[i] = static_cast<double>(i);
    return x;
  }();
  return v;
}

std::filesystem::path scratch() {
  static const auto dir = [] {
    auto d =
        std::filesystem::temp_directory_path() / ("spyglass-bench-analytics-" + std::to_string(::getpid()));
    std::filesystem::create_directories(d);
    std::atexit([] {
      std::error_code ec;
      std::filesystem::remove_all(
          std::filesystem::temp_directory_path() / ("spyglass-bench-analytics-" + std::to_string(::getpid())),
          ec);
    });
    return d;
  }();
  return dir;
}

std::string write_values(const std::string& name, const std::vector<double>& v) {
  const auto path = (scratch() / name).string();
  std::ofstream f(path);
  char buf[32];
  for (double x : v) {
    std::snprintf(buf, sizeof buf, "%.17g\n", x);
    f << buf;
  }
  return path;
}

void BM_Summary(benchmark::State& state) {
  for (auto _ : state) benchmark::DoNotOptimize(an::summarize(series()));
}
BENCHMARK(BM_Summary)->Unit(benchmark::kMicrosecond);

void BM_Trend(benchmark::State& state) {
  for (auto _ : state) benchmark::DoNotOptimize(an::linear_fit(index(), series()));
}
BENCHMARK(BM_Trend)->Unit(benchmark::kMicrosecond);

void BM_MannWhitney(benchmark::State& state) {
  for (auto _ : state) benchmark::DoNotOptimize(an::mann_whitney_asymptotic(baseline(), current()));
}
BENCHMARK(BM_MannWhitney)->Unit(benchmark::kMicrosecond);

void BM_Welch(benchmark::State& state) {
  for (auto _ : state) benchmark::DoNotOptimize(an::welch_t(baseline(), current()));
}
BENCHMARK(BM_Welch)->Unit(benchmark::kMicrosecond);

void BM_Spearman(benchmark::State& state) {
  for (auto _ : state) benchmark::DoNotOptimize(an::spearman(index(), series()));
}
BENCHMARK(BM_Spearman)->Unit(benchmark::kMicrosecond);

void BM_Pearson(benchmark::State& state) {
  for (auto _ : state) benchmark::DoNotOptimize(an::pearson(index(), series()));
}
BENCHMARK(BM_Pearson)->Unit(benchmark::kMicrosecond);

// The same statistics in SciPy/NumPy, timed by Python on the same values (median of 21
// calls each), reported as counters in microseconds.
void BM_SciPySameData(benchmark::State& state) {
  const std::string a = write_values("series.txt", series()), b = write_values("base.txt", baseline()),
                    c = write_values("cur.txt", current());
  for (auto _ : state) {
    const auto r = spyglass_bench::spawn_and_wait({"/usr/bin/python3", SCIPY_PEER, a, b, c},
                                                  spyglass_bench::Stdout::capture);
    if (!r.ok) {
      state.SkipWithError("python3 with NumPy and SciPy is needed (python3-scipy)");
      return;
    }
    std::istringstream in(r.out);
    std::string name;
    double us = 0;
    while (in >> name >> us) state.counters[name] = us;
  }
}
BENCHMARK(BM_SciPySameData)->Iterations(1)->Unit(benchmark::kMillisecond);

// Change points with the permutation test of each change found, 10,000 points, one shift.
void BM_ChangePoints(benchmark::State& state) {
  const auto v = shifted(static_cast<std::size_t>(state.range(0)),
                         static_cast<std::size_t>(state.range(0)) * 3 / 5, 100, 4);
  std::size_t found = 0;
  for (auto _ : state) found = an::change_points(v).size();
  state.counters["change_points"] = static_cast<double>(found);
}
BENCHMARK(BM_ChangePoints)->Arg(1000)->Arg(10000)->ArgName("points")->Unit(benchmark::kMillisecond);

// The streaming detector `detect` runs by default, per point.
void BM_EwmaDetectorPerPoint(benchmark::State& state) {
  an::EwmaDetector det;
  std::size_t i = 0;
  const auto& v = series();
  for (auto _ : state) benchmark::DoNotOptimize(det.update(v[i++ % v.size()]));
}
BENCHMARK(BM_EwmaDetectorPerPoint);

void BM_RollingMadDetectorPerPoint(benchmark::State& state) {
  an::RollingMadDetector det;
  std::size_t i = 0;
  const auto& v = series();
  for (auto _ : state) benchmark::DoNotOptimize(det.update(v[i++ % v.size()]));
}
BENCHMARK(BM_RollingMadDetectorPerPoint);

// `spyglass detect --json` on a 20,000-point CSV (a point every 5 minutes), end to end.
void BM_DetectCommandCsv20k(benchmark::State& state) {
  const auto path = (scratch() / "cpu.csv").string();
  {
    const auto v = shifted(20000, 12000, 40, 5);
    std::ofstream f(path);
    f << "time,cpu\n";
    char buf[64];
    for (std::size_t i = 0; i < v.size(); ++i) {
      std::snprintf(buf, sizeof buf, "%zu,%.3f\n", 1700000000 + i * 300, v[i]);
      f << buf;
    }
  }
  for (auto _ : state) {
    const auto r = spyglass_bench::spawn_and_wait(
        {SPYGLASS_EXE, "detect", "--csv", path, "--time-column", "time", "--value-column", "cpu", "--json"});
    if (!r.ok) state.SkipWithError("spyglass detect failed");
    state.SetIterationTime(r.ms / 1000);
  }
}
BENCHMARK(BM_DetectCommandCsv20k)->UseManualTime()->Iterations(10)->Unit(benchmark::kMillisecond);

// `spyglass analyze --label --json` over a label with 10,000 runs, end to end: every
// metric's summary, trend, anomalies, change points, forecast, regression and correlations.
void BM_AnalyzeCommandLabel10k(benchmark::State& state) {
  const auto db = (scratch() / "history.db").string();
  if (!std::filesystem::exists(db)) {
    auto h = mon::History::open(db);
    mon::RunRecord r;
    r.command = "/usr/bin/make";
    r.args = {"test"};
    r.cwd = "/work";
    r.host = "bench";
    r.label = "nightly";
    const auto wall = shifted(10000, 7000, 2e9, 6);
    const auto rss = shifted(10000, 4000, 5e8, 7);
    for (std::size_t i = 0; i < wall.size(); ++i) {
      r.start_unix_ns = 1700000000000000000LL + static_cast<std::int64_t>(i) * 60000000000LL;
      r.duration_ns = static_cast<std::int64_t>(wall[i]);
      r.max_rss_bytes = static_cast<std::uint64_t>(rss[i]);
      h.insert(r, {}, 0);
    }
  }
  // Arg 0: the defaults (the newest 1,000 runs); 1: --runs 10000, all of them.
  std::vector<std::string> args = {SPYGLASS_EXE, "analyze", "--label", "nightly", "--db", db, "--json"};
  if (state.range(0) != 0) args.insert(args.end(), {"--runs", "10000"});
  double cpu_s = 0;
  for (auto _ : state) {
    const auto r = spyglass_bench::spawn_and_wait(args);
    if (!r.ok) state.SkipWithError("spyglass analyze failed");
    state.SetIterationTime(r.ms / 1000);
    cpu_s += r.user_s + r.sys_s;
  }
  // The command's own CPU (wait4): on a loaded machine the wall time is mostly waiting.
  state.counters["cpu_ms"] = 1000 * cpu_s / static_cast<double>(state.iterations());
}
BENCHMARK(BM_AnalyzeCommandLabel10k)
    ->Arg(0)
    ->Arg(1)
    ->ArgName("all_runs")
    ->UseManualTime()
    ->Iterations(5)
    ->Unit(benchmark::kMillisecond);

}  // namespace

BENCHMARK_MAIN();
