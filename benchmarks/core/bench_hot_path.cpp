// Hot-path latency (caller side) and backend throughput, side by side with peers.
#include <benchmark/benchmark.h>
#include <concurrentqueue/concurrentqueue.h>
#include <prometheus/histogram.h>
#include <prometheus/registry.h>
#include <spdlog/async.h>
#include <spdlog/sinks/basic_file_sink.h>
#include <spdlog/sinks/null_sink.h>
#include <spdlog/spdlog.h>

#include <algorithm>
#include <atomic>
#include <filesystem>
#include <thread>
#include <vector>

#include "spyglass/spyglass.hpp"
#if defined(SPYGLASS_BENCH_JSONL)
#include "spyglass/exporters/jsonl.hpp"
#endif

namespace sg = spyglass;
using namespace std::chrono_literals;

namespace {

// A Session that stays up across benchmarks; its exporter discards, so only the caller
// side and the collector's own work are measured. Its transit holds 64k events, as the
// floor's queue does, so that a tight loop's events are accepted, not dropped (the
// "dropped" counter shows how many were): the accepted path is the one to measure.
class DiscardExporter : public sg::Exporter {
 public:
  bool export_batch(std::span<const sg::Event> events) override {
    benchmark::DoNotOptimize(events.data());
    return true;
  }
  std::string_view name() const override { return "discard"; }
};

sg::Session& session() {
  static sg::Session* s = [] {
    sg::SessionOptions options;
    options.collector.transit_capacity = 65536;
    return new sg::Session(options, {std::make_shared<DiscardExporter>()});
  }();
  return *s;
}

void bench_scope(benchmark::State& state) {
  session();
  for (auto _ : state) {
    SPYGLASS_SCOPE("bench.scope");
    benchmark::ClobberMemory();
  }
  state.counters["dropped"] = static_cast<double>(session().collector().counters().rejected);
}
BENCHMARK(bench_scope)->Threads(1)->Threads(2)->UseRealTime();

void bench_emit_db(benchmark::State& state) {
  session();
  // 60 bytes, the same text each time: its redaction is cached after the first call.
  const std::string sql = "SELECT id, name, email FROM users WHERE id = 42 AND org = 7";
  for (auto _ : state) {
    const auto t0 = sg::clock::now();
    sg::emit_db(sql, t0, t0 + 100, 1);
  }
}
BENCHMARK(bench_emit_db);

void bench_traceparent_parse(benchmark::State& state) {
  const std::string header = "00-4bf92f3577b34da6a3ce929d0e0e4736-00f067aa0ba902b7-01";
  for (auto _ : state) {
    auto tp = sg::parse_traceparent(header);
    benchmark::DoNotOptimize(tp);
  }
}
BENCHMARK(bench_traceparent_parse);

// The floor: what any design that timestamps and hands off an event must pay: two reads
// of the same clock and one token enqueue of an Event-sized struct, drained in bulk by a
// consumer thread at the collector's cadence.
struct FloorQueue {
  struct Traits : moodycamel::ConcurrentQueueDefaultTraits {
    static const std::size_t BLOCK_SIZE = 64;
  };
  moodycamel::ConcurrentQueue<sg::Event, Traits> q{65536};
  std::atomic<bool> stop{false};
  std::thread consumer{[this] {
    std::vector<sg::Event> buf(1024);
    while (!stop.load()) {
      while (q.try_dequeue_bulk(buf.data(), buf.size()) > 0) {
      }
      std::this_thread::sleep_for(1ms);
    }
  }};
  ~FloorQueue() {
    stop = true;
    consumer.join();
  }
};

FloorQueue& floor_queue() {
  static FloorQueue floor;
  return floor;
}

void bench_floor_clock_and_enqueue(benchmark::State& state) {
  FloorQueue& floor = floor_queue();
  moodycamel::ProducerToken token(floor.q);
  sg::Event e;
  for (auto _ : state) {
    e.start = sg::clock::now();
    e.duration = sg::clock::now() - e.start;
    benchmark::DoNotOptimize(floor.q.try_enqueue(token, e));
  }
}
BENCHMARK(bench_floor_clock_and_enqueue);

// Peer: an async logger writing an equivalent line (name, duration, ids) to a null sink.
void bench_spdlog_async(benchmark::State& state) {
  static std::shared_ptr<spdlog::logger> logger = [] {
    spdlog::init_thread_pool(8192, 1);
    auto sink = std::make_shared<spdlog::sinks::null_sink_mt>();
    return std::make_shared<spdlog::async_logger>("bench", sink, spdlog::thread_pool(),
                                                  spdlog::async_overflow_policy::overrun_oldest);
  }();
  for (auto _ : state) {
    const auto t0 = sg::clock::now();
    const auto t1 = sg::clock::now();
    logger->info("fn name={} dur_ticks={} trace={:x} span={:x}", "bench.scope", t1 - t0,
                 0x4bf92f3577b34da6ULL, 0x00f067aa0ba902b7ULL);
  }
}
BENCHMARK(bench_spdlog_async);

// Peer: prometheus-cpp histogram observation (one shared histogram, so 2 threads contend).
void bench_prometheus_observe(benchmark::State& state) {
  static auto registry = std::make_shared<prometheus::Registry>();
  static prometheus::Histogram& hist =
      prometheus::BuildHistogram()
          .Name("bench_seconds")
          .Help("bench")
          .Register(*registry)
          .Add({}, prometheus::Histogram::BucketBoundaries{0.0001, 0.001, 0.01, 0.1, 1, 10});
  double v = 0.0005;
  for (auto _ : state) {
    hist.Observe(v);
    v += 1e-9;
  }
}
BENCHMARK(bench_prometheus_observe)->Threads(1)->Threads(2)->UseRealTime();

// Cost per call, measured call by call in bursts of 20 followed by a 50 us pause (the
// thread sleeps, as a server thread between requests does), since an average hides the
// tail. Reports percentiles net of the timing overhead. The first call after a pause
// meets caches the sleep let go cold: 1 call in 20, so it shows from p95 on, for the
// floor as for the scope, which is why both are measured the same way.
template <typename Op>
void burst_percentiles(benchmark::State& state, Op op) {
  constexpr int kBurst = 20;
  std::vector<double> samples;
  samples.reserve(1 << 20);
  // Timing overhead: the same pair of clock reads around nothing.
  std::vector<std::uint64_t> empty(20000);
  for (auto& x : empty) {
    const auto a = sg::clock::now();
    benchmark::ClobberMemory();
    const auto b = sg::clock::now();
    x = b - a;
  }
  std::sort(empty.begin(), empty.end());
  const double overhead = static_cast<double>(sg::clock::ticks_to_ns(empty[empty.size() / 2]));
  for (auto _ : state) {
    for (int i = 0; i < kBurst; ++i) {
      const auto a = sg::clock::now();
      op();
      const auto b = sg::clock::now();
      samples.push_back(static_cast<double>(sg::clock::ticks_to_ns(b - a)) - overhead);
    }
    state.PauseTiming();
    std::this_thread::sleep_for(50us);
    state.ResumeTiming();
  }
  std::sort(samples.begin(), samples.end());
  const auto pct = [&](double p) {
    return samples.empty()
               ? 0.0
               : samples[std::min(samples.size() - 1,
                                  static_cast<std::size_t>(p * static_cast<double>(samples.size())))];
  };
  state.counters["p50_ns"] = pct(0.50);
  state.counters["p90_ns"] = pct(0.90);
  state.counters["p99_ns"] = pct(0.99);
  state.counters["p999_ns"] = pct(0.999);
  state.counters["timing_overhead_ns"] = overhead;
  state.SetItemsProcessed(static_cast<std::int64_t>(samples.size()));
}

void bench_scope_burst_percentiles(benchmark::State& state) {
  session();
  burst_percentiles(state, [] {
    SPYGLASS_SCOPE("bench.burst");
    benchmark::ClobberMemory();
  });
}
BENCHMARK(bench_scope_burst_percentiles)->Iterations(20000);

void bench_floor_burst_percentiles(benchmark::State& state) {
  FloorQueue& floor = floor_queue();
  moodycamel::ProducerToken token(floor.q);
  sg::Event e;
  burst_percentiles(state, [&] {
    e.start = sg::clock::now();
    e.duration = sg::clock::now() - e.start;
    benchmark::DoNotOptimize(floor.q.try_enqueue(token, e));
  });
}
BENCHMARK(bench_floor_burst_percentiles)->Iterations(20000);

#if defined(SPYGLASS_BENCH_JSONL)
// Backend throughput: events pushed through a collector to a JSONL file on disk. Time is
// measured until the exporter has written every event that was not dropped.
void bench_collector_to_jsonl(benchmark::State& state) {
  const auto dir = std::filesystem::temp_directory_path() / "spyglass-bench-jsonl";
  std::filesystem::remove_all(dir);
  std::uint64_t written = 0;
  for (auto _ : state) {
    sg::JsonlOptions jo;
    jo.directory = dir.string();
    auto jsonl = std::make_shared<sg::JsonlExporter>(jo);
    sg::Collector c({.transit_capacity = 65536, .buffer_capacity = 262144, .batch_max = 1024});
    c.add_exporter(jsonl);
    sg::Event e;
    e.kind = sg::EventKind::db;
    e.name = "SELECT * FROM users WHERE id = ?";
    e.trace_id = sg::new_trace_id();
    const std::uint64_t n = static_cast<std::uint64_t>(state.range(0));
    for (std::uint64_t i = 0; i < n; ++i) {
      e.span_id = i + 1;
      e.start = sg::clock::now();
      e.duration = 1000;
      e.flags = sg::Event::kFlagTicks;
      // Back off instead of dropping: this measures the backend, not the drop policy.
      while (!c.enqueue(e)) std::this_thread::sleep_for(50us);
    }
    c.shutdown(60s);
    written += c.exporter_counters()[0].sent;
    state.counters["enqueue_retries"] = static_cast<double>(c.counters().rejected);
  }
  state.SetItemsProcessed(static_cast<std::int64_t>(written));
  std::filesystem::remove_all(dir);
}
BENCHMARK(bench_collector_to_jsonl)
    ->Arg(2'000'000)
    ->Unit(benchmark::kMillisecond)
    ->UseRealTime()
    ->Iterations(3);
#endif

}  // namespace

BENCHMARK_MAIN();
