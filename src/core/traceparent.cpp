// W3C traceparent parsing: table-driven hex decoding, no allocation, no read past the view.
#include "spyglass/traceparent.hpp"

namespace SPYGLASS_NAMESPACE {

namespace {

// Value of each lowercase hex digit; kBad (high nibble set) for every other byte, so one
// OR over a field tells whether any of its characters was not a lowercase hex digit.
constexpr std::uint8_t kBad = 0xF0;
constexpr auto kHexValue = [] {
  struct Table {
    std::uint8_t v[256];
  } t{};
  for (auto& b : t.v) b = kBad;
  for (int c = '0'; c <= '9'; ++c) t.v[c] = static_cast<std::uint8_t>(c - '0');
  for (int c = 'a'; c <= 'f'; ++c) t.v[c] = static_cast<std::uint8_t>(c - 'a' + 10);
  return t;
}();

// Decodes `N` hex digits at `p` (N <= 16); sets `bad` when one of them is not lowercase hex.
template <int N>
inline std::uint64_t decode_hex(const char* p, std::uint8_t& bad) noexcept {
  std::uint64_t v = 0;
  std::uint8_t b = 0;
  for (int i = 0; i < N; ++i) {
    const std::uint8_t d = kHexValue.v[static_cast<unsigned char>(p[i])];
    b |= d;
    v = (v << 4) | (d & 0x0FU);
  }
  bad |= static_cast<std::uint8_t>(b & kBad);
  return v;
}

constexpr bool is_ows(char c) noexcept { return c == ' ' || c == '\t'; }

}  // namespace

std::optional<TraceParent> parse_traceparent(std::string_view header) noexcept {
  // Optional whitespace around the value is allowed by RFC 9110 field syntax.
  while (!header.empty() && is_ows(header.front())) header.remove_prefix(1);
  while (!header.empty() && is_ows(header.back())) header.remove_suffix(1);
  if (header.size() < kTraceParentSize) return std::nullopt;
  const char* p = header.data();
  std::uint8_t bad = 0;
  const auto version = static_cast<std::uint8_t>(decode_hex<2>(p, bad));
  if (bad != 0 || version == 0xFF) return std::nullopt;
  if (version == 0) {
    if (header.size() != kTraceParentSize) return std::nullopt;
  } else if (header.size() > kTraceParentSize && p[kTraceParentSize] != '-') {
    // A future version may append fields, always after a '-'.
    return std::nullopt;
  }
  if (p[2] != '-' || p[35] != '-' || p[52] != '-') return std::nullopt;
  TraceParent tp;
  tp.trace_id.hi = decode_hex<16>(p + 3, bad);
  tp.trace_id.lo = decode_hex<16>(p + 19, bad);
  tp.parent_id = decode_hex<16>(p + 36, bad);
  tp.flags = static_cast<std::uint8_t>(decode_hex<2>(p + 53, bad));
  if (bad != 0 || !tp.trace_id.valid() || tp.parent_id == 0) return std::nullopt;
  return tp;
}

void format_traceparent(const TraceId& trace_id, SpanId parent_id, bool sampled,
                        char (&out)[kTraceParentSize]) noexcept {
  out[0] = '0';
  out[1] = '0';
  out[2] = '-';
  to_hex(trace_id.hi, out + 3);
  to_hex(trace_id.lo, out + 19);
  out[35] = '-';
  to_hex(parent_id, out + 36);
  out[52] = '-';
  out[53] = '0';
  out[54] = sampled ? '1' : '0';
}

std::string format_traceparent(const TraceId& trace_id, SpanId parent_id, bool sampled) {
  char buf[kTraceParentSize];
  format_traceparent(trace_id, parent_id, sampled, buf);
  return std::string(buf, kTraceParentSize);
}

}  // namespace SPYGLASS_NAMESPACE
