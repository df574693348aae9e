// The Prometheus exporter's costs: events through export_batch() (the collector's
// worker thread), the same updates made with prometheus-cpp metric objects as a peer,
// scrapes of 1,000 series, and the application's hot path with the exporter attached
// next to the same hot path with a discarding exporter.
#include <benchmark/benchmark.h>
#include <prometheus/counter.h>
#include <prometheus/histogram.h>
#include <prometheus/registry.h>
#include <prometheus/text_serializer.h>

#include <deque>
#include <memory>
#include <random>
#include <string>
#include <vector>

#include "../support/discard_exporter.hpp"
#include "spyglass/exporters/prometheus.hpp"
#include "spyglass/spyglass.hpp"

namespace sg = spyglass;

namespace {

/// Names live as long as the process, as interned names do.
const std::deque<std::string>& names() {
  static const auto* n = [] {
    auto* d = new std::deque<std::string>;
    for (int i = 0; i < 10'000; ++i) d->push_back("handler_" + std::to_string(i));
    return d;
  }();
  return *n;
}

/// Batches of the collector's default size (128) cycling through `distinct` names with
/// latencies spread over the buckets; a mix of kinds like a real service.
std::vector<sg::Event> make_events(std::size_t distinct, std::size_t count) {
  std::mt19937_64 rng(42);
  std::vector<sg::Event> v(count);
  for (std::size_t i = 0; i < count; ++i) {
    sg::Event& e = v[i];
    e.name = names()[rng() % distinct].c_str();
    e.kind = static_cast<sg::EventKind>(i % 4);
    e.duration = 50'000 + rng() % 200'000'000;  // 50 µs .. 200 ms
    e.status = rng() % 20 == 0 ? sg::Status::error : sg::Status::ok;
    e.rows = 3;
    e.bytes_in = 100;
    e.bytes_out = 1000;
  }
  return v;
}

sg::prom::PrometheusOptions offline() {
  sg::prom::PrometheusOptions o;
  o.listen_address.clear();
  return o;
}

void bench_export_batch(benchmark::State& state) {
  const auto distinct = static_cast<std::size_t>(state.range(0));
  sg::prom::PrometheusExporter exp(offline());
  const auto events = make_events(distinct, 128 * 64);
  std::size_t at = 0;
  for (auto _ : state) {
    exp.export_batch(std::span<const sg::Event>(events).subspan(at, 128));
    at = (at + 128) % events.size();
  }
  state.SetItemsProcessed(static_cast<std::int64_t>(state.iterations()) * 128);
}
BENCHMARK(bench_export_batch)->Arg(100)->Arg(1000)->Arg(10'000);

/// The peer: the same per-event updates through prometheus-cpp Counter and Histogram
/// objects, references cached per name as a careful user would.
void bench_prometheus_cpp_peer(benchmark::State& state) {
  const auto distinct = static_cast<std::size_t>(state.range(0));
  prometheus::Registry registry;
  auto& counters = prometheus::BuildCounter().Name("peer_events_total").Help("x").Register(registry);
  auto& histograms = prometheus::BuildHistogram().Name("peer_duration_seconds").Help("x").Register(registry);
  const auto bounds = sg::prom::default_buckets();
  std::vector<prometheus::Counter*> c(distinct * 8);
  std::vector<prometheus::Histogram*> h(distinct * 4);
  for (std::size_t n = 0; n < distinct; ++n) {
    for (std::size_t k = 0; k < 4; ++k) {
      const std::string kind(sg::to_string(static_cast<sg::EventKind>(k)));
      h[n * 4 + k] = &histograms.Add({{"kind", kind}, {"name", names()[n]}},
                                     prometheus::Histogram::BucketBoundaries(bounds));
      c[n * 8 + k * 2] = &counters.Add({{"kind", kind}, {"name", names()[n]}, {"status", "ok"}});
      c[n * 8 + k * 2 + 1] = &counters.Add({{"kind", kind}, {"name", names()[n]}, {"status", "error"}});
    }
  }
  // Index of each event's name, found once: the peer gets its look-ups for free.
  const auto events = make_events(distinct, 128 * 64);
  std::vector<std::size_t> index(events.size());
  for (std::size_t i = 0; i < events.size(); ++i)
    index[i] = std::stoul(std::string(events[i].name).substr(8));
  std::size_t at = 0;
  for (auto _ : state) {
    for (std::size_t i = at; i < at + 128; ++i) {
      const sg::Event& e = events[i];
      const std::size_t k = static_cast<std::size_t>(e.kind);
      c[index[i] * 8 + k * 2 + (e.status == sg::Status::error ? 1 : 0)]->Increment();
      h[index[i] * 4 + k]->Observe(static_cast<double>(e.duration) / 1e9);
    }
    at = (at + 128) % events.size();
  }
  state.SetItemsProcessed(static_cast<std::int64_t>(state.iterations()) * 128);
}
BENCHMARK(bench_prometheus_cpp_peer)->Arg(100)->Arg(1000);

/// A scrape of `range(0)` distinct names of one kind: each name is a histogram (28
/// samples with the default buckets: 25 bounds, +Inf, _sum, _count) plus two counters.
void bench_scrape(benchmark::State& state) {
  const auto distinct = static_cast<std::size_t>(state.range(0));
  auto o = offline();
  o.process_metrics = false;
  sg::prom::PrometheusExporter exp(o);
  std::vector<sg::Event> events(distinct);
  for (std::size_t i = 0; i < distinct; ++i) {
    events[i].name = names()[i].c_str();
    events[i].kind = sg::EventKind::function;
    events[i].duration = 1'000'000 + i * 1000;
  }
  exp.export_batch(events);
  std::size_t bytes = 0;
  for (auto _ : state) {
    const std::string text = exp.scrape();
    bytes = text.size();
    benchmark::DoNotOptimize(text.data());
  }
  state.counters["bytes"] = static_cast<double>(bytes);
}
BENCHMARK(bench_scrape)->Arg(100)->Arg(1000)->Unit(benchmark::kMillisecond);

/// A scrape of `range(0)` time series in Prometheus' sense (a name and a label set):
/// each function name makes 30 of them (2 counters, 25 buckets, +Inf, _sum, _count).
void bench_scrape_series(benchmark::State& state) {
  const auto series = static_cast<std::size_t>(state.range(0));
  const std::size_t distinct = (series + 29) / 30;
  auto o = offline();
  o.process_metrics = false;
  sg::prom::PrometheusExporter exp(o);
  std::vector<sg::Event> events(distinct);
  for (std::size_t i = 0; i < distinct; ++i) {
    events[i].name = names()[i].c_str();
    events[i].kind = sg::EventKind::function;
    events[i].duration = 1'000'000 + i * 1000;
  }
  exp.export_batch(events);
  std::size_t lines = 0;
  for (auto _ : state) {
    const std::string text = exp.scrape();
    benchmark::DoNotOptimize(text.data());
    lines = 0;
    for (char c : text) lines += c == '\n' ? 1 : 0;
  }
  state.counters["lines"] = static_cast<double>(lines);
}
BENCHMARK(bench_scrape_series)->Arg(1000)->Unit(benchmark::kMillisecond);

/// Only the families, without text serialization.
void bench_collect(benchmark::State& state) {
  auto o = offline();
  o.process_metrics = false;
  sg::prom::PrometheusExporter exp(o);
  std::vector<sg::Event> events(1000);
  for (std::size_t i = 0; i < events.size(); ++i) {
    events[i].name = names()[i].c_str();
    events[i].kind = sg::EventKind::function;
  }
  exp.export_batch(events);
  for (auto _ : state) benchmark::DoNotOptimize(exp.collect());
}
BENCHMARK(bench_collect)->Unit(benchmark::kMillisecond);

using spyglass::bench::DiscardExporter;

/// The application's side: one SPYGLASS_SCOPE per iteration, with either exporter
/// attached to the session. The exporter runs on the collector's worker thread, so the
/// two figures should match.
void bench_hot_path(benchmark::State& state) {
  const bool with_prometheus = state.range(0) != 0;
  std::shared_ptr<sg::Exporter> exporter;
  if (with_prometheus) {
    exporter = std::make_shared<sg::prom::PrometheusExporter>(offline());
  } else {
    exporter = std::make_shared<DiscardExporter>();
  }
  sg::Session session({}, {exporter});
  for (auto _ : state) {
    SPYGLASS_SCOPE("bench.hot_path");
    benchmark::ClobberMemory();
  }
  // Lost before the exporter: rejected by the transit, or dropped from its buffer.
  const auto exporters = session.collector().exporter_counters();
  state.counters["lost"] = static_cast<double>(session.collector().counters().rejected +
                                               (exporters.empty() ? 0 : exporters.front().dropped));
  state.SetLabel(with_prometheus ? "prometheus exporter" : "discarding exporter");
}
BENCHMARK(bench_hot_path)->Arg(0)->Arg(1)->UseRealTime();

}  // namespace

BENCHMARK_MAIN();
