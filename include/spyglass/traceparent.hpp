#pragma once
/// W3C Trace Context (level 1) `traceparent` header: parsing and formatting.

#include <cstdint>
#include <optional>
#include <string>
#include <string_view>

#include "spyglass/config.hpp"
#include "spyglass/ids.hpp"

namespace SPYGLASS_NAMESPACE {

/// The fields of a `traceparent` header. `parent_id` is the caller's span id.
struct TraceParent {
  TraceId trace_id;
  SpanId parent_id = 0;
  std::uint8_t flags = 0;
  /// The `sampled` flag (bit 0): the caller recorded this trace.
  [[nodiscard]] bool sampled() const noexcept { return (flags & 1U) != 0; }
  friend bool operator==(const TraceParent&, const TraceParent&) = default;
};

/// Length of a version-00 `traceparent` value: `vv-<32 hex>-<16 hex>-<2 hex>`.
inline constexpr std::size_t kTraceParentSize = 55;

/// Parses a `traceparent` header value. Returns nullopt for anything malformed, so that
/// the caller starts a new trace instead of continuing a bad one.
///
/// Accepted: leading and trailing spaces/tabs; lowercase hex only; version 00 exactly 55
/// characters; a later version (01..fe) of 55 characters or more, read on its first 55
/// when the 56th, if present, is '-'. Rejected: version ff, an all-zero trace id or parent
/// id, uppercase hex, wrong separators or lengths. Reads only inside `header`, allocates
/// nothing. Thread-safe (pure function).
SPYGLASS_API std::optional<TraceParent> parse_traceparent(std::string_view header) noexcept;

/// Writes a version-00 `traceparent` value into `out`: exactly 55 characters, no NUL
/// terminator. Flags are 01 when `sampled`, else 00. Thread-safe (pure function).
SPYGLASS_API void format_traceparent(const TraceId& trace_id, SpanId parent_id, bool sampled,
                                     char (&out)[kTraceParentSize]) noexcept;

/// The version-00 `traceparent` value as a string. Thread-safe (pure function).
SPYGLASS_API std::string format_traceparent(const TraceId& trace_id, SpanId parent_id, bool sampled);

}  // namespace SPYGLASS_NAMESPACE
