#pragma once
// Internal: the JSONL line formatter. Inline so that the per-event path compiles into the
// exporter's loop.

#include <charconv>
#include <cstdint>
#include <cstring>
#include <string>
#include <string_view>

#include "spyglass/event.hpp"
#include "spyglass/exporters/jsonl.hpp"
#include "spyglass/json.hpp"

namespace SPYGLASS_NAMESPACE::jsonl::detail {

inline constexpr std::uint64_t kNsPerSec = 1000000000ULL;

/// "00".."ff" for every byte: ids are written two digits per step.
inline constexpr auto kHexPairs = [] {
  struct Table {
    char v[512] = {};
  } t;
  constexpr char kDigits[] = "0123456789abcdef";
  for (int i = 0; i < 256; ++i) {
    t.v[2 * i] = kDigits[i >> 4];
    t.v[2 * i + 1] = kDigits[i & 15];
  }
  return t;
}();

/// 16 lowercase hex digits of `v`, like to_hex() in ids.hpp, a byte at a time.
inline void put_hex64(std::uint64_t v, char* out) noexcept {
  for (int i = 7; i >= 0; --i) {
    std::memcpy(out + 2 * i, &kHexPairs.v[(v & 0xff) * 2], 2);
    v >>= 8;
  }
}

/// "00".."99": decimal digits two per step.
inline constexpr auto kDecPairs = [] {
  struct Table {
    char v[200] = {};
  } t;
  for (int i = 0; i < 100; ++i) {
    t.v[2 * i] = static_cast<char>('0' + i / 10);
    t.v[2 * i + 1] = static_cast<char>('0' + i % 10);
  }
  return t;
}();

/// "YYYY-MM-DDTHH:MM:SS" (19 bytes) of a Unix second.
void format_date_time(std::uint64_t sec, char* out) noexcept;

using ::spyglass::detail::put_lit;
using ::spyglass::detail::put_u64;

/// Formats lines; caches the "YYYY-MM-DDTHH:MM:SS." part of the last second seen, which
/// almost every event of a batch shares.
class LineFormatter {
 public:
  void timestamp(std::uint64_t unix_ns, char* out) noexcept {
    const std::uint64_t sec = unix_ns / kNsPerSec;
    if (sec != cached_sec_) {
      format_date_time(sec, cached_);
      cached_[19] = '.';
      cached_sec_ = sec;
    }
    std::memcpy(out, cached_, 20);
    auto frac = static_cast<unsigned>(unix_ns % kNsPerSec);
    for (int i = 27; i >= 21; i -= 2) {
      std::memcpy(out + i, &kDecPairs.v[(frac % 100) * 2], 2);
      frac /= 100;
    }
    out[20] = static_cast<char>('0' + frac);
    out[29] = 'Z';
  }

  void append(const Event& e, std::string& out) {
    // Fixed-size parts are assembled on the stack and appended in one go; the strings
    // (name, detail) go through json_escape.
    char buf[320];
    char* p = put_lit(buf, R"({"ts":")");
    timestamp(e.start, p);
    p += jsonl::kTimestampSize;
    p = put_lit(p, R"(","kind":")");
    p = put_lit(p, to_string(e.kind));
    p = put_lit(p, R"(","name":")");
    out.append(buf, static_cast<std::size_t>(p - buf));
    json_escape(e.name != nullptr ? std::string_view(e.name) : std::string_view(), out);

    p = put_lit(buf, R"(","dur_ns":)");
    p = put_u64(p, e.duration);
    p = put_lit(p, R"(,"trace_id":")");
    put_hex64(e.trace_id.hi, p);
    put_hex64(e.trace_id.lo, p + 16);
    p = put_lit(p + 32, R"(","span_id":")");
    put_hex64(e.span_id, p);
    p += 16;
    if (e.parent_span_id != 0) {
      p = put_lit(p, R"(","parent_span_id":")");
      put_hex64(e.parent_span_id, p);
      p += 16;
    }
    p = put_lit(p, R"(","thread":)");
    p = put_u64(p, e.thread_id);
    p = put_lit(p, R"(,"status":")");
    p = put_lit(p, to_string(e.status));
    *p++ = '"';

    const char* detail_key = nullptr;
    if (e.kind == EventKind::request || e.kind == EventKind::client) {
      p = put_lit(p, R"(,"http_status":)");
      p = put_u64(p, e.http_status);
      p = put_lit(p, R"(,"bytes_in":)");
      p = put_u64(p, e.bytes_in);
      p = put_lit(p, R"(,"bytes_out":)");
      p = put_u64(p, e.bytes_out);
      detail_key = R"(,"method":")";
    } else if (e.kind == EventKind::db) {
      p = put_lit(p, R"(,"rows":)");
      p = put_u64(p, e.rows);
      detail_key = R"(,"db_system":")";
    }
    // The optional strings: each key is appended with the fixed part before it.
    const auto text = [&](std::string_view key, const char* value) {
      if (value == nullptr || value[0] == '\0') return;
      p = put_lit(p, key);
      out.append(buf, static_cast<std::size_t>(p - buf));
      json_escape(value, out);
      p = put_lit(buf, "\"");
    };
    if (detail_key != nullptr) text(detail_key, e.detail);
    if (e.kind == EventKind::client) text(R"(,"server":")", e.peer);
    p = put_lit(p, "}\n");
    out.append(buf, static_cast<std::size_t>(p - buf));
  }

 private:
  std::uint64_t cached_sec_ = ~std::uint64_t{0};
  char cached_[20] = {};
};

}  // namespace SPYGLASS_NAMESPACE::jsonl::detail
