// UTF-8 repair for label values: Prometheus rejects an exposition whose label values
// are not valid UTF-8, and names may hold any bytes (SQL text, routes from the wire).

#include <cstddef>
#include <cstdint>
#include <string>
#include <string_view>

#include "spyglass/exporters/prometheus.hpp"

namespace SPYGLASS_NAMESPACE::prom {

namespace {

/// Length of the valid UTF-8 sequence starting at s[i], or 0 if it is not one
/// (overlong forms, surrogates and code points above U+10FFFF are invalid).
std::size_t valid_sequence(std::string_view s, std::size_t i) noexcept {
  const auto b0 = static_cast<std::uint8_t>(s[i]);
  if (b0 < 0x80) return 1;
  std::size_t len = 0;
  std::uint8_t lo = 0x80;
  std::uint8_t hi = 0xbf;
  if (b0 >= 0xc2 && b0 <= 0xdf) {
    len = 2;
  } else if (b0 >= 0xe0 && b0 <= 0xef) {
    len = 3;
    if (b0 == 0xe0) lo = 0xa0;  // overlong
    if (b0 == 0xed) hi = 0x9f;  // surrogates
  } else if (b0 >= 0xf0 && b0 <= 0xf4) {
    len = 4;
    if (b0 == 0xf0) lo = 0x90;  // overlong
    if (b0 == 0xf4) hi = 0x8f;  // above U+10FFFF
  } else {
    return 0;
  }
  if (i + len > s.size()) return 0;
  const auto b1 = static_cast<std::uint8_t>(s[i + 1]);
  if (b1 < lo || b1 > hi) return 0;
  for (std::size_t k = 2; k < len; ++k) {
    const auto b = static_cast<std::uint8_t>(s[i + k]);
    if (b < 0x80 || b > 0xbf) return 0;
  }
  return len;
}

}  // namespace

std::string to_valid_utf8(std::string_view s) {
  std::string out;
  out.reserve(s.size());
  std::size_t i = 0;
  while (i < s.size()) {
    const std::size_t n = valid_sequence(s, i);
    if (n == 0) {
      out += "\xef\xbf\xbd";  // U+FFFD, one per invalid byte
      ++i;
    } else {
      out.append(s.substr(i, n));
      i += n;
    }
  }
  return out;
}

}  // namespace SPYGLASS_NAMESPACE::prom
