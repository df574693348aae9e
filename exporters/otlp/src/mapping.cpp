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

// http.request.method, and the method as sent when the conventions do not know it.
void add_method(SpanView& s, std::string_view method) {
  if (known_method(method)) {
    s.add("http.request.method", method);
  } else {
    s.add("http.request.method", std::string_view("_OTHER"));
    if (!method.empty()) s.add("http.request.method_original", method);
  }
}

// Appends an HTTP status code as text (error.type names an HTTP error by it).
void append_status(std::uint16_t code, std::string& out) {
  char buf[8];
  const auto r = std::to_chars(buf, buf + sizeof buf, code);
  out.append(buf, r.ptr);
}

// server.address and server.port of a client event's peer, "scheme://host:port" (an
// IPv6 host in brackets, which server.address goes without).
struct ServerParts {
  std::string_view host;
  std::uint16_t port = 0;
};
ServerParts split_origin(std::string_view origin) {
  ServerParts out;
  const std::size_t scheme = origin.find("://");
  if (scheme == std::string_view::npos) return out;
  std::string_view rest = origin.substr(scheme + 3);
  const std::size_t colon = rest.rfind(':');
  if (colon != std::string_view::npos && rest.find(']', colon) == std::string_view::npos) {
    const std::string_view digits = rest.substr(colon + 1);
    unsigned port = 0;
    const auto r = std::from_chars(digits.data(), digits.data() + digits.size(), port);
    if (r.ec == std::errc{} && r.ptr == digits.data() + digits.size() && port > 0 && port < 65536)
      out.port = static_cast<std::uint16_t>(port);
    rest = rest.substr(0, colon);
  }
  if (rest.size() >= 2 && rest.front() == '[' && rest.back() == ']') rest = rest.substr(1, rest.size() - 2);
  out.host = rest;
  return out;
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
      add_method(s, detail);
      s.add("http.route", name);
      s.add("url.path", name);
      s.add("url.scheme", std::string_view("http"));
      if (e.http_status != 0) s.add("http.response.status_code", std::int64_t{e.http_status});
      if (e.bytes_in != 0) s.add("http.request.body.size", clamp_i64(e.bytes_in));
      if (e.bytes_out != 0) s.add("http.response.body.size", clamp_i64(e.bytes_out));
      if (e.http_status >= 500) {
        // A server error is named by its status code, as a string.
        scratch.clear();
        append_status(e.http_status, scratch);
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
    case EventKind::client: {
      // HTTP client span (semantic conventions: http.*, server.*, url.*). spyglass records
      // the route template called and the server as "scheme://host:port", never the raw
      // path or query: url.full is the server followed by the template.
      s.kind = kSpanKindClient;
      // "{method} {url.template}", the method "HTTP" when the conventions do not know it.
      s.name_prefix = known_method(detail) ? detail : std::string_view("HTTP");
      add_method(s, detail);
      const std::string_view peer = e.peer ? e.peer : "";
      const ServerParts server = split_origin(peer);
      if (!server.host.empty()) s.add("server.address", server.host);
      if (server.port != 0) s.add("server.port", std::int64_t{server.port});
      const bool is_path = !name.empty() && name[0] == '/';
      // scratch holds url.full, then the status code for error.type: views are taken once
      // both are in.
      scratch.clear();
      if (!peer.empty()) {
        scratch.assign(peer);
        if (is_path) scratch += name;
      }
      const std::size_t url_size = scratch.size();
      // A client span fails on 4xx as well (the adapter marks those), and always on 5xx;
      // such an error is named by the status code.
      if (e.http_status >= 500) s.error = true;
      error_typed = s.error && e.http_status >= 400;
      if (error_typed) append_status(e.http_status, scratch);
      const std::string_view text(scratch);
      if (url_size != 0) s.add("url.full", text.substr(0, url_size));
      if (is_path) s.add("url.template", name);
      if (e.http_status != 0) s.add("http.response.status_code", std::int64_t{e.http_status});
      if (e.bytes_out != 0) s.add("http.request.body.size", clamp_i64(e.bytes_out));
      if (e.bytes_in != 0) s.add("http.response.body.size", clamp_i64(e.bytes_in));
      if (error_typed) s.add("error.type", text.substr(url_size));
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
