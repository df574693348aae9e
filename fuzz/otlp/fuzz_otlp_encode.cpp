// libFuzzer target: random events (names with arbitrary bytes, any ids, times, kinds) are
// encoded to OTLP protobuf and JSON, spans and metrics. The official decoder (protoc with
// the opentelemetry-proto definitions) must accept every protobuf body and give back, span
// by span, the trace id, span id, parent span id, kind, start time and (for names that are
// valid UTF-8, which the encoder does not repair) the name. simdjson must accept every
// JSON body, in which ids must be lowercase hex of the right length and equal to the
// event's, 64-bit integers decimal strings, and the only JSON numbers enums and doubles.
// SPYGLASS_FUZZ_NO_PROTOC=1 skips the protoc step for fast exploratory runs.

#include <fuzzer/FuzzedDataProvider.h>
#include <simdjson.h>

#include <cinttypes>
#include <cstdio>
#include <cstdlib>
#include <cstring>
#include <string>
#include <string_view>
#include <vector>

#include "protoc_decode.hpp"
#include "spyglass/exporters/otlp.hpp"

namespace otlp = spyglass::otlp;

namespace {

void fail(const char* what, const std::string& detail) {
  std::fprintf(stderr, "OTLP fuzz check failed: %s\n%s\n", what, detail.c_str());
  std::abort();
}

// Lowercase hex, written here rather than taken from the library under test.
std::string hex64(std::uint64_t v) {
  char buf[17];
  std::snprintf(buf, sizeof buf, "%016" PRIx64, v);
  return buf;
}
std::string trace_hex(const spyglass::TraceId& t) { return hex64(t.hi) + hex64(t.lo); }

bool is_hex(std::string_view s, std::size_t len) {
  if (s.size() != len) return false;
  for (const char c : s) {
    if (!((c >= '0' && c <= '9') || (c >= 'a' && c <= 'f'))) return false;
  }
  return true;
}
bool is_decimal(std::string_view s) {
  if (!s.empty() && s.front() == '-') s.remove_prefix(1);
  if (s.empty()) return false;
  for (const char c : s) {
    if (c < '0' || c > '9') return false;
  }
  return true;
}

bool valid_utf8(std::string_view s) { return simdjson::validate_utf8(s.data(), s.size()); }

// Whether the strings the span name is made of are valid UTF-8, hence sent unchanged.
bool name_parts_valid(const spyglass::Event& e) {
  const bool uses_detail = e.kind == spyglass::EventKind::request || e.kind == spyglass::EventKind::db ||
                           e.kind == spyglass::EventKind::client;
  return valid_utf8(e.name) && (!uses_detail || valid_utf8(e.detail));
}

// The OTLP span kind of an event kind, as protoc prints it and as its JSON number.
struct Kind {
  const char* name;
  std::int64_t number;
};
Kind expected_kind(spyglass::EventKind k) {
  switch (k) {
    case spyglass::EventKind::request: return {"SPAN_KIND_SERVER", 2};
    case spyglass::EventKind::db:
    case spyglass::EventKind::client: return {"SPAN_KIND_CLIENT", 3};
    case spyglass::EventKind::function:
    case spyglass::EventKind::custom: break;
  }
  return {"SPAN_KIND_INTERNAL", 1};
}

// Whether `got` is the span name the README's mapping gives `e`: "<method> <route>" for a
// request (the route alone without a method), "<method> <route>" for a client call ("HTTP"
// for a method unknown to the conventions), the name for functions and custom events.
// A db span is named by the SQL statement's leading operation word, else by the database
// system, else "db". Only asked when name and detail are valid UTF-8.
bool name_matches(const spyglass::Event& e, std::string_view got) {
  const std::string_view name = e.name;
  const std::string_view detail = e.detail;
  switch (e.kind) {
    case spyglass::EventKind::request:
      return detail.empty() ? got == name : got == std::string(detail) + " " + std::string(name);
    case spyglass::EventKind::client:  // "HTTP" stands for a method the conventions do not know
      return got == std::string(detail) + " " + std::string(name) || got == "HTTP " + std::string(name);
    case spyglass::EventKind::db: {
      if (got == "db" || (!detail.empty() && got == detail)) return true;
      std::string_view sql = name;
      while (!sql.empty() &&
             (sql.front() == ' ' || sql.front() == '\t' || sql.front() == '\n' || sql.front() == '('))
        sql.remove_prefix(1);
      if (got.empty() || got.size() > 16 || sql.substr(0, got.size()) != got) return false;
      for (const char c : got) {
        if (!((c >= 'A' && c <= 'Z') || (c >= 'a' && c <= 'z'))) return false;
      }
      return true;
    }
    case spyglass::EventKind::function:
    case spyglass::EventKind::custom: break;
  }
  return got == name;
}

// Keys whose values may be JSON numbers: enums and doubles. Everything else numeric in
// OTLP/JSON is a 64-bit integer and must be a decimal string.
bool number_allowed(std::string_view key) {
  for (const char* k :
       {"kind", "code", "aggregationTemporality", "sum", "min", "max", "explicitBounds", "doubleValue"}) {
    if (key == k) return true;
  }
  return false;
}
bool int64_string_key(std::string_view key) {
  for (const char* k : {"intValue", "asInt", "count", "startTimeUnixNano", "endTimeUnixNano", "timeUnixNano",
                        "bucketCounts"}) {
    if (key == k) return true;
  }
  return false;
}

// Walks a JSON body: ids are lowercase hex of their length, 64-bit integers are decimal
// strings, no other numbers than number_allowed() ones.
void check_json_rules(simdjson::dom::element v, std::string_view key, const std::string& body) {
  switch (v.type()) {
    case simdjson::dom::element_type::OBJECT:
      for (auto field : v.get_object()) check_json_rules(field.value, field.key, body);
      return;
    case simdjson::dom::element_type::ARRAY:
      for (auto item : v.get_array()) check_json_rules(item, key, body);  // elements keep the key
      return;
    case simdjson::dom::element_type::STRING: {
      const std::string_view s = v.get_string().value_unsafe();
      if (key == "traceId" && !is_hex(s, 32)) fail("JSON traceId is not 32 lowercase hex digits", body);
      if ((key == "spanId" || key == "parentSpanId") && !is_hex(s, 16)) {
        fail("JSON span id is not 16 lowercase hex digits", body);
      }
      if (int64_string_key(key) && !is_decimal(s)) fail("JSON 64-bit integer string is not decimal", body);
      return;
    }
    case simdjson::dom::element_type::INT64:
    case simdjson::dom::element_type::UINT64:
    case simdjson::dom::element_type::DOUBLE:
      if (!number_allowed(key)) fail("JSON number where OTLP/JSON wants a string", body);
      return;
    default: return;
  }
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
    e.peer = e.detail;  // a client's server: any bytes too
    e.kind = static_cast<spyglass::EventKind>(in.ConsumeIntegralInRange<int>(0, 4));
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
    s.status = e.status;
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
  if (parser.parse(mjs).get(doc) != simdjson::SUCCESS) fail("metrics JSON does not parse", mjs);
  check_json_rules(doc, "", mjs);
  if (parser.parse(js).get(doc) != simdjson::SUCCESS) fail("trace JSON does not parse", js);
  check_json_rules(doc, "", js);
  simdjson::dom::array jspans;
  if (doc["resourceSpans"].at(0)["scopeSpans"].at(0)["spans"].get(jspans) != simdjson::SUCCESS ||
      jspans.size() != n) {
    fail("trace JSON has a different number of spans", js);
  }
  std::size_t at = 0;
  for (simdjson::dom::element span : jspans) {
    const spyglass::Event& e = events[at++];
    std::string_view trace_id, span_id, parent, name;
    std::int64_t kind = 0;
    if (span["traceId"].get(trace_id) != simdjson::SUCCESS || trace_id != trace_hex(e.trace_id)) {
      fail("JSON trace id changed", js);
    }
    if (span["spanId"].get(span_id) != simdjson::SUCCESS || span_id != hex64(e.span_id)) {
      fail("JSON span id changed", js);
    }
    const bool has_parent = span["parentSpanId"].get(parent) == simdjson::SUCCESS;
    if (has_parent != (e.parent_span_id != 0) || (has_parent && parent != hex64(e.parent_span_id))) {
      fail("JSON parent span id changed", js);
    }
    if (span["kind"].get(kind) != simdjson::SUCCESS || kind != expected_kind(e.kind).number) {
      fail("JSON span kind is wrong", js);
    }
    if (span["name"].get(name) != simdjson::SUCCESS) fail("JSON span has no name", js);
    if (name_parts_valid(e) && !name_matches(e, name)) fail("JSON span name changed", js);
  }

  static const bool no_protoc = std::getenv("SPYGLASS_FUZZ_NO_PROTOC") != nullptr;
  if (no_protoc) return 0;
  const auto t = spyglass_test::decode_traces(pb);
  if (t.exit_code != 0) fail("protoc rejected the trace request", t.errors);
  const auto spans = t.tree.at("resource_spans").at("scope_spans").all("spans");
  if (spans.size() != n) fail("protoc found a different number of spans", t.text);
  for (std::size_t i = 0; i < n; ++i) {
    const spyglass::Event& e = events[i];
    const spyglass_test::PNode& span = *spans[i];
    if (spyglass_test::hex(span.at("trace_id").value) != trace_hex(e.trace_id))
      fail("trace id changed", t.text);
    if (spyglass_test::hex(span.at("span_id").value) != hex64(e.span_id)) fail("span id changed", t.text);
    // Absent for a root (0): proto3 leaves out empty bytes fields.
    const std::string parent =
        span.has("parent_span_id") ? spyglass_test::hex(span.at("parent_span_id").value) : "";
    if (parent != (e.parent_span_id != 0 ? hex64(e.parent_span_id) : ""))
      fail("parent span id changed", t.text);
    if (!span.has("kind") || span.at("kind").value != expected_kind(e.kind).name)
      fail("span kind is wrong", t.text);
    const std::string name = span.has("name") ? span.at("name").value : "";
    if (name_parts_valid(e) && !name_matches(e, name)) fail("span name changed", t.text);
    // proto3 text output leaves out fields that hold the default (0).
    const std::string start =
        spans[i]->has("start_time_unix_nano") ? spans[i]->at("start_time_unix_nano").value : "0";
    if (start != std::to_string(e.start)) {
      fail("start time changed", t.text);
    }
  }
  const auto m = spyglass_test::decode_metrics(mpb);
  if (m.exit_code != 0) fail("protoc rejected the metrics request", m.errors);
  return 0;
}
