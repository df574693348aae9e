// OTLP encoding throughput (protobuf and JSON, one core) and end-to-end export to a
// loopback sink in batches of 512 (the collector's default batch_max).

#include <benchmark/benchmark.h>

#include <vector>

#include "discard_sink.hpp"
#include "spyglass/exporters/otlp.hpp"

namespace otlp = spyglass::otlp;
using spyglass::Event;
using spyglass::EventKind;

namespace {

// A realistic mix: a request, two functions and a query per trace.
std::vector<Event> make_events(std::size_t n) {
  static const char* kFns[] = {"OrderService::load(int)", "PriceCalculator::total()"};
  std::vector<Event> v(n);
  for (std::size_t i = 0; i < n; ++i) {
    Event& e = v[i];
    e.trace_id = {0x1234 + i / 4, 0x9876 + i / 4};
    e.span_id = 0x1000 + i;
    e.parent_span_id = i % 4 == 0 ? 0 : 0x1000 + i - 1;
    e.start = 1'700'000'000'000'000'000ULL + i * 1000;
    e.duration = 12'345 + i;
    e.thread_id = 4000 + static_cast<std::uint32_t>(i % 8);
    switch (i % 4) {
      case 0:
        e.kind = EventKind::request;
        e.name = "/api/orders/{id}";
        e.detail = "GET";
        e.http_status = 200;
        e.bytes_out = 512;
        break;
      case 3:
        e.kind = EventKind::db;
        e.name = "SELECT id, total FROM orders WHERE customer_id = ? AND status = ?";
        e.detail = "postgresql";
        e.rows = 3;
        break;
      default: e.kind = EventKind::function; e.name = kFns[i % 2];
    }
  }
  return v;
}

std::vector<otlp::Attribute> resource() {
  otlp::OtlpOptions o;
  o.service_name = "bench";
  return otlp::make_resource(o);
}

void BM_EncodeProtobuf(benchmark::State& state) {
  const auto events = make_events(static_cast<std::size_t>(state.range(0)));
  const auto res = resource();
  std::string out;
  for (auto _ : state) {
    out.clear();
    otlp::encode_traces_protobuf(events, res, out);
    benchmark::DoNotOptimize(out.data());
  }
  state.SetItemsProcessed(state.iterations() * state.range(0));
  state.SetBytesProcessed(state.iterations() * static_cast<std::int64_t>(out.size()));
}
BENCHMARK(BM_EncodeProtobuf)->Arg(512);

void BM_EncodeJson(benchmark::State& state) {
  const auto events = make_events(static_cast<std::size_t>(state.range(0)));
  const auto res = resource();
  std::string out;
  for (auto _ : state) {
    out.clear();
    otlp::encode_traces_json(events, res, out);
    benchmark::DoNotOptimize(out.data());
  }
  state.SetItemsProcessed(state.iterations() * state.range(0));
  state.SetBytesProcessed(state.iterations() * static_cast<std::int64_t>(out.size()));
}
BENCHMARK(BM_EncodeJson)->Arg(512);

// export_batch() as the collector's stage thread calls it: encode, POST to a loopback
// sink, wait for its 200. Argument 1: gzip.
void BM_ExportLoopback(benchmark::State& state) {
  spyglass_bench::DiscardSink sink;
  otlp::OtlpOptions o;
  o.traces_endpoint = sink.url("/v1/traces");
  o.metrics_interval = std::chrono::milliseconds(0);
  o.traces_compression = state.range(0) != 0 ? otlp::Compression::gzip : otlp::Compression::none;
  otlp::OtlpExporter ex(o);
  const auto events = make_events(512);
  for (auto _ : state) {
    if (!ex.export_batch(events)) state.SkipWithError("the sink did not accept a batch");
  }
  const auto c = ex.counters();
  if (c.sent != c.produced) state.SkipWithError("not every span was accepted");
  state.SetItemsProcessed(state.iterations() * 512);
  state.counters["requests"] = static_cast<double>(sink.requests());
}
BENCHMARK(BM_ExportLoopback)->Arg(0)->Arg(1)->Unit(benchmark::kMicrosecond)->UseRealTime();

}  // namespace

BENCHMARK_MAIN();
