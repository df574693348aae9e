// Diagnostics: one handler, a level filter and a per-source rate limit.
#include "spyglass/log.hpp"

#include "internal.hpp"

#include <atomic>
#include <chrono>
#include <cstdio>
#include <mutex>
#include <string>

namespace SPYGLASS_NAMESPACE {
namespace {

constexpr std::uint64_t kBurst = 10;
constexpr auto kWindow = std::chrono::seconds(10);

// Rate-limit state for one source. Sources are a handful of fixed names; past 32 they
// share the last entry.
struct SourceLimit {
  std::string source;
  std::chrono::steady_clock::time_point window_start{};
  std::uint64_t in_window = 0;
  std::uint64_t suppressed = 0;
};

struct LogState {
  std::mutex m;  // serialises the handler and the rate-limit table
  LogHandler handler;
  SourceLimit limits[32];
  std::size_t used = 0;
  std::atomic<int> min_level{static_cast<int>(LogLevel::info)};
  std::atomic<std::uint64_t> warnings{0};
  std::atomic<std::uint64_t> errors{0};
  std::atomic<std::uint64_t> suppressed{0};

  SourceLimit& limit_for(std::string_view source) {
    for (std::size_t i = 0; i < used; ++i)
      if (limits[i].source == source) return limits[i];
    if (used == std::size(limits)) return limits[used - 1];
    limits[used].source.assign(source);
    return limits[used++];
  }
};

LogState& state() {
  static auto* s = new LogState;  // never freed: threads may log during static destruction
  return *s;
}

void write_stderr(const LogRecord& r) {
  if (r.suppressed_before > 0)
    std::fprintf(stderr, "spyglass %.*s: %llu similar message(s) suppressed\n",
                 static_cast<int>(r.source.size()), r.source.data(),
                 static_cast<unsigned long long>(r.suppressed_before));
  const std::string_view level = to_string(r.level);
  std::fprintf(stderr, "spyglass %.*s: %.*s: %.*s\n", static_cast<int>(r.source.size()), r.source.data(),
               static_cast<int>(level.size()), level.data(), static_cast<int>(r.message.size()),
               r.message.data());
}

}  // namespace

std::string_view to_string(LogLevel level) noexcept {
  switch (level) {
    case LogLevel::debug: return "debug";
    case LogLevel::info: return "info";
    case LogLevel::warning: return "warning";
    case LogLevel::error: return "error";
  }
  return "error";
}

void set_log_handler(LogHandler handler) {
  LogState& s = state();
  std::lock_guard<std::mutex> lock(s.m);
  s.handler = std::move(handler);
}

void set_log_level(LogLevel level) noexcept { state().min_level.store(static_cast<int>(level)); }

void log(LogLevel level, std::string_view source, std::string_view message) noexcept {
  LogState& s = state();
  if (level == LogLevel::warning) s.warnings.fetch_add(1, std::memory_order_relaxed);
  if (level == LogLevel::error) s.errors.fetch_add(1, std::memory_order_relaxed);
  if (static_cast<int>(level) < s.min_level.load(std::memory_order_relaxed)) return;
  try {
    std::lock_guard<std::mutex> lock(s.m);
    SourceLimit& lim = s.limit_for(source);
    const auto now = std::chrono::steady_clock::now();
    if (now - lim.window_start >= kWindow) {
      lim.window_start = now;
      lim.in_window = 0;
    }
    if (lim.in_window >= kBurst) {
      ++lim.suppressed;
      s.suppressed.fetch_add(1, std::memory_order_relaxed);
      return;
    }
    ++lim.in_window;
    LogRecord r{level, source, message, lim.suppressed};
    lim.suppressed = 0;
    if (s.handler) {
      s.handler(r);
    } else {
      write_stderr(r);
    }
  } catch (...) {
    // A throwing handler or a failed allocation loses this one message, nothing else.
  }
}

void reset_log_rate_limits() noexcept {
  LogState& s = state();
  std::lock_guard<std::mutex> lock(s.m);
  for (std::size_t i = 0; i < s.used; ++i) {
    s.limits[i].in_window = 0;
    s.limits[i].suppressed = 0;
    s.limits[i].window_start = {};
  }
}

LogCounts log_counts() noexcept {
  LogState& s = state();
  return {s.warnings.load(std::memory_order_relaxed), s.errors.load(std::memory_order_relaxed),
          s.suppressed.load(std::memory_order_relaxed)};
}

namespace detail {
void log_lock_for_fork() noexcept { state().m.lock(); }
void log_unlock_after_fork() noexcept { state().m.unlock(); }
}  // namespace detail

}  // namespace SPYGLASS_NAMESPACE
