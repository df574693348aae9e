// `spyglass serve` pages with 10,000 runs in the history (10 labels of 1,000 runs, 50
// samples each), fetched over loopback HTTP from the real command as a browser would, and
// the same pages rendered in-process; the static report of a 1,000-run label, its size in
// bytes as a counter.

#include <benchmark/benchmark.h>
#include <fcntl.h>
#include <httplib.h>
#include <signal.h>
#include <spawn.h>
#include <sys/resource.h>
#include <sys/wait.h>
#include <unistd.h>

#include <cstdio>
#include <filesystem>
#include <fstream>
#include <string>
#include <thread>
#include <vector>

#include "dashboard.hpp"

extern char** environ;

namespace mon = spyglass::monitor;
namespace cli = spyglass::cli;

namespace {

constexpr int kLabels = 10, kRunsPerLabel = 1000;

// The history, built once: runs with a level shift and a few spikes per label, so the
// marks are drawn as in real use.
struct Fixture {
  std::string dir, db;
  std::int64_t last_run = 0;
  Fixture() {
    char tmpl[] = "/tmp/spyglass-bench-pages-XXXXXX";
    dir = ::mkdtemp(tmpl);
    db = dir + "/history.db";
    auto h = mon::History::open(db);
    std::vector<mon::Sample> samples(50);
    for (std::size_t k = 0; k < samples.size(); ++k) {
      samples[k].t_ns = k * 100000000ULL;
      samples[k].cpu_user_pct = 50 + static_cast<double>(k % 7);
      samples[k].rss_bytes = (100 + k) << 20;
    }
    for (int i = 0; i < kLabels * kRunsPerLabel; ++i) {
      const auto n = static_cast<std::uint64_t>(i / kLabels);
      mon::RunRecord r;
      r.label = "job-" + std::to_string(i % kLabels);
      r.command = "make";
      r.args = {"-j2", "all"};
      r.git_commit = "0123456789abcdef";
      r.start_unix_ns = 1795000000000000000LL + i * 1000000000LL;
      r.duration_ns = (n < 800 ? 1000000000LL : 1300000000LL) + static_cast<std::int64_t>(n % 97) * 1000000LL;
      r.user_cpu_ns = 900000000ULL + n % 13 * 1000000;
      r.sys_cpu_ns = 100000000ULL;
      r.max_rss_bytes = (n % 250 == 17 ? 900 : 200 + n % 11) << 20;
      r.peak_tree_rss_bytes = r.max_rss_bytes + (8 << 20);
      r.read_bytes = n % 5 << 12;
      r.write_bytes = 1ULL << 20;
      r.stdout_tail = "build finished\n";
      h.insert(r, samples, 0);
      last_run = r.id;
    }
  }
  ~Fixture() { std::filesystem::remove_all(dir); }
};

Fixture& fixture() {
  static Fixture f;
  return f;
}

const char* const kPaths[] = {"/", "/label?name=job-3", "/run?id=", "/alerts"};

std::string path_of(int i) {
  std::string p = kPaths[i];
  if (i == 2) p += std::to_string(fixture().last_run);
  return p;
}

// A `spyglass serve` process on a free port; its address read from its first line.
struct ServeProcess {
  pid_t pid = -1;
  int port = 0;
  ServeProcess() {
    const std::string out = fixture().dir + "/serve.out";
    posix_spawn_file_actions_t fa;
    posix_spawn_file_actions_init(&fa);
    posix_spawn_file_actions_addopen(&fa, 1, out.c_str(), O_WRONLY | O_CREAT | O_TRUNC, 0644);
    const std::string db = fixture().db;
    const char* argv[] = {SPYGLASS_EXE, "serve", "--db", db.c_str(), "--addr", "127.0.0.1:0", nullptr};
    posix_spawn(&pid, argv[0], &fa, nullptr, const_cast<char**>(argv), environ);
    posix_spawn_file_actions_destroy(&fa);
    for (int i = 0; i < 60000 && port == 0; ++i) {  // waits on the line, up to a minute
      std::ifstream in(out);
      std::string line;
      if (std::getline(in, line) && line.rfind("serving http://127.0.0.1:", 0) == 0) {
        port = std::stoi(line.substr(25));
      } else {
        std::this_thread::sleep_for(std::chrono::milliseconds(1));
      }
    }
  }
  ~ServeProcess() {
    ::kill(pid, SIGTERM);
    ::waitpid(pid, nullptr, 0);
  }
};

void BM_ServePageHttp(benchmark::State& state) {
  const std::string path = path_of(static_cast<int>(state.range(0)));
  ServeProcess server;
  if (server.port == 0) {
    state.SkipWithError("spyglass serve did not start");
    return;
  }
  httplib::Client c("127.0.0.1", server.port);
  std::size_t bytes = 0;
  for (auto _ : state) {
    const auto res = c.Get(path);
    if (!res || res->status != 200) {
      state.SkipWithError("request failed");
      return;
    }
    bytes = res->body.size();
  }
  state.SetLabel(path);
  state.counters["page_bytes"] = static_cast<double>(bytes);
}
BENCHMARK(BM_ServePageHttp)->DenseRange(0, 3)->Unit(benchmark::kMillisecond)->UseRealTime()->Iterations(20);

double process_cpu_s() {
  rusage ru{};
  ::getrusage(RUSAGE_SELF, &ru);
  return static_cast<double>(ru.ru_utime.tv_sec + ru.ru_stime.tv_sec) +
         static_cast<double>(ru.ru_utime.tv_usec + ru.ru_stime.tv_usec) / 1e6;
}

void BM_RenderPage(benchmark::State& state) {
  const std::string path = path_of(static_cast<int>(state.range(0)));
  auto h = mon::History::open(fixture().db, {.create = false, .read_only = true});
  const auto q = path.find('?');
  std::map<std::string, std::string> params;
  if (q != std::string::npos) {
    const auto eq = path.find('=', q);
    params[path.substr(q + 1, eq - q - 1)] = path.substr(eq + 1);
  }
  const std::string route = path.substr(0, q);
  const double cpu0 = process_cpu_s();
  for (auto _ : state) {
    auto page = cli::serve_page(h, route, params, {});
    benchmark::DoNotOptimize(page.body.data());
  }
  // All threads' CPU (a label page analyses its metrics on threads of their own): the
  // work a page costs, which a loaded machine's wall time hides.
  state.counters["process_cpu_ms"] = (process_cpu_s() - cpu0) * 1e3 / static_cast<double>(state.iterations());
  state.SetLabel(path);
}
BENCHMARK(BM_RenderPage)->DenseRange(0, 3)->Unit(benchmark::kMillisecond)->Iterations(20);

// What a page costs besides its HTML: reading the runs, and one metric's analyses.
void BM_ReadRuns(benchmark::State& state) {
  auto h = mon::History::open(fixture().db, {.create = false, .read_only = true});
  const bool all = state.range(0) != 0;
  for (auto _ : state) {
    const auto runs = h.runs({.label = all ? "" : "job-3", .limit = all ? 100000u : 1000u});
    benchmark::DoNotOptimize(runs.data());
  }
  state.SetLabel(all ? "every run (10,000)" : "one label (1,000)");
}
BENCHMARK(BM_ReadRuns)->Arg(0)->Arg(1)->Unit(benchmark::kMillisecond)->Iterations(20);

void BM_AnalyzeMetric1000Runs(benchmark::State& state) {
  auto h = mon::History::open(fixture().db, {.create = false, .read_only = true});
  const auto runs = h.runs({.label = "job-3", .limit = 1000});
  cli::HistoryAnalyzeOptions o;
  o.label = "job-3";
  for (auto _ : state) {
    const auto a = cli::analyze_metric(runs, "wall", o);
    benchmark::DoNotOptimize(a.values.data());
  }
}
BENCHMARK(BM_AnalyzeMetric1000Runs)->Unit(benchmark::kMillisecond)->Iterations(20);

void BM_StaticReport1000Runs(benchmark::State& state) {
  auto h = mon::History::open(fixture().db, {.create = false, .read_only = true});
  std::size_t bytes = 0;
  for (auto _ : state) {
    const auto page = cli::report_page(h, "job-5", {});
    bytes = page ? page->size() : 0;
  }
  state.counters["report_bytes"] = static_cast<double>(bytes);
  state.counters["bytes_per_run"] = static_cast<double>(bytes) / kRunsPerLabel;
}
BENCHMARK(BM_StaticReport1000Runs)->Unit(benchmark::kMillisecond)->Iterations(10);

}  // namespace

BENCHMARK_MAIN();
