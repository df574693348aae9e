#pragma once
/// OTLP/HTTP exporter: spans and metrics as protobuf or JSON, sent by a thread of its own.

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
/// correction prints a warning to stderr.
struct OtlpOptions {
  /// Full URL spans are POSTed to.
  std::string traces_endpoint = "http://localhost:4318/v1/traces";
  /// Full URL metrics are POSTed to.
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
  /// Time limit of one HTTP request (connect + send + response).
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

  /// OTEL_SDK_DISABLED: the exporter accepts events, sends nothing and counts them dropped.
  bool disabled = false;
  /// The parsed sampler settings, for the application to hand to its Session.
  SamplerConfig sampler;

  /// Spans the exporter's own buffer holds; when full, the oldest is dropped and counted.
  std::size_t max_queue_size = 2048;
  /// Spans per request.
  std::size_t max_export_batch_size = 512;
  /// A partial batch is sent once it has waited this long.
  std::chrono::milliseconds schedule_delay{1000};

  /// Metrics (per kind and name: a count and a duration histogram) are sent this often;
  /// zero turns metrics off.
  std::chrono::milliseconds metrics_interval{60000};
  /// Upper bounds of the duration histogram's buckets, in seconds, ascending (sorted, and
  /// non-finite or repeated ones dropped, when not).
  std::vector<double> histogram_bounds{0.005, 0.01, 0.025, 0.05, 0.075, 0.1, 0.25,
                                       0.5,   0.75, 1.0,   2.5,  5.0,   7.5, 10.0};
  /// Distinct (kind, name) series kept; further names are folded into one series per kind
  /// with the attribute otel.metric.overflow=true.
  std::size_t max_metric_series = 2000;

  /// Attempts per request (first try included) on retryable failures (429, 502, 503, 504,
  /// connection failures and timeouts).
  int max_attempts = 5;
  /// Backoff before the first retry; doubled after each, jittered by +-20 %, capped.
  std::chrono::milliseconds initial_backoff{1000};
  std::chrono::milliseconds max_backoff{30000};
  /// Longest wait a Retry-After may ask for; a longer one is cut to this.
  std::chrono::milliseconds max_retry_after{60000};
  /// How long shutdown() keeps trying to send what is buffered.
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
/// A malformed value leaves the field as it was in `base`, and a warning naming the
/// variable is appended to `warnings` (when given) and printed to stderr. Malformed header
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

/// Aggregates of one (kind, name) series, as encoded in a metrics request.
struct MetricSeries {
  EventKind kind = EventKind::custom;
  std::string name;
  bool overflow = false;  ///< The series of names beyond max_metric_series.
  std::uint64_t count = 0;
  std::uint64_t errors = 0;
  double sum_seconds = 0;
  double min_seconds = 0;
  double max_seconds = 0;
  std::vector<std::uint64_t> bucket_counts;  ///< bounds.size() + 1 entries.
};

/// Encoders of the OTLP request bodies. Stateless and thread-safe; each appends to `out`.
/// Strings that are not valid UTF-8 are repaired (invalid bytes become U+FFFD) because
/// OTLP string fields must be UTF-8.
///
/// Spans: ExportTraceServiceRequest with one ResourceSpans and one ScopeSpans (scope
/// "spyglass"). Metrics: ExportMetricsServiceRequest with, per kind present, the sum
/// spyglass.<kind>.count and the histogram spyglass.<kind>.duration (unit s), one data
/// point per name (attribute spyglass.name), cumulative since `start_ns`.
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
/// holds in every snapshot.
struct OtlpCounters {
  std::uint64_t produced = 0;         ///< Spans handed to export_batch().
  std::uint64_t sent = 0;             ///< Spans the receiver accepted.
  std::uint64_t dropped = 0;          ///< Evicted from the full buffer, left at shutdown, or disabled.
  std::uint64_t failed = 0;           ///< In requests that failed for good, or rejected by a partial_success.
  std::uint64_t pending = 0;          ///< In the buffer or in a request now.
  std::uint64_t rejected = 0;         ///< Of `failed`: rejected by the receiver in a partial_success.
  std::uint64_t requests = 0;         ///< HTTP requests made for spans (retries included).
  std::uint64_t retries = 0;          ///< Of `requests`: retries, for spans and metrics.
  std::uint64_t metric_exports = 0;   ///< Metrics requests the receiver accepted.
  std::uint64_t metric_failures = 0;  ///< Metrics requests that failed for good.
  std::uint64_t rejected_data_points = 0;  ///< Reported in metrics partial_success responses.
};

namespace detail {
struct OtlpState;
}

/// Exports spans (and metrics) to an OTLP/HTTP receiver.
///
/// export_batch() only copies the events into a bounded buffer and updates the metric
/// aggregates; requests, gzip and retries happen on the exporter's own sender thread, so
/// a slow or dead receiver never blocks the caller. The Exporter calls come from the
/// collector's worker thread; counters(), force_flush() and the accessors are
/// thread-safe and may be called from any thread.
class SPYGLASS_API OtlpExporter final : public Exporter {
 public:
  explicit OtlpExporter(OtlpOptions options = {});
  ~OtlpExporter() override;  ///< shutdown().
  OtlpExporter(const OtlpExporter&) = delete;
  OtlpExporter& operator=(const OtlpExporter&) = delete;

  /// Copies the events into the buffer (dropping the oldest when full). Never blocks on
  /// the network; returns false only after shutdown().
  bool export_batch(std::span<const Event> events) override;
  /// Asks the sender to send what is buffered now; does not wait.
  void flush() override;
  /// Sends what is buffered and the final metrics, for at most shutdown_timeout; what is
  /// still unsent then is counted as dropped. Idempotent.
  void shutdown() override;
  void after_fork_child() override;
  [[nodiscard]] std::string_view name() const override { return "otlp"; }

  /// Sends what is buffered now (and the metrics), and waits until the buffer is empty
  /// and no request is in flight, or `timeout`. Returns true if it got there in time.
  bool force_flush(std::chrono::milliseconds timeout = std::chrono::seconds(5));

  /// A snapshot of the accounting.
  [[nodiscard]] OtlpCounters counters() const;
  /// The options in force.
  [[nodiscard]] const OtlpOptions& options() const noexcept;

 private:
  std::unique_ptr<detail::OtlpState> state_;
};

}  // namespace SPYGLASS_NAMESPACE::otlp
