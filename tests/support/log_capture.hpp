#pragma once
// Captures the library's diagnostics while it lives (spyglass::set_log_handler) and
// restores the default handler when destroyed. Starts with the rate limits reset, so a
// test sees its first 10 messages per source whatever ran before it in the process.

#include <cstddef>
#include <cstdint>
#include <mutex>
#include <string>
#include <vector>

#include "spyglass/log.hpp"

namespace spyglass::test {

class LogCapture {
 public:
  LogCapture() : start_((spyglass::reset_log_rate_limits(), spyglass::log_counts())) {
    spyglass::set_log_handler([this](const spyglass::LogRecord& r) {
      std::lock_guard<std::mutex> lock(mutex_);
      records_.push_back({r.level, std::string(r.source), std::string(r.message)});
    });
  }
  ~LogCapture() { spyglass::set_log_handler({}); }
  LogCapture(const LogCapture&) = delete;
  LogCapture& operator=(const LogCapture&) = delete;

  /// "<source>: <message>" of each diagnostic received so far.
  [[nodiscard]] std::vector<std::string> records() const {
    std::lock_guard<std::mutex> lock(mutex_);
    std::vector<std::string> out;
    for (const auto& r : records_) out.push_back(r.source + ": " + r.message);
    return out;
  }
  /// The records, one per line, for failure messages.
  [[nodiscard]] std::string text() const {
    std::string all;
    for (const auto& l : records()) all += l + "\n";
    return all;
  }
  /// How many records contain `what`.
  [[nodiscard]] std::size_t count(const std::string& what) const {
    std::size_t n = 0;
    for (const auto& l : records()) n += l.find(what) != std::string::npos ? 1u : 0u;
    return n;
  }
  /// Warnings from `source` whose message contains `needle`.
  [[nodiscard]] std::size_t warnings(const std::string& source, const std::string& needle) const {
    std::lock_guard<std::mutex> lock(mutex_);
    std::size_t n = 0;
    for (const auto& r : records_)
      n += r.level == LogLevel::warning && r.source == source && r.message.find(needle) != std::string::npos;
    return n;
  }
  /// Warnings and errors logged since construction, as the log counts them (including
  /// any its rate limit held back).
  [[nodiscard]] std::uint64_t warnings() const {
    const LogCounts now = log_counts();
    return now.warnings + now.errors - start_.warnings - start_.errors;
  }
  /// False when the rate limit dropped a message since the capture began.
  [[nodiscard]] bool complete() const { return log_counts().suppressed == start_.suppressed; }

 private:
  struct Record {
    LogLevel level;
    std::string source;
    std::string message;
  };
  LogCounts start_;
  mutable std::mutex mutex_;
  std::vector<Record> records_;
};

}  // namespace spyglass::test
