#pragma once
// Protobuf wire-format writing and UTF-8 repair, private to the OTLP exporter. Only what
// the fixed OTLP messages need: varints, fixed64, doubles, length-delimited fields.

#include <cstdint>
#include <cstring>
#include <string>
#include <string_view>

#include "spyglass/config.hpp"

namespace SPYGLASS_NAMESPACE::otlp::detail {

/// Appends `s` to `out`, replacing each byte that is not part of a well-formed UTF-8
/// sequence by U+FFFD. The common all-ASCII case is one scan and one append.
void append_utf8(std::string& out, std::string_view s);

enum WireType : std::uint32_t { kVarint = 0, kFixed64 = 1, kLen = 2 };

/// Writes protobuf fields into a std::string. A nested message or string whose encoded
/// length is not known up front is opened with begin() (one length byte reserved) and
/// closed with end(), which widens the length in place when it needs more bytes.
class ProtoWriter {
 public:
  explicit ProtoWriter(std::string& out) noexcept : out_(out) {}

  void varint(std::uint64_t v) {
    char buf[10];
    std::size_t n = 0;
    while (v >= 0x80) {
      buf[n++] = static_cast<char>((v & 0x7f) | 0x80);
      v >>= 7;
    }
    buf[n++] = static_cast<char>(v);
    out_.append(buf, n);
  }
  void tag(std::uint32_t field, WireType type) { varint((static_cast<std::uint64_t>(field) << 3) | type); }
  void raw_fixed64(std::uint64_t v) {
    char buf[8];
    for (int i = 0; i < 8; ++i) buf[i] = static_cast<char>((v >> (8 * i)) & 0xff);
    out_.append(buf, 8);
  }
  void raw_double(double d) {
    std::uint64_t v;
    std::memcpy(&v, &d, sizeof v);
    raw_fixed64(v);
  }
  void field_varint(std::uint32_t field, std::uint64_t v) {
    tag(field, kVarint);
    varint(v);
  }
  void field_fixed64(std::uint32_t field, std::uint64_t v) {
    tag(field, kFixed64);
    raw_fixed64(v);
  }
  void field_double(std::uint32_t field, double d) {
    tag(field, kFixed64);
    raw_double(d);
  }
  /// Bytes copied as they are (ids).
  void field_bytes(std::uint32_t field, const char* data, std::size_t n) {
    tag(field, kLen);
    varint(n);
    out_.append(data, n);
  }
  /// A string field, repaired to UTF-8.
  void field_string(std::uint32_t field, std::string_view s) {
    const std::size_t at = begin(field);
    append_utf8(out_, s);
    end(at);
  }
  /// Opens a length-delimited field; returns the offset end() needs.
  std::size_t begin(std::uint32_t field) {
    tag(field, kLen);
    out_.push_back('\0');
    return out_.size();
  }
  void end(std::size_t start) {
    const std::size_t len = out_.size() - start;
    if (len < 0x80) {
      out_[start - 1] = static_cast<char>(len);
      return;
    }
    char buf[10];
    std::size_t n = 0;
    std::uint64_t v = len;
    while (v >= 0x80) {
      buf[n++] = static_cast<char>((v & 0x7f) | 0x80);
      v >>= 7;
    }
    buf[n++] = static_cast<char>(v);
    out_.insert(start, n - 1, '\0');
    std::memcpy(out_.data() + start - 1, buf, n);
  }
  std::string& out() noexcept { return out_; }

 private:
  std::string& out_;
};

}  // namespace SPYGLASS_NAMESPACE::otlp::detail
