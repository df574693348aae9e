#pragma once
/// The fixed-size record the hot path fills and the collector passes to exporters.

#include <cstddef>
#include <cstdint>
#include <cstring>
#include <new>
#include <string_view>
#include <type_traits>

#include "spyglass/ids.hpp"

namespace SPYGLASS_NAMESPACE {

/// What an event measured. `request` is a request this process served, `client` one it
/// made to another server.
enum class EventKind : std::uint8_t { request = 0, function = 1, db = 2, custom = 3, client = 4 };

/// Number of kinds: every EventKind value is below it (tables indexed by kind use it).
inline constexpr std::size_t kEventKinds = 5;

/// Outcome of the measured operation.
enum class Status : std::uint8_t { ok = 0, error = 1 };

/// Lowercase name of a kind: "request", "function", "db", "custom", "client".
constexpr std::string_view to_string(EventKind k) noexcept {
  switch (k) {
    case EventKind::request: return "request";
    case EventKind::function: return "function";
    case EventKind::db: return "db";
    case EventKind::custom: return "custom";
    case EventKind::client: return "client";
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
  std::uint64_t start = 0;     ///< Unix-epoch ns (ticks before conversion).
  std::uint64_t duration = 0;  ///< ns (ticks before conversion).
  TraceId trace_id;            ///< Trace the event belongs to.
  SpanId span_id = 0;          ///< This operation's span.
  SpanId parent_span_id = 0;   ///< Enclosing span, 0 for a root.
  /// Function name, route, redacted SQL or custom name; client: the route template called
  /// ("/users/{id}": never a raw path or query, to keep the names bounded).
  const char* name = "";
  const char* detail = "";        ///< db: database system; request, client: HTTP method; else "".
  std::uint64_t rows = 0;         ///< db: rows returned or affected.
  std::uint64_t bytes_in = 0;     ///< request, client: body bytes received.
  std::uint64_t bytes_out = 0;    ///< request, client: body bytes sent.
  std::uint32_t thread_id = 0;    ///< OS thread id (gettid).
  std::uint16_t http_status = 0;  ///< request, client: HTTP status code, 0 when unset.
  EventKind kind = EventKind::custom;
  Status status = Status::ok;
  std::uint8_t flags = 0;  ///< kFlag* bits.
  /// client: the server called, as "scheme://host:port" (no user, path or query: one
  /// interned name per server); else "".
  const char* peer = "";

  /// `start` and `duration` are still clock ticks (internal; exporters never see it).
  static constexpr std::uint8_t kFlagTicks = 1;
  /// The span's trace is not sampled: count it in metrics, do not export it as a span.
  /// Only exporters whose accepts_unsampled() is true receive such events.
  static constexpr std::uint8_t kFlagUnsampled = 2;

  /// True when the span belongs to a sampled trace (exported as a span).
  [[nodiscard]] constexpr bool sampled() const noexcept { return (flags & kFlagUnsampled) == 0; }
};

namespace detail {
/// Writes 16 bytes at `dst` (two adjacent 64-bit fields of an Event) with one store.
///
/// Why: enqueueing copies an Event 16 bytes at a time. A 16-byte read of bytes that
/// several narrower stores wrote a moment before cannot be served from the store buffer
/// and waits until they reach the cache: tens of cycles on every span that closes soon
/// after it opened. So the hot path writes each 16-byte part of an Event with one store.
inline void store_pair(void* dst, std::uint64_t first, std::uint64_t second) noexcept {
#if defined(__GNUC__)
  using Pair = std::uint64_t __attribute__((vector_size(16)));
  const Pair v = {first, second};
  __builtin_memcpy(dst, &v, sizeof v);
#else
  const std::uint64_t v[2] = {first, second};
  std::memcpy(dst, v, sizeof v);
#endif
}

/// Ids and sampling of a span being opened (see open_span in emitter.hpp).
struct OpenedSpan {
  TraceId trace_id;
  SpanId span_id = 0;
  SpanId parent_span_id = 0;
  std::uint8_t flags = 0;  ///< Event::kFlag* bits.
};

/// Writes every byte of the Event at `storage` (which may hold no Event yet: the writes
/// create one, Event being an implicit-lifetime aggregate): the span's ids, kind, names,
/// thread and flags; times, counters and status zero; peer "". Only 16-byte stores (see
/// store_pair), where plain construction would zero the Event and then overwrite parts of it.
inline Event* write_event(void* storage, const OpenedSpan& span, EventKind kind, const char* name,
                          const char* detail, std::uint32_t thread_id) noexcept {
#if defined(__GNUC__) && __BYTE_ORDER__ == __ORDER_LITTLE_ENDIAN__ && __SIZEOF_POINTER__ == 8
  static_assert(offsetof(Event, duration) == 8 && offsetof(Event, trace_id) == 16 &&
                    offsetof(TraceId, lo) == 8 && offsetof(Event, span_id) == 32 &&
                    offsetof(Event, parent_span_id) == 40 && offsetof(Event, name) == 48 &&
                    offsetof(Event, detail) == 56 && offsetof(Event, rows) == 64 &&
                    offsetof(Event, bytes_in) == 72 && offsetof(Event, bytes_out) == 80 &&
                    offsetof(Event, thread_id) == 88 && offsetof(Event, http_status) == 92 &&
                    offsetof(Event, kind) == 94 && offsetof(Event, status) == 95 &&
                    offsetof(Event, flags) == 96 && offsetof(Event, peer) == 104 && sizeof(Event) == 112,
                "write_event follows the layout of Event");
  auto* p = static_cast<unsigned char*>(storage);
  store_pair(p, 0, 0);
  store_pair(p + 16, span.trace_id.hi, span.trace_id.lo);
  store_pair(p + 32, span.span_id, span.parent_span_id);
  store_pair(p + 48, reinterpret_cast<std::uintptr_t>(name), reinterpret_cast<std::uintptr_t>(detail));
  store_pair(p + 64, 0, 0);
  // thread_id, http_status (0), kind, status (ok = 0) share one little-endian word.
  store_pair(p + 80, 0, std::uint64_t{thread_id} | std::uint64_t{static_cast<std::uint8_t>(kind)} << 48);
  store_pair(p + 96, span.flags, reinterpret_cast<std::uintptr_t>(""));  // flags (then padding), peer
  return std::launder(reinterpret_cast<Event*>(storage));
#else
  Event* e = ::new (storage) Event{};
  e->trace_id = span.trace_id;
  e->span_id = span.span_id;
  e->parent_span_id = span.parent_span_id;
  e->name = name;
  e->detail = detail;
  e->thread_id = thread_id;
  e->kind = kind;
  e->flags = span.flags;
  return e;
#endif
}
}  // namespace detail

static_assert(std::is_trivially_copyable_v<Event>, "Event must be trivially copyable");
static_assert(sizeof(Event) <= 128, "Event must fit in 128 bytes");
static_assert(offsetof(Event, duration) == offsetof(Event, start) + 8,
              "store_pair writes start and duration");

}  // namespace SPYGLASS_NAMESPACE
