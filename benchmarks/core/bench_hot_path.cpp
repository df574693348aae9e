// Hot-path latency (caller side) and backend throughput, side by side with peers.
//
// Built twice: spyglass_bench_core links the core statically and measures the peers too;
// spyglass_bench_core_shared (SPYGLASS_BENCH_SHARED_CORE) links a shared build of the
// same core sources and measures only the scope and the floor, so that the cost of
// reaching the library's thread-local state across a shared object shows as the
// difference of the two executables' scope/floor ratios.
#include <benchmark/benchmark.h>
#include <concurrentqueue/concurrentqueue.h>
#if !defined(SPYGLASS_BENCH_SHARED_CORE)
#include <prometheus/histogram.h>
#include <prometheus/registry.h>
#include <spdlog/async.h>
#include <spdlog/sinks/basic_file_sink.h>
#include <spdlog/sinks/null_sink.h>
#include <spdlog/spdlog.h>
#endif

#include <algorithm>
#include <atomic>
#include <chrono>
#include <filesystem>
#include <thread>
#include <vector>

#include "../support/discard_exporter.hpp"
#include "spyglass/spyglass.hpp"
#if defined(SPYGLASS_BENCH_JSONL)
#include "spyglass/exporters/jsonl.hpp"
#endif
#if defined(SPYGLASS_BENCH_LTTNG)
#include "lttng/spyglass_peer_tp.h"
#include "lttng_peer.hpp"
#endif

namespace sg = spyglass;
using namespace std::chrono_literals;

namespace {

// A Session that stays up across benchmarks; its exporter discards, so only the caller
// side and the collector's own work are measured. Its transit holds 64k events, as the
// floor's queue does, so that a tight loop's events are accepted, not dropped (the
// "dropped" counter shows how many were): the accepted path is the one to measure.
using spyglass::bench::DiscardExporter;

sg::Session& session() {
  static sg::Session* s = [] {
    sg::SessionOptions options;
    options.collector.transit_capacity = 65536;
    return new sg::Session(options, {std::make_shared<DiscardExporter>()});
  }();
  return *s;
}

// Reported times: real_time is the wall time divided by the events of all threads (the
// inverse of the throughput); cpu_time is the CPU time of all producer threads divided
// by their events, i.e. the CPU cost of one event. `thread_wall_ns` is one thread's wall
// time per event of that thread, averaged over the threads. `rejected_pct` is the share
// of this run's events the full transit rejected (see BENCHMARKS.md).
void bench_scope(benchmark::State& state) {
  session();
  const auto before = session().collector().counters();
  const auto t0 = std::chrono::steady_clock::now();
  for (auto _ : state) {
    SPYGLASS_SCOPE("bench.scope");
    benchmark::ClobberMemory();
  }
  const auto wall = std::chrono::duration<double, std::nano>(std::chrono::steady_clock::now() - t0).count();
  state.counters["thread_wall_ns"] =
      benchmark::Counter(wall / static_cast<double>(state.iterations()), benchmark::Counter::kAvgThreads);
  if (state.thread_index() == 0) {
    // Thread 0 reads after its own loop only: the share is approximate with 2 threads.
    const auto after = session().collector().counters();
    const double offered = static_cast<double>(after.offered - before.offered);
    state.counters["rejected_pct"] =
        offered > 0 ? 100.0 * static_cast<double>(after.rejected - before.rejected) / offered : 0.0;
  }
}
BENCHMARK(bench_scope)->Threads(1)->Threads(2)->UseRealTime();

// The accepted path only: a tight loop outruns the collector when the machine is slow
// or busy, and a rejected event costs less than an accepted one, which would flatter the
// average. Every 16,384 scopes (a quarter of the transit) the clock stops until the
// collector has taken everything, so no event is rejected; `rejected_pct` shows it.
void bench_scope_accepted(benchmark::State& state) {
  session();
  const auto before = session().collector().counters();
  std::size_t in_chunk = 0;
  for (auto _ : state) {
    SPYGLASS_SCOPE("bench.scope");
    benchmark::ClobberMemory();
    if (++in_chunk == 16384) {
      in_chunk = 0;
      state.PauseTiming();
      session().collector().flush();
      state.ResumeTiming();
    }
  }
  const auto after = session().collector().counters();
  const double offered = static_cast<double>(after.offered - before.offered);
  state.counters["rejected_pct"] =
      offered > 0 ? 100.0 * static_cast<double>(after.rejected - before.rejected) / offered : 0.0;
}
BENCHMARK(bench_scope_accepted);

#if !defined(SPYGLASS_BENCH_SHARED_CORE)

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
#endif  // !SPYGLASS_BENCH_SHARED_CORE

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

#if !defined(SPYGLASS_BENCH_SHARED_CORE)
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

#if defined(SPYGLASS_BENCH_LTTNG)
// Peer: LTTng-UST, recording into a session of its own (lttng_peer.hpp), set up on first
// use and destroyed at exit.
lttng_peer::Session* lttng_session() {
  static lttng_peer::Session s;
  return s.ok() ? &s : nullptr;
}

// Runs `body` state.iterations() times between two readings of LTTng's discarded count
// and reports the share of the `events_per_op` events per op that LTTng discarded.
template <typename Body>
void lttng_tight_loop(benchmark::State& state, int events_per_op, Body body) {
  lttng_peer::Session* s = lttng_session();
  if (s == nullptr) {
    state.SkipWithError(("LTTng-UST unavailable: " + lttng_peer::unavailable_reason()).c_str());
    return;
  }
  const auto before = s->discarded();
  for (auto _ : state) body();
  const auto after = s->discarded();
  if (before && after) {
    state.counters["discarded_pct"] = 100.0 * static_cast<double>(*after - *before) /
                                      (static_cast<double>(state.iterations()) * events_per_op);
  }
}

// Per-span cost: an entry and an exit tracepoint around the same empty body as
// bench_scope. LTTng reads its clock and writes each event into a per-CPU ring buffer.
void bench_lttng_entry_exit(benchmark::State& state) {
  lttng_tight_loop(state, 2, [] {
    lttng_ust_tracepoint(spyglass_peer, span_entry, "bench.scope");
    benchmark::ClobberMemory();
    lttng_ust_tracepoint(spyglass_peer, span_exit);
  });
}
BENCHMARK(bench_lttng_entry_exit)->UseRealTime();

// One event carrying a finished span's fields, built as a scope builds its Event: two
// clock reads and new trace and span ids.
inline void lttng_span_event() {
  const std::uint64_t t0 = sg::clock::now();
  benchmark::ClobberMemory();
  const std::uint64_t t1 = sg::clock::now();
  const sg::TraceId trace = sg::new_trace_id();
  lttng_ust_tracepoint(spyglass_peer, span, trace.hi, trace.lo, sg::new_span_id(), 0, t0, t1 - t0,
                       sg::detail::thread_id(), 0, "bench.scope");
}

void bench_lttng_span_event(benchmark::State& state) { lttng_tight_loop(state, 1, lttng_span_event); }
BENCHMARK(bench_lttng_span_event)->UseRealTime();
#endif  // SPYGLASS_BENCH_LTTNG
#endif  // !SPYGLASS_BENCH_SHARED_CORE

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

#if defined(SPYGLASS_BENCH_LTTNG)
void bench_lttng_burst_percentiles(benchmark::State& state) {
  if (lttng_session() == nullptr) {
    state.SkipWithError(("LTTng-UST unavailable: " + lttng_peer::unavailable_reason()).c_str());
    return;
  }
  burst_percentiles(state, [] {
    lttng_ust_tracepoint(spyglass_peer, span_entry, "bench.burst");
    benchmark::ClobberMemory();
    lttng_ust_tracepoint(spyglass_peer, span_exit);
  });
}
BENCHMARK(bench_lttng_burst_percentiles)->Iterations(20000);
#endif

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
