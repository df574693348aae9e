#pragma once
/// The bounded asynchronous collector between the hot path and the exporters.

#include <atomic>
#include <chrono>
#include <cstddef>
#include <cstdint>
#include <memory>
#include <string>
#include <vector>

#include "spyglass/config.hpp"
#include "spyglass/event.hpp"
#include "spyglass/exporter.hpp"

namespace spyglass::inline v0 {

class StatsStore;

/// Settings of a Collector. Every field has a default that works on one machine.
struct CollectorOptions {
  /// Events that may wait for each exporter. When an exporter falls this far behind, its
  /// oldest pending batch is dropped (drop_oldest) or the incoming batch is; both counted
  /// in that exporter's `dropped`.
  std::size_t queue_size = 2048;
  /// Largest batch handed to an exporter.
  std::size_t batch_max = 128;
  /// A partial batch is exported once its oldest event has waited this long.
  std::chrono::milliseconds flush_interval{100};
  /// true: a full exporter buffer evicts its oldest batch; false: it discards the newest.
  bool drop_oldest = true;
  /// Capacity of the lock-free hand-off queue the hot path writes into (events). The
  /// collector thread empties it every drain_interval; while it is full, new events are
  /// discarded and counted as dropped. A fixed cost, set here, not grown.
  std::size_t transit_size = 8192;
  /// How long the collector thread sleeps when it finds nothing to drain (>= 1 ms).
  std::chrono::microseconds drain_interval{1000};
  /// Window of the StatsStore the collector feeds.
  std::chrono::seconds stats_window{15 * 60};
};

/// The collector's own health. `enqueued == exported + dropped + queued` holds for any
/// snapshot taken when producers are quiet; under load it holds within the events in
/// flight. Counters are monotonic except `queued`.
struct CollectorCounters {
  std::uint64_t enqueued = 0;       ///< Offered by producers through enqueue().
  std::uint64_t dropped = 0;        ///< Discarded at once because the transit queue was full.
  std::uint64_t exported = 0;       ///< Passed on to every exporter's buffer.
  std::uint64_t export_errors = 0;  ///< Sum over exporters of events failed or shed (see ExporterCounters).
  std::uint64_t queued = 0;         ///< In the transit queue or the batch being filled right now.
};

/// Per-exporter accounting: `received == exported + failed + dropped + pending`.
struct ExporterCounters {
  std::string name;
  std::uint64_t received = 0;  ///< Events handed to this exporter's stage.
  std::uint64_t exported = 0;  ///< Events in batches export_batch() accepted.
  std::uint64_t failed = 0;    ///< Events in batches export_batch() rejected or threw on.
  std::uint64_t dropped = 0;   ///< Events dropped because this exporter fell behind.
  std::uint64_t pending = 0;   ///< Waiting for this exporter now.
};

namespace detail {
struct CollectorImpl;
struct ThreadSlot;
}  // namespace detail

/// Moves events from any number of producer threads to the exporters.
///
/// Thread-safety: enqueue() may be called from any thread concurrently and never blocks,
/// never allocates after a thread's first call, and never throws. The other members are
/// thread-safe too. The Collector must outlive every thread's last enqueue(); the default
/// collector behind the macros (see session.hpp) takes care of that itself.
class SPYGLASS_API Collector {
 public:
  explicit Collector(CollectorOptions options = {});
  ~Collector();  ///< shutdown(5 s), then frees everything.
  Collector(const Collector&) = delete;
  Collector& operator=(const Collector&) = delete;

  /// Adds an exporter; it receives every event enqueued from now on, on a worker
  /// thread of its own.
  void add_exporter(std::shared_ptr<Exporter> exporter);

  /// Hot path: offers one finished event. Returns false if it was discarded.
  bool enqueue(const Event& event) noexcept;

  /// Blocks until everything enqueued before the call reached the exporters and they
  /// flushed, or until `timeout`. Returns true if it all got there in time.
  bool flush(std::chrono::milliseconds timeout = std::chrono::seconds(5));

  /// Drains what is queued to the exporters, then stops the threads and calls
  /// Exporter::shutdown(). Waits at most `timeout` for the exporters; one that is still
  /// stuck after it is abandoned (its pending events counted as dropped). Idempotent.
  /// Returns true if everything was drained in time.
  bool shutdown(std::chrono::milliseconds timeout = std::chrono::seconds(5));

  /// A consistent-enough snapshot of the counters. Thread-safe, cheap.
  [[nodiscard]] CollectorCounters counters() const;

  /// Counters of each exporter, in the order they were added.
  [[nodiscard]] std::vector<ExporterCounters> exporter_counters() const;

  /// Rolling-window aggregates of the events seen (fed on the collector thread).
  [[nodiscard]] StatsStore& stats() noexcept;

  /// The options in force.
  [[nodiscard]] const CollectorOptions& options() const noexcept;

 private:
  friend struct detail::CollectorImpl;
  std::unique_ptr<detail::CollectorImpl> impl_;
};

}  // namespace spyglass::inline v0
