#pragma once
/// JSON string escaping and a small append-only JSON writer.
///
/// Used by the JSONL exporter, OTLP/JSON, the stats endpoint and the monitor. Both write
/// into a caller-owned std::string and allocate nothing else, so a caller that reuses its
/// buffer pays for growth only once.

#include <bit>
#include <charconv>
#include <cmath>
#include <concepts>
#include <cstdint>
#include <cstring>
#include <string>
#include <string_view>
#include <system_error>

#include "spyglass/config.hpp"
#include "spyglass/utf8.hpp"

namespace SPYGLASS_NAMESPACE {

namespace detail {

/// 1 for bytes that can be copied into a JSON string verbatim (printable ASCII other than
/// `"` and `\`, plus DEL, which JSON does not require escaping).
inline constexpr auto kJsonPlain = [] {
  struct Table {
    bool v[256] = {};
  } t;
  for (int c = 0x20; c < 0x80; ++c) t.v[c] = true;
  t.v[static_cast<unsigned char>('"')] = false;
  t.v[static_cast<unsigned char>('\\')] = false;
  return t;
}();

/// Length of the longest prefix of `p[0..n)` that kJsonPlain allows, 8 bytes per step:
/// most names and keys need no escaping at all, and this tells so cheaply.
inline std::size_t json_plain_prefix(const unsigned char* p, std::size_t n) noexcept {
  constexpr std::uint64_t kOnes = 0x0101010101010101ULL;
  constexpr std::uint64_t kHigh = 0x8080808080808080ULL;
  std::size_t i = 0;
  if constexpr (std::endian::native == std::endian::little) {
    for (; i + 8 <= n; i += 8) {
      std::uint64_t x;
      std::memcpy(&x, p + i, 8);
      const std::uint64_t quote = x ^ (kOnes * '"');
      const std::uint64_t slash = x ^ (kOnes * '\\');
      // The high bit of each byte below 0x20, equal to a quote or a backslash, or
      // non-ASCII; borrows can only mark bytes above the first real one, which is all
      // that counts here.
      const std::uint64_t hit =
          ((x - kOnes * 0x20) & ~x) | ((quote - kOnes) & ~quote) | ((slash - kOnes) & ~slash) | x;
      if ((hit & kHigh) != 0) return i + static_cast<std::size_t>(std::countr_zero(hit & kHigh)) / 8;
    }
  }
  while (i < n && kJsonPlain.v[p[i]]) ++i;
  return i;
}

}  // namespace detail

namespace detail {

/// The escaping of json_escape(), handing each piece to `put(const char*, std::size_t)`:
/// one rule for both of its outputs.
template <class Put>
inline void json_escape_to(std::string_view in, Put&& put) {
  const auto* p = reinterpret_cast<const unsigned char*>(in.data());
  const std::size_t n = in.size();
  std::size_t i = 0;
  while (i < n) {
    // Copy the longest run that needs no escaping in one piece.
    const std::size_t run = i + json_plain_prefix(p + i, n - i);
    if (run != i) {
      put(in.data() + i, run - i);
      i = run;
      if (i == n) break;
    }
    const unsigned char c = p[i];
    if (c < 0x80) {
      switch (c) {
        case '"': put("\\\"", 2); break;
        case '\\': put("\\\\", 2); break;
        case '\b': put("\\b", 2); break;
        case '\t': put("\\t", 2); break;
        case '\n': put("\\n", 2); break;
        case '\f': put("\\f", 2); break;
        case '\r': put("\\r", 2); break;
        default: {
          constexpr char kHex[] = "0123456789abcdef";
          const char esc[6] = {'\\', 'u', '0', '0', kHex[c >> 4], kHex[c & 0xf]};
          put(esc, 6);
        }
      }
      ++i;
      continue;
    }
    const int len = utf8_sequence(p + i, n - i);
    if (len > 0) {
      put(in.data() + i, static_cast<std::size_t>(len));
      i += static_cast<std::size_t>(len);
    } else {
      put(kReplacementCharacter.data(), kReplacementCharacter.size());
      i += static_cast<std::size_t>(-len);
    }
  }
}

/// Copies `s` to `p` and returns the end: the caller makes sure there is room.
inline char* put_lit(char* p, std::string_view s) noexcept {
  std::memcpy(p, s.data(), s.size());
  return p + s.size();
}

/// Writes the decimal form of `v` (at most 20 characters) to `p` and returns the end.
inline char* put_u64(char* p, std::uint64_t v) noexcept { return std::to_chars(p, p + 20, v).ptr; }

/// The number types JsonWriter writes: integers and floating point, not bool or characters.
template <class T>
concept json_number = (std::integral<T> || std::floating_point<T>)&&!std::same_as<T, bool> &&
                      !std::same_as<T, char> && !std::same_as<T, char8_t> && !std::same_as<T, char16_t> &&
                      !std::same_as<T, char32_t> && !std::same_as<T, wchar_t>;

}  // namespace detail

/// Appends `in` to `out` escaped as the contents of a JSON string (no surrounding quotes).
///
/// `"` and `\` are backslash-escaped; control bytes below 0x20 become \b \t \n \f \r or
/// \u00XX; DEL (0x7f) is copied. Valid UTF-8 is copied unchanged; each maximal subpart of
/// an invalid sequence (bad lead byte, truncated, overlong, surrogate, above U+10FFFF)
/// becomes one U+FFFD, so the output is always valid UTF-8 and valid JSON. Reentrant.
inline void json_escape(std::string_view in, std::string& out) {
  detail::json_escape_to(in, [&out](const char* s, std::size_t n) { out.append(s, n); });
}

/// The same written to `out`, which has room for 6 bytes per byte of `in` (the longest
/// escape, \u00XX); returns the end of what was written.
inline char* json_escape(std::string_view in, char* out) noexcept {
  detail::json_escape_to(in, [&out](const char* s, std::size_t n) {
    std::memcpy(out, s, n);
    out += n;
  });
  return out;
}

/// Appends JSON text to a caller-owned std::string; commas between members and elements
/// are inserted automatically. It allocates nothing besides growing that string.
///
/// Each call appends its piece (comma, quotes, text, colon) to the string in one go: a
/// key or a number is assembled on the stack first, and text that needs no escaping (the
/// usual case, told by an 8-bytes-a-step scan) is copied as it is.
///
/// The writer trusts its caller for structure: it does not check that keys appear only in
/// objects or that every begin has an end. Not thread-safe: use one writer per thread.
class JsonWriter {
 public:
  /// Writes into `out`, appending after its current contents. `out` must outlive the writer.
  explicit JsonWriter(std::string& out) noexcept : out_(&out) {}

  /// The string being written to.
  [[nodiscard]] std::string& str() noexcept { return *out_; }

  /// Starts an object (as a value or an array element).
  void begin_object() { open('{'); }
  /// Ends the innermost object.
  void end_object() { close('}'); }
  /// Starts an array (as a value or an array element).
  void begin_array() { open('['); }
  /// Ends the innermost array.
  void end_array() { close(']'); }

  /// Writes an object member name and the colon; the next call writes its value.
  void key(std::string_view k) {
    string(k, true);
    need_comma_ = false;
  }

  /// A string value, escaped with json_escape().
  void value(std::string_view s) {
    string(s, false);
    need_comma_ = true;
  }
  /// A C string value; a null pointer writes `null`.
  void value(const char* s) {
    if (s == nullptr) {
      null();
    } else {
      value(std::string_view(s));
    }
  }
  /// `true` or `false`.
  void value(bool b) { literal(b ? std::string_view("true") : std::string_view("false")); }
  /// A signed integer, exactly.
  void value(std::int64_t v) { number_value(v); }
  /// An unsigned integer, exactly.
  void value(std::uint64_t v) { number_value(v); }
  /// Any other integer type (int, unsigned, long long, ...), so that calls are not
  /// ambiguous between the 64-bit overloads. Characters are excluded on purpose.
  template <detail::json_number T>
  requires std::integral<T>
  void value(T v) { number_value(v); }
  /// A finite double in the shortest form that reads back to the same value;
  /// NaN and infinities, which JSON cannot express, are written as `null`.
  void value(double d) { number_value(d); }
  /// A finite float in its own shortest round-trip form (not widened to double first,
  /// which would print 0.1f as 0.10000000149011612); NaN and infinities become `null`.
  void value(float f) { number_value(f); }
  /// A number to write with at most `decimals` digits after the point: see fixed().
  struct Fixed {
    double value;  ///< the number
    int decimals;  ///< digits after the point, 0 to 9
  };
  /// `v` with at most `decimals` (0 to 9) digits after the point, rounded half away from
  /// zero and without trailing zeros: for rates and ratios, whose shortest round-trip
  /// form is long and several times slower to write. Magnitudes of 2^53 / 10^decimals
  /// and more are written in shortest form; NaN and infinities as `null`.
  [[nodiscard]] static Fixed fixed(double v, int decimals) noexcept { return {v, decimals}; }
  /// A number made by fixed().
  void value(Fixed f) { number_value(f); }
  /// A member with a fixed() number, in one append as member() writes the others.
  void member(std::string_view name, Fixed f) { member_of(name, f); }

  /// A member with a number value, as key() then value() write it, in one append: for
  /// the many members of a large body. A name that needs escaping (or is long) takes the
  /// usual path.
  template <detail::json_number T>
  void member(std::string_view name, T v) {
    member_of(name, v);
  }
  /// `null`.
  void null() { literal("null"); }
  /// Pre-rendered JSON, copied verbatim as one value. The caller vouches that it is valid.
  void raw(std::string_view json) {
    sep();
    out_->append(json);
    need_comma_ = true;
  }

 private:
  template <typename T>
  void member_of(std::string_view name, T v) {
    if (name.size() > kShort || !plain(name)) {
      key(name);
      value(v);
      return;
    }
    char buf[kShort + 4 + kNumber];
    char* p = quote_plain(lead(buf), name);
    *p++ = ':';
    put(buf, number(p, v));
    need_comma_ = true;
  }

  // Keys, string values and member names up to this length are assembled on the stack.
  static constexpr std::size_t kShort = 120;

  static bool plain(std::string_view s) noexcept {
    return detail::json_plain_prefix(reinterpret_cast<const unsigned char*>(s.data()), s.size()) == s.size();
  }
  // The comma this piece needs, written to `p`; returns the end.
  char* lead(char* p) const noexcept {
    *p = ',';
    return p + need_comma_;
  }
  void put(const char* b, const char* e) { out_->append(b, static_cast<std::size_t>(e - b)); }
  void sep() {
    if (need_comma_) out_->push_back(',');
  }
  void open(char c) {
    if (need_comma_) {
      const char buf[2] = {',', c};
      out_->append(buf, 2);
    } else {
      out_->push_back(c);
    }
    need_comma_ = false;
  }
  void close(char c) {
    out_->push_back(c);
    need_comma_ = true;
  }
  void literal(std::string_view text) {
    char buf[8];
    char* p = lead(buf);
    std::memcpy(p, text.data(), text.size());
    put(buf, p + text.size());
    need_comma_ = true;
  }
  // `s`, which needs no escaping, in quotes at `p`; returns the end. (No memcpy of an
  // empty view: its data may be null, which memcpy may not be given even for 0 bytes.)
  static char* quote_plain(char* p, std::string_view s) noexcept {
    *p++ = '"';
    if (!s.empty()) std::memcpy(p, s.data(), s.size());
    p += s.size();
    *p++ = '"';
    return p;
  }
  // The comma, `s` quoted and escaped, then a colon for a key.
  void string(std::string_view s, bool is_key) {
    if (SPYGLASS_LIKELY(s.size() <= kShort && plain(s))) {
      char buf[kShort + 4];
      char* p = quote_plain(lead(buf), s);
      *p = ':';
      put(buf, p + is_key);
    } else {
      sep();
      quoted(s);
      if (is_key) out_->push_back(':');
    }
  }
  void quoted(std::string_view s) {
    out_->push_back('"');
    json_escape(s, *out_);
    out_->push_back('"');
  }
  // Room for any number number() writes.
  static constexpr std::size_t kNumber = 40;

  // `v` written at `p` (kNumber bytes of room); returns the end.
  template <std::integral T>
  static char* number(char* p, T v) noexcept {
    return std::to_chars(p, p + kNumber, v).ptr;
  }
  // The shortest form that reads back to `v`; NaN and infinities as `null`.
  template <std::floating_point T>
  static char* number(char* p, T v) noexcept {
    if (!std::isfinite(v)) {
      std::memcpy(p, "null", 4);
      return p + 4;
    }
    auto r = std::to_chars(p, p + kNumber, v);
    // Shortest form may be a long digit string (2^64 prints as 18446744073709552000),
    // which parsers that read integers as int64/uint64 reject; use the exponent form then.
    const std::string_view txt(p, static_cast<std::size_t>(r.ptr - p));
    if (txt.size() > 16 && txt.find_first_of(".e") == std::string_view::npos) {
      r = std::to_chars(p, p + kNumber, v, std::chars_format::scientific);
    }
    return r.ptr;
  }

  static char* number(char* p, Fixed f) noexcept {
    constexpr std::uint64_t kUnit[10] = {1,      10,      100,      1000,      10000,
                                         100000, 1000000, 10000000, 100000000, 1000000000};
    const int d = f.decimals < 0 ? 0 : f.decimals > 9 ? 9 : f.decimals;
    const std::uint64_t unit = kUnit[d];
    const double scaled = std::fabs(f.value) * static_cast<double>(unit);
    if (!(scaled < 9007199254740992.0)) return number(p, f.value);  // 2^53; NaN too
    const auto r = static_cast<std::uint64_t>(scaled + 0.5);
    if (r == 0) {  // not "-0"
      *p = '0';
      return p + 1;
    }
    if (f.value < 0) *p++ = '-';
    p = std::to_chars(p, p + kNumber, r / unit).ptr;
    std::uint64_t frac = r % unit;
    if (frac == 0) return p;
    int digits = d;
    for (; frac % 10 == 0; frac /= 10) --digits;
    *p++ = '.';
    char tail[10];
    const char* end = std::to_chars(tail, tail + sizeof tail, frac).ptr;
    const auto len = static_cast<int>(end - tail);
    for (int i = len; i < digits; ++i) *p++ = '0';
    std::memcpy(p, tail, static_cast<std::size_t>(len));
    return p + len;
  }

  // The comma and `v`, in one append.
  template <typename T>
  void number_value(T v) {
    char buf[1 + kNumber];
    put(buf, number(lead(buf), v));
    need_comma_ = true;
  }

  std::string* out_;
  bool need_comma_ = false;
};

}  // namespace SPYGLASS_NAMESPACE
