#pragma once
/// Trace and span identifiers (W3C Trace Context sizes) and their generator.

#include <array>
#include <cstdint>
#include <string>
#include <string_view>

#include "spyglass/config.hpp"

namespace SPYGLASS_NAMESPACE {

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

}  // namespace SPYGLASS_NAMESPACE

// The id generators live beside the per-thread state they use.
#include "spyglass/context.hpp"  // IWYU pragma: export
