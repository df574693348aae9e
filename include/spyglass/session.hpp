#pragma once
/// The process-wide default collector behind the macros, set up and torn down by one
/// RAII object.

#include <memory>
#include <string>
#include <vector>

#include "spyglass/collector.hpp"
#include "spyglass/config.hpp"
#include "spyglass/exporter.hpp"
#include "spyglass/intern.hpp"

namespace spyglass::inline v0 {

/// Settings of a Session.
struct SessionOptions {
  CollectorOptions collector;
  /// Fraction of new traces recorded, in [0, 1]; decided at the root from the trace id.
  double sample_ratio = 1.0;
  /// True (parent-based sampling, OpenTelemetry's default): a request that continues a
  /// W3C traceparent keeps the caller's sampled flag. False: such a request is decided
  /// by `sample_ratio` from its trace id, like a new root, whatever the caller decided.
  bool parent_based = true;
  /// Request routes not recorded, matched exactly ("/health").
  std::vector<std::string> exclude_routes;
  /// Request routes not recorded, matched by prefix ("/static/").
  std::vector<std::string> exclude_route_prefixes;
  /// Bounds of the name interning tables.
  InternLimits intern;
};

/// Owns the default collector. While a Session exists the macros record into it; before
/// and after, they are no-ops. Only one Session may exist at a time.
///
/// The destructor stops new events, waits for threads that are in the middle of
/// recording one, drains the queue to the exporters (up to the collector's shutdown
/// timeout) and frees everything. Construct and destroy it on one thread (typically in
/// main()); every other member is thread-safe.
class SPYGLASS_API Session {
 public:
  /// Throws std::logic_error if another Session exists.
  explicit Session(SessionOptions options = {}, std::vector<std::shared_ptr<Exporter>> exporters = {});
  ~Session();
  Session(const Session&) = delete;
  Session& operator=(const Session&) = delete;

  /// The default collector.
  [[nodiscard]] Collector& collector() noexcept { return *collector_; }

  /// The Session's collector if one exists, else null. Thread-safe.
  [[nodiscard]] static Collector* current() noexcept;

 private:
  std::unique_ptr<Collector> collector_;
};

}  // namespace spyglass::inline v0
