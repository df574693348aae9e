#pragma once
/// The thread-local current trace context and the guard that carries it across threads.

#include "spyglass/config.hpp"
#include "spyglass/ids.hpp"

namespace spyglass::inline v0 {

/// A position in a trace: which trace, which span is current, and whether the trace is
/// sampled (recorded). Trivially copyable; pass it by value to another thread.
struct Context {
  TraceId trace_id;
  SpanId span_id = 0;
  bool sampled = false;

  /// True when this context belongs to a trace.
  [[nodiscard]] constexpr bool valid() const noexcept { return trace_id.valid(); }

  /// The calling thread's current context (invalid when no scope is open).
  [[nodiscard]] static Context current() noexcept;
};

namespace detail {
/// The calling thread's current context. Scopes save and restore it.
inline thread_local constinit Context tl_context;
}  // namespace detail

inline Context Context::current() noexcept { return detail::tl_context; }

/// Makes `ctx` the calling thread's current context for the guard's lifetime and restores
/// the previous one at its end. Use it to continue a trace on a pool thread:
///
///   auto ctx = spyglass::Context::current();
///   pool.submit([ctx] { spyglass::ContextGuard g(ctx); SPYGLASS_SCOPE("work"); });
///
/// Not copyable or movable; lives on one thread.
class ContextGuard {
 public:
  explicit ContextGuard(const Context& ctx) noexcept : saved_(detail::tl_context) {
    detail::tl_context = ctx;
  }
  ~ContextGuard() { detail::tl_context = saved_; }
  ContextGuard(const ContextGuard&) = delete;
  ContextGuard& operator=(const ContextGuard&) = delete;

 private:
  Context saved_;
};

}  // namespace spyglass::inline v0
