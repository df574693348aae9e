#pragma once
// The one mapping from spyglass events to OTLP spans and metric data points (names,
// kinds, attributes after the OpenTelemetry semantic conventions), shared by the protobuf
// and the JSON encoders, which only differ in how they write it.

#include <cstdint>
#include <span>
#include <string>
#include <string_view>
#include <vector>

#include "spyglass/event.hpp"
#include "spyglass/exporters/otlp.hpp"
#include "spyglass/version.hpp"

namespace SPYGLASS_NAMESPACE::otlp::detail {

// OTLP enum values (trace.proto, metrics.proto).
inline constexpr std::uint64_t kSpanKindInternal = 1;
inline constexpr std::uint64_t kSpanKindServer = 2;
inline constexpr std::uint64_t kSpanKindClient = 3;
inline constexpr std::uint64_t kStatusError = 2;
inline constexpr std::uint64_t kCumulative = 2;

inline constexpr std::string_view kScopeName = "spyglass";
inline constexpr std::string_view kScopeVersion = SPYGLASS_VERSION_STRING;

/// One span attribute: a string or an integer. Strings borrow from the event (whose
/// strings live until the process exits) or are literals.
struct SpanAttr {
  std::string_view key;
  std::string_view str;
  std::int64_t num = 0;
  bool is_int = false;
};

/// The span an event becomes. Its name is `name_prefix + " " + name` when a prefix is set.
struct SpanView {
  static constexpr std::size_t kMaxAttrs = 12;
  std::string_view name_prefix;
  std::string_view name;
  std::uint64_t kind = kSpanKindInternal;
  bool error = false;  ///< Status code ERROR.
  SpanAttr attrs[kMaxAttrs];
  std::size_t n_attrs = 0;
  void add(std::string_view k, std::string_view v) { attrs[n_attrs++] = {k, v, 0, false}; }
  void add(std::string_view k, std::int64_t v) { attrs[n_attrs++] = {k, {}, v, true}; }
};

/// The span of an event, after the semantic conventions for HTTP servers and clients,
/// databases and code. `scratch` holds text the span needs that the event does not (a
/// status code as a string, a client's url.full); it must outlive the SpanView.
SpanView map_event(const Event& e, std::string& scratch);

/// Name of a metric of one kind: "spyglass.<kind>.<what>".
std::string metric_name(EventKind kind, std::string_view what);

/// The data point attributes of a series, passed to `kv(key, value)`.
template <typename Kv>
void series_attributes(const MetricSeries& s, Kv&& kv) {
  if (s.overflow) {
    kv(std::string_view("otel.metric.overflow"), std::string_view("true"));
  } else {
    kv(std::string_view("spyglass.name"), std::string_view(s.name));
  }
  kv(std::string_view("spyglass.status"), to_string(s.status));
}

/// The series grouped by kind, in kind order (stable), so each kind becomes one metric.
std::vector<const MetricSeries*> series_by_kind(std::span<const MetricSeries> series);

/// `s` when it is valid UTF-8, else `s` repaired (spyglass/utf8.hpp's rule) into `scratch`.
std::string_view repaired(std::string_view s, std::string& scratch);

}  // namespace SPYGLASS_NAMESPACE::otlp::detail
