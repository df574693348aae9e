// libFuzzer target: random events (names with arbitrary bytes, any ids, times, kinds) are
// encoded to OTLP protobuf and JSON, spans and metrics. The official decoder (protoc with
// the opentelemetry-proto definitions) must accept every protobuf body and find every
// span in it; simdjson must accept every JSON body. SPYGLASS_FUZZ_NO_PROTOC=1 skips the
// protoc step for fast exploratory runs.

#include <fuzzer/FuzzedDataProvider.h>
#include <simdjson.h>

#include <cstdio>
#include <cstdlib>
#include <string>
#include <vector>

#include "protoc.hpp"
#include "spyglass/exporters/otlp.hpp"

namespace otlp = spyglass::otlp;

namespace {

void fail(const char* what, const std::string& detail) {
  std::fprintf(stderr, "OTLP fuzz check failed: %s\n%s\n", what, detail.c_str());
  std::abort();
}

}  // namespace

extern "C" int LLVMFuzzerTestOneInput(const std::uint8_t* data, std::size_t size) {
  FuzzedDataProvider in(data, size);
  const std::size_t n = in.ConsumeIntegralInRange<std::size_t>(0, 16);
  std::vector<std::string> names, details;
  names.reserve(n);
  details.reserve(n);
  std::vector<spyglass::Event> events(n);
  for (std::size_t i = 0; i < n; ++i) {
    spyglass::Event& e = events[i];
    names.push_back(in.ConsumeRandomLengthString(300));
    details.push_back(in.ConsumeRandomLengthString(40));
    e.name = names.back().c_str();
    e.detail = details.back().c_str();
    e.kind = static_cast<spyglass::EventKind>(in.ConsumeIntegralInRange<int>(0, 3));
    e.status = in.ConsumeBool() ? spyglass::Status::error : spyglass::Status::ok;
    e.trace_id = {in.ConsumeIntegral<std::uint64_t>(), in.ConsumeIntegral<std::uint64_t>()};
    e.span_id = in.ConsumeIntegral<std::uint64_t>();
    e.parent_span_id = in.ConsumeIntegral<std::uint64_t>();
    e.start = in.ConsumeIntegral<std::uint64_t>();
    e.duration = in.ConsumeIntegral<std::uint64_t>();
    e.rows = in.ConsumeIntegral<std::uint64_t>();
    e.bytes_in = in.ConsumeIntegral<std::uint64_t>();
    e.bytes_out = in.ConsumeIntegral<std::uint64_t>();
    e.thread_id = in.ConsumeIntegral<std::uint32_t>();
    e.http_status = in.ConsumeIntegral<std::uint16_t>();
  }
  std::vector<otlp::Attribute> resource{{"service.name", in.ConsumeRandomLengthString(30)},
                                        {"process.pid", in.ConsumeIntegral<std::int64_t>()},
                                        {in.ConsumeRandomLengthString(20), in.ConsumeRandomLengthString(20)}};
  std::vector<otlp::MetricSeries> series;
  std::vector<double> bounds{0.001, 0.01, 0.1, 1.0};
  for (const auto& e : events) {
    otlp::MetricSeries s;
    s.kind = e.kind;
    s.name = e.name;
    s.overflow = in.ConsumeBool();
    s.count = in.ConsumeIntegral<std::uint64_t>();
    s.sum_seconds = static_cast<double>(e.duration) / 1e9;
    s.min_seconds = s.max_seconds = s.sum_seconds;
    s.bucket_counts.assign(in.ConsumeIntegralInRange<std::size_t>(0, 6), 1);
    series.push_back(std::move(s));
  }

  std::string pb, js, mpb, mjs;
  otlp::encode_traces_protobuf(events, resource, pb);
  otlp::encode_traces_json(events, resource, js);
  otlp::encode_metrics_protobuf(series, bounds, resource, 1, 2, mpb);
  otlp::encode_metrics_json(series, bounds, resource, 1, 2, mjs);

  static simdjson::dom::parser parser;
  simdjson::dom::element doc;
  if (parser.parse(js).get(doc) != simdjson::SUCCESS) fail("trace JSON does not parse", js);
  if (parser.parse(mjs).get(doc) != simdjson::SUCCESS) fail("metrics JSON does not parse", mjs);

  static const bool no_protoc = std::getenv("SPYGLASS_FUZZ_NO_PROTOC") != nullptr;
  if (no_protoc) return 0;
  const auto t = spyglass_test::decode_traces(pb);
  if (t.exit_code != 0) fail("protoc rejected the trace request", t.errors);
  const auto spans = t.tree.at("resource_spans").at("scope_spans").all("spans");
  if (spans.size() != n) fail("protoc found a different number of spans", t.text);
  for (std::size_t i = 0; i < n; ++i) {
    if (spyglass_test::hex(spans[i]->at("span_id").value) != spyglass::span_to_hex(events[i].span_id)) {
      fail("span id changed", t.text);
    }
    // proto3 text output leaves out fields that hold the default (0).
    const std::string start =
        spans[i]->has("start_time_unix_nano") ? spans[i]->at("start_time_unix_nano").value : "0";
    if (start != std::to_string(events[i].start)) {
      fail("start time changed", t.text);
    }
  }
  const auto m = spyglass_test::decode_metrics(mpb);
  if (m.exit_code != 0) fail("protoc rejected the metrics request", m.errors);
  return 0;
}
