#pragma once
/// The fixed-size record the hot path fills and the collector passes to exporters.

#include <cstdint>
#include <string_view>
#include <type_traits>

#include "spyglass/ids.hpp"

namespace SPYGLASS_NAMESPACE {

/// What an event measured.
enum class EventKind : std::uint8_t { request = 0, function = 1, db = 2, custom = 3 };

/// Outcome of the measured operation.
enum class Status : std::uint8_t { ok = 0, error = 1 };

/// Lowercase name of a kind: "request", "function", "db", "custom".
constexpr std::string_view to_string(EventKind k) noexcept {
  switch (k) {
    case EventKind::request: return "request";
    case EventKind::function: return "function";
    case EventKind::db: return "db";
    case EventKind::custom: return "custom";
  }
  return "custom";
}

/// "ok" or "error".
constexpr std::string_view to_string(Status s) noexcept { return s == Status::ok ? "ok" : "error"; }

/// One measured operation. Trivially copyable, at most 128 bytes, no owned memory.
///
/// `name` and `detail` point at NUL-terminated strings that live until the process
/// exits (string literals or entries of the interning table), so an Event may be
/// copied to any thread and kept for any time. A string literal of a plugin dies with
/// it: call Collector::flush() before dlclose() of a plugin that records scopes.
///
/// On the hot path `start` and `duration` hold clock ticks (see clock.hpp); the
/// collector converts them before exporters see the event. Exporters always get
/// `start` as Unix-epoch ns and `duration` as ns.
struct Event {
  std::uint64_t start = 0;        ///< Unix-epoch ns (ticks before conversion).
  std::uint64_t duration = 0;     ///< ns (ticks before conversion).
  TraceId trace_id;               ///< Trace the event belongs to.
  SpanId span_id = 0;             ///< This operation's span.
  SpanId parent_span_id = 0;      ///< Enclosing span, 0 for a root.
  const char* name = "";          ///< Function name, route, redacted SQL or custom name.
  const char* detail = "";        ///< db: database system; request: HTTP method; else "".
  std::uint64_t rows = 0;         ///< db: rows returned or affected.
  std::uint64_t bytes_in = 0;     ///< request: bytes received.
  std::uint64_t bytes_out = 0;    ///< request: bytes sent.
  std::uint32_t thread_id = 0;    ///< OS thread id (gettid).
  std::uint16_t http_status = 0;  ///< request: HTTP status code, 0 when unset.
  EventKind kind = EventKind::custom;
  Status status = Status::ok;
  std::uint8_t flags = 0;  ///< kFlag* bits.

  /// `start` and `duration` are still clock ticks (internal; exporters never see it).
  static constexpr std::uint8_t kFlagTicks = 1;
  /// The span's trace is not sampled: count it in metrics, do not export it as a span.
  /// Only exporters whose accepts_unsampled() is true receive such events.
  static constexpr std::uint8_t kFlagUnsampled = 2;

  /// True when the span belongs to a sampled trace (exported as a span).
  [[nodiscard]] constexpr bool sampled() const noexcept { return (flags & kFlagUnsampled) == 0; }
};

static_assert(std::is_trivially_copyable_v<Event>, "Event must be trivially copyable");
static_assert(sizeof(Event) <= 128, "Event must fit in 128 bytes");

}  // namespace SPYGLASS_NAMESPACE
