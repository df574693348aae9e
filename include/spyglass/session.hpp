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

namespace SPYGLASS_NAMESPACE {

/// Settings of a Session.
struct SessionOptions {
  CollectorOptions collector;
  /// Fraction of new traces recorded, in [0, 1]; decided at the root from the trace id.
  double sample_ratio = 1.0;
  /// True (parent-based sampling, OpenTelemetry's default): a request that continues a
  /// W3C traceparent keeps the caller's sampled flag. False: such a request is decided
  /// by `sample_ratio` from its trace id, like a new root, whatever the caller decided.
  bool parent_based = true;
  /// True: spans of unsampled traces still reach the exporters that count metrics
  /// (Exporter::accepts_unsampled) and the StatsStore, flagged, since metrics are not
  /// sampled. False: they are not recorded at all, which is the cheapest.
  bool record_unsampled = true;
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
/// With the environment variable OTEL_SDK_DISABLED=true (or SPYGLASS_DISABLED=1) the
/// Session is a no-op: nothing is recorded, the exporters are never called, and a scope
/// costs one load and a branch.
///
/// The destructor stops new events, waits for threads that are in the middle of
/// recording one, and shuts the collector down (Collector::shutdown()): it returns
/// within the largest Exporter::shutdown_timeout() plus a few ms, whatever the network
/// does, with every counter final. Construct and destroy it on one thread (typically in
/// main()); every other member is thread-safe.
class SPYGLASS_API Session {
 public:
  /// Throws std::logic_error if another Session exists.
  explicit Session(SessionOptions options = {}, std::vector<std::shared_ptr<Exporter>> exporters = {});
  ~Session();
  Session(const Session&) = delete;
  Session& operator=(const Session&) = delete;

  /// The default collector (idle, with no exporter, when the Session is disabled).
  [[nodiscard]] Collector& collector() noexcept { return *collector_; }

  /// False when OTEL_SDK_DISABLED=true or SPYGLASS_DISABLED=1 turned this Session off.
  [[nodiscard]] bool enabled() const noexcept { return enabled_; }

  /// The Session's collector if one exists, else null. Thread-safe.
  [[nodiscard]] static Collector* current() noexcept;

 private:
  std::unique_ptr<Collector> collector_;
  bool enabled_ = true;
};

}  // namespace SPYGLASS_NAMESPACE
