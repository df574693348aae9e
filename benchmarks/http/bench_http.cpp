// The in-app server's /metrics.json with `range(0)` names in the statistics, each name's
// latencies spread over `range(1)` decades (and the
// default 50 recent errors), built in process (Server::metrics_json) and fetched over a
// keep-alive loopback connection, beside the Prometheus exporter's text exposition
// (PrometheusExporter::scrape) of the same events, measured in the same run.
#include <benchmark/benchmark.h>
#include <httplib.h>

#include <algorithm>
#include <chrono>
#include <cmath>
#include <deque>
#include <random>
#include <span>
#include <string>
#include <vector>

#include "spyglass/exporters/prometheus.hpp"
#include "spyglass/http.hpp"
#include "spyglass/spyglass.hpp"
#include "spyglass/stats.hpp"

namespace sg = spyglass;

namespace {

/// Names live as long as the process, as interned names do; a realistic mix of routes,
/// functions and redacted queries.
const std::deque<std::string>& names() {
  static const auto* n = [] {
    auto* d = new std::deque<std::string>;
    for (int i = 0; i < 10'000; ++i) {
      switch (i % 3) {
        case 0: d->push_back("/api/v1/resource_" + std::to_string(i) + "/{id}"); break;
        case 1: d->push_back("service::handler_" + std::to_string(i) + "(const Request&)"); break;
        default: d->push_back("SELECT id, name FROM table_" + std::to_string(i) + " WHERE id = ?"); break;
      }
    }
    return d;
  }();
  return *n;
}

/// 20 finished events per name, 2 % errors, started a second ago or, with `minutes` > 1,
/// spread over that many of the last minutes (the statistics' sub-windows: a busy
/// server's steady state has all 15 of them filled). Each name has a typical
/// latency between 10 us and 10 ms, and its events spread `decades` decades above it (the
/// statistics' cost per name grows with the powers of two its values touch).
std::vector<sg::Event> make_events(std::size_t distinct, int decades, int minutes = 1) {
  std::mt19937_64 rng(42);
  const auto now = static_cast<std::uint64_t>(std::chrono::duration_cast<std::chrono::nanoseconds>(
                                                  std::chrono::system_clock::now().time_since_epoch())
                                                  .count());
  std::vector<sg::Event> v(distinct * 20);
  for (std::size_t i = 0; i < v.size(); ++i) {
    const std::size_t n = i % distinct;
    v[i].name = names()[n].c_str();
    v[i].kind = n % 3 == 0   ? sg::EventKind::request
                : n % 3 == 1 ? sg::EventKind::function
                             : sg::EventKind::db;
    v[i].start = now - 1'000'000'000 - (i / distinct) % static_cast<std::size_t>(minutes) * 60'000'000'000ULL;
    const double base = 1e4 * std::pow(10.0, static_cast<double>(n % 7) / 2.0);
    const double spread = std::pow(10.0, decades * static_cast<double>(rng() % 1000) / 1000.0);
    v[i].duration = static_cast<std::uint64_t>(base * spread);
    v[i].status = rng() % 50 == 0 ? sg::Status::error : sg::Status::ok;
    v[i].trace_id = {rng() | 1, rng()};
    v[i].span_id = rng() | 1;
  }
  return v;
}

struct Fixture {
  sg::Collector collector;
  sg::http::Server server;
  Fixture(std::size_t distinct, int decades, int minutes = 1) : server(collector, options()) {
    for (const auto& e : make_events(distinct, decades, minutes)) collector.enqueue(e);
    collector.flush();
  }
  static sg::http::HttpOptions options() {
    sg::http::HttpOptions o;
    o.address = "127.0.0.1:0";
    return o;
  }
};

void bench_metrics_json(benchmark::State& state) {
  Fixture f(static_cast<std::size_t>(state.range(0)), static_cast<int>(state.range(1)),
            static_cast<int>(state.range(2)));
  std::size_t bytes = 0;
  for (auto _ : state) {
    const std::string body = f.server.metrics_json();
    bytes = body.size();
    benchmark::DoNotOptimize(body.data());
  }
  state.counters["bytes"] = static_cast<double>(bytes);
}
BENCHMARK(bench_metrics_json)
    ->Args({100, 1, 1})
    ->Args({1000, 1, 1})
    ->Args({1000, 4, 1})
    ->Args({1000, 1, 15})
    ->Unit(benchmark::kMillisecond)
    ->UseRealTime();

/// Its first step alone: the core's StatsStore snapshot of the same names.
void bench_stats_snapshot(benchmark::State& state) {
  Fixture f(static_cast<std::size_t>(state.range(0)), static_cast<int>(state.range(1)),
            static_cast<int>(state.range(2)));
  for (auto _ : state) {
    const sg::StatsSnapshot snap = f.collector.stats().snapshot();
    benchmark::DoNotOptimize(snap.entries.data());
  }
}
BENCHMARK(bench_stats_snapshot)
    ->Args({1000, 1, 1})
    ->Args({1000, 1, 15})
    ->Unit(benchmark::kMillisecond)
    ->UseRealTime();

/// What the statistics cost the collector thread: StatsStore::record of the same events
/// (N names, 20 each) in batches of 1,024 as the collector passes them, "now" moving on a
/// second per round so that sub-windows rotate every minute.
void bench_stats_record(benchmark::State& state) {
  sg::StatsStore store;
  std::vector<sg::Event> events = make_events(static_cast<std::size_t>(state.range(0)), 1);
  std::uint64_t now = events.front().start + 1'000'000'000;
  for (auto _ : state) {
    now += 1'000'000'000;
    for (auto& e : events) e.start = now - 1'000;
    const std::span<const sg::Event> all(events);
    for (std::size_t off = 0; off < all.size(); off += 1024) {
      store.record(all.subspan(off, std::min<std::size_t>(1024, all.size() - off)), now);
    }
  }
  state.SetItemsProcessed(state.iterations() * static_cast<std::int64_t>(events.size()));
}
BENCHMARK(bench_stats_record)->Arg(1000)->Unit(benchmark::kMicrosecond);

/// The same body as a browser gets it: GET over one keep-alive loopback connection.
void bench_metrics_json_http(benchmark::State& state) {
  Fixture f(static_cast<std::size_t>(state.range(0)), static_cast<int>(state.range(1)));
  httplib::Client client("127.0.0.1", f.server.port());
  client.set_keep_alive(true);
  std::size_t bytes = 0;
  for (auto _ : state) {
    const auto r = client.Get("/metrics.json");
    if (!r || r->status != 200) {
      state.SkipWithError("GET /metrics.json failed");
      break;
    }
    bytes = r->body.size();
  }
  state.counters["bytes"] = static_cast<double>(bytes);
}
BENCHMARK(bench_metrics_json_http)->Args({1000, 1})->Unit(benchmark::kMillisecond)->UseRealTime();

/// Peer: the Prometheus exporter's text exposition of the same events (each name a
/// counter pair and a 25-bucket histogram).
void bench_prometheus_scrape(benchmark::State& state) {
  sg::prom::PrometheusOptions o;
  o.listen_address.clear();
  o.process_metrics = false;
  sg::prom::PrometheusExporter exporter(o);
  exporter.export_batch(
      make_events(static_cast<std::size_t>(state.range(0)), static_cast<int>(state.range(1))));
  std::size_t bytes = 0;
  for (auto _ : state) {
    const std::string text = exporter.scrape();
    bytes = text.size();
    benchmark::DoNotOptimize(text.data());
  }
  state.counters["bytes"] = static_cast<double>(bytes);
}
BENCHMARK(bench_prometheus_scrape)
    ->Args({100, 1})
    ->Args({1000, 1})
    ->Unit(benchmark::kMillisecond)
    ->UseRealTime();

}  // namespace

BENCHMARK_MAIN();
