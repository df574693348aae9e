#include "spyglass/clock.hpp"

#include "internal.hpp"

#include <atomic>
#include <cstdlib>
#include <cstring>
#include <mutex>

#if SPYGLASS_HAVE_TSC
#include <cpuid.h>
#endif

namespace SPYGLASS_NAMESPACE::clock {
namespace {

bool detect_invariant_tsc() noexcept {
#if SPYGLASS_HAVE_TSC
  const char* env = std::getenv("SPYGLASS_CLOCK");
  if (env != nullptr && std::strcmp(env, "monotonic") == 0) return false;
  unsigned eax = 0, ebx = 0, ecx = 0, edx = 0;
  if (static_cast<unsigned>(__get_cpuid_max(0x80000000u, nullptr)) < 0x80000007u) return false;
  __get_cpuid(0x80000007u, &eax, &ebx, &ecx, &edx);
  return (edx & (1u << 8)) != 0;  // CPUID.80000007H:EDX[8] = invariant TSC
#else
  return false;
#endif
}

// The tick rate is estimated from two (tick, CLOCK_MONOTONIC) anchors: one taken at
// start-up and the latest one. The longer apart they are, the better the estimate.
struct Calibration {
  std::uint64_t tick0 = 0;
  std::uint64_t mono0 = 0;
  std::uint64_t real0 = 0;
  std::atomic<double> ns_per_tick{1.0};
  std::mutex refine_mutex;
};

void sample_pair(std::uint64_t& tick, std::uint64_t& mono) noexcept {
  // Bracket the monotonic read with two tick reads and keep the tightest of a few tries.
  std::uint64_t best = ~0ULL;
  for (int i = 0; i < 5; ++i) {
    const std::uint64_t a = now();
    const std::uint64_t m = monotonic_ns();
    const std::uint64_t b = now();
    if (b - a < best) {
      best = b - a;
      tick = a + (b - a) / 2;
      mono = m;
    }
  }
}

Calibration& calibration() noexcept {
  static Calibration* c = [] {
    auto* cal = new Calibration;  // never freed: usable from any thread until exit
    if (!detail::use_tsc()) {
      cal->tick0 = cal->mono0 = monotonic_ns();
      cal->real0 = realtime_ns() - (monotonic_ns() - cal->mono0);
      cal->ns_per_tick.store(1.0);
      return cal;
    }
    sample_pair(cal->tick0, cal->mono0);
    cal->real0 = realtime_ns() - (monotonic_ns() - cal->mono0);
    // A first estimate over ~2 ms; recalibrate() refines it as time passes.
    std::uint64_t t1 = 0, m1 = 0;
    do {
      sample_pair(t1, m1);
    } while (m1 - cal->mono0 < 2'000'000);
    cal->ns_per_tick.store(static_cast<double>(m1 - cal->mono0) / static_cast<double>(t1 - cal->tick0));
    return cal;
  }();
  return *c;
}

}  // namespace

namespace detail {
constinit std::atomic<int> tick_source{0};

int decide_tick_source() noexcept {
  int expected = 0;
  tick_source.compare_exchange_strong(expected, detect_invariant_tsc() ? 1 : 2, std::memory_order_relaxed);
  return tick_source.load(std::memory_order_relaxed);
}
}  // namespace detail

TickConverter tick_converter() noexcept {
  Calibration& c = calibration();
  TickConverter t;
  t.ticks_are_ns = !detail::use_tsc();
  t.ns_per_tick = t.ticks_are_ns ? 1.0 : c.ns_per_tick.load(std::memory_order_relaxed);
  t.tick0 = t.ticks_are_ns ? c.mono0 : c.tick0;
  t.real0 = c.real0;
  return t;
}

std::uint64_t ticks_to_ns(std::uint64_t ticks) noexcept { return tick_converter().to_ns(ticks); }

std::uint64_t tick_to_unix_ns(std::uint64_t tick) noexcept { return tick_converter().to_unix_ns(tick); }

void recalibrate() noexcept {
  if (!detail::use_tsc()) return;
  Calibration& c = calibration();
  std::lock_guard<std::mutex> lock(c.refine_mutex);
  std::uint64_t t = 0, m = 0;
  sample_pair(t, m);
  if (m - c.mono0 < 10'000'000 || t <= c.tick0) return;
  c.ns_per_tick.store(static_cast<double>(m - c.mono0) / static_cast<double>(t - c.tick0),
                      std::memory_order_relaxed);
}

double ticks_per_second() noexcept { return 1e9 / calibration().ns_per_tick.load(std::memory_order_relaxed); }

}  // namespace SPYGLASS_NAMESPACE::clock

namespace SPYGLASS_NAMESPACE::detail {
void clock_lock_for_fork() noexcept { clock::calibration().refine_mutex.lock(); }
void clock_unlock_after_fork() noexcept { clock::calibration().refine_mutex.unlock(); }
}  // namespace SPYGLASS_NAMESPACE::detail
