#pragma once
/// The interface every exporter implements.

#include <chrono>
#include <span>
#include <string_view>

#include "spyglass/config.hpp"
#include "spyglass/event.hpp"

namespace SPYGLASS_NAMESPACE {

/// Receives batches of finished events.
///
/// The collector gives each exporter one bounded drop-oldest buffer and one stage thread
/// of its own, so a slow or failing exporter delays only itself. Every call below except
/// begin_shutdown() comes from that one thread, never concurrently: an exporter does its
/// retries and backoff inside export_batch(), on that thread, and starts no thread of its
/// own for them. Events are passed with `start` in Unix-epoch ns and `duration` in ns.
class SPYGLASS_API Exporter {
 public:
  /// Defined in the core: the class's type information then exists once, not in every
  /// shared object that uses it.
  virtual ~Exporter();

  /// Exports one batch. Returns true when it was delivered, false (or throws) when it was
  /// not and will not be: the collector counts the batch's events as `failed`.
  virtual bool export_batch(std::span<const Event> events) = 0;

  /// Pushes out anything buffered (a metrics exporter sends its totals now). Called by
  /// Collector::flush() and at shutdown; an exporter with periodic work does it from
  /// export_batch() when due.
  virtual void flush() {}

  /// Called once, last, when the collector shuts down; flush and release resources.
  virtual void shutdown() {}

  /// How long the collector's shutdown waits for this exporter to deliver what its
  /// buffer holds, flush and shut down. Past it the exporter is abandoned and what it
  /// still held is counted as failed or dropped.
  [[nodiscard]] virtual std::chrono::milliseconds shutdown_timeout() const { return std::chrono::seconds(5); }

  /// Called once, from the thread shutting the collector down, possibly while
  /// export_batch() runs on the stage thread: from now on no retry, backoff or wait may
  /// last past `deadline`. Must be thread-safe and must not block.
  virtual void begin_shutdown(std::chrono::steady_clock::time_point deadline) noexcept { (void)deadline; }

  /// True to also receive the spans of unsampled traces (Event::sampled() false): a
  /// metrics exporter counts every operation, whatever the trace sampling.
  [[nodiscard]] virtual bool accepts_unsampled() const { return false; }

  /// Called in a forked child before any other call there, on the thread that forked:
  /// forget what belongs to the parent (buffered events, files, sockets, connections).
  /// Not called for an exporter that was in the middle of a call when the process
  /// forked: the child never calls or destroys that one.
  virtual void after_fork_child() {}

  /// A short name for diagnostics and per-exporter counters ("jsonl", "otlp", ...).
  [[nodiscard]] virtual std::string_view name() const = 0;
};

}  // namespace SPYGLASS_NAMESPACE
