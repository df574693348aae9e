#pragma once
// Internals of the Prometheus exporter shared by its source files.

#include <array>
#include <atomic>
#include <chrono>
#include <condition_variable>
#include <cstddef>
#include <cstdint>
#include <functional>
#include <memory>
#include <mutex>
#include <span>
#include <string>
#include <thread>
#include <unordered_map>
#include <vector>

#include <prometheus/collectable.h>
#include <prometheus/metric_family.h>

#include "spyglass/collector.hpp"
#include "spyglass/event.hpp"
#include "spyglass/exporters/prometheus.hpp"

namespace SPYGLASS_NAMESPACE::prom::detail {

/// Adds to a counter that only one thread writes: a plain load and store, no locked
/// instruction, while readers on other threads still see a whole value.
inline void bump(std::atomic<std::uint64_t>& a, std::uint64_t n = 1) noexcept {
  a.store(a.load(std::memory_order_relaxed) + n, std::memory_order_relaxed);
}

/// Aggregates of one (kind, name). Written by the exporter's thread only.
struct Series {
  Series(EventKind k, std::string l, std::size_t buckets)
      : kind(k), label(std::move(l)), bucket_counts(buckets) {}
  EventKind kind;
  std::string label;                                      ///< The name as a valid UTF-8 label value.
  std::array<std::atomic<std::uint64_t>, 2> count{};      ///< By Status (ok, error).
  std::vector<std::atomic<std::uint64_t>> bucket_counts;  ///< Not cumulative; last is +Inf.
  std::atomic<std::uint64_t> sum_ns{0};
  std::atomic<std::uint64_t> rows{0};
  std::atomic<std::uint64_t> bytes_in{0};
  std::atomic<std::uint64_t> bytes_out{0};
};

/// Event-derived and collector metrics. record() is called by one thread at a time;
/// Collect() from any thread.
class EventMetrics final : public ::prometheus::Collectable {
 public:
  EventMetrics(const std::vector<double>& bounds, std::size_t max_series, const Collector* collector);

  void record(std::span<const Event> events);
  std::vector<::prometheus::MetricFamily> Collect() const override;
  /// Reads the collector one last time and stops reading it.
  void freeze_collector();
  [[nodiscard]] std::uint64_t overflow() const noexcept { return overflow_.load(std::memory_order_relaxed); }

 private:
  /// Where the events of one name pointer go.
  struct Target {
    Series* series;
    bool folded;  ///< Past the name limit: counted under "__other__" as overflow.
  };
  struct KindTable {
    std::unordered_map<const char*, Target> by_pointer;
    std::unordered_map<std::string, Series*> by_label;
  };
  Target resolve(KindTable& table, EventKind kind, const char* name);
  Series* add_series(EventKind kind, std::string label);
  /// Exposition series one (kind, name) adds to the event families.
  [[nodiscard]] std::size_t series_cost(EventKind kind) const noexcept;
  /// Reads the collector (when still attached) into last_ and last_exporters_.
  /// Caller holds collector_mutex_.
  void read_collector() const;

  std::vector<double> bounds_;
  std::vector<std::uint64_t> bounds_ns_;
  std::size_t max_series_;
  std::size_t series_used_ = 0;  // written by the recording thread only
  std::array<KindTable, kEventKinds> tables_;

  mutable std::mutex series_mutex_;  // guards series_ (appends vs. scrapes)
  std::vector<std::unique_ptr<Series>> series_;
  std::atomic<std::uint64_t> overflow_{0};

  mutable std::mutex collector_mutex_;
  const Collector* collector_;
  bool frozen_ = false;                                   // collector_ was set and read for the last time
  mutable CollectorCounters last_;                        // highest values reported, keeps counters monotonic
  mutable std::vector<ExporterCounters> last_exporters_;  // likewise, per exporter
};

/// process_* metrics, read from /proc when scraped.
class ProcessCollectable final : public ::prometheus::Collectable {
 public:
  std::vector<::prometheus::MetricFamily> Collect() const override;
};

/// Where, how often and how long to push, checked.
struct PushTarget {
  std::string url;  ///< Full URL of the group: <push_url>/metrics/job/<job>/instance/<instance>.
  std::chrono::milliseconds interval{};
  std::chrono::milliseconds timeout{};
};

/// The push settings of `options`, checked; throws std::invalid_argument naming the bad
/// value. Called before anything is started, so bad options have no side effects.
PushTarget push_target(const PrometheusOptions& options);

/// PUTs an exposition to a Pushgateway group: every interval on a timer thread of its
/// own (which holds no events, only the timer), and on demand. Each push is bounded by
/// the timeout and by the deadline of cut_at(); failures are logged and counted.
class Pusher {
 public:
  /// `render` makes the text to push; it is called on the pushing thread.
  Pusher(PushTarget target, std::function<std::string()> render);
  ~Pusher();
  /// Starts the timer thread.
  void start();
  /// Pushes once, now; pushes take turns. `periodic`: stop() may abandon it.
  bool push_now(bool periodic = false);
  /// Stops the timer thread, abandoning a periodic push in flight.
  void stop();
  /// From now on no push lasts past `deadline`. Thread-safe, does not wait for I/O.
  void cut_at(std::chrono::steady_clock::time_point deadline) noexcept;
  PushCounters counters() const;

 private:
  void run();
  /// Wakes a push waiting for the network (to see a new deadline or stop).
  void wake_transfer() noexcept;

  PushTarget target_;
  std::function<std::string()> render_;
  std::atomic<std::int64_t> cut_ns_;  // steady_clock deadline from cut_at(), ns since epoch
  std::atomic<bool> stopping_{false};
  std::mutex push_mutex_;      // one push at a time
  std::mutex transfer_mutex_;  // guards transfer_
  void* transfer_ = nullptr;   // the CURLM* of the push in flight
  mutable std::mutex mutex_;
  std::condition_variable cv_;
  PushCounters counters_;
  std::thread thread_;
};

/// Splits "http://host:port/..." into the host part with scheme and the port; throws
/// std::invalid_argument naming the URL when it is malformed.
void split_push_url(const std::string& url, std::string& host, std::string& port);

/// Closes this process's TCP sockets whose local port is `port`: the endpoint's listening
/// socket and the connections it accepted. For a forked child, whose copies of them no
/// thread serves; the parent's descriptors stay open. Returns how many were closed.
std::size_t close_sockets_on_port(std::uint16_t port) noexcept;

}  // namespace SPYGLASS_NAMESPACE::prom::detail
