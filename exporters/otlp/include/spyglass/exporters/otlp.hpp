#pragma once
/// OTLP/HTTP exporter: spans and metrics as protobuf or JSON, sent from the collector's
/// stage thread for this exporter.

#include <chrono>
#include <cstddef>
#include <cstdint>
#include <functional>
#include <memory>
#include <span>
#include <string>
#include <string_view>
#include <utility>
#include <variant>
#include <vector>

#include "spyglass/config.hpp"
#include "spyglass/event.hpp"
#include "spyglass/exporter.hpp"

namespace SPYGLASS_NAMESPACE::otlp {

/// Body encoding of the requests (OTEL_EXPORTER_OTLP_PROTOCOL).
enum class Protocol : std::uint8_t { http_protobuf, http_json };

/// Content-Encoding of the requests (OTEL_EXPORTER_OTLP_COMPRESSION).
enum class Compression : std::uint8_t { none, gzip };

/// The samplers OTEL_TRACES_SAMPLER names.
enum class SamplerKind : std::uint8_t {
  always_on,
  always_off,
  traceidratio,
  parentbased_always_on,
  parentbased_always_off,
  parentbased_traceidratio,
};

/// The parsed OTEL_TRACES_SAMPLER / OTEL_TRACES_SAMPLER_ARG.
///
/// The exporter does not sample: the core decides on the hot path, and only recorded spans
/// reach exporters. Nothing is applied by constructing an OtlpExporter; an application
/// hands the two settings to its Session:
///
///     so.sample_ratio = options.sampler.root_ratio();
///     so.parent_based = options.sampler.parent_based();
///
/// What the core does with them: a span with no parent starts a trace, recorded when its
/// trace id falls under the ratio. A span under a local parent (an enclosing scope, or a
/// Context carried to another thread) inherits that parent's decision. A RequestScope
/// continuing a valid W3C `traceparent` has a remote parent: with parent_based it takes
/// the caller's sampled flag, without it the ratio decides from the trace id as for a
/// root. Hence every OTEL_TRACES_SAMPLER value is honoured:
///
/// - parentbased_always_on, parentbased_always_off, parentbased_traceidratio: the root
///   decided by 1, 0 or the ratio; local and remote parents followed.
/// - always_on, always_off, traceidratio: every trace decided by 1, 0 or the ratio from
///   its trace id, a remote caller's flag ignored. Local children inherit the decision,
///   which is the one the sampler would make for them too (same trace id, same ratio).
///
/// The core compares the low 64 bits of the trace id with the ratio; 0 records no trace
/// and 1 every trace, whatever the id. Only the sampling API of the core is involved:
/// spyglass::set_sample_ratio() and spyglass::set_parent_based_sampling() do the same as the two
/// SessionOptions fields.
struct SamplerConfig {
  SamplerKind kind = SamplerKind::parentbased_always_on;
  /// The ratio argument of the *traceidratio kinds, in [0, 1]; ignored by the others.
  double ratio = 1.0;
  /// Fraction of new traces to record: 1 for *always_on, 0 for *always_off, else ratio.
  /// For SessionOptions::sample_ratio.
  [[nodiscard]] SPYGLASS_API double root_ratio() const noexcept;
  /// Whether a remote parent's sampled flag decides: true for the parentbased_* kinds.
  /// For SessionOptions::parent_based.
  [[nodiscard]] SPYGLASS_API bool parent_based() const noexcept;
};

/// The OTEL_TRACES_SAMPLER spelling of a kind ("parentbased_traceidratio", ...).
SPYGLASS_API std::string_view to_string(SamplerKind kind) noexcept;

/// A resource attribute value: a string or an integer (process.pid).
using AttributeValue = std::variant<std::string, std::int64_t>;

/// One resource attribute.
struct Attribute {
  std::string key;
  AttributeValue value;
  friend bool operator==(const Attribute&, const Attribute&) = default;
};

/// The longest duration any setting of OtlpOptions takes (one day). A longer one, from code
/// or from the environment, is clamped to it with a warning, so that no deadline overflows.
inline constexpr std::chrono::milliseconds kMaxDuration = std::chrono::hours(24);

/// Settings of an OtlpExporter. Defaults follow the OTLP specification; from_env() fills
/// them from the standard OTEL_* variables. The exporter checks them when it is
/// constructed: durations are clamped to [0, kMaxDuration] (a timeout of zero or less
/// becomes the default), and headers that could not be sent safely are left out; each
/// correction is reported through spyglass::log (source "otlp").
///
/// Batching and buffering are the collector's (CollectorOptions::batch_max and
/// buffer_capacity): the exporter keeps no queue of its own.
struct OtlpOptions {
  /// Full URL spans are POSTed to, used as it is.
  std::string traces_endpoint = "http://localhost:4318/v1/traces";
  /// Full URL metrics are POSTed to, used as it is.
  std::string metrics_endpoint = "http://localhost:4318/v1/metrics";
  /// Extra request headers (e.g. authorization) per signal. A header whose name is not an
  /// HTTP token, or whose value holds a control character (CR, LF, NUL, HTAB, DEL, ...),
  /// is never sent: such a value could end the header early and add others.
  std::vector<std::pair<std::string, std::string>> traces_headers;
  std::vector<std::pair<std::string, std::string>> metrics_headers;
  Protocol traces_protocol = Protocol::http_protobuf;
  Protocol metrics_protocol = Protocol::http_protobuf;
  Compression traces_compression = Compression::none;
  Compression metrics_compression = Compression::none;
  /// Time limit of one HTTP request (connect + send + response);
  /// OTEL_EXPORTER_OTLP_TIMEOUT and its per-signal variants.
  std::chrono::milliseconds traces_timeout{10000};
  std::chrono::milliseconds metrics_timeout{10000};

  /// service.name; "unknown_service:<process name>" when empty.
  std::string service_name;
  /// service.version; omitted when empty.
  std::string service_version;
  /// Further resource attributes (OTEL_RESOURCE_ATTRIBUTES). As in the OpenTelemetry
  /// SDKs' resource merge, these win over what the exporter detects (host.name,
  /// process.pid), while the fields above win over them: service.name here is used only
  /// when service_name is empty, service.version only when service_version is. The
  /// telemetry.sdk.* attributes describe spyglass and are never replaced. For a key listed
  /// twice the first entry counts.
  std::vector<Attribute> resource_attributes;

  /// OTEL_SDK_DISABLED: the exporter makes no connection and sends nothing; export_batch()
  /// counts the spans as dropped and returns false. Set as well when the process has
  /// OTEL_SDK_DISABLED=true, whatever the options say (the SDK is off as a whole).
  bool disabled = false;
  /// The parsed sampler settings, for the application to hand to its Session.
  SamplerConfig sampler;

  /// Metrics (per kind, name and status: a count and a duration histogram) are sent with
  /// the first export or flush after this much time since the last ones (a flush always
  /// sends them when they changed); zero turns metrics off.
  std::chrono::milliseconds metrics_interval{60000};
  /// Upper bounds of the duration histogram's buckets, in seconds, ascending (sorted, and
  /// non-finite or repeated ones dropped, when not).
  std::vector<double> histogram_bounds{0.005, 0.01, 0.025, 0.05, 0.075, 0.1, 0.25,
                                       0.5,   0.75, 1.0,   2.5,  5.0,   7.5, 10.0};
  /// Distinct (kind, name, status) series kept; further ones are folded into one series
  /// per kind and status with the attribute otel.metric.overflow=true.
  std::size_t max_metric_series = 2000;

  /// Attempts per request (first try included) on retryable failures (429, 502, 503, 504,
  /// connection failures and timeouts).
  int max_attempts = 5;
  /// Backoff before the first retry; doubled after each, jittered by +-20 %, capped.
  std::chrono::milliseconds initial_backoff{1000};
  std::chrono::milliseconds max_backoff{30000};
  /// Longest wait a Retry-After may ask for; a longer one is cut to this.
  std::chrono::milliseconds max_retry_after{60000};
  /// Longest time one export (all its attempts and waits) may take before the batch is
  /// given up and counted as failed: OTEL_BSP_EXPORT_TIMEOUT. It bounds how long a dead
  /// receiver holds the collector's stage thread, while the collector's buffer fills.
  std::chrono::milliseconds export_timeout{30000};
  /// How long the collector's shutdown waits for this exporter (Exporter::
  /// shutdown_timeout()): delivering what the collector's buffer holds, then the final
  /// metrics. From begin_shutdown() on, no request, retry or wait lasts past it, whatever
  /// the receiver does. OTEL_BSP_EXPORT_TIMEOUT sets it as well as export_timeout: the
  /// batch span processor's export timeout also bounds its shutdown.
  std::chrono::milliseconds shutdown_timeout{5000};
};

/// Reads an environment variable; returns null when unset.
using EnvLookup = std::function<const char*(const char*)>;

/// `base` overridden by the OTEL_* environment variables that are set.
///
/// A signal-specific variable (OTEL_EXPORTER_OTLP_TRACES_*, ..._METRICS_*) replaces the
/// generic one for its signal; for headers too, as the OTLP exporter specification asks:
/// with OTEL_EXPORTER_OTLP_TRACES_HEADERS set, OTEL_EXPORTER_OTLP_HEADERS does not apply to
/// traces. Headers from the environment are added to those of `base`, replacing any of the
/// same name (compared case-insensitively). OTEL_RESOURCE_ATTRIBUTES is appended to
/// base.resource_attributes, so attributes set in `base` win.
///
/// Endpoints: OTEL_EXPORTER_OTLP_ENDPOINT is a base URL; each signal's path (/v1/traces,
/// /v1/metrics) is appended to its path (one slash between them), and its query string,
/// if any, is kept after it (a fragment is dropped): `http://h:4318/p/?k=v` sends spans to
/// `http://h:4318/p/v1/traces?k=v`. OTEL_EXPORTER_OTLP_TRACES_ENDPOINT and
/// OTEL_EXPORTER_OTLP_METRICS_ENDPOINT are used as they are.
///
/// A malformed value leaves the field as it was in `base`, and a warning naming the
/// variable is appended to `warnings` (when given) and reported through spyglass::log.
/// Malformed header
/// entries are skipped one by one (header values are never echoed: they are often
/// secrets); OTEL_RESOURCE_ATTRIBUTES with any malformed entry (such as a bad
/// percent-escape) is discarded whole, as the resource specification asks. A duration
/// above kMaxDuration is clamped to it with a warning. Never throws for bad values.
/// `lookup` defaults to std::getenv. Thread-safe if `lookup` is.
SPYGLASS_API OtlpOptions from_env(OtlpOptions base = {}, std::vector<std::string>* warnings = nullptr,
                                  const EnvLookup& lookup = {});

/// The resource the exporter sends: service.name, service.version, host.name, process.pid,
/// telemetry.sdk.{name,language,version} and the other options.resource_attributes, in
/// that order, with the precedence OtlpOptions::resource_attributes describes.
SPYGLASS_API std::vector<Attribute> make_resource(const OtlpOptions& options);

/// Aggregates of one (kind, name, status) series, as encoded in a metrics request.
struct MetricSeries {
  EventKind kind = EventKind::custom;
  std::string name;
  Status status = Status::ok;  ///< A dimension: the data point attribute spyglass.status.
  bool overflow = false;       ///< The series of names beyond max_metric_series.
  std::uint64_t count = 0;
  double sum_seconds = 0;
  double min_seconds = 0;
  double max_seconds = 0;
  std::vector<std::uint64_t> bucket_counts;  ///< bounds.size() + 1 entries.
};

/// Encoders of the OTLP request bodies. Stateless and thread-safe; each appends to `out`.
/// Strings that are not valid UTF-8 are repaired with spyglass/utf8.hpp's rule because
/// OTLP string fields must be UTF-8.
///
/// Spans: ExportTraceServiceRequest with one ResourceSpans and one ScopeSpans (scope
/// "spyglass"); every event given becomes a span (the exporter passes only sampled ones).
/// Attributes follow the semantic conventions: a request is an HTTP server span
/// (http.request.method, http.route, url.path, url.scheme, http.response.status_code, and
/// error.type on errors: the status code for 5xx, else "_OTHER"); a client event an HTTP
/// client span named "<method> <route template>" (http.request.method, server.address,
/// server.port, url.full: the server and the route template, never the raw path or
/// query; url.template, http.response.status_code, body sizes, and error.type on errors:
/// the status code for 4xx and 5xx, else "_OTHER" for a failed transfer); a query a
/// database client span (db.system.name and db.system, "other_sql" when none was named;
/// db.query.text, ...).
/// Metrics: ExportMetricsServiceRequest with, per kind present, the sum
/// spyglass.<kind>.count and the histogram spyglass.<kind>.duration (unit s), one data
/// point per name and status (attributes spyglass.name, spyglass.status), cumulative
/// since `start_ns`.
SPYGLASS_API void encode_traces_protobuf(std::span<const Event> events, std::span<const Attribute> resource,
                                         std::string& out);
SPYGLASS_API void encode_traces_json(std::span<const Event> events, std::span<const Attribute> resource,
                                     std::string& out);
SPYGLASS_API void encode_metrics_protobuf(std::span<const MetricSeries> series,
                                          std::span<const double> bounds, std::span<const Attribute> resource,
                                          std::uint64_t start_ns, std::uint64_t now_ns, std::string& out);
SPYGLASS_API void encode_metrics_json(std::span<const MetricSeries> series, std::span<const double> bounds,
                                      std::span<const Attribute> resource, std::uint64_t start_ns,
                                      std::uint64_t now_ns, std::string& out);

/// The exporter's accounting of spans: `produced == sent + dropped + failed + pending`
/// holds in every snapshot, and the counters are final once the collector's shutdown (or
/// shutdown()) returned.
struct OtlpCounters {
  std::uint64_t produced = 0;              ///< Spans (sampled events) handed to export_batch().
  std::uint64_t sent = 0;                  ///< Spans the receiver accepted.
  std::uint64_t dropped = 0;               ///< Given while disabled or after shutdown().
  std::uint64_t failed = 0;                ///< In requests given up, or rejected by a partial_success.
  std::uint64_t pending = 0;               ///< In the request being made now.
  std::uint64_t rejected = 0;              ///< Of `failed`: rejected by the receiver in a partial_success.
  std::uint64_t unsampled = 0;             ///< Events of unsampled traces: counted in metrics only.
  std::uint64_t requests = 0;              ///< HTTP requests made for spans (retries included).
  std::uint64_t retries = 0;               ///< Of the requests: retries, for spans and metrics.
  std::uint64_t metric_exports = 0;        ///< Metrics requests the receiver accepted.
  std::uint64_t metric_failures = 0;       ///< Metrics requests given up.
  std::uint64_t rejected_data_points = 0;  ///< Reported in metrics partial_success responses.
};

namespace detail {
struct OtlpState;
}

/// Exports spans (and metrics) to an OTLP/HTTP receiver.
///
/// Every Exporter call comes from the collector's stage thread for this exporter, which
/// makes the requests itself: export_batch() encodes the batch, POSTs it and retries with
/// exponential backoff (honouring Retry-After, capped) until it is delivered, refused
/// for good, out of attempts or out of export_timeout. It starts no thread and keeps no
/// queue: the collector's per-exporter buffer is the only one. begin_shutdown() (from
/// another thread) cuts any request or wait short at the shutdown deadline.
/// counters() and options() are thread-safe.
class SPYGLASS_API OtlpExporter final : public Exporter {
 public:
  explicit OtlpExporter(OtlpOptions options = {});
  ~OtlpExporter() override;
  OtlpExporter(const OtlpExporter&) = delete;
  OtlpExporter& operator=(const OtlpExporter&) = delete;

  /// Sends the sampled events as spans and counts every event in the metrics (sending
  /// those too when metrics_interval has passed). Returns true when the spans were
  /// delivered (a partial_success counts as delivered; its rejected spans are counted and
  /// logged), false when the request was given up, when disabled and after shutdown().
  bool export_batch(std::span<const Event> events) override;
  /// Sends the metrics when they changed since they were last sent.
  void flush() override;
  /// Sends the final metrics (within the shutdown deadline) and stops: later batches are
  /// dropped. Idempotent.
  void shutdown() override;
  /// OtlpOptions::shutdown_timeout.
  [[nodiscard]] std::chrono::milliseconds shutdown_timeout() const override;
  /// From now on no request, retry wait or backoff lasts past `deadline` (a little before
  /// it, so that the collector sees this exporter finish in time). Thread-safe, never blocks.
  void begin_shutdown(std::chrono::steady_clock::time_point deadline) noexcept override;
  /// True while metrics are on: metrics count every event, sampled or not.
  [[nodiscard]] bool accepts_unsampled() const override;
  /// Opens new HTTP handles and forgets the parent's metric aggregates and counters.
  void after_fork_child() override;
  [[nodiscard]] std::string_view name() const override { return "otlp"; }

  /// A snapshot of the accounting.
  [[nodiscard]] OtlpCounters counters() const;
  /// The options in force.
  [[nodiscard]] const OtlpOptions& options() const noexcept;

 private:
  std::unique_ptr<detail::OtlpState> state_;
};

}  // namespace SPYGLASS_NAMESPACE::otlp
