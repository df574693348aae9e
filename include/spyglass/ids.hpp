#pragma once
/// Trace and span identifiers (W3C Trace Context sizes) and their generator.

#include <array>
#include <cstdint>
#include <string>
#include <string_view>

#include "spyglass/config.hpp"

namespace spyglass::inline v0 {

/// A 128-bit trace id. Zero means "no trace". Trivially copyable.
struct TraceId {
  std::uint64_t hi = 0;
  std::uint64_t lo = 0;
  [[nodiscard]] constexpr bool valid() const noexcept { return (hi | lo) != 0; }
  friend constexpr bool operator==(const TraceId&, const TraceId&) = default;
};

/// A 64-bit span id. Zero means "no span".
using SpanId = std::uint64_t;

/// Writes `v` as 16 lowercase hex digits into `out` (no terminator).
inline void to_hex(std::uint64_t v, char* out) noexcept {
  constexpr char kDigits[] = "0123456789abcdef";
  for (int i = 15; i >= 0; --i) {
    out[i] = kDigits[v & 0xf];
    v >>= 4;
  }
}

/// 32 lowercase hex digits of a trace id.
inline std::string to_hex(const TraceId& id) {
  std::string s(32, '0');
  to_hex(id.hi, s.data());
  to_hex(id.lo, s.data() + 16);
  return s;
}

/// 16 lowercase hex digits of a span id.
inline std::string span_to_hex(SpanId id) {
  std::string s(16, '0');
  to_hex(id, s.data());
  return s;
}

namespace detail {
/// Per-thread generator state. Seeded from the OS on a thread's first use and again in
/// the child after fork(), so parent and child never repeat each other's ids.
struct RandomState {
  std::uint64_t s = 0;
  bool seeded = false;
};
inline thread_local constinit RandomState tl_random;
/// Slow path: seeds tl_random (getrandom). Defined in src/core.
SPYGLASS_API void seed_thread_random() noexcept;

/// wyrand: one multiply per 64 bits, passes BigCrush; ids need uniqueness, not secrecy.
inline std::uint64_t next_random() noexcept {
  RandomState& r = tl_random;
  if (SPYGLASS_UNLIKELY(!r.seeded)) seed_thread_random();
  r.s += 0xa0761d6478bd642fULL;
  __extension__ using u128 = unsigned __int128;
  const u128 m = static_cast<u128>(r.s) * static_cast<u128>(r.s ^ 0xe7037ed1a0b428dbULL);
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

}  // namespace spyglass::inline v0
