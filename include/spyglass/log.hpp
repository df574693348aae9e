#pragma once
/// The library's diagnostics: every warning spyglass prints goes through one handler,
/// which the application may replace (to route it into its own logging).

#include <cstdint>
#include <functional>
#include <string_view>

#include "spyglass/config.hpp"

namespace SPYGLASS_NAMESPACE {

/// How serious a diagnostic is.
enum class LogLevel : std::uint8_t { debug = 0, info = 1, warning = 2, error = 3 };

/// "debug", "info", "warning" or "error".
[[nodiscard]] SPYGLASS_API std::string_view to_string(LogLevel level) noexcept;

/// One diagnostic. The views are valid only during the handler call.
struct LogRecord {
  LogLevel level = LogLevel::warning;
  std::string_view source;   ///< What spoke: "collector", "otlp", "prometheus", "jsonl", ...
  std::string_view message;  ///< One line, no trailing newline.
  /// Messages from this source dropped by the rate limit just before this one.
  std::uint64_t suppressed_before = 0;
};

/// Receives diagnostics. Called from whichever thread produced them (often the
/// collector's or an exporter's), never concurrently with itself; it must not record
/// spans or call back into spyglass.
using LogHandler = std::function<void(const LogRecord&)>;

/// Replaces the handler; an empty one restores the default, which writes
/// "spyglass <source>: <level>: <message>" lines to stderr. Thread-safe.
SPYGLASS_API void set_log_handler(LogHandler handler);

/// Diagnostics below `level` are discarded (default: info). Thread-safe.
SPYGLASS_API void set_log_level(LogLevel level) noexcept;

/// Emits a diagnostic. Rate-limited per source: at most 10 messages in any 10 s; the
/// next message that gets through reports how many were dropped. Never throws; callable
/// from any thread (not from a signal handler).
SPYGLASS_API void log(LogLevel level, std::string_view source, std::string_view message) noexcept;

/// Forgets the rate-limit state of every source, so the next messages get through. For
/// tests that check diagnostics one after another in one process. Thread-safe.
SPYGLASS_API void reset_log_rate_limits() noexcept;

/// Counts of diagnostics per level since start (including rate-limited ones).
struct LogCounts {
  std::uint64_t warnings = 0;
  std::uint64_t errors = 0;
  std::uint64_t suppressed = 0;  ///< Dropped by the rate limit.
};

/// The counts so far. Thread-safe.
[[nodiscard]] SPYGLASS_API LogCounts log_counts() noexcept;

}  // namespace SPYGLASS_NAMESPACE
