#pragma once
/// Prometheus exporter: turns events into counters and histograms, serves them on
/// /metrics (pull) and/or pushes them to a Pushgateway, on prometheus-cpp.

#include <atomic>
#include <chrono>
#include <cstddef>
#include <cstdint>
#include <memory>
#include <optional>
#include <span>
#include <string>
#include <string_view>
#include <vector>

#include <prometheus/metric_family.h>
#include <prometheus/registry.h>

#include "spyglass/collector.hpp"
#include "spyglass/config.hpp"
#include "spyglass/event.hpp"
#include "spyglass/exporter.hpp"

namespace SPYGLASS_NAMESPACE::prom {

/// Upper bounds (seconds) of the default latency buckets: 1, 2 and 5 per decade from
/// 1 µs to 50 s, then 60 s (25 bounds). Quantiles are then exact to within a factor of
/// 2.5 anywhere from 1 µs to 60 s; shorter events land in the first bucket, longer ones
/// in +Inf. Each (kind, name) costs 28 histogram series with them (25 bounds, +Inf,
/// _sum, _count) beside its 2 spyglass_events_total series.
SPYGLASS_API std::vector<double> default_buckets();

/// Settings of a PrometheusExporter. Every field has a default that works on one machine.
struct PrometheusOptions {
  /// Address the /metrics endpoint listens on ("host:port"; port 0 picks a free one).
  /// Empty: no endpoint (push only, or scrape() by hand).
  std::string listen_address = "127.0.0.1:9464";
  /// HTTP worker threads of the endpoint. Each serves one connection at a time, idle or
  /// not, until request_timeout frees it: with the defaults a scrape is answered at once
  /// while 31 other clients are connected, and within request_timeout while 63 are.
  std::size_t server_threads = 32;
  /// How long a client may take to send its whole request, and how long the writing of
  /// a response may stall; a client idle or slower than that is disconnected. Keep-alive
  /// is off, so an idle connection never holds a thread for longer.
  std::chrono::milliseconds request_timeout{500};
  /// Upper bounds (seconds) of spyglass_event_duration_seconds: finite, > 0, ascending.
  std::vector<double> buckets = default_buckets();
  /// Cardinality guard: the most series the event families (spyglass_events_total,
  /// spyglass_event_duration_seconds, spyglass_db_rows_total,
  /// spyglass_http_request_bytes_total) hold together. A (kind, name) costs all of its
  /// series: 2 + buckets.size() + 3, plus 1 for db and 2 for request (30, 31 and 32 with
  /// the default buckets, so the default admits about 1000 names). Events of a (kind,
  /// name) that no longer fits are counted under name="__other__" of their kind and in
  /// spyglass_series_overflow_total; those "__other__" series (one set per kind) are
  /// always kept, beyond the limit if need be. Events actually named "__other__" share
  /// that series but are no overflow.
  std::size_t max_series = 30000;
  /// Collector whose health is exported as spyglass_collector_* and spyglass_exporter_*;
  /// optional. It is read on each scrape until this exporter's shutdown() (which the
  /// collector calls when it shuts down); the last values read then are kept.
  const Collector* collector = nullptr;
  /// Export process_* metrics read from /proc/self.
  bool process_metrics = true;
  /// Registry for the application's own prometheus-cpp metrics, served and pushed with
  /// the exporter's; null: the exporter makes one (see registry()).
  std::shared_ptr<::prometheus::Registry> registry;

  /// Pushgateway base URL ("http://127.0.0.1:9091"); empty: no push.
  std::string push_url;
  /// Grouping key: job and instance (instance empty: the host name).
  std::string push_job = "spyglass";
  std::string push_instance;
  /// Time between pushes (on a timer thread of the exporter); one more push happens at
  /// shutdown().
  std::chrono::milliseconds push_interval{15000};
  /// The longest one push may take, connection and answer included; past it the push
  /// fails (logged as a warning and counted in spyglass_prometheus_push_failures_total).
  std::chrono::milliseconds push_timeout{3000};
};

/// Numbers of the current process as the Prometheus client libraries export them.
struct ProcessStats {
  double cpu_seconds = 0;            ///< User + system CPU time.
  double resident_memory_bytes = 0;  ///< RSS.
  double virtual_memory_bytes = 0;   ///< VSZ.
  double open_fds = 0;               ///< Open file descriptors.
  double max_fds = 0;                ///< Soft limit on open files (+Inf when unlimited).
  double start_time_seconds = 0;     ///< Start time, Unix epoch seconds.
  double threads = 0;                ///< OS threads.
};

/// Reads /proc/self (stat, limits, fd/) and /proc/stat. Empty when /proc is not
/// readable. Thread-safe.
SPYGLASS_API std::optional<ProcessStats> read_process_stats();

/// Outcome counts of pushes to the Pushgateway.
struct PushCounters {
  std::uint64_t ok = 0;      ///< Pushes answered with 2xx.
  std::uint64_t failed = 0;  ///< Pushes that failed (connection error, timeout or non-2xx).
  int last_status = 0;       ///< HTTP status of the last push; < 0 for a transport error or timeout.
};

namespace detail {
class EventMetrics;
class ProcessCollectable;
class Pusher;
}  // namespace detail

/// Exports events as Prometheus metrics. Every family labels the operation the same
/// way, `kind` (function, request, db, custom, client) and `name`:
/// - spyglass_events_total{kind,name,status}: events, by status (ok, error);
/// - spyglass_event_duration_seconds{kind,name}: their durations (histogram);
/// - spyglass_db_rows_total{kind="db",name}: rows returned or affected;
/// - spyglass_http_request_bytes_total{kind="request"|"client",name,direction}: body bytes
///   in and out of requests served and made;
/// - spyglass_series_overflow_total: events folded into name="__other__" (max_series);
/// - with a collector: spyglass_collector_events_offered_total (passed to enqueue()),
///   _rejected_total (discarded at once, transit full), _dispatched_total (handed to the
///   exporters' buffers), _pre_fork_total (spans open across fork(), discarded in the
///   child), spyglass_collector_transit_events (in transit now, gauge), and per exporter
///   (label `exporter`, its name()): spyglass_exporter_events_produced_total (offered to
///   its buffer), _sent_total (delivered), _failed_total (not delivered), _dropped_total
///   (evicted, buffer full) and spyglass_exporter_pending_events (gauge);
/// - with push_url: spyglass_prometheus_push_failures_total;
/// - process_* from /proc/self (process_metrics).
/// Names may hold any bytes: label values are repaired to UTF-8 by the library's one rule
/// (spyglass/utf8.hpp) and escaped as the text format requires. prometheus-cpp's own
/// exposer_* metrics are not served.
///
/// Metrics count every event, sampled or not (accepts_unsampled()).
///
/// Thread-safety: the Exporter calls come from the collector's stage thread, one at a
/// time; begin_shutdown() from any. Scrapes (HTTP threads), periodic pushes (the
/// exporter's timer thread) and the accessors below may run concurrently with them from
/// any thread. Metric references are cached per name pointer, so a batch costs no
/// registry look-ups and takes no lock except when a new name appears.
class SPYGLASS_API PrometheusExporter final : public Exporter {
 public:
  /// Starts the endpoint and the push timer as configured. Throws std::invalid_argument
  /// for bad options (all checked before the port is bound) and std::runtime_error
  /// (naming the address) when the endpoint cannot listen, e.g. because the port is in
  /// use.
  explicit PrometheusExporter(PrometheusOptions options = {});
  /// shutdown(), then stops the endpoint: its threads finish the requests in progress
  /// (each within request_timeout) and notice the stop within about 2 s (civetweb's
  /// polling quantum).
  ~PrometheusExporter() override;
  PrometheusExporter(const PrometheusExporter&) = delete;
  PrometheusExporter& operator=(const PrometheusExporter&) = delete;

  bool export_batch(std::span<const Event> events) override;
  /// Stops the push timer (abandoning a periodic push in flight, which the final one
  /// supersedes), pushes once (when pushing) and freezes the collector metrics. Returns
  /// within push_timeout plus a few ms, sooner after begin_shutdown(). The endpoint
  /// keeps serving the final values until destruction. Idempotent.
  void shutdown() override;
  /// push_timeout + 1 s (the final push), or 1 s without push.
  [[nodiscard]] std::chrono::milliseconds shutdown_timeout() const override;
  /// No push, in flight or to come, lasts past `deadline`. Thread-safe, non-blocking.
  void begin_shutdown(std::chrono::steady_clock::time_point deadline) noexcept override;
  /// True: metrics count the events of unsampled traces too.
  [[nodiscard]] bool accepts_unsampled() const override { return true; }
  /// In a forked child the endpoint's and the push timer's threads do not exist: their
  /// objects are abandoned (destroying them would wait for those threads), so the child
  /// neither serves nor pushes (it would overwrite the parent's group), and all its
  /// metrics start from zero. The child closes its copies of the endpoint's sockets (the
  /// TCP sockets whose local port is port(), found in /proc/self/fd), so the port is
  /// free once the parent closes it; the parent keeps serving.
  void after_fork_child() override;
  [[nodiscard]] std::string_view name() const override { return "prometheus"; }

  /// The registry served with the exporter's metrics; register application metrics here.
  [[nodiscard]] const std::shared_ptr<::prometheus::Registry>& registry() const noexcept;
  /// The TCP port of the endpoint (the one chosen when 0 was asked), 0 without endpoint.
  [[nodiscard]] std::uint16_t port() const noexcept;
  /// Everything /metrics serves, as metric families. Thread-safe.
  [[nodiscard]] std::vector<::prometheus::MetricFamily> collect() const;
  /// Everything /metrics serves, in the text exposition format. Thread-safe.
  [[nodiscard]] std::string scrape() const;
  /// Pushes now, within push_timeout; true when the Pushgateway answered 2xx. False
  /// without push_url. Thread-safe (pushes take turns).
  bool push();
  /// Push outcomes so far. Thread-safe.
  [[nodiscard]] PushCounters push_counters() const;
  /// Events counted under name="__other__" so far. Thread-safe.
  [[nodiscard]] std::uint64_t series_overflow() const noexcept;

 private:
  PrometheusOptions options_;
  std::shared_ptr<detail::EventMetrics> events_;
  std::shared_ptr<detail::ProcessCollectable> process_;
  std::unique_ptr<detail::Pusher> pusher_;
  struct Server;
  std::unique_ptr<Server> server_;
  std::atomic<bool> shut_down_{false};
};

}  // namespace SPYGLASS_NAMESPACE::prom
