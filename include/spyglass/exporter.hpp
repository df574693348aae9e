#pragma once
/// The interface every exporter implements.

#include <span>
#include <string_view>

#include "spyglass/config.hpp"
#include "spyglass/event.hpp"

namespace spyglass::inline v0 {

/// Receives batches of finished events.
///
/// The collector runs each exporter on a worker thread of its own, so a slow or
/// failing exporter delays only itself. All calls on one exporter come from that one
/// thread, never concurrently; an exporter needs no locking unless it shares state
/// with other threads itself. Events are passed with `start` in Unix-epoch ns and
/// `duration` in ns.
class SPYGLASS_API Exporter {
 public:
  virtual ~Exporter() = default;

  /// Exports one batch. Returns false (or throws) on failure: the collector counts the
  /// batch's events as export errors and goes on with the next batch.
  virtual bool export_batch(std::span<const Event> events) = 0;

  /// Pushes out anything buffered. Called after idle periods and by Collector::flush().
  virtual void flush() {}

  /// Called once, last, when the collector shuts down; flush and release resources.
  virtual void shutdown() {}

  /// Called in the child after fork(), on the thread that forked, before any other
  /// call: reopen what must not be shared with the parent (files, sockets).
  virtual void after_fork_child() {}

  /// A short name for diagnostics and per-exporter counters ("jsonl", "otlp", ...).
  [[nodiscard]] virtual std::string_view name() const = 0;
};

}  // namespace spyglass::inline v0
