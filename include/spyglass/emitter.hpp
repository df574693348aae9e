#pragma once
/// The emitter: turns measured operations into Events and hands them to the default
/// collector. Used by the scope macros (scope.hpp) and callable directly when the
/// caller measured an operation itself.

#include <atomic>
#include <cstdint>
#include <string_view>

#include "spyglass/clock.hpp"
#include "spyglass/config.hpp"
#include "spyglass/context.hpp"
#include "spyglass/event.hpp"

namespace SPYGLASS_NAMESPACE {

class Collector;

namespace detail {

/// The per-thread exception globals of the Itanium C++ ABI (section 2.2.2.1), which
/// GCC's and clang's runtimes follow: a scope reads the uncaught count from them
/// directly. std::uncaught_exceptions() returns the same number through two calls into
/// the runtime, which would cost a scope as much as its two clock reads.
struct EhGlobals {
  void* caught_exceptions;
  unsigned int uncaught_exceptions;
};

/// The collector the macros feed; null before a Session exists and after it ends.
SPYGLASS_API extern std::atomic<Collector*> g_default_collector;
/// Head sampling threshold: a trace is sampled when its low 64 bits are below it; the
/// maximum value means every trace (ratio 1), 0 means none (ratio 0).
SPYGLASS_API extern std::atomic<std::uint64_t> g_sample_threshold;
/// Whether spans of unsampled traces still reach the collector (for metrics).
SPYGLASS_API extern std::atomic<bool> g_record_unsampled;

/// The ratio sampler's decision for a trace id.
inline bool sampled_by_ratio(const TraceId& id) noexcept {
  const std::uint64_t t = g_sample_threshold.load(std::memory_order_relaxed);
  return id.lo < t || t == ~std::uint64_t{0};
}

/// Slow paths, out of line.
SPYGLASS_API std::uint32_t fetch_thread_id() noexcept;
SPYGLASS_API int fetch_uncaught_exceptions() noexcept;
SPYGLASS_API void register_thread() noexcept;
SPYGLASS_API bool collector_enqueue(Collector* c, const Event& e) noexcept;
SPYGLASS_API bool route_excluded(std::string_view route) noexcept;
/// Records an operation the caller timed, as a child of the calling thread's current
/// span (not made current): sets the ids, thread and flags of `e`, whose kind, names and
/// values are set, and submits it. For the emit_* functions and adapters that intern
/// their names once. A no-op without a Session.
SPYGLASS_API void emit_measured(Event& e, std::uint64_t start_tick, std::uint64_t end_tick) noexcept;

/// The calling thread's OS id, cached.
inline std::uint32_t thread_id() noexcept {
  const std::uint32_t t = tl_state.tid;
  return SPYGLASS_LIKELY(t != 0) ? t : fetch_thread_id();
}

/// std::uncaught_exceptions() of the calling thread, read with one load once the thread's
/// exception globals are known.
inline int uncaught_exceptions() noexcept {
  const EhGlobals* eh = tl_state.eh;
  if (SPYGLASS_LIKELY(eh != nullptr)) return static_cast<int>(eh->uncaught_exceptions);
  return fetch_uncaught_exceptions();
}

/// True while a default collector exists. One relaxed load.
inline bool active() noexcept { return g_default_collector.load(std::memory_order_relaxed) != nullptr; }

/// Hands a finished event to the default collector, if there is one. The busy flag lets
/// Session teardown wait for threads that are inside this function (see session.cpp).
inline void submit(const Event& e) noexcept {
  ThreadState& ts = tl_state;
  if (SPYGLASS_UNLIKELY(!ts.registered)) register_thread();
  ts.busy.store(1, std::memory_order_relaxed);
  std::atomic_signal_fence(std::memory_order_seq_cst);
  Collector* c = g_default_collector.load(std::memory_order_acquire);
  if (c != nullptr) collector_enqueue(c, e);
  ts.busy.store(0, std::memory_order_release);
}

/// Opens a span as a child of `ctx` (the current context, or a copy of it), or as the
/// root of a new trace when `ctx` is invalid (sampling decided here and inherited), and
/// turns `ctx` into the new span's context. Works on `ctx` in place, field by field: a
/// Context built aside and copied in would be stored in 8-byte parts and read back in
/// 16-byte ones (see store_pair).
inline OpenedSpan open_span(Context& ctx) noexcept {
  OpenedSpan s;
  if (SPYGLASS_LIKELY(ctx.valid())) {
    s.trace_id = ctx.trace_id;
    s.parent_span_id = ctx.span_id;
  } else {
    s.trace_id = new_trace_id();
    store_pair(&ctx.trace_id, s.trace_id.hi, s.trace_id.lo);
    ctx.sampled = sampled_by_ratio(s.trace_id);
    ctx.excluded = false;
  }
  s.span_id = new_span_id();
  ctx.span_id = s.span_id;
  s.flags = ctx.sampled ? Event::kFlagTicks : Event::kFlagTicks | Event::kFlagUnsampled;
  return s;
}

/// Sets the times of an event (ids, thread and flags already set from open_span()) that
/// ran from `start_tick` to `end_tick` in the span context `span`, and submits it: sampled
/// spans always, unsampled ones (flagged, for metrics) unless that is switched off,
/// excluded ones never.
inline void finish(Event& e, const Context& span, std::uint64_t start_tick, std::uint64_t end_tick) noexcept {
  if (SPYGLASS_UNLIKELY(!span.sampled) &&
      (span.excluded || !g_record_unsampled.load(std::memory_order_relaxed)))
    return;
  store_pair(&e.start, start_tick, end_tick >= start_tick ? end_tick - start_tick : 0);
  submit(e);
}

}  // namespace detail

/// Sets the fraction of new traces that are recorded, in [0, 1] (clamped). The decision
/// is made once per trace, at its root, from the trace id, and inherited by every span
/// of it. Thread-safe.
SPYGLASS_API void set_sample_ratio(double ratio) noexcept;

/// Whether a request continuing a W3C traceparent keeps the caller's sampled flag (true,
/// the default) or is decided by the sample ratio from its trace id (false). See
/// SessionOptions::parent_based. Thread-safe.
SPYGLASS_API void set_parent_based_sampling(bool parent_based) noexcept;

/// Whether spans of unsampled traces still reach the collector, flagged, so that metrics
/// count every operation (true, the default) or are not recorded at all (false: the
/// cheapest). See SessionOptions::record_unsampled. Thread-safe.
SPYGLASS_API void set_record_unsampled(bool record) noexcept;

/// Records a function call the caller timed with clock::now(). `name` is interned.
/// Thread-safe; a no-op without a Session.
SPYGLASS_API void emit_fn(std::string_view name, std::uint64_t start_tick, std::uint64_t end_tick,
                          Status status = Status::ok) noexcept;

/// Records a database query the caller timed. `sql` is redacted (literals become `?`)
/// and interned; `system` is the database system ("postgresql", "sqlite", ...). With
/// `redact` false the text is interned as it is, for connections whose owner turned
/// redaction off (it is still repaired and capped, see intern.hpp).
SPYGLASS_API void emit_db(std::string_view sql, std::uint64_t start_tick, std::uint64_t end_tick,
                          std::uint64_t rows = 0, Status status = Status::ok, std::string_view system = {},
                          bool redact = true) noexcept;

/// Records a served request the caller timed. A status >= 500 marks it as an error.
/// Routes excluded by the Session options are not recorded.
SPYGLASS_API void emit_req(std::string_view route, std::uint64_t start_tick, std::uint64_t end_tick,
                           std::uint16_t http_status, std::uint64_t bytes_in = 0, std::uint64_t bytes_out = 0,
                           std::string_view method = {}) noexcept;

}  // namespace SPYGLASS_NAMESPACE
