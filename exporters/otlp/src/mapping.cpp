// Events to spans and metric points: what every OTLP encoding of spyglass data says.

#include "mapping.hpp"

#include <algorithm>
#include <charconv>

#include "spyglass/utf8.hpp"

namespace SPYGLASS_NAMESPACE::otlp::detail {
namespace {

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

// The methods http.request.method may name; any other is reported as "_OTHER".
bool known_method(std::string_view m) {
  for (std::string_view k :
       {"GET", "HEAD", "POST", "PUT", "DELETE", "CONNECT", "OPTIONS", "TRACE", "PATCH"}) {
    if (m == k) return true;
  }
  return false;
}

// error.type's value when the semantic conventions know no better name for the error.
constexpr std::string_view kOtherError = "_OTHER";

}  // namespace

SpanView map_event(const Event& e, std::string& scratch) {
  SpanView s;
  const std::string_view name = e.name ? e.name : "";
  const std::string_view detail = e.detail ? e.detail : "";
  s.name = name;
  s.error = e.status == Status::error;
  bool error_typed = false;
  switch (e.kind) {
    case EventKind::request: {
      // HTTP server span (semantic conventions: http.* and url.*). spyglass records the
      // route a request matched, which is also the path it knows.
      s.kind = kSpanKindServer;
      s.name_prefix = detail;  // "GET /users/{id}"
      if (known_method(detail)) {
        s.add("http.request.method", detail);
      } else {
        s.add("http.request.method", std::string_view("_OTHER"));
        if (!detail.empty()) s.add("http.request.method_original", detail);
      }
      s.add("http.route", name);
      s.add("url.path", name);
      s.add("url.scheme", std::string_view("http"));
      if (e.http_status != 0) s.add("http.response.status_code", std::int64_t{e.http_status});
      if (e.bytes_in != 0) s.add("http.request.body.size", clamp_i64(e.bytes_in));
      if (e.bytes_out != 0) s.add("http.response.body.size", clamp_i64(e.bytes_out));
      if (e.http_status >= 500) {
        // A server error is named by its status code, as a string.
        char buf[8];
        const auto r = std::to_chars(buf, buf + sizeof buf, e.http_status);
        scratch.assign(buf, r.ptr);
        s.add("error.type", std::string_view(scratch));
        s.error = true;
        error_typed = true;
      }
      break;
    }
    case EventKind::db: {
      s.kind = kSpanKindClient;
      const std::string_view op = sql_operation(name);
      s.name = !op.empty() ? op : (!detail.empty() ? detail : std::string_view("db"));
      // db.system.name is the stable convention's name; db.system, the older one, is
      // what many backends still read. Both, with "other_sql" when none was named.
      const std::string_view system = !detail.empty() ? detail : std::string_view("other_sql");
      s.add("db.system.name", system);
      s.add("db.system", system);
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
  // An error spyglass knows no more about (an exception, a failed query, ...).
  if (s.error && !error_typed) s.add("error.type", kOtherError);
  if (e.thread_id != 0) s.add("thread.id", std::int64_t{e.thread_id});
  return s;
}

std::string metric_name(EventKind kind, std::string_view what) {
  std::string n = "spyglass.";
  n += to_string(kind);
  n += '.';
  n += what;
  return n;
}

std::vector<const MetricSeries*> series_by_kind(std::span<const MetricSeries> series) {
  std::vector<const MetricSeries*> v;
  v.reserve(series.size());
  for (const MetricSeries& s : series) v.push_back(&s);
  std::stable_sort(v.begin(), v.end(), [](const MetricSeries* a, const MetricSeries* b) {
    return static_cast<int>(a->kind) < static_cast<int>(b->kind);
  });
  return v;
}

std::string_view repaired(std::string_view s, std::string& scratch) {
  if (is_valid_utf8(s)) return s;
  scratch.clear();
  append_utf8_repaired(s, scratch);
  return scratch;
}

}  // namespace SPYGLASS_NAMESPACE::otlp::detail
