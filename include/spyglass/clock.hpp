#pragma once
/// The clock the hot path reads. On x86-64 with an invariant TSC it is the raw TSC
/// (a few ns, no syscall); elsewhere CLOCK_MONOTONIC. Ticks are converted to ns off
/// the hot path, by the collector thread.

#include <atomic>
#include <cstdint>
#include <ctime>

#include "spyglass/config.hpp"

#if defined(__x86_64__) || defined(__i386__)
#include <x86intrin.h>
#define SPYGLASS_HAVE_TSC 1
#else
#define SPYGLASS_HAVE_TSC 0
#endif

namespace SPYGLASS_NAMESPACE::clock {

namespace detail {
/// What a tick is: 0 not decided yet, 1 TSC cycles, 2 CLOCK_MONOTONIC ns. Decided on the
/// first clock read (invariant TSC present and not disabled by SPYGLASS_CLOCK=monotonic),
/// so a read from another file's static initialiser is as good as any later one.
SPYGLASS_API extern std::atomic<int> tick_source;
/// Slow path of the first read: decides tick_source. Thread-safe, idempotent.
SPYGLASS_API int decide_tick_source() noexcept;

/// True when ticks are TSC cycles.
inline bool use_tsc() noexcept {
  int s = tick_source.load(std::memory_order_relaxed);
  if (SPYGLASS_UNLIKELY(s == 0)) s = decide_tick_source();
  return s == 1;
}
}  // namespace detail

/// Monotonic CLOCK_MONOTONIC nanoseconds (a vDSO call, no syscall on Linux).
inline std::uint64_t monotonic_ns() noexcept {
  timespec ts;
  clock_gettime(CLOCK_MONOTONIC, &ts);
  return static_cast<std::uint64_t>(ts.tv_sec) * 1000000000ULL + static_cast<std::uint64_t>(ts.tv_nsec);
}

/// Wall-clock (CLOCK_REALTIME) nanoseconds since the Unix epoch.
inline std::uint64_t realtime_ns() noexcept {
  timespec ts;
  clock_gettime(CLOCK_REALTIME, &ts);
  return static_cast<std::uint64_t>(ts.tv_sec) * 1000000000ULL + static_cast<std::uint64_t>(ts.tv_nsec);
}

/// CPU time of the calling thread (CLOCK_THREAD_CPUTIME_ID) in nanoseconds: what a
/// monitor charges to its own overhead.
inline std::uint64_t thread_cpu_ns() noexcept {
  timespec ts;
  clock_gettime(CLOCK_THREAD_CPUTIME_ID, &ts);
  return static_cast<std::uint64_t>(ts.tv_sec) * 1000000000ULL + static_cast<std::uint64_t>(ts.tv_nsec);
}

/// The current tick. Thread-safe, wait-free; the only clock the hot path reads.
inline std::uint64_t now() noexcept {
#if SPYGLASS_HAVE_TSC
  if (SPYGLASS_LIKELY(detail::use_tsc())) return __rdtsc();
#endif
  return monotonic_ns();
}

/// A snapshot of the tick conversion, for converting many ticks with the same rate
/// (the collector takes one per drained chunk). Cheap to copy.
struct TickConverter {
  bool ticks_are_ns = true;  ///< Ticks are CLOCK_MONOTONIC ns (no TSC).
  double ns_per_tick = 1.0;  ///< Current rate estimate.
  std::uint64_t tick0 = 0;   ///< Anchor tick...
  std::uint64_t real0 = 0;   ///< ...and its Unix-epoch ns.

  /// Nanoseconds in a span of `ticks`.
  [[nodiscard]] std::uint64_t to_ns(std::uint64_t ticks) const noexcept {
    if (ticks_are_ns) return ticks;
    return static_cast<std::uint64_t>(static_cast<double>(ticks) * ns_per_tick);
  }
  /// Unix-epoch nanoseconds of a tick read by now().
  [[nodiscard]] std::uint64_t to_unix_ns(std::uint64_t tick) const noexcept {
    if (ticks_are_ns) return real0 + (tick - tick0);
    const double delta = static_cast<double>(static_cast<std::int64_t>(tick - tick0)) * ns_per_tick;
    // Add in integers: a double near 1.7e18 would only resolve 256 ns.
    return real0 + static_cast<std::uint64_t>(static_cast<std::int64_t>(delta));
  }
};

/// The conversion in force now. Thread-safe.
SPYGLASS_API TickConverter tick_converter() noexcept;

/// Nanoseconds in a span of `ticks`. Thread-safe.
SPYGLASS_API std::uint64_t ticks_to_ns(std::uint64_t ticks) noexcept;

/// Unix-epoch nanoseconds of a tick read by now(). Thread-safe.
SPYGLASS_API std::uint64_t tick_to_unix_ns(std::uint64_t tick) noexcept;

/// Refines the tick rate against CLOCK_MONOTONIC over the time since start-up. Cheap;
/// the collector calls it on each cycle so conversions get more exact as time passes.
SPYGLASS_API void recalibrate() noexcept;

/// Ticks per second currently assumed (1e9 when ticks are ns).
SPYGLASS_API double ticks_per_second() noexcept;

}  // namespace SPYGLASS_NAMESPACE::clock
