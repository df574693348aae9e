// Diagnostics: the collector's warnings reach the application's handler, the per-source
// rate limit reports what it suppressed, the level filter, the counts, and the default
// handler writing to stderr. A binary of its own: the rate limit is process-wide state.
#include <gtest/gtest.h>
#include <unistd.h>

#include <mutex>
#include <string>
#include <vector>

#include "../support/collecting_exporter.hpp"
#include "spyglass/collector.hpp"
#include "spyglass/log.hpp"

namespace sg = spyglass;
using sg::test::CollectingExporter;
using sg::test::eventually;
using namespace std::chrono_literals;

namespace {

struct Captured {
  sg::LogLevel level;
  std::string source;
  std::string message;
  std::uint64_t suppressed_before;
};

// Installs a handler that keeps every record, and restores the default at the end.
class Capture {
 public:
  Capture() {
    sg::set_log_handler([this](const sg::LogRecord& r) {
      std::lock_guard<std::mutex> lock(m_);
      records_.push_back({r.level, std::string(r.source), std::string(r.message), r.suppressed_before});
    });
  }
  ~Capture() { sg::set_log_handler({}); }
  Capture(const Capture&) = delete;
  Capture& operator=(const Capture&) = delete;

  std::vector<Captured> from(std::string_view source) const {
    std::lock_guard<std::mutex> lock(m_);
    std::vector<Captured> out;
    for (const auto& r : records_)
      if (r.source == source) out.push_back(r);
    return out;
  }

 private:
  mutable std::mutex m_;
  std::vector<Captured> records_;
};

sg::Event make_event() {
  sg::Event e;
  e.name = "op";
  e.start = 1'700'000'000'000'000'000ULL;
  return e;
}

}  // namespace

TEST(Log, ThrowingExporterWarningReachesTheHandler) {
  Capture capture;
  const auto counts_before = sg::log_counts();
  auto throwing = std::make_shared<CollectingExporter>("thrower", CollectingExporter::Mode::throw_error);
  sg::Collector c({.batch_max = 100});
  c.add_exporter(throwing);
  for (int i = 0; i < 100; ++i) ASSERT_TRUE(c.enqueue(make_event()));
  ASSERT_TRUE(c.flush());
  ASSERT_TRUE(c.shutdown());
  EXPECT_EQ(c.exporter_counters().at(0).failed, 100u);
  const auto got = capture.from("collector");
  ASSERT_EQ(got.size(), 1u);  // one batch, one throw, one warning
  EXPECT_EQ(got[0].level, sg::LogLevel::warning);
  EXPECT_NE(got[0].message.find("'thrower'"), std::string::npos) << got[0].message;
  EXPECT_NE(got[0].message.find("export_batch"), std::string::npos) << got[0].message;
  EXPECT_NE(got[0].message.find("exporter failure requested by the test"), std::string::npos)
      << got[0].message;
  EXPECT_EQ(got[0].message.find('\n'), std::string::npos);
  EXPECT_EQ(got[0].suppressed_before, 0u);
  const auto counts_after = sg::log_counts();
  EXPECT_EQ(counts_after.warnings - counts_before.warnings, 1u);
  EXPECT_EQ(counts_after.errors - counts_before.errors, 0u);
}

TEST(Log, RateLimitTenPerSourceThenReportsTheSuppressed) {
  Capture capture;
  const auto before = sg::log_counts();
  for (int i = 0; i < 25; ++i) sg::log(sg::LogLevel::warning, "rate-test", "message " + std::to_string(i));
  sg::log(sg::LogLevel::error, "other-source", "not limited by rate-test");
  auto got = capture.from("rate-test");
  ASSERT_EQ(got.size(), 10u);  // at most 10 in any 10 s
  for (int i = 0; i < 10; ++i)
    EXPECT_EQ(got[static_cast<std::size_t>(i)].message, "message " + std::to_string(i));
  EXPECT_EQ(capture.from("other-source").size(), 1u);
  const auto after = sg::log_counts();
  EXPECT_EQ(after.warnings - before.warnings, 25u);  // counted, delivered or not
  EXPECT_EQ(after.errors - before.errors, 1u);
  EXPECT_EQ(after.suppressed - before.suppressed, 15u);
  // Once the window has passed, the next message gets through and carries the count of
  // the ones dropped before it.
  ASSERT_TRUE(eventually(
      [&] {
        sg::log(sg::LogLevel::warning, "rate-test", "after the window");
        return capture.from("rate-test").size() > 10;
      },
      60s));
  got = capture.from("rate-test");
  ASSERT_EQ(got.size(), 11u);
  EXPECT_EQ(got[10].message, "after the window");
  // The 15 of the burst, plus the tries of the wait loop that came before the window ended.
  const std::uint64_t tries = sg::log_counts().suppressed - after.suppressed;
  EXPECT_EQ(got[10].suppressed_before, 15u + tries);
}

TEST(Log, LevelFilterDropsBelowTheLevel) {
  Capture capture;
  sg::set_log_level(sg::LogLevel::error);
  sg::log(sg::LogLevel::warning, "level-test", "filtered");
  sg::log(sg::LogLevel::error, "level-test", "kept");
  sg::set_log_level(sg::LogLevel::debug);
  sg::log(sg::LogLevel::debug, "level-test", "debug kept");
  sg::set_log_level(sg::LogLevel::info);
  sg::log(sg::LogLevel::debug, "level-test", "debug filtered");
  const auto got = capture.from("level-test");
  ASSERT_EQ(got.size(), 2u);
  EXPECT_EQ(got[0].message, "kept");
  EXPECT_EQ(got[0].level, sg::LogLevel::error);
  EXPECT_EQ(got[1].message, "debug kept");
  EXPECT_EQ(sg::to_string(sg::LogLevel::debug), "debug");
  EXPECT_EQ(sg::to_string(sg::LogLevel::info), "info");
  EXPECT_EQ(sg::to_string(sg::LogLevel::warning), "warning");
  EXPECT_EQ(sg::to_string(sg::LogLevel::error), "error");
}

TEST(Log, EmptyHandlerRestoresStderr) {
  { Capture capture; }  // installs a handler, then set_log_handler({})
  int fds[2];
  ASSERT_EQ(::pipe(fds), 0);
  const int saved = ::dup(STDERR_FILENO);
  ASSERT_GE(saved, 0);
  ASSERT_EQ(::dup2(fds[1], STDERR_FILENO), STDERR_FILENO);
  ::close(fds[1]);
  sg::log(sg::LogLevel::warning, "stderr-test", "to the default handler");
  ::fflush(stderr);
  ASSERT_EQ(::dup2(saved, STDERR_FILENO), STDERR_FILENO);  // closes the last write end
  ::close(saved);
  std::string text;
  char buf[512];
  for (ssize_t n; (n = ::read(fds[0], buf, sizeof buf)) > 0;) text.append(buf, static_cast<std::size_t>(n));
  ::close(fds[0]);
  EXPECT_EQ(text, "spyglass stderr-test: warning: to the default handler\n");
}
