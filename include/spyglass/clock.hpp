#pragma once
/// The clock the hot path reads. On x86-64 with an invariant TSC it is the raw TSC
/// (a few ns, no syscall); elsewhere CLOCK_MONOTONIC. Ticks are converted to ns off
/// the hot path, by the collector thread.

#include <cstdint>
#include <ctime>

#include "spyglass/config.hpp"

#if defined(__x86_64__) || defined(__i386__)
#include <x86intrin.h>
#define SPYGLASS_HAVE_TSC 1
#else
#define SPYGLASS_HAVE_TSC 0
#endif

namespace spyglass::inline v0::clock {

namespace detail {
/// True when ticks are TSC cycles; false when they are CLOCK_MONOTONIC ns. Decided once
/// at load time (invariant TSC present and not disabled by SPYGLASS_CLOCK=monotonic).
SPYGLASS_API extern const bool use_tsc;
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

/// The current tick. Thread-safe, wait-free; the only clock the hot path reads.
inline std::uint64_t now() noexcept {
#if SPYGLASS_HAVE_TSC
  if (SPYGLASS_LIKELY(detail::use_tsc)) return __rdtsc();
#endif
  return monotonic_ns();
}

/// Nanoseconds in a span of `ticks`. Thread-safe.
SPYGLASS_API std::uint64_t ticks_to_ns(std::uint64_t ticks) noexcept;

/// Unix-epoch nanoseconds of a tick read by now(). Thread-safe.
SPYGLASS_API std::uint64_t tick_to_unix_ns(std::uint64_t tick) noexcept;

/// Refines the tick rate against CLOCK_MONOTONIC over the time since start-up. Cheap;
/// the collector calls it on each cycle so conversions get more exact as time passes.
SPYGLASS_API void recalibrate() noexcept;

/// Ticks per second currently assumed (1e9 when ticks are ns).
SPYGLASS_API double ticks_per_second() noexcept;

}  // namespace spyglass::inline v0::clock
