#pragma once
/// The thread-local current trace context, the guard that carries it across threads, and
/// the one per-thread state of the library (context, id generator, collector handle).

#include <atomic>
#include <cstdint>

#include "spyglass/config.hpp"
#include "spyglass/ids.hpp"

namespace SPYGLASS_NAMESPACE {

/// A position in a trace: which trace, which span is current, and whether the trace is
/// sampled (exported as spans). Trivially copyable; pass it by value to another thread.
struct Context {
  TraceId trace_id;
  SpanId span_id = 0;
  /// Spans of this trace are exported. Unsampled spans still count in metrics unless
  /// SessionOptions::record_unsampled is false.
  bool sampled = false;
  /// Spans of this trace are not recorded at all (an excluded route and its children).
  bool excluded = false;
  /// Explicit padding: with every byte a member, a copy is two whole 16-byte moves. A
  /// 26-byte copy is two overlapping ones, and the next scope's read of the context then
  /// waits for both stores (a store-forwarding stall of ~10 ns on the hot path).
  std::uint8_t padding_[6] = {};

  /// True when this context belongs to a trace.
  [[nodiscard]] constexpr bool valid() const noexcept { return trace_id.valid(); }

  /// The calling thread's current context (invalid when no scope is open).
  [[nodiscard]] static Context current() noexcept;
};

namespace detail {

struct EhGlobals;

/// Everything the library keeps per thread, in one object defined once in the core
/// library: linked statically or as shared objects (and from plugins opened with
/// dlopen), a thread has exactly one. Constant-initialised, so an access costs no
/// initialisation check.
struct ThreadState {
  Context context;                     ///< Current trace context; scopes save and restore it.
  std::uint64_t random = 0;            ///< Id generator state (wyrand).
  bool random_seeded = false;          ///< Seeded from the OS on first use and after fork().
  bool registered = false;             ///< Listed in the process-wide thread registry.
  std::atomic<std::uint32_t> busy{0};  ///< 1 while this thread may be using the default collector.
  std::uint32_t tid = 0;               ///< OS thread id, 0 until first needed.
  std::uint64_t collector_gen = 0;     ///< Which collector generation `slot` belongs to.
  void* slot = nullptr;                ///< That collector's per-thread producer slot.
  const EhGlobals* eh = nullptr;       ///< This thread's C++ exception globals, once checked.
};

/// The calling thread's state. Defined in the core library, exported once. Initial-exec:
/// one %fs-relative access from any code, also code built for a shared object (no
/// __tls_get_addr call); the 100-odd bytes fit glibc's static TLS reserve even when the
/// core is first loaded by dlopen().
SPYGLASS_API extern thread_local constinit ThreadState tl_state [[gnu::tls_model("initial-exec")]];

/// Slow path: seeds the calling thread's generator (getrandom). Defined in src/core.
SPYGLASS_API void seed_thread_random() noexcept;

/// wyrand: one multiply per 64 bits, passes BigCrush; ids need uniqueness, not secrecy.
inline std::uint64_t next_random() noexcept {
  ThreadState& ts = detail::tl_state;
  if (SPYGLASS_UNLIKELY(!ts.random_seeded)) seed_thread_random();
  ts.random += 0xa0761d6478bd642fULL;
  __extension__ using u128 = unsigned __int128;
  const u128 m = static_cast<u128>(ts.random) * static_cast<u128>(ts.random ^ 0xe7037ed1a0b428dbULL);
  return static_cast<std::uint64_t>(m >> 64) ^ static_cast<std::uint64_t>(m);
}

}  // namespace detail

/// A new random span id, never zero. Thread-safe (per-thread state).
inline SpanId new_span_id() noexcept {
  std::uint64_t v;
  do {
    v = detail::next_random();
  } while (SPYGLASS_UNLIKELY(v == 0));
  return v;
}

/// A new random trace id, never zero. Thread-safe (per-thread state).
inline TraceId new_trace_id() noexcept {
  TraceId t;
  do {
    t.hi = detail::next_random();
    t.lo = detail::next_random();
  } while (SPYGLASS_UNLIKELY(!t.valid()));
  return t;
}

inline Context Context::current() noexcept { return detail::tl_state.context; }

/// Makes `ctx` the calling thread's current context for the guard's lifetime and restores
/// the previous one at its end. Use it to continue a trace on a pool thread:
///
///   auto ctx = spyglass::Context::current();
///   pool.submit([ctx] { spyglass::ContextGuard g(ctx); SPYGLASS_SCOPE("work"); });
///
/// Not copyable or movable; lives on one thread.
class ContextGuard {
 public:
  explicit ContextGuard(const Context& ctx) noexcept : saved_(detail::tl_state.context) {
    detail::tl_state.context = ctx;
  }
  ~ContextGuard() { detail::tl_state.context = saved_; }
  ContextGuard(const ContextGuard&) = delete;
  ContextGuard& operator=(const ContextGuard&) = delete;

 private:
  Context saved_;
};

}  // namespace SPYGLASS_NAMESPACE
