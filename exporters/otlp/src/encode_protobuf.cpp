// OTLP protobuf request bodies, written by hand (field numbers from the opentelemetry-proto
// definitions) from the mapping in mapping.hpp.

#include <cstring>

#include "mapping.hpp"
#include "spyglass/exporters/otlp.hpp"
#include "wire.hpp"

namespace SPYGLASS_NAMESPACE::otlp {
namespace {

using detail::ProtoWriter;
using detail::SpanAttr;
using detail::SpanView;

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
  w.field_string(1, detail::kScopeName);
  w.field_string(2, detail::kScopeVersion);
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
char* put_bytes(char* p, std::string_view s) {
  std::memcpy(p, s.data(), s.size());
  return p + s.size();
}

// One span made ready for writing: its view with every string valid UTF-8 (repaired
// copies live in `fixed`), and the sizes of its parts.
struct PreparedSpan {
  SpanView v;
  std::string scratch;                         // text map_event() made up
  std::string fixed[SpanView::kMaxAttrs + 2];  // repaired strings, when needed
  std::size_t name = 0;                        // name bytes
  std::size_t any[SpanView::kMaxAttrs] = {};   // AnyValue message bytes
  std::size_t kv[SpanView::kMaxAttrs] = {};    // KeyValue message bytes
  std::size_t body = 0;                        // Span message bytes
};

void prepare(const Event& e, PreparedSpan& p) {
  p.v = detail::map_event(e, p.scratch);
  SpanView& v = p.v;
  v.name = detail::repaired(v.name, p.fixed[0]);
  v.name_prefix = detail::repaired(v.name_prefix, p.fixed[1]);
  p.name = v.name.size() + (v.name_prefix.empty() ? 0 : v.name_prefix.size() + 1);
  std::size_t body = 18 + 10 + (e.parent_span_id != 0 ? 10 : 0);  // trace_id, span_id, parent
  body += 1 + varint_size(p.name) + p.name;
  body += 1 + varint_size(v.kind) + 9 + 9;  // kind, start, end
  for (std::size_t i = 0; i < v.n_attrs; ++i) {
    SpanAttr& a = v.attrs[i];
    if (a.is_int) {
      p.any[i] = 1 + varint_size(static_cast<std::uint64_t>(a.num));
    } else {
      a.str = detail::repaired(a.str, p.fixed[2 + i]);
      p.any[i] = 1 + varint_size(a.str.size()) + a.str.size();
    }
    p.kv[i] = 1 + varint_size(a.key.size()) + a.key.size() + 1 + varint_size(p.any[i]) + p.any[i];
    body += 1 + varint_size(p.kv[i]) + p.kv[i];
  }
  if (v.error) body += 4;  // status { code }
  p.body = body;
}

char* put_span(char* p, const Event& e, const PreparedSpan& s) {
  const SpanView& v = s.v;
  *p++ = 0x12;  // ScopeSpans.spans (2, LEN)
  p = put_varint(p, s.body);
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
  p = put_varint(p, s.name);
  if (!v.name_prefix.empty()) {
    p = put_bytes(p, v.name_prefix);
    *p++ = ' ';
  }
  p = put_bytes(p, v.name);
  *p++ = 0x30;  // kind (6, VARINT)
  p = put_varint(p, v.kind);
  *p++ = 0x39;  // start_time_unix_nano (7, I64)
  p = put_fixed64(p, e.start);
  *p++ = 0x41;  // end_time_unix_nano (8, I64)
  p = put_fixed64(p, e.start + e.duration);
  for (std::size_t i = 0; i < v.n_attrs; ++i) {
    const SpanAttr& a = v.attrs[i];
    *p++ = 0x4a;  // attributes (9, LEN)
    p = put_varint(p, s.kv[i]);
    *p++ = 0x0a;  // KeyValue.key (1, LEN)
    p = put_varint(p, a.key.size());
    p = put_bytes(p, a.key);  // our own ASCII keys
    *p++ = 0x12;              // KeyValue.value (2, LEN)
    p = put_varint(p, s.any[i]);
    if (a.is_int) {
      *p++ = 0x18;  // AnyValue.int_value (3, VARINT)
      p = put_varint(p, static_cast<std::uint64_t>(a.num));
    } else {
      *p++ = 0x0a;  // AnyValue.string_value (1, LEN)
      p = put_varint(p, a.str.size());
      p = put_bytes(p, a.str);
    }
  }
  if (v.error) {
    *p++ = 0x7a;  // status (15, LEN)
    *p++ = 2;
    *p++ = 0x18;  // Status.code (3, VARINT)
    *p++ = static_cast<char>(detail::kStatusError);
  }
  return p;
}

}  // namespace

void encode_traces_protobuf(std::span<const Event> events, std::span<const Attribute> resource,
                            std::string& out) {
  // Pass 1: the size of every span, hence of the enclosing messages. The vector is kept
  // between calls (per thread) with its strings' capacity.
  thread_local std::vector<PreparedSpan> prepared;
  if (prepared.size() < events.size()) prepared.resize(events.size());
  std::size_t spans_total = 0;
  for (std::size_t i = 0; i < events.size(); ++i) {
    prepare(events[i], prepared[i]);
    spans_total += 1 + varint_size(prepared[i].body) + prepared[i].body;
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
  p = put_bytes(p, head);
  *p++ = 0x12;  // ResourceSpans.scope_spans (2, LEN)
  p = put_varint(p, scope_spans);
  p = put_bytes(p, scope);
  for (std::size_t i = 0; i < events.size(); ++i) p = put_span(p, events[i], prepared[i]);
  out.resize(static_cast<std::size_t>(p - out.data()));  // == at + total
}

void encode_metrics_protobuf(std::span<const MetricSeries> series, std::span<const double> bounds,
                             std::span<const Attribute> resource, std::uint64_t start_ns,
                             std::uint64_t now_ns, std::string& out) {
  ProtoWriter w(out);
  const std::size_t rm = w.begin(1);  // ExportMetricsServiceRequest.resource_metrics
  pb_resource(w, 1, resource);
  const std::size_t sm = w.begin(2);  // ResourceMetrics.scope_metrics
  pb_scope(w, 1);
  const auto sorted = detail::series_by_kind(series);
  for (std::size_t i = 0; i < sorted.size();) {
    const EventKind kind = sorted[i]->kind;
    std::size_t end = i;
    while (end < sorted.size() && sorted[end]->kind == kind) ++end;
    auto attrs = [&w](std::uint32_t field) {
      return [&w, field](std::string_view k, std::string_view v) { pb_kv(w, field, k, v); };
    };
    {  // Metric { name = 1, description = 2, unit = 3, sum = 7 }
      const std::size_t m = w.begin(2);
      w.field_string(1, detail::metric_name(kind, "count"));
      w.field_string(2, "Operations recorded");
      w.field_string(3, "{operation}");
      const std::size_t sum = w.begin(7);
      for (std::size_t k = i; k < end; ++k) {
        const MetricSeries& s = *sorted[k];
        const std::size_t dp = w.begin(1);  // NumberDataPoint
        detail::series_attributes(s, attrs(7));
        w.field_fixed64(2, start_ns);
        w.field_fixed64(3, now_ns);
        w.field_fixed64(6, s.count);  // sfixed64 as_int
        w.end(dp);
      }
      w.field_varint(2, detail::kCumulative);
      w.field_varint(3, 1);  // is_monotonic
      w.end(sum);
      w.end(m);
    }
    {  // Metric { histogram = 9 }
      const std::size_t m = w.begin(2);
      w.field_string(1, detail::metric_name(kind, "duration"));
      w.field_string(2, "Duration of the operations recorded");
      w.field_string(3, "s");
      const std::size_t h = w.begin(9);
      for (std::size_t k = i; k < end; ++k) {
        const MetricSeries& s = *sorted[k];
        const std::size_t dp = w.begin(1);  // HistogramDataPoint
        detail::series_attributes(s, attrs(9));
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
      w.field_varint(2, detail::kCumulative);
      w.end(h);
      w.end(m);
    }
    i = end;
  }
  w.end(sm);
  w.end(rm);
}

}  // namespace SPYGLASS_NAMESPACE::otlp
