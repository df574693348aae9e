#include "spyglass/emitter.hpp"

#include <cxxabi.h>
#include <sys/syscall.h>
#include <unistd.h>

#include <algorithm>
#include <cmath>
#include <exception>
#include <limits>

#include "spyglass/collector.hpp"
#include "spyglass/intern.hpp"
#include "spyglass/scope.hpp"
#include "spyglass/traceparent.hpp"

namespace SPYGLASS_NAMESPACE {
namespace detail {

constinit std::atomic<Collector*> g_default_collector{nullptr};
constinit std::atomic<std::uint64_t> g_sample_threshold{std::numeric_limits<std::uint64_t>::max()};
constinit std::atomic<bool> g_parent_based{true};
constinit std::atomic<bool> g_record_unsampled{true};

namespace {
// Whether the runtime's exception globals have the Itanium ABI layout scopes read: checked
// once, on first use (never from a static initialiser), by comparing the direct read with
// std::uncaught_exceptions() while an exception is in flight.
bool eh_globals_layout_verified() noexcept {
#if defined(__GLIBCXX__) || defined(_LIBCPPABI_VERSION)
  static const bool ok = [] {
    // Exceptions may already be in flight (the first read can happen during unwinding):
    // compare against that count, not against zero.
    const int base = std::uncaught_exceptions();
    bool agree = false;
    struct Probe {
      bool& agree;
      int base;
      ~Probe() {
        const auto* g = reinterpret_cast<const EhGlobals*>(abi::__cxa_get_globals());
        agree = std::uncaught_exceptions() == base + 1 && g != nullptr &&
                g->uncaught_exceptions == static_cast<unsigned>(base + 1);
      }
    };
    try {
      Probe probe{agree, base};
      throw 0;
    } catch (int) {
    }
    const auto* g = reinterpret_cast<const EhGlobals*>(abi::__cxa_get_globals());
    return agree && g != nullptr && g->uncaught_exceptions == static_cast<unsigned>(base);
  }();
  return ok;
#else
  return false;
#endif
}
}  // namespace

int fetch_uncaught_exceptions() noexcept {
#if defined(__GLIBCXX__) || defined(_LIBCPPABI_VERSION)
  // Stable for the thread's life (also in a forked child, whose memory is a copy). Without
  // the verified layout, eh stays null and every scope uses the standard call.
  if (eh_globals_layout_verified())
    tl_state.eh = reinterpret_cast<const EhGlobals*>(abi::__cxa_get_globals());
#endif
  return std::uncaught_exceptions();
}

std::uint32_t fetch_thread_id() noexcept {
  tl_state.tid = static_cast<std::uint32_t>(::syscall(SYS_gettid));
  return tl_state.tid;
}

}  // namespace detail

void set_sample_ratio(double ratio) noexcept {
  if (!(ratio > 0.0)) ratio = 0.0;  // also catches NaN
  if (ratio > 1.0) ratio = 1.0;
  std::uint64_t threshold;
  if (ratio >= 1.0) {
    threshold = std::numeric_limits<std::uint64_t>::max();
  } else if (ratio <= 0.0) {
    threshold = 0;  // nothing passes
  } else {
    threshold = static_cast<std::uint64_t>(std::ldexp(ratio, 64));
  }
  detail::g_sample_threshold.store(threshold, std::memory_order_relaxed);
}

void set_parent_based_sampling(bool parent_based) noexcept {
  detail::g_parent_based.store(parent_based, std::memory_order_relaxed);
}

void set_record_unsampled(bool record) noexcept {
  detail::g_record_unsampled.store(record, std::memory_order_relaxed);
}

namespace detail {
void emit_measured(Event& e, std::uint64_t start_tick, std::uint64_t end_tick) noexcept {
  if (!detail::active()) return;
  Context span = detail::tl_state.context;  // a child of the current span; not made current
  const detail::OpenedSpan opened = detail::open_span(span);
  e.trace_id = opened.trace_id;
  e.span_id = opened.span_id;
  e.parent_span_id = opened.parent_span_id;
  e.flags = opened.flags;
  e.thread_id = detail::thread_id();
  detail::finish(e, span, start_tick, end_tick);
}
}  // namespace detail

void emit_fn(std::string_view name, std::uint64_t start_tick, std::uint64_t end_tick,
             Status status) noexcept {
  if (!detail::active()) return;
  Event e;
  e.kind = EventKind::function;
  e.name = intern(name);
  e.status = status;
  detail::emit_measured(e, start_tick, end_tick);
}

void emit_db(std::string_view sql, std::uint64_t start_tick, std::uint64_t end_tick, std::uint64_t rows,
             Status status, std::string_view system, bool redact) noexcept {
  if (!detail::active()) return;
  Event e;
  e.kind = EventKind::db;
  e.name = redact ? intern_sql(sql) : intern(sql);
  e.detail = system.empty() ? "" : intern(system);
  e.rows = rows;
  e.status = status;
  detail::emit_measured(e, start_tick, end_tick);
}

void emit_req(std::string_view route, std::uint64_t start_tick, std::uint64_t end_tick,
              std::uint16_t http_status, std::uint64_t bytes_in, std::uint64_t bytes_out,
              std::string_view method) noexcept {
  if (!detail::active() || detail::route_excluded(route)) return;
  Event e;
  e.kind = EventKind::request;
  e.name = intern(route);
  e.detail = method.empty() ? "" : intern(method);
  e.http_status = http_status;
  e.status = http_status >= 500 ? Status::error : Status::ok;
  e.bytes_in = bytes_in;
  e.bytes_out = bytes_out;
  detail::emit_measured(e, start_tick, end_tick);
}

RequestScope::RequestScope(std::string_view route, std::string_view traceparent,
                           std::string_view method) noexcept
    : ScopeBase(nullptr) {
  if (!detail::active()) return;
  const char* method_name = method.empty() ? "" : intern(method);
  const bool excluded = detail::route_excluded(route);
  std::optional<TraceParent> incoming;
  if (!traceparent.empty()) incoming = parse_traceparent(traceparent);
  if (incoming || excluded) {
    // Continue the caller's trace (or mark an excluded route's trace as not recorded) by
    // making that the parent context for the span this scope opens.
    Context parent = detail::tl_state.context;
    if (incoming) {
      parent.trace_id = incoming->trace_id;
      parent.span_id = incoming->parent_id;
      parent.sampled = detail::g_parent_based.load(std::memory_order_relaxed)
                           ? incoming->sampled()
                           : detail::sampled_by_ratio(incoming->trace_id);
    } else if (!parent.valid()) {
      parent.trace_id = new_trace_id();
      parent.span_id = 0;
    }
    if (excluded) {
      parent.sampled = false;
      parent.excluded = true;
    }
    const Context caller = detail::tl_state.context;
    detail::tl_state.context = parent;
    open(EventKind::request, intern(route), method_name);
    // open() saved `parent` as the context to restore; restore the caller's instead.
    restore_on_close(caller);
    return;
  }
  open(EventKind::request, intern(route), method_name);
}

std::string RequestScope::traceparent() const {
  if (!active_) return {};
  const Context ctx = detail::tl_state.context;
  return format_traceparent(ctx.trace_id, ctx.span_id, ctx.sampled);
}

}  // namespace SPYGLASS_NAMESPACE
