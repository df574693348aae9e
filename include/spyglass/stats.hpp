#pragma once
/// Rolling-window aggregates (count, errors, latency percentiles) per (kind, name).
///
/// Time: the window is split into `slots` sub-windows of `window / slots` each, keyed on
/// the events' own `start` (Unix-epoch ns), so a window can be driven with synthetic
/// timestamps through the overloads that take an explicit "now". A snapshot taken at
/// `now` covers the sub-window holding `now` plus the `slots - 1` before it, so it spans
/// between `window - window/slots` and `window`.
///
/// Out-of-range timestamps never corrupt anything: an event older than the window
/// relative to "now" is ignored and counted in `dropped_old`; an event up to
/// `future_tolerance` ahead of "now" is counted in the current sub-window (clamped);
/// one further ahead is ignored and counted in `dropped_future`.
///
/// Percentiles come from log-linear buckets: values below 64 ns are exact, above that
/// each power of two is split into 64 linear sub-buckets, so a reported percentile (the
/// bucket midpoint, clamped to the observed min and max) is within 1/128 (0.8 %) of the
/// exact nearest-rank value (the ceil(p * count)-th smallest). Values up to 2^44 ns
/// (about 4.9 hours) are resolved; larger ones fall into the top bucket and report about
/// 2^44 ns as a percentile, though `max_ns` and `mean_ns` stay exact. Bucket counters are
/// 32-bit per sub-window and saturate rather than wrap (4 billion events of one series in
/// one bucket in one sub-window).
///
/// Memory per series (distinct kind and name): about 400 bytes of bookkeeping (record,
/// name map entry, pointer-cache slots) + twice the name + `slots` x 216 bytes of fixed
/// sub-window state (3.2 KiB with the default 15 slots), plus 256 bytes per power of two
/// a sub-window actually saw (chunks are allocated lazily and recycled when a sub-window
/// expires). A series whose values span one decade touches about four powers of two, so
/// ~1 KiB per busy sub-window; a dense histogram would take 10 KiB per sub-window. Each
/// series also keeps the sum of its closed sub-windows' histograms (512 bytes per power of
/// two they saw, ~2 KiB), updated as a sub-window closes or expires, so that a snapshot
/// reads that sum and the open sub-window instead of merging every sub-window.

#include <chrono>
#include <cstddef>
#include <cstdint>
#include <memory>
#include <span>
#include <string>
#include <vector>

#include "spyglass/config.hpp"
#include "spyglass/event.hpp"

namespace SPYGLASS_NAMESPACE {

/// Settings of a StatsStore.
struct StatsOptions {
  /// Length of the rolling window (clamped to 1 s .. 366 days).
  std::chrono::seconds window{15 * 60};
  /// Sub-windows the window is split into (rotation granularity, 1..3600; clamped).
  std::size_t slots = 15;
  /// Distinct (kind, name) series tracked. Further names are aggregated under the name
  /// "__other__" of their kind, and their events counted in `overflowed`.
  std::size_t max_names = 4096;
  /// How far ahead of "now" an event may start and still be counted (in the current
  /// sub-window); beyond that it is dropped and counted in `dropped_future`
  /// (clamped to 0 .. 366 days).
  std::chrono::seconds future_tolerance{60};
};

/// Name of the series that collects the names beyond StatsOptions::max_names.
/// Defined once in the core, so the pointer is the same in every shared object.
SPYGLASS_API extern const char* const kStatsOtherName;

/// Aggregates of one series over the window. Latencies in ns; all zero when count is 0.
struct LatencySummary {
  std::uint64_t count = 0;
  std::uint64_t errors = 0;  ///< Events with Status::error.
  double p50_ns = 0, p90_ns = 0, p99_ns = 0, max_ns = 0, mean_ns = 0;
};

/// One series in a snapshot.
struct StatsEntry {
  EventKind kind = EventKind::custom;
  std::string name;
  std::uint64_t count = 0;
  std::uint64_t errors = 0;
  double p50_ns = 0, p90_ns = 0, p99_ns = 0, max_ns = 0, mean_ns = 0;

  /// The aggregates without the series' identity.
  [[nodiscard]] LatencySummary summary() const noexcept {
    return {count, errors, p50_ns, p90_ns, p99_ns, max_ns, mean_ns};
  }
};

/// Aggregates of every series with at least one event in the window, sorted by kind,
/// then name. The drop counters are cumulative since construction or clear().
struct StatsSnapshot {
  std::uint64_t window_start_unix_ns = 0;  ///< Start of the oldest sub-window covered.
  std::uint64_t window_end_unix_ns = 0;    ///< The "now" of the snapshot.
  std::vector<StatsEntry> entries;
  std::uint64_t overflowed = 0;      ///< Events aggregated under "__other__" (name table full).
  std::uint64_t dropped_old = 0;     ///< Events older than the window when recorded.
  std::uint64_t dropped_future = 0;  ///< Events too far in the future when recorded.
};

/// Renders a snapshot as one JSON object:
/// {"window_start":ns,"window_end":ns,"entries":[{"kind":"db","name":"..","count":N,
///  "errors":N,"p50_ns":x,"p90_ns":x,"p99_ns":x,"max_ns":x,"mean_ns":x},...],
///  "overflowed":N,"dropped_old":N,"dropped_future":N}
SPYGLASS_API std::string to_json(const StatsSnapshot& snapshot);

class StatsStore;
namespace detail {
struct StatsImpl;
/// fork(): holds the store's mutex across fork() (the collector's atfork handler).
void stats_lock_for_fork(StatsStore& store) noexcept;
/// fork(): releases it in the parent, or in the child, where the store is also emptied
/// (the child's statistics start from nothing, like its counters).
void stats_unlock_after_fork(StatsStore& store, bool child) noexcept;
}  // namespace detail

/// Rolling-window aggregates fed by the collector thread.
///
/// Thread-safety: record() must be called by one thread at a time (the collector
/// thread); snapshot(), to_json(), memory_bytes() and clear() may be called from any
/// thread concurrently with it. One internal mutex is taken once per record() call (so
/// pass batches) and for the duration of a snapshot.
class SPYGLASS_API StatsStore {
 public:
  explicit StatsStore(StatsOptions options = {});
  ~StatsStore();
  StatsStore(const StatsStore&) = delete;
  StatsStore& operator=(const StatsStore&) = delete;

  /// Records finished events (`start` Unix-epoch ns, `duration` ns) with "now" taken
  /// from the system clock once per call. Allocates only for a series or sub-window
  /// chunk it has not seen before; a known name pointer costs no string hashing, so
  /// `name` must keep its text for the store's lifetime (the Event contract).
  void record(std::span<const Event> events);
  /// One event; takes the mutex per call, prefer the batch form.
  void record(const Event& e);
  /// As record(events), with an explicit "now" (Unix-epoch ns), for tests and replays.
  void record(std::span<const Event> events, std::uint64_t now_unix_ns);

  /// The window ending now (system clock).
  [[nodiscard]] StatsSnapshot snapshot() const;
  /// The window ending at `now_unix_ns`: sub-windows after it are left out.
  [[nodiscard]] StatsSnapshot snapshot(std::uint64_t now_unix_ns) const;
  /// The window ending now, into `out`, reusing its entries and their names' storage: a
  /// poller that keeps one snapshot allocates nothing once it has seen every name.
  void snapshot(StatsSnapshot& out) const;
  /// As snapshot(out), for the window ending at `now_unix_ns`.
  void snapshot(StatsSnapshot& out, std::uint64_t now_unix_ns) const;
  /// to_json(snapshot()).
  [[nodiscard]] std::string to_json() const;

  /// Approximate heap bytes held (series, sub-windows, histogram chunks, caches).
  [[nodiscard]] std::size_t memory_bytes() const;

  /// Forgets every series and resets the counters.
  void clear();

  /// The options in force (after clamping).
  [[nodiscard]] const StatsOptions& options() const noexcept;

 private:
  friend void detail::stats_lock_for_fork(StatsStore&) noexcept;
  friend void detail::stats_unlock_after_fork(StatsStore&, bool) noexcept;
  std::unique_ptr<detail::StatsImpl> impl_;
};

}  // namespace SPYGLASS_NAMESPACE
