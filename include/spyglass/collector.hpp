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

namespace SPYGLASS_NAMESPACE {

class StatsStore;

/// Settings of a Collector. Every field has a default that works on one machine.
///
/// Memory is fixed at construction: transit_capacity + buffer_capacity per exporter
/// events of 112 bytes (defaults: 7.3 MB + 7.3 MB per exporter; pages become resident
/// only once events reach them). A burst of B events
/// recorded faster than the exporters take them is kept whole while B fits in both.
struct CollectorOptions {
  /// Capacity of the lock-free hand-off between the hot path and the collector thread,
  /// in events (also the most one producer thread may have in flight). The collector
  /// thread empties it every drain_interval; while it is full, new events are rejected
  /// at once and counted (`rejected`).
  std::size_t transit_capacity = 65536;
  /// Each exporter's one bounded buffer, in events. When an exporter falls this far
  /// behind, its oldest events are dropped (drop_oldest) or the incoming ones are; both
  /// counted in that exporter's `dropped`.
  /// As large as the transit by default, so that one drain pass never evicts what the
  /// transit could still hold.
  std::size_t buffer_capacity = 65536;
  /// Largest batch handed to an exporter.
  std::size_t batch_max = 512;
  /// A partial batch is exported once its oldest event has waited this long.
  std::chrono::milliseconds flush_interval{100};
  /// true: a full exporter buffer evicts its oldest events; false: it discards the newest.
  bool drop_oldest = true;
  /// How long the collector thread sleeps between drains (>= 100 us).
  std::chrono::microseconds drain_interval{1000};
  /// How long fork() may wait, in total, for exporters in the middle of a call to finish
  /// it. An exporter still busy then is not used in the child (its events there are
  /// counted as dropped); the parent is not affected.
  std::chrono::milliseconds fork_wait{20};
  /// Window of the StatsStore the collector feeds.
  std::chrono::seconds stats_window{15 * 60};
};

/// The collector's own health, from the hot path to the exporters' buffers.
/// `offered == rejected + dispatched + pre_fork + in_transit`; all but `in_transit` are
/// monotonic. Exact when producers are quiet; under load, within the events in flight.
struct CollectorCounters {
  std::uint64_t offered = 0;     ///< Events producers passed to enqueue().
  std::uint64_t rejected = 0;    ///< Discarded at once because the transit was full.
  std::uint64_t dispatched = 0;  ///< Handed to the exporters' buffers.
  /// In a forked child: spans opened before fork() and closed after it. The parent
  /// records them; the child discards them.
  std::uint64_t pre_fork = 0;
  std::uint64_t in_transit = 0;  ///< In the transit right now.
};

/// One exporter's accounting: `produced == sent + failed + dropped + pending`, exact
/// when producers are quiet, and final once Collector::shutdown() returned.
struct ExporterCounters {
  std::string name;
  std::uint64_t produced = 0;  ///< Events offered to this exporter's buffer.
  std::uint64_t sent = 0;      ///< In batches export_batch() delivered.
  std::uint64_t failed = 0;    ///< In batches export_batch() did not deliver (or threw on).
  std::uint64_t dropped = 0;   ///< Evicted or refused because the buffer was full.
  std::uint64_t pending = 0;   ///< In the buffer or being exported now.
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
  ~Collector();  ///< shutdown(), then frees everything.
  Collector(const Collector&) = delete;
  Collector& operator=(const Collector&) = delete;

  /// Adds an exporter; it receives every event enqueued from now on, through a buffer
  /// and a stage thread of its own.
  void add_exporter(std::shared_ptr<Exporter> exporter);

  /// Hot path: offers one finished event. Returns false if it was discarded.
  bool enqueue(const Event& event) noexcept;

  /// Blocks until everything enqueued before the call reached the exporters and they
  /// flushed, or until `timeout`. Returns true if it all got there in time.
  bool flush(std::chrono::milliseconds timeout = std::chrono::seconds(5));

  /// Drains the transit into the exporters' buffers, lets each exporter deliver its
  /// buffer, flush and shut down within its own Exporter::shutdown_timeout() (all at
  /// once, on their stage threads), then stops the threads. Returns within the largest
  /// of those timeouts plus a few ms. An exporter still busy then is abandoned: its
  /// batch in flight counts as failed, the rest of its buffer as dropped. When it
  /// returns every counter is final. Idempotent. Returns true if everything was
  /// delivered or accounted in time without abandoning anyone.
  bool shutdown();

  /// As shutdown(), waiting at most `timeout` for any exporter (capping their own).
  bool shutdown(std::chrono::milliseconds timeout);

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

}  // namespace SPYGLASS_NAMESPACE
