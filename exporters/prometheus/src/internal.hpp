#pragma once
// Internals of the Prometheus exporter shared by its source files.

#include <array>
#include <atomic>
#include <chrono>
#include <condition_variable>
#include <cstddef>
#include <cstdint>
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

namespace prometheus {
class Gateway;
}

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
  EventMetrics(const std::vector<double>& bounds, std::size_t max_names, const Collector* collector);

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
    std::size_t names = 0;
  };
  Target resolve(KindTable& table, EventKind kind, const char* name);
  Series* add_series(EventKind kind, std::string label);
  CollectorCounters collector_counters() const;

  std::vector<double> bounds_;
  std::vector<std::uint64_t> bounds_ns_;
  std::size_t max_names_;
  std::array<KindTable, 4> tables_;

  mutable std::mutex series_mutex_;  // guards series_ (appends vs. scrapes)
  std::vector<std::unique_ptr<Series>> series_;
  std::atomic<std::uint64_t> overflow_{0};

  mutable std::mutex collector_mutex_;
  const Collector* collector_;
  bool frozen_ = false;             // collector_ was set and read for the last time
  mutable CollectorCounters last_;  // highest values reported, keeps counters monotonic
};

/// process_* metrics, read from /proc when scraped.
class ProcessCollectable final : public ::prometheus::Collectable {
 public:
  std::vector<::prometheus::MetricFamily> Collect() const override;
};

/// Where and how often to push, checked.
struct PushTarget {
  std::string host;  ///< Scheme and host ("http://127.0.0.1").
  std::string port;
  std::string job;
  std::string instance;
  std::chrono::milliseconds interval{};
};

/// The push settings of `options`, checked; throws std::invalid_argument naming the bad
/// value. Called before anything is started, so bad options have no side effects.
PushTarget push_target(const PrometheusOptions& options);

/// Pushes a set of collectables to a Pushgateway every interval, on a thread of its own.
class Pusher {
 public:
  Pusher(const PushTarget& target, std::vector<std::weak_ptr<::prometheus::Collectable>> sources);
  ~Pusher();
  bool push_now();
  /// Stops the thread (no further periodic pushes).
  void stop();
  PushCounters counters() const;

 private:
  void run();
  std::unique_ptr<::prometheus::Gateway> gateway_;
  std::chrono::milliseconds interval_;
  std::mutex push_mutex_;  // one push at a time
  mutable std::mutex mutex_;
  std::condition_variable cv_;
  bool stopping_ = false;
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
