#pragma once
/// Interning of dynamic names (routes, SQL, runtime function names) into strings that
/// live until the process exits, so an Event can carry a plain pointer to them.
///
/// Interning is the one place where dynamic text is made fit for every exporter, so that
/// JSONL, Prometheus and OTLP all show the same text:
/// - Invalid UTF-8 is repaired with the rule of utf8.hpp (one U+FFFD per maximal invalid
///   subpart), so an interned name is always valid UTF-8.
/// - Each NUL byte becomes U+FFFD: events carry NUL-terminated strings, and a name must
///   not be cut silently at an embedded NUL.
/// - Text longer than its cap (InternLimits::max_name_bytes for names, routes, methods and
///   systems; InternLimits::max_statement_bytes for redacted SQL), measured after the two
///   steps above, is cut at a UTF-8 character boundary and ends with kTruncationMarker;
///   the result, marker included, is at most the cap. A truncated name is interned as its
///   truncated text, so long names that share their first cap - 3 bytes share one entry.
/// Static literal names (SPYGLASS_SCOPE("...")) are not interned: each writer repairs
/// them with the same UTF-8 rule (json_escape), and they are not capped.

#include <cstddef>
#include <cstdint>
#include <string_view>

#include "spyglass/config.hpp"

namespace SPYGLASS_NAMESPACE {

/// The name every dynamic name maps to once the interning table is full.
/// Defined once in the core, so the pointer is the same in every shared object.
SPYGLASS_API extern const char* const kOverflowName;

/// Ends a name that was cut to its cap: U+2026 HORIZONTAL ELLIPSIS ("…", 3 bytes in UTF-8).
inline constexpr std::string_view kTruncationMarker = "\xE2\x80\xA6";

/// The smallest cap honoured: smaller InternLimits::max_name_bytes or max_statement_bytes
/// values count as this, so a cut name keeps at least a few bytes before the marker.
inline constexpr std::size_t kMinTextCap = 16;

/// Limits of the interning tables. Memory is bounded by them; entries are never freed.
struct InternLimits {
  std::size_t max_names = 16384;                 ///< Distinct names kept.
  std::size_t max_bytes = 4u * 1024 * 1024;      ///< Bytes of text kept for names.
  std::size_t max_sql = 8192;                    ///< Distinct raw SQL statements whose redaction is cached.
  std::size_t max_sql_bytes = 4u * 1024 * 1024;  ///< Bytes of raw SQL kept in that cache.
  /// Longest interned name, route, HTTP method or database system, in bytes of UTF-8,
  /// kTruncationMarker included; longer text is cut (see the top of this file).
  std::size_t max_name_bytes = 1024;
  /// Longest interned redacted SQL statement, in bytes, marker included; the cut is made
  /// after redaction, so no literal is ever exposed by it. Raw statements longer than 8
  /// times this are redacted on every call instead of being cached (counted in
  /// InternStats::sql_uncached), so a few huge statements cannot fill the cache.
  std::size_t max_statement_bytes = 4096;
};

/// Counts of what the tables hold and what they turned away.
struct InternStats {
  std::size_t names = 0;           ///< Distinct names in the table.
  std::size_t bytes = 0;           ///< Bytes of their text (terminators not counted).
  std::uint64_t overflowed = 0;    ///< Lookups that got kOverflowName because the table was full.
  std::uint64_t truncated = 0;     ///< Texts cut to their cap (per lookup of a name; per redaction of SQL).
  std::size_t sql_cached = 0;      ///< Distinct raw statements whose redaction is cached.
  std::uint64_t sql_uncached = 0;  ///< Statements redacted without caching (cache full, or too long).
};

/// A NUL-terminated copy of `text`, repaired and capped at InternLimits::max_name_bytes
/// (see the top of this file), that lives until the process exits; the same text always
/// gives the same pointer. When the table is full, returns kOverflowName and counts it.
/// Thread-safe and lock-free; allocates only when it adds a name, or the first time a
/// thread meets text that needs repair or cutting (a per-thread buffer that is reused).
SPYGLASS_API const char* intern(std::string_view text) noexcept;

/// The interned redacted form of a SQL statement (literals replaced by `?`, see
/// redact.hpp), repaired and capped at InternLimits::max_statement_bytes after redaction.
/// Redaction runs once per distinct statement while the cache has room, and on every call
/// after that (no allocation then). Thread-safe.
SPYGLASS_API const char* intern_sql(std::string_view sql) noexcept;

/// Current sizes and overflow counts. Thread-safe.
SPYGLASS_API InternStats intern_stats() noexcept;

/// Sets the limits. Takes effect for later insertions; lowering a limit does not
/// evict anything. Thread-safe.
SPYGLASS_API void set_intern_limits(const InternLimits& limits) noexcept;

}  // namespace SPYGLASS_NAMESPACE
