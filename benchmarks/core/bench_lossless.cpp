// Lossless rate: the highest steady rate at which producer threads can record with
// nothing lost, at the default settings, recording as a server does: in 1 ms periods,
// each starting with a burst of rate/1000 scopes recorded as fast as possible, then a
// sleep until the next period starts. Each rate runs 2 s; the run is lossless when the
// transit rejected nothing and no exporter dropped or failed anything once flushed.
//
// Arguments: total target rate in k events/s (split evenly over the threads), producer
// threads. Counters (medians over repetitions in BENCHMARKS.md):
//   target_Mps / achieved_Mps  target and achieved rate (the producers fall behind
//                              when a burst takes longer than its period);
//   lost, rejected, dropped, failed  events lost in all, and where;
//   lossless                   1 when lost == 0 and achieved >= 97% of the target;
//   collector_ns / stage_ns    CPU time of the sg-collector / sg-<exporter> thread per
//                              event; producer_ns: producer threads' CPU per event.
// The LTTng-UST peer records one event carrying the span's fields (lttng_peer.hpp), in
// the same pattern; its loss is LTTng's own discarded-events count, and consumerd_ns
// the CPU of its consumer daemon per event.
#include <benchmark/benchmark.h>
#include <time.h>

#include <atomic>
#include <cerrno>
#include <chrono>
#include <cstdint>
#include <filesystem>
#include <memory>
#include <string>
#include <thread>
#include <vector>

#include "../support/discard_exporter.hpp"
#include "spyglass/exporters/jsonl.hpp"
#include "spyglass/spyglass.hpp"
#include "thread_cpu.hpp"
#if defined(SPYGLASS_BENCH_LTTNG)
#include "lttng/spyglass_peer_tp.h"
#include "lttng_peer.hpp"
#endif

namespace sg = spyglass;

namespace {

constexpr std::chrono::milliseconds kRunTime{2000};
constexpr std::chrono::nanoseconds kPeriod{1'000'000};

using spyglass::bench::DiscardExporter;

struct ProducerResult {
  std::uint64_t events = 0;
  std::uint64_t cpu_ns = 0;
};

// One producer: 1 ms periods, each a burst of `per_period` calls of `record`, then a
// sleep until the period's end, for kRunTime. Deadlines are absolute, so a late period
// does not shift the next ones: a producer that falls behind (a burst longer than its
// period, or a thread not scheduled) records less, which shows as an achieved rate
// below the target.
template <typename Record>
ProducerResult produce(std::uint64_t per_period, std::chrono::steady_clock::time_point start, Record record) {
  ProducerResult r;
  const std::uint64_t cpu0 = bench::this_thread_cpu_ns();
  const auto end = start + kRunTime;
  for (std::int64_t p = 1;; ++p) {
    for (std::uint64_t i = 0; i < per_period; ++i) record();
    r.events += per_period;
    const auto next = start + kPeriod * p;
    if (next >= end || std::chrono::steady_clock::now() >= end) break;
    const auto ns = std::chrono::duration_cast<std::chrono::nanoseconds>(next.time_since_epoch()).count();
    // steady_clock is CLOCK_MONOTONIC on Linux.
    const timespec ts{static_cast<time_t>(ns / 1'000'000'000), static_cast<long>(ns % 1'000'000'000)};
    while (::clock_nanosleep(CLOCK_MONOTONIC, TIMER_ABSTIME, &ts, nullptr) == EINTR) {
    }
  }
  r.cpu_ns = bench::this_thread_cpu_ns() - cpu0;
  return r;
}

struct RunResult {
  std::uint64_t events = 0;
  std::uint64_t producer_cpu_ns = 0;
  double seconds = 0;
};

// Runs `threads` producers for kRunTime at a total of `rate_k` k events/s.
template <typename Record>
RunResult run_producers(std::int64_t rate_k, int threads, Record record) {
  const std::uint64_t per_period = static_cast<std::uint64_t>(rate_k) / static_cast<std::uint64_t>(threads);
  std::vector<ProducerResult> results(static_cast<std::size_t>(threads));
  std::vector<std::thread> producers;
  const auto t0 = std::chrono::steady_clock::now();
  const auto start = t0 + std::chrono::milliseconds(5);  // every producer starts together
  for (int t = 0; t < threads; ++t) {
    producers.emplace_back([&, t] {
      std::this_thread::sleep_until(start);
      results[static_cast<std::size_t>(t)] = produce(per_period, start, record);
    });
  }
  for (auto& p : producers) p.join();
  RunResult r;
  r.seconds = std::chrono::duration<double>(std::chrono::steady_clock::now() - start).count();
  for (const auto& p : results) {
    r.events += p.events;
    r.producer_cpu_ns += p.cpu_ns;
  }
  return r;
}

void report(benchmark::State& state, const RunResult& run, std::uint64_t lost) {
  const double target = static_cast<double>(state.range(0)) * 1e3;
  const double achieved = static_cast<double>(run.events) / run.seconds;
  const double events = static_cast<double>(run.events);
  state.SetIterationTime(run.seconds);
  state.counters["target_Mps"] = target / 1e6;
  state.counters["achieved_Mps"] = achieved / 1e6;
  state.counters["lost"] = static_cast<double>(lost);
  state.counters["lossless"] = lost == 0 && achieved >= 0.97 * target ? 1 : 0;
  state.counters["producer_ns"] = static_cast<double>(run.producer_cpu_ns) / events;
}

// spyglass at the default settings, with one exporter: the discarding one or JSONL.
void lossless_spyglass(benchmark::State& state, bool jsonl) {
  const sg::SessionOptions options;
  const std::int64_t rate_k = state.range(0);
  const int threads = static_cast<int>(state.range(1));
  const auto dir = std::filesystem::temp_directory_path() / "spyglass-bench-lossless";
  for (auto _ : state) {
    std::filesystem::remove_all(dir);
    std::shared_ptr<sg::Exporter> exporter;
    if (jsonl) {
      sg::JsonlOptions jsonl_options;  // the defaults, in a directory of the benchmark's own
      jsonl_options.directory = dir.string();
      exporter = std::make_shared<sg::JsonlExporter>(jsonl_options);
    } else {
      exporter = std::make_shared<DiscardExporter>();
    }
    const std::string stage_thread = ("sg-" + std::string(exporter->name())).substr(0, 15);
    sg::Session session(options, {exporter});
    const RunResult run = run_producers(rate_k, threads, [] {
      SPYGLASS_SCOPE("bench.lossless");
      benchmark::ClobberMemory();
    });
    const bool flushed = session.collector().flush(std::chrono::seconds(120));
    const std::uint64_t collector_cpu = bench::named_threads_cpu_ns("sg-collector");
    const std::uint64_t stage_cpu = bench::named_threads_cpu_ns(stage_thread);
    const sg::CollectorCounters c = session.collector().counters();
    const sg::ExporterCounters e = session.collector().exporter_counters().at(0);
    const std::uint64_t lost = c.rejected + e.dropped + e.failed;
    report(state, run, lost);
    const double events = static_cast<double>(run.events);
    state.counters["rejected"] = static_cast<double>(c.rejected);
    state.counters["dropped"] = static_cast<double>(e.dropped);
    state.counters["failed"] = static_cast<double>(e.failed);
    state.counters["unflushed"] = flushed ? 0 : static_cast<double>(e.pending + c.in_transit);
    state.counters["collector_ns"] = static_cast<double>(collector_cpu) / events;
    state.counters["stage_ns"] = static_cast<double>(stage_cpu) / events;
  }
  std::filesystem::remove_all(dir);
}

void bench_lossless_discard(benchmark::State& state) { lossless_spyglass(state, false); }
void bench_lossless_jsonl(benchmark::State& state) { lossless_spyglass(state, true); }

#if defined(SPYGLASS_BENCH_LTTNG)
// LTTng-UST: one event with a span's fields per operation, built as a scope builds its
// Event (two clock reads, new trace and span ids).
void bench_lossless_lttng(benchmark::State& state) {
  if (!lttng_peer::available()) {
    state.SkipWithError(("LTTng-UST unavailable: " + lttng_peer::unavailable_reason()).c_str());
    return;
  }
  const std::int64_t rate_k = state.range(0);
  const int threads = static_cast<int>(state.range(1));
  for (auto _ : state) {
    lttng_peer::Session session;
    if (!session.ok()) {
      state.SkipWithError("cannot set up an LTTng session");
      return;
    }
    const std::uint64_t consumerd0 = lttng_peer::consumerd_cpu_ns();
    const RunResult run = run_producers(rate_k, threads, [] {
      const std::uint64_t t0 = sg::clock::now();
      benchmark::ClobberMemory();
      const std::uint64_t t1 = sg::clock::now();
      const sg::TraceId trace = sg::new_trace_id();
      lttng_ust_tracepoint(spyglass_peer, span, trace.hi, trace.lo, sg::new_span_id(), 0, t0, t1 - t0,
                           sg::detail::thread_id(), 0, "bench.lossless");
    });
    const auto discarded = session.stop();
    const std::uint64_t consumerd = lttng_peer::consumerd_cpu_ns() - consumerd0;
    if (!discarded) {
      state.SkipWithError("cannot read LTTng's discarded-events count");
      return;
    }
    report(state, run, *discarded);
    state.counters["consumerd_ns"] = static_cast<double>(consumerd) / static_cast<double>(run.events);
  }
}
#endif

// 0.5 to 16 M events/s in total, from 1 and from 2 producer threads.
void rates(benchmark::internal::Benchmark* b) {
  for (const std::int64_t threads : {1, 2})
    for (const std::int64_t rate_k : {500, 1000, 2000, 4000, 6000, 8000, 10000, 12000, 16000})
      b->Args({rate_k, threads});
  b->ArgNames({"kps", "threads"})->Iterations(1)->UseManualTime()->Unit(benchmark::kMillisecond);
}

BENCHMARK(bench_lossless_discard)->Apply(rates);
BENCHMARK(bench_lossless_jsonl)->Apply(rates);
#if defined(SPYGLASS_BENCH_LTTNG)
BENCHMARK(bench_lossless_lttng)->Apply(rates);
#endif

}  // namespace

BENCHMARK_MAIN();
