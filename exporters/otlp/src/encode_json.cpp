// OTLP/JSON request bodies (the protobuf JSON mapping with OTLP's exceptions: hex ids,
// enums as integers, 64-bit integers as strings), from the mapping in mapping.hpp.

#include <charconv>

#include "mapping.hpp"
#include "spyglass/exporters/otlp.hpp"
#include "spyglass/ids.hpp"
#include "spyglass/json.hpp"

namespace SPYGLASS_NAMESPACE::otlp {
namespace {

using detail::SpanAttr;
using detail::SpanView;

// A 64-bit integer as OTLP/JSON wants it: a decimal string.
void js_u64(JsonWriter& j, std::uint64_t v) {
  char buf[24];
  buf[0] = '"';
  const auto r = std::to_chars(buf + 1, buf + sizeof buf - 1, v);
  *r.ptr = '"';
  j.raw(std::string_view(buf, static_cast<std::size_t>(r.ptr + 1 - buf)));
}
void js_i64(JsonWriter& j, std::int64_t v) {
  char buf[24];
  buf[0] = '"';
  const auto r = std::to_chars(buf + 1, buf + sizeof buf - 1, v);
  *r.ptr = '"';
  j.raw(std::string_view(buf, static_cast<std::size_t>(r.ptr + 1 - buf)));
}
void js_kv(JsonWriter& j, std::string_view key, std::string_view str) {
  j.begin_object();
  j.key("key");
  j.value(key);
  j.key("value");
  j.begin_object();
  j.key("stringValue");
  j.value(str);
  j.end_object();
  j.end_object();
}
void js_kv(JsonWriter& j, std::string_view key, std::int64_t v) {
  j.begin_object();
  j.key("key");
  j.value(key);
  j.key("value");
  j.begin_object();
  j.key("intValue");
  js_i64(j, v);
  j.end_object();
  j.end_object();
}
void js_resource(JsonWriter& j, std::span<const Attribute> resource) {
  j.key("resource");
  j.begin_object();
  j.key("attributes");
  j.begin_array();
  for (const Attribute& a : resource) {
    if (const auto* s = std::get_if<std::string>(&a.value)) {
      js_kv(j, a.key, *s);
    } else {
      js_kv(j, a.key, std::get<std::int64_t>(a.value));
    }
  }
  j.end_array();
  j.end_object();
}
void js_scope(JsonWriter& j) {
  j.key("scope");
  j.begin_object();
  j.key("name");
  j.value(detail::kScopeName);
  j.key("version");
  j.value(detail::kScopeVersion);
  j.end_object();
}
void js_hex(JsonWriter& j, const char* hex, std::size_t n) {
  j.value(std::string_view(hex, n));  // hex digits need no escaping
}

void js_span(JsonWriter& j, const Event& e, std::string& scratch) {
  const SpanView v = detail::map_event(e, scratch);
  char hex[32];
  j.begin_object();
  j.key("traceId");
  to_hex(e.trace_id.hi, hex);
  to_hex(e.trace_id.lo, hex + 16);
  js_hex(j, hex, 32);
  j.key("spanId");
  to_hex(e.span_id, hex);
  js_hex(j, hex, 16);
  if (e.parent_span_id != 0) {
    j.key("parentSpanId");
    to_hex(e.parent_span_id, hex);
    js_hex(j, hex, 16);
  }
  j.key("name");
  if (v.name_prefix.empty()) {
    j.value(v.name);
  } else {
    std::string tmp;
    tmp.reserve(v.name_prefix.size() + v.name.size() + 3);
    tmp.push_back('"');
    json_escape(v.name_prefix, tmp);
    tmp.push_back(' ');
    json_escape(v.name, tmp);
    tmp.push_back('"');
    j.raw(tmp);
  }
  j.key("kind");
  j.value(v.kind);
  j.key("startTimeUnixNano");
  js_u64(j, e.start);
  j.key("endTimeUnixNano");
  js_u64(j, e.start + e.duration);
  j.key("attributes");
  j.begin_array();
  for (std::size_t i = 0; i < v.n_attrs; ++i) {
    const SpanAttr& a = v.attrs[i];
    if (a.is_int) {
      js_kv(j, a.key, a.num);
    } else {
      js_kv(j, a.key, a.str);
    }
  }
  j.end_array();
  if (v.error) {
    j.key("status");
    j.begin_object();
    j.key("code");
    j.value(detail::kStatusError);
    j.end_object();
  }
  j.end_object();
}

}  // namespace

void encode_traces_json(std::span<const Event> events, std::span<const Attribute> resource,
                        std::string& out) {
  out.reserve(out.size() + 1024 + events.size() * 640);
  JsonWriter j(out);
  j.begin_object();
  j.key("resourceSpans");
  j.begin_array();
  j.begin_object();
  js_resource(j, resource);
  j.key("scopeSpans");
  j.begin_array();
  j.begin_object();
  js_scope(j);
  j.key("spans");
  j.begin_array();
  std::string scratch;
  for (const Event& e : events) js_span(j, e, scratch);
  j.end_array();
  j.end_object();
  j.end_array();
  j.end_object();
  j.end_array();
  j.end_object();
}

void encode_metrics_json(std::span<const MetricSeries> series, std::span<const double> bounds,
                         std::span<const Attribute> resource, std::uint64_t start_ns, std::uint64_t now_ns,
                         std::string& out) {
  JsonWriter j(out);
  j.begin_object();
  j.key("resourceMetrics");
  j.begin_array();
  j.begin_object();
  js_resource(j, resource);
  j.key("scopeMetrics");
  j.begin_array();
  j.begin_object();
  js_scope(j);
  j.key("metrics");
  j.begin_array();
  const auto sorted = detail::series_by_kind(series);
  auto attrs = [&j](const MetricSeries& s) {
    j.key("attributes");
    j.begin_array();
    detail::series_attributes(s, [&j](std::string_view k, std::string_view v) { js_kv(j, k, v); });
    j.end_array();
  };
  for (std::size_t i = 0; i < sorted.size();) {
    const EventKind kind = sorted[i]->kind;
    std::size_t end = i;
    while (end < sorted.size() && sorted[end]->kind == kind) ++end;
    j.begin_object();
    j.key("name");
    j.value(detail::metric_name(kind, "count"));
    j.key("description");
    j.value("Operations recorded");
    j.key("unit");
    j.value("{operation}");
    j.key("sum");
    j.begin_object();
    j.key("dataPoints");
    j.begin_array();
    for (std::size_t k = i; k < end; ++k) {
      const MetricSeries& s = *sorted[k];
      j.begin_object();
      attrs(s);
      j.key("startTimeUnixNano");
      js_u64(j, start_ns);
      j.key("timeUnixNano");
      js_u64(j, now_ns);
      j.key("asInt");
      js_u64(j, s.count);
      j.end_object();
    }
    j.end_array();
    j.key("aggregationTemporality");
    j.value(detail::kCumulative);
    j.key("isMonotonic");
    j.value(true);
    j.end_object();
    j.end_object();

    j.begin_object();
    j.key("name");
    j.value(detail::metric_name(kind, "duration"));
    j.key("description");
    j.value("Duration of the operations recorded");
    j.key("unit");
    j.value("s");
    j.key("histogram");
    j.begin_object();
    j.key("dataPoints");
    j.begin_array();
    for (std::size_t k = i; k < end; ++k) {
      const MetricSeries& s = *sorted[k];
      j.begin_object();
      attrs(s);
      j.key("startTimeUnixNano");
      js_u64(j, start_ns);
      j.key("timeUnixNano");
      js_u64(j, now_ns);
      j.key("count");
      js_u64(j, s.count);
      j.key("sum");
      j.value(s.sum_seconds);
      j.key("bucketCounts");
      j.begin_array();
      for (std::size_t b = 0; b <= bounds.size(); ++b) {
        js_u64(j, b < s.bucket_counts.size() ? s.bucket_counts[b] : 0);
      }
      j.end_array();
      j.key("explicitBounds");
      j.begin_array();
      for (double d : bounds) j.value(d);
      j.end_array();
      if (s.count != 0) {
        j.key("min");
        j.value(s.min_seconds);
        j.key("max");
        j.value(s.max_seconds);
      }
      j.end_object();
    }
    j.end_array();
    j.key("aggregationTemporality");
    j.value(detail::kCumulative);
    j.end_object();
    j.end_object();
    i = end;
  }
  j.end_array();
  j.end_object();
  j.end_array();
  j.end_object();
  j.end_array();
  j.end_object();
}

}  // namespace SPYGLASS_NAMESPACE::otlp
