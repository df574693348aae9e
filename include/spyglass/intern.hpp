#pragma once
/// Interning of dynamic names (routes, SQL, runtime function names) into strings that
/// live until the process exits, so an Event can carry a plain pointer to them.

#include <cstddef>
#include <cstdint>
#include <string_view>

#include "spyglass/config.hpp"

namespace SPYGLASS_NAMESPACE {

/// The name every dynamic name maps to once the interning table is full.
inline constexpr const char* kOverflowName = "__overflow__";

/// Limits of the interning tables. Memory is bounded by them; entries are never freed.
struct InternLimits {
  std::size_t max_names = 16384;                 ///< Distinct names kept.
  std::size_t max_bytes = 4u * 1024 * 1024;      ///< Bytes of text kept for names.
  std::size_t max_sql = 8192;                    ///< Distinct raw SQL statements whose redaction is cached.
  std::size_t max_sql_bytes = 4u * 1024 * 1024;  ///< Bytes of raw SQL kept in that cache.
};

/// Counts of what the tables hold and what they turned away.
struct InternStats {
  std::size_t names = 0;
  std::size_t bytes = 0;
  std::uint64_t overflowed = 0;  ///< Lookups that got kOverflowName because the table was full.
  std::size_t sql_cached = 0;
  std::uint64_t sql_uncached = 0;  ///< Statements redacted without caching (cache full).
};

/// A NUL-terminated copy of `text` that lives until the process exits; the same text
/// always gives the same pointer. When the table is full, returns kOverflowName and
/// counts it. Thread-safe and lock-free; allocates only when it adds a name.
SPYGLASS_API const char* intern(std::string_view text) noexcept;

/// The interned redacted form of a SQL statement (literals replaced by `?`, see
/// redact.hpp). Redaction runs once per distinct statement while the cache has room,
/// and on every call after that (no allocation then). Thread-safe.
SPYGLASS_API const char* intern_sql(std::string_view sql) noexcept;

/// Current sizes and overflow counts. Thread-safe.
SPYGLASS_API InternStats intern_stats() noexcept;

/// Sets the limits. Takes effect for later insertions; lowering a limit does not
/// evict anything. Thread-safe.
SPYGLASS_API void set_intern_limits(const InternLimits& limits) noexcept;

}  // namespace SPYGLASS_NAMESPACE
