// Time spent in the application's fork() call: with a collector whose exporter is idle,
// with one whose exporter is stuck in the middle of export_batch() (fork() then waits
// CollectorOptions::fork_wait, 20 ms by default, for it, and the child does not use it),
// and, as the peer, a bare fork() of a process of the same size with no collector.
//
// Only the parent's side is timed: from the call to its return in the parent. The child
// exits at once. `rss_MB` is the process's resident size when it forks.
#include <benchmark/benchmark.h>
#include <sys/wait.h>
#include <unistd.h>

#include <chrono>
#include <condition_variable>
#include <cstring>
#include <fstream>
#include <memory>
#include <mutex>
#include <string>
#include <vector>

#include "spyglass/spyglass.hpp"

namespace sg = spyglass;

namespace {

double rss_mb() {
  std::ifstream status("/proc/self/status");
  std::string key;
  while (status >> key) {
    if (key == "VmRSS:") {
      double kb = 0;
      status >> kb;
      return kb / 1024.0;
    }
    status.ignore(1 << 20, '\n');
  }
  return 0;
}

// One timed fork(); the child exits at once, the parent reaps it untimed.
double timed_fork_seconds() {
  const auto t0 = std::chrono::steady_clock::now();
  const pid_t pid = ::fork();
  if (pid == 0) ::_exit(0);
  const auto t1 = std::chrono::steady_clock::now();
  if (pid > 0) ::waitpid(pid, nullptr, 0);
  return std::chrono::duration<double>(t1 - t0).count();
}

void fork_loop(benchmark::State& state) {
  state.counters["rss_MB"] = rss_mb();
  for (auto _ : state) state.SetIterationTime(timed_fork_seconds());
}

// Blocks in export_batch() until released, as an exporter waiting on a dead network does.
class StuckExporter : public sg::Exporter {
 public:
  bool export_batch(std::span<const sg::Event>) override {
    std::unique_lock<std::mutex> lock(m_);
    entered_ = true;
    cv_.notify_all();
    cv_.wait(lock, [&] { return released_; });
    return true;
  }
  std::string_view name() const override { return "stuck"; }
  void wait_entered() {
    std::unique_lock<std::mutex> lock(m_);
    cv_.wait(lock, [&] { return entered_; });
  }
  void release() {
    std::lock_guard<std::mutex> lock(m_);
    released_ = true;
    cv_.notify_all();
  }

 private:
  std::mutex m_;
  std::condition_variable cv_;
  bool entered_ = false;
  bool released_ = false;
};

class DiscardExporter : public sg::Exporter {
 public:
  bool export_batch(std::span<const sg::Event>) override { return true; }
  std::string_view name() const override { return "discard"; }
};

sg::Event one_event() {
  sg::Event e;
  e.kind = sg::EventKind::function;
  e.name = "bench.fork";
  e.trace_id = sg::new_trace_id();
  e.span_id = sg::new_span_id();
  e.start = sg::clock::now();
  e.flags = sg::Event::kFlagTicks;
  return e;
}

// The peer: no collector, and as much memory touched as a collector with one exporter
// holds at the default settings (its transit and its exporter's buffer), so that the
// kernel copies page tables of the same size. Runs first, before any collector exists.
void bench_fork_bare(benchmark::State& state) {
  const sg::CollectorOptions defaults;
  const std::size_t bytes = (defaults.transit_capacity + defaults.buffer_capacity) * sizeof(sg::Event);
  std::vector<char> ballast(bytes);
  std::memset(ballast.data(), 1, ballast.size());
  benchmark::DoNotOptimize(ballast.data());
  fork_loop(state);
}
BENCHMARK(bench_fork_bare)->UseManualTime()->Unit(benchmark::kMicrosecond);

// A collector at the default settings whose exporter is idle (it delivered and waits).
void bench_fork_idle_exporter(benchmark::State& state) {
  sg::Collector collector;
  collector.add_exporter(std::make_shared<DiscardExporter>());
  collector.enqueue(one_event());
  if (!collector.flush(std::chrono::seconds(30))) {
    state.SkipWithError("flush did not complete");
    return;
  }
  fork_loop(state);
}
BENCHMARK(bench_fork_idle_exporter)->UseManualTime()->Unit(benchmark::kMicrosecond);

// The same with the exporter stuck in export_batch() for the whole benchmark.
void bench_fork_stuck_exporter(benchmark::State& state) {
  auto stuck = std::make_shared<StuckExporter>();
  {
    sg::Collector collector;
    collector.add_exporter(stuck);
    collector.enqueue(one_event());
    collector.flush(std::chrono::milliseconds(0));  // starts the delivery now, does not wait
    stuck->wait_entered();
    state.counters["fork_wait_ms"] = static_cast<double>(collector.options().fork_wait.count());
    fork_loop(state);
    stuck->release();
  }
}
BENCHMARK(bench_fork_stuck_exporter)->UseManualTime()->Unit(benchmark::kMicrosecond)->Iterations(50);

}  // namespace

BENCHMARK_MAIN();
