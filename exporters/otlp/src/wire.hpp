#pragma once
// Protobuf wire format, private to the OTLP exporter: a writer for what the fixed OTLP
// messages need (varints, fixed64, doubles, length-delimited fields) and a reader that
// walks the fields of a message (for the receivers' responses).

#include <cstdint>
#include <cstring>
#include <string>
#include <string_view>

#include "spyglass/config.hpp"
#include "spyglass/utf8.hpp"

namespace SPYGLASS_NAMESPACE::otlp::detail {

enum WireType : std::uint32_t { kVarint = 0, kFixed64 = 1, kLen = 2, kFixed32 = 5 };

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
    append_utf8_repaired(s, out_);
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

/// One field read by ProtoReader.
struct ProtoField {
  std::uint32_t number = 0;
  WireType type = kVarint;
  std::uint64_t value = 0;  ///< kVarint, kFixed64, kFixed32: the value.
  std::string_view bytes;   ///< kLen: the contents.
};

/// Walks the fields of one protobuf message, skipping none: the caller picks the ones it
/// wants. Groups (wire types 3 and 4) and truncated fields end the walk as malformed.
class ProtoReader {
 public:
  explicit ProtoReader(std::string_view message) noexcept : rest_(message) {}

  /// Reads the next field into `f`; false at the end of the message or when it is
  /// malformed (see malformed()).
  bool next(ProtoField& f) noexcept {
    if (rest_.empty() || malformed_) return false;
    std::uint64_t key = 0;
    if (!varint(key) || (key >> 3) == 0 || (key >> 3) > 0x1fffffff) return fail();
    f = ProtoField{};
    f.number = static_cast<std::uint32_t>(key >> 3);
    switch (key & 7) {
      case kVarint: f.type = kVarint; return varint(f.value) || fail();
      case kFixed64: f.type = kFixed64; return fixed(8, f.value) || fail();
      case kFixed32: f.type = kFixed32; return fixed(4, f.value) || fail();
      case kLen: {
        f.type = kLen;
        std::uint64_t n = 0;
        if (!varint(n) || n > rest_.size()) return fail();
        f.bytes = rest_.substr(0, static_cast<std::size_t>(n));
        rest_.remove_prefix(static_cast<std::size_t>(n));
        return true;
      }
      default: return fail();
    }
  }
  [[nodiscard]] bool malformed() const noexcept { return malformed_; }

  /// The first field `number` of wire type `type` in `message`, or false.
  static bool find(std::string_view message, std::uint32_t number, WireType type, ProtoField& out) noexcept {
    ProtoReader r(message);
    ProtoField f;
    while (r.next(f)) {
      if (f.number == number && f.type == type) {
        out = f;
        return true;
      }
    }
    return false;
  }

 private:
  bool fail() noexcept {
    malformed_ = true;
    rest_ = {};
    return false;
  }
  bool varint(std::uint64_t& v) noexcept {
    v = 0;
    for (int shift = 0; shift < 64 && !rest_.empty(); shift += 7) {
      const auto b = static_cast<unsigned char>(rest_.front());
      rest_.remove_prefix(1);
      v |= static_cast<std::uint64_t>(b & 0x7f) << shift;
      if ((b & 0x80) == 0) return true;
    }
    return false;
  }
  bool fixed(std::size_t n, std::uint64_t& v) noexcept {
    if (rest_.size() < n) return false;
    v = 0;
    for (std::size_t i = 0; i < n; ++i)
      v |= static_cast<std::uint64_t>(static_cast<unsigned char>(rest_[i])) << (8 * i);
    rest_.remove_prefix(n);
    return true;
  }

  std::string_view rest_;
  bool malformed_ = false;
};

}  // namespace SPYGLASS_NAMESPACE::otlp::detail
