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

/// Upper bounds (seconds) of the default latency buckets: 100 µs to 10 s, roughly
/// 1-2.5-5 per decade.
SPYGLASS_API std::vector<double> default_buckets();

/// Settings of a PrometheusExporter. Every field has a default that works on one machine.
struct PrometheusOptions {
  /// Address the /metrics endpoint listens on ("host:port"; port 0 picks a free one).
  /// Empty: no endpoint (push only, or scrape() by hand).
  std::string listen_address = "127.0.0.1:9464";
  /// HTTP threads of the endpoint.
  std::size_t server_threads = 2;
  /// Upper bounds (seconds) of spyglass_event_duration_seconds: finite, > 0, ascending.
  std::vector<double> buckets = default_buckets();
  /// Distinct names kept per event kind; events with further names are counted under
  /// name="__other__" and in spyglass_series_overflow_total. Events actually named
  /// "__other__" are counted in that series too, but not as overflow.
  std::size_t max_names_per_kind = 1000;
  /// Collector whose health is exported as spyglass_collector_*; optional. It is read on
  /// each scrape until the exporter's shutdown() (which the collector calls when it shuts
  /// down); the last values read then are kept.
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
  /// Time between pushes; one more push happens at shutdown().
  std::chrono::milliseconds push_interval{15000};
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

/// `s` with every byte sequence that is not valid UTF-8 replaced by U+FFFD, as label
/// values must be UTF-8. Escaping of quotes, backslashes and newlines is the text
/// serializer's job. Thread-safe.
SPYGLASS_API std::string to_valid_utf8(std::string_view s);

/// Outcome counts of pushes to the Pushgateway.
struct PushCounters {
  std::uint64_t ok = 0;      ///< Pushes answered with 2xx.
  std::uint64_t failed = 0;  ///< Pushes that failed (connection error or non-2xx).
  int last_status = 0;       ///< HTTP status of the last push; < 0 for a transport error.
};

namespace detail {
class EventMetrics;
class ProcessCollectable;
class Pusher;
}  // namespace detail

/// Exports events as Prometheus metrics:
/// spyglass_events_total{kind,name,status}, spyglass_event_duration_seconds{kind,name},
/// spyglass_db_rows_total{name}, spyglass_http_request_bytes_total{route,direction},
/// spyglass_series_overflow_total, spyglass_collector_* and process_*.
///
/// Thread-safety: the Exporter calls come from the collector's worker thread, one at a
/// time. Scrapes (HTTP threads), pushes (the exporter's push thread) and the accessors
/// below may run concurrently with them from any thread. Metric references are cached
/// per name pointer, so a batch costs no registry look-ups and takes no lock except when
/// a new name appears.
class SPYGLASS_API PrometheusExporter final : public Exporter {
 public:
  /// Starts the endpoint and the push thread as configured. Throws std::invalid_argument
  /// for bad options (all checked before the port is bound) and std::runtime_error
  /// (naming the address) when the endpoint cannot listen, e.g. because the port is in
  /// use.
  explicit PrometheusExporter(PrometheusOptions options = {});
  ~PrometheusExporter() override;
  PrometheusExporter(const PrometheusExporter&) = delete;
  PrometheusExporter& operator=(const PrometheusExporter&) = delete;

  bool export_batch(std::span<const Event> events) override;
  /// Pushes once (when pushing), stops the push thread and freezes the collector
  /// metrics. The endpoint keeps serving the final values until destruction.
  void shutdown() override;
  /// In a forked child the endpoint's and the pusher's threads do not exist: their
  /// objects are abandoned (destroying them would wait for those threads), so the child
  /// neither serves nor pushes (it would overwrite the parent's group), and its event
  /// metrics start from zero. The child closes its copies of the endpoint's sockets (the
  /// TCP sockets whose local port is port(), found in /proc/self/fd, as prometheus-cpp
  /// does not hand out their descriptors), so the port is free once the parent closes
  /// it; the parent keeps serving.
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
  /// Pushes now; true when the Pushgateway answered 2xx. False without push_url.
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
