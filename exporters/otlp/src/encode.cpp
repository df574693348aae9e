// Encoders of the OTLP request bodies: the event-to-span mapping, then protobuf (by hand,
// field numbers from the opentelemetry-proto definitions) and OTLP/JSON.

#include <algorithm>
#include <charconv>
#include <cstring>

#include "spyglass/exporters/otlp.hpp"
#include "spyglass/ids.hpp"
#include "spyglass/json.hpp"
#include "spyglass/version.hpp"
#include "wire.hpp"

namespace SPYGLASS_NAMESPACE::otlp {
namespace detail {

void append_utf8(std::string& out, std::string_view s) {
  const auto* p = reinterpret_cast<const unsigned char*>(s.data());
  const std::size_t n = s.size();
  std::size_t i = 0;
  while (i < n && p[i] < 0x80) ++i;
  if (i == n) {
    out.append(s);
    return;
  }
  out.append(s.data(), i);
  while (i < n) {
    if (p[i] < 0x80) {
      out.push_back(static_cast<char>(p[i++]));
      continue;
    }
    const int len = spyglass::utf8_sequence(p + i, n - i);
    if (len > 0) {
      out.append(s.data() + i, static_cast<std::size_t>(len));
      i += static_cast<std::size_t>(len);
    } else {
      out.append("\xEF\xBF\xBD", 3);
      i += static_cast<std::size_t>(-len);
    }
  }
}

}  // namespace detail

namespace {

using detail::ProtoWriter;

// OTLP enum values (trace.proto, metrics.proto).
constexpr std::uint64_t kSpanKindInternal = 1;
constexpr std::uint64_t kSpanKindServer = 2;
constexpr std::uint64_t kSpanKindClient = 3;
constexpr std::uint64_t kStatusError = 2;
constexpr std::uint64_t kCumulative = 2;

constexpr std::string_view kScopeName = "spyglass";
constexpr std::string_view kVersion = SPYGLASS_VERSION_STRING;

// One span attribute; values borrow from the event (process-lifetime strings).
struct SpanAttr {
  std::string_view key;
  std::string_view str;
  std::int64_t num = 0;
  bool is_int = false;
};

// The span an event becomes. The name is `name_prefix + " " + name` when a prefix is set.
struct SpanView {
  std::string_view name_prefix;
  std::string_view name;
  std::uint64_t kind = kSpanKindInternal;
  SpanAttr attrs[8];
  std::size_t n_attrs = 0;
  void add(std::string_view k, std::string_view v) { attrs[n_attrs++] = {k, v, 0, false}; }
  void add(std::string_view k, std::int64_t v) { attrs[n_attrs++] = {k, {}, v, true}; }
};

// First word of a SQL statement when it looks like an operation ("SELECT"), else empty.
std::string_view sql_operation(std::string_view sql) {
  std::size_t b = 0;
  while (b < sql.size() && (sql[b] == ' ' || sql[b] == '\t' || sql[b] == '\n' || sql[b] == '(')) ++b;
  std::size_t e = b;
  while (e < sql.size() && ((sql[e] >= 'A' && sql[e] <= 'Z') || (sql[e] >= 'a' && sql[e] <= 'z'))) ++e;
  if (e == b || e - b > 16) return {};
  if (e < sql.size() && sql[e] != ' ' && sql[e] != '\t' && sql[e] != '\n' && sql[e] != ';') return {};
  return sql.substr(b, e - b);
}

std::int64_t clamp_i64(std::uint64_t v) {
  return v > static_cast<std::uint64_t>(INT64_MAX) ? INT64_MAX : static_cast<std::int64_t>(v);
}

// The OpenTelemetry semantic conventions for each kind of event.
SpanView map_event(const Event& e) {
  SpanView s;
  const std::string_view name = e.name ? e.name : "";
  const std::string_view detail = e.detail ? e.detail : "";
  s.name = name;
  switch (e.kind) {
    case EventKind::request:
      s.kind = kSpanKindServer;
      s.name_prefix = detail;  // "GET /users/{id}"
      if (!detail.empty()) s.add("http.request.method", detail);
      s.add("http.route", name);
      if (e.http_status != 0) s.add("http.response.status_code", std::int64_t{e.http_status});
      if (e.bytes_in != 0) s.add("http.request.body.size", clamp_i64(e.bytes_in));
      if (e.bytes_out != 0) s.add("http.response.body.size", clamp_i64(e.bytes_out));
      break;
    case EventKind::db: {
      s.kind = kSpanKindClient;
      const std::string_view op = sql_operation(name);
      s.name = !op.empty() ? op : (!detail.empty() ? detail : std::string_view("db"));
      if (!detail.empty()) s.add("db.system", detail);
      s.add("db.query.text", name);
      if (!op.empty()) s.add("db.operation.name", op);
      s.add("db.response.returned_rows", clamp_i64(e.rows));
      break;
    }
    case EventKind::function:
      s.kind = kSpanKindInternal;
      s.add("code.function", name);
      break;
    case EventKind::custom:
    default: s.kind = kSpanKindInternal; break;
  }
  if (e.thread_id != 0) s.add("thread.id", std::int64_t{e.thread_id});
  return s;
}

// ---- protobuf ---------------------------------------------------------------------

// common.v1.KeyValue { string key = 1; AnyValue value = 2; }
// AnyValue { string string_value = 1; int64 int_value = 3; }
void pb_kv(ProtoWriter& w, std::uint32_t field, std::string_view key, std::string_view str) {
  const std::size_t kv = w.begin(field);
  w.field_string(1, key);
  const std::size_t any = w.begin(2);
  w.field_string(1, str);
  w.end(any);
  w.end(kv);
}
void pb_kv(ProtoWriter& w, std::uint32_t field, std::string_view key, std::int64_t v) {
  const std::size_t kv = w.begin(field);
  w.field_string(1, key);
  const std::size_t any = w.begin(2);
  w.field_varint(3, static_cast<std::uint64_t>(v));
  w.end(any);
  w.end(kv);
}

// resource.v1.Resource { repeated KeyValue attributes = 1; }
void pb_resource(ProtoWriter& w, std::uint32_t field, std::span<const Attribute> resource) {
  const std::size_t r = w.begin(field);
  for (const Attribute& a : resource) {
    if (const auto* s = std::get_if<std::string>(&a.value)) {
      pb_kv(w, 1, a.key, *s);
    } else {
      pb_kv(w, 1, a.key, std::get<std::int64_t>(a.value));
    }
  }
  w.end(r);
}

// common.v1.InstrumentationScope { string name = 1; string version = 2; }
void pb_scope(ProtoWriter& w, std::uint32_t field) {
  const std::size_t s = w.begin(field);
  w.field_string(1, kScopeName);
  w.field_string(2, kVersion);
  w.end(s);
}

// The span path is the hot one (millions per second), so spans are written in two
// passes: exact sizes first, then the bytes through a raw pointer into a buffer sized
// once. No length needs patching afterwards.

std::size_t varint_size(std::uint64_t v) {
  std::size_t n = 1;
  while (v >= 0x80) {
    v >>= 7;
    ++n;
  }
  return n;
}
char* put_varint(char* p, std::uint64_t v) {
  while (v >= 0x80) {
    *p++ = static_cast<char>((v & 0x7f) | 0x80);
    v >>= 7;
  }
  *p++ = static_cast<char>(v);
  return p;
}
char* put_fixed64(char* p, std::uint64_t v) {
  for (int i = 0; i < 8; ++i) p[i] = static_cast<char>((v >> (8 * i)) & 0xff);
  return p + 8;
}
char* put_be64(char* p, std::uint64_t v) {
  for (int i = 7; i >= 0; --i) {
    p[i] = static_cast<char>(v & 0xff);
    v >>= 8;
  }
  return p + 8;
}

// Length of `s` after UTF-8 repair (each invalid subpart becomes the 3-byte U+FFFD).
std::size_t utf8_size(std::string_view s) {
  const auto* p = reinterpret_cast<const unsigned char*>(s.data());
  const std::size_t n = s.size();
  std::size_t i = 0;
  while (i < n && p[i] < 0x80) ++i;
  if (i == n) return n;
  std::size_t size = i;
  while (i < n) {
    if (p[i] < 0x80) {
      ++i;
      ++size;
      continue;
    }
    const int len = spyglass::utf8_sequence(p + i, n - i);
    if (len > 0) {
      i += static_cast<std::size_t>(len);
      size += static_cast<std::size_t>(len);
    } else {
      i += static_cast<std::size_t>(-len);
      size += 3;
    }
  }
  return size;
}
// Writes the repaired `s` (whose repaired length the caller knows).
char* put_utf8(char* p, std::string_view s) {
  const auto* u = reinterpret_cast<const unsigned char*>(s.data());
  const std::size_t n = s.size();
  std::size_t i = 0;
  while (i < n && u[i] < 0x80) ++i;
  std::memcpy(p, s.data(), i);
  p += i;
  while (i < n) {
    if (u[i] < 0x80) {
      *p++ = static_cast<char>(u[i++]);
      continue;
    }
    const int len = spyglass::utf8_sequence(u + i, n - i);
    if (len > 0) {
      std::memcpy(p, s.data() + i, static_cast<std::size_t>(len));
      p += len;
      i += static_cast<std::size_t>(len);
    } else {
      std::memcpy(p, "\xEF\xBF\xBD", 3);
      p += 3;
      i += static_cast<std::size_t>(-len);
    }
  }
  return p;
}

// Sizes of one span's parts, computed once and used by the writing pass.
struct SpanSizes {
  std::size_t name = 0;       // repaired name bytes
  std::size_t value[8] = {};  // repaired string attribute bytes
  std::size_t any[8] = {};    // AnyValue message bytes
  std::size_t kv[8] = {};     // KeyValue message bytes
  std::size_t body = 0;       // Span message bytes
};

SpanSizes span_sizes(const Event& e, const SpanView& v) {
  SpanSizes z;
  z.name = utf8_size(v.name) + (v.name_prefix.empty() ? 0 : utf8_size(v.name_prefix) + 1);
  std::size_t body = 18 + 10 + (e.parent_span_id != 0 ? 10 : 0);  // trace_id, span_id, parent
  body += 1 + varint_size(z.name) + z.name;
  body += 1 + varint_size(v.kind) + 9 + 9;  // kind, start, end
  for (std::size_t i = 0; i < v.n_attrs; ++i) {
    const SpanAttr& a = v.attrs[i];
    if (a.is_int) {
      z.any[i] = 1 + varint_size(static_cast<std::uint64_t>(a.num));
    } else {
      z.value[i] = utf8_size(a.str);
      z.any[i] = 1 + varint_size(z.value[i]) + z.value[i];
    }
    z.kv[i] = 1 + varint_size(a.key.size()) + a.key.size() + 1 + varint_size(z.any[i]) + z.any[i];
    body += 1 + varint_size(z.kv[i]) + z.kv[i];
  }
  if (e.status == Status::error) body += 4;  // status { code }
  z.body = body;
  return z;
}

char* put_span(char* p, const Event& e, const SpanView& v, const SpanSizes& z) {
  *p++ = 0x12;  // ScopeSpans.spans (2, LEN)
  p = put_varint(p, z.body);
  *p++ = 0x0a;  // trace_id (1, LEN)
  *p++ = 16;
  p = put_be64(p, e.trace_id.hi);
  p = put_be64(p, e.trace_id.lo);
  *p++ = 0x12;  // span_id (2, LEN)
  *p++ = 8;
  p = put_be64(p, e.span_id);
  if (e.parent_span_id != 0) {
    *p++ = 0x22;  // parent_span_id (4, LEN)
    *p++ = 8;
    p = put_be64(p, e.parent_span_id);
  }
  *p++ = 0x2a;  // name (5, LEN)
  p = put_varint(p, z.name);
  if (!v.name_prefix.empty()) {
    p = put_utf8(p, v.name_prefix);
    *p++ = ' ';
  }
  p = put_utf8(p, v.name);
  *p++ = 0x30;  // kind (6, VARINT)
  p = put_varint(p, v.kind);
  *p++ = 0x39;  // start_time_unix_nano (7, I64)
  p = put_fixed64(p, e.start);
  *p++ = 0x41;  // end_time_unix_nano (8, I64)
  p = put_fixed64(p, e.start + e.duration);
  for (std::size_t i = 0; i < v.n_attrs; ++i) {
    const SpanAttr& a = v.attrs[i];
    *p++ = 0x4a;  // attributes (9, LEN)
    p = put_varint(p, z.kv[i]);
    *p++ = 0x0a;  // KeyValue.key (1, LEN)
    p = put_varint(p, a.key.size());
    std::memcpy(p, a.key.data(), a.key.size());  // our own ASCII keys
    p += a.key.size();
    *p++ = 0x12;  // KeyValue.value (2, LEN)
    p = put_varint(p, z.any[i]);
    if (a.is_int) {
      *p++ = 0x18;  // AnyValue.int_value (3, VARINT)
      p = put_varint(p, static_cast<std::uint64_t>(a.num));
    } else {
      *p++ = 0x0a;  // AnyValue.string_value (1, LEN)
      p = put_varint(p, z.value[i]);
      p = put_utf8(p, a.str);
    }
  }
  if (e.status == Status::error) {
    *p++ = 0x7a;  // status (15, LEN)
    *p++ = 2;
    *p++ = 0x18;  // Status.code (3, VARINT)
    *p++ = static_cast<char>(kStatusError);
  }
  return p;
}

// ---- JSON -------------------------------------------------------------------------

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
  j.value(kScopeName);
  j.key("version");
  j.value(kVersion);
  j.end_object();
}
void js_hex(JsonWriter& j, const char* hex, std::size_t n) {
  j.value(std::string_view(hex, n));  // hex digits need no escaping
}

void js_span(JsonWriter& j, const Event& e) {
  const SpanView v = map_event(e);
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
  if (e.status == Status::error) {
    j.key("status");
    j.begin_object();
    j.key("code");
    j.value(kStatusError);
    j.end_object();
  }
  j.end_object();
}

// Metric series grouped by kind, in kind order, so each kind becomes one metric pair.
std::vector<const MetricSeries*> by_kind(std::span<const MetricSeries> series) {
  std::vector<const MetricSeries*> v;
  v.reserve(series.size());
  for (const MetricSeries& s : series) v.push_back(&s);
  std::stable_sort(v.begin(), v.end(), [](const MetricSeries* a, const MetricSeries* b) {
    return static_cast<int>(a->kind) < static_cast<int>(b->kind);
  });
  return v;
}

std::string metric_name(EventKind k, std::string_view what) {
  std::string n = "spyglass.";
  n += to_string(k);
  n += '.';
  n += what;
  return n;
}

// Data point attributes of a series.
template <typename Kv>
void series_attrs(const MetricSeries& s, Kv&& kv) {
  if (s.overflow) {
    kv("otel.metric.overflow", std::string_view("true"));
  } else {
    kv("spyglass.name", std::string_view(s.name));
  }
}

}  // namespace

void encode_traces_protobuf(std::span<const Event> events, std::span<const Attribute> resource,
                            std::string& out) {
  // Pass 1: the size of every span, hence of the enclosing messages.
  thread_local std::vector<SpanSizes> sizes;
  sizes.clear();
  sizes.reserve(events.size());
  std::size_t spans_total = 0;
  for (const Event& e : events) {
    sizes.push_back(span_sizes(e, map_event(e)));
    spans_total += 1 + varint_size(sizes.back().body) + sizes.back().body;
  }
  std::string head;  // resource and scope: small, written with the general writer
  {
    ProtoWriter hw(head);
    pb_resource(hw, 1, resource);
  }
  std::string scope;
  {
    ProtoWriter sw(scope);
    pb_scope(sw, 1);
  }
  const std::size_t scope_spans = scope.size() + spans_total;
  const std::size_t resource_spans = head.size() + 1 + varint_size(scope_spans) + scope_spans;
  const std::size_t total = 1 + varint_size(resource_spans) + resource_spans;

  // Pass 2: the bytes, straight into the output.
  const std::size_t at = out.size();
  out.resize(at + total);
  char* p = out.data() + at;
  *p++ = 0x0a;  // ExportTraceServiceRequest.resource_spans (1, LEN)
  p = put_varint(p, resource_spans);
  std::memcpy(p, head.data(), head.size());
  p += head.size();
  *p++ = 0x12;  // ResourceSpans.scope_spans (2, LEN)
  p = put_varint(p, scope_spans);
  std::memcpy(p, scope.data(), scope.size());
  p += scope.size();
  for (std::size_t i = 0; i < events.size(); ++i) p = put_span(p, events[i], map_event(events[i]), sizes[i]);
  out.resize(static_cast<std::size_t>(p - out.data()));  // == at + total
}

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
  for (const Event& e : events) js_span(j, e);
  j.end_array();
  j.end_object();
  j.end_array();
  j.end_object();
  j.end_array();
  j.end_object();
}

void encode_metrics_protobuf(std::span<const MetricSeries> series, std::span<const double> bounds,
                             std::span<const Attribute> resource, std::uint64_t start_ns,
                             std::uint64_t now_ns, std::string& out) {
  ProtoWriter w(out);
  const std::size_t rm = w.begin(1);  // ExportMetricsServiceRequest.resource_metrics
  pb_resource(w, 1, resource);
  const std::size_t sm = w.begin(2);  // ResourceMetrics.scope_metrics
  pb_scope(w, 1);
  const auto sorted = by_kind(series);
  for (std::size_t i = 0; i < sorted.size();) {
    const EventKind kind = sorted[i]->kind;
    std::size_t end = i;
    while (end < sorted.size() && sorted[end]->kind == kind) ++end;
    auto attrs = [&w](std::uint32_t field) {
      return [&w, field](std::string_view k, std::string_view v) { pb_kv(w, field, k, v); };
    };
    {  // Metric { name = 1, description = 2, unit = 3, sum = 7 }
      const std::size_t m = w.begin(2);
      w.field_string(1, metric_name(kind, "count"));
      w.field_string(2, "Operations recorded");
      w.field_string(3, "{operation}");
      const std::size_t sum = w.begin(7);
      for (std::size_t k = i; k < end; ++k) {
        const MetricSeries& s = *sorted[k];
        const std::size_t dp = w.begin(1);  // NumberDataPoint
        series_attrs(s, attrs(7));
        w.field_fixed64(2, start_ns);
        w.field_fixed64(3, now_ns);
        w.field_fixed64(6, s.count);  // sfixed64 as_int
        w.end(dp);
      }
      w.field_varint(2, kCumulative);
      w.field_varint(3, 1);  // is_monotonic
      w.end(sum);
      w.end(m);
    }
    {  // Metric { histogram = 9 }
      const std::size_t m = w.begin(2);
      w.field_string(1, metric_name(kind, "duration"));
      w.field_string(2, "Duration of the operations recorded");
      w.field_string(3, "s");
      const std::size_t h = w.begin(9);
      for (std::size_t k = i; k < end; ++k) {
        const MetricSeries& s = *sorted[k];
        const std::size_t dp = w.begin(1);  // HistogramDataPoint
        series_attrs(s, attrs(9));
        w.field_fixed64(2, start_ns);
        w.field_fixed64(3, now_ns);
        w.field_fixed64(4, s.count);
        w.field_double(5, s.sum_seconds);
        const std::size_t bc = w.begin(6);  // packed fixed64
        for (std::size_t b = 0; b <= bounds.size(); ++b) {
          w.raw_fixed64(b < s.bucket_counts.size() ? s.bucket_counts[b] : 0);
        }
        w.end(bc);
        if (!bounds.empty()) {
          const std::size_t eb = w.begin(7);  // packed double
          for (double d : bounds) w.raw_double(d);
          w.end(eb);
        }
        if (s.count != 0) {
          w.field_double(11, s.min_seconds);
          w.field_double(12, s.max_seconds);
        }
        w.end(dp);
      }
      w.field_varint(2, kCumulative);
      w.end(h);
      w.end(m);
    }
    i = end;
  }
  w.end(sm);
  w.end(rm);
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
  const auto sorted = by_kind(series);
  auto attrs = [&j](const MetricSeries& s) {
    j.key("attributes");
    j.begin_array();
    series_attrs(s, [&j](std::string_view k, std::string_view v) { js_kv(j, k, v); });
    j.end_array();
  };
  for (std::size_t i = 0; i < sorted.size();) {
    const EventKind kind = sorted[i]->kind;
    std::size_t end = i;
    while (end < sorted.size() && sorted[end]->kind == kind) ++end;
    j.begin_object();
    j.key("name");
    j.value(metric_name(kind, "count"));
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
    j.value(kCumulative);
    j.key("isMonotonic");
    j.value(true);
    j.end_object();
    j.end_object();

    j.begin_object();
    j.key("name");
    j.value(metric_name(kind, "duration"));
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
    j.value(kCumulative);
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
