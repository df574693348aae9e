#pragma once
/// The one UTF-8 repair rule every output uses: valid UTF-8 is kept, and each maximal
/// subpart of an invalid sequence (Unicode's "substitution of maximal subparts", the
/// WHATWG decoder's rule) becomes one U+FFFD.

#include <cstddef>
#include <string>
#include <string_view>

#include "spyglass/config.hpp"

namespace SPYGLASS_NAMESPACE {

/// Length of the valid UTF-8 sequence starting at `p[0]` (a byte >= 0x80), or, when it
/// is invalid, the negated length of its maximal subpart (the longest prefix that could
/// start a valid sequence, at least 1). Follows Unicode Table 3-7 (well-formed byte
/// sequences), which rules out overlongs, surrogates and code points above U+10FFFF.
inline int utf8_sequence(const unsigned char* p, std::size_t avail) noexcept {
  const unsigned char b0 = p[0];
  int len;
  unsigned char lo = 0x80, hi = 0xBF;  // allowed range of the second byte
  if (b0 >= 0xC2 && b0 <= 0xDF) {
    len = 2;
  } else if (b0 >= 0xE0 && b0 <= 0xEF) {
    len = 3;
    if (b0 == 0xE0) lo = 0xA0;  // overlong
    if (b0 == 0xED) hi = 0x9F;  // surrogates
  } else if (b0 >= 0xF0 && b0 <= 0xF4) {
    len = 4;
    if (b0 == 0xF0) lo = 0x90;  // overlong
    if (b0 == 0xF4) hi = 0x8F;  // above U+10FFFF
  } else {
    return -1;  // continuation byte, C0/C1 or F5..FF: never a lead byte
  }
  for (int i = 1; i < len; ++i) {
    if (static_cast<std::size_t>(i) >= avail) return -i;  // truncated
    const unsigned char b = p[i];
    if (i == 1 ? (b < lo || b > hi) : (b < 0x80 || b > 0xBF)) return -i;
  }
  return len;
}

/// The UTF-8 encoding of U+FFFD REPLACEMENT CHARACTER.
inline constexpr std::string_view kReplacementCharacter = "\xEF\xBF\xBD";

/// True when `s` is well-formed UTF-8.
[[nodiscard]] inline bool is_valid_utf8(std::string_view s) noexcept {
  const auto* p = reinterpret_cast<const unsigned char*>(s.data());
  for (std::size_t i = 0; i < s.size();) {
    if (p[i] < 0x80) {
      ++i;
      continue;
    }
    const int len = utf8_sequence(p + i, s.size() - i);
    if (len < 0) return false;
    i += static_cast<std::size_t>(len);
  }
  return true;
}

/// Appends `in` to `out` with the repair rule applied (nothing else changes).
inline void append_utf8_repaired(std::string_view in, std::string& out) {
  const auto* p = reinterpret_cast<const unsigned char*>(in.data());
  std::size_t run = 0;  // start of the pending valid run
  for (std::size_t i = 0; i < in.size();) {
    if (p[i] < 0x80) {
      ++i;
      continue;
    }
    const int len = utf8_sequence(p + i, in.size() - i);
    if (len > 0) {
      i += static_cast<std::size_t>(len);
      continue;
    }
    out.append(in.data() + run, i - run);
    out.append(kReplacementCharacter);
    i += static_cast<std::size_t>(-len);
    run = i;
  }
  out.append(in.data() + run, in.size() - run);
}

/// Appends `in` as XML/HTML character data or attribute value: markup characters escaped,
/// control characters as spaces (line breaks and tabs kept when `keep_lines`, for <pre>),
/// invalid UTF-8 and the non-characters U+FFFE/U+FFFF as U+FFFD.
inline void append_xml_escaped(std::string_view in, std::string& out, bool keep_lines = false) {
  const auto* p = reinterpret_cast<const unsigned char*>(in.data());
  for (std::size_t i = 0; i < in.size();) {
    const unsigned char c = p[i];
    if (c >= 0x80) {
      const int len = utf8_sequence(p + i, in.size() - i);
      if (len > 0) {
        const bool nonchar =
            len == 3 && c == 0xef && p[i + 1] == 0xbf && (p[i + 2] == 0xbe || p[i + 2] == 0xbf);
        if (nonchar) {
          out.append(kReplacementCharacter);
        } else {
          out.append(in.data() + i, static_cast<std::size_t>(len));
        }
        i += static_cast<std::size_t>(len);
      } else {
        out.append(kReplacementCharacter);
        i += static_cast<std::size_t>(-len);
      }
      continue;
    }
    switch (c) {
      case '&': out.append("&amp;"); break;
      case '<': out.append("&lt;"); break;
      case '>': out.append("&gt;"); break;
      case '"': out.append("&quot;"); break;
      case '\'': out.append("&apos;"); break;
      default: {
        const bool kept = keep_lines && (c == '\n' || c == '\t');
        out.push_back((c < 0x20 && !kept) || c == 0x7f ? ' ' : static_cast<char>(c));
      }
    }
    ++i;
  }
}

}  // namespace SPYGLASS_NAMESPACE
