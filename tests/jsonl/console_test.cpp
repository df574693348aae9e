// The console exporter: readable content, sanitized names, colour only when asked for or
// on a terminal.

#include <gtest/gtest.h>
#include <pty.h>
#include <unistd.h>

#include <cstdio>
#include <cstdlib>
#include <string>
#include <thread>
#include <vector>

#include "spyglass/exporters/console.hpp"
#include "support.hpp"

namespace sg = spyglass;

namespace {

/// Everything written to a tmpfile() stream.
std::string contents(std::FILE* f) {
  std::fflush(f);
  std::rewind(f);
  std::string s;
  char buf[4096];
  std::size_t n;
  while ((n = std::fread(buf, 1, sizeof buf, f)) > 0) s.append(buf, n);
  return s;
}

std::vector<sg::Event> sample_events() {
  std::vector<sg::Event> v;
  sg::Event r = sgtest::make_event(0);  // request
  r.name = "/users/{id}";
  r.detail = "GET";
  r.duration = 12'345'678;  // 12.35ms
  r.http_status = 404;
  r.bytes_out = 3400;
  r.status = sg::Status::error;
  r.trace_id = {0x4bf92f3577b34da6ULL, 0xa3ce929d0e0e4736ULL};
  r.span_id = 0x00f067aa0ba902b7ULL;
  r.parent_span_id = 0;
  r.start = 1'795'324'007'123'456'789ULL;
  v.push_back(r);
  sg::Event d = sgtest::make_event(2);  // db
  d.duration = 850;
  d.rows = 17;
  v.push_back(d);
  sg::Event f = sgtest::make_event(1);  // function
  f.duration = 2'500'000'000ULL;
  v.push_back(f);
  return v;
}

}  // namespace

TEST(Console, LinesAreReadable) {
  std::FILE* f = std::tmpfile();
  ASSERT_NE(f, nullptr);
  sg::ConsoleExporter ex({.stream = f, .color = sg::ColorMode::never});
  EXPECT_EQ(ex.name(), "console");
  const auto ev = sample_events();
  ASSERT_TRUE(ex.export_batch(ev));
  const auto lines = sgtest::split_lines(contents(f));
  std::fclose(f);
  ASSERT_EQ(lines.size(), 3u);
  const std::string& r = lines[0];
  EXPECT_TRUE(r.starts_with("2026-11-22T05:06:47.123456Z request")) << r;
  for (const char* part : {"GET /users/{id}", "12.35ms", "error", "http=404", "out=3.4kB", "trace=4bf92f35",
                           "span=00f067aa", "parent=-"}) {
    EXPECT_NE(r.find(part), std::string::npos) << part << " not in: " << r;
  }
  EXPECT_NE(lines[1].find(" db "), std::string::npos) << lines[1];
  EXPECT_NE(lines[1].find("850ns"), std::string::npos) << lines[1];
  EXPECT_NE(lines[1].find("rows=17"), std::string::npos) << lines[1];
  EXPECT_NE(lines[1].find("postgresql SELECT"), std::string::npos) << lines[1];
  EXPECT_NE(lines[2].find("2.500s"), std::string::npos) << lines[2];
  EXPECT_NE(lines[2].find(" ok"), std::string::npos) << lines[2];
}

TEST(Console, ClientCallsShowMethodServerAndFigures) {
  std::FILE* f = std::tmpfile();
  ASSERT_NE(f, nullptr);
  sg::ConsoleExporter ex({.stream = f, .color = sg::ColorMode::never});
  sg::Event e = sgtest::make_event(1);
  e.kind = sg::EventKind::client;
  e.name = "/users/{id}";
  e.detail = "GET";
  e.peer = "http://api.example.com:8080";
  e.http_status = 502;
  e.bytes_in = 10;
  e.bytes_out = 0;
  ASSERT_TRUE(ex.export_batch({&e, 1}));
  const std::string out = contents(f);
  std::fclose(f);
  for (const char* part :
       {" client ", "GET /users/{id}", "server=http://api.example.com:8080", "http=502", "in=10B"})
    EXPECT_NE(out.find(part), std::string::npos) << part << " not in: " << out;
}

TEST(Console, NamesAreSanitized) {
  std::FILE* f = std::tmpfile();
  ASSERT_NE(f, nullptr);
  sg::ConsoleExporter ex({.stream = f, .color = sg::ColorMode::never});
  sg::Event e = sgtest::make_event(1);
  e.name = "evil\x1b]0;title\x07\x1b[2J\nsecond line\r\xff";
  ASSERT_TRUE(ex.export_batch({&e, 1}));
  const std::string out = contents(f);
  std::fclose(f);
  EXPECT_EQ(out.find('\x1b'), std::string::npos) << out;
  EXPECT_EQ(out.find('\x07'), std::string::npos) << out;
  EXPECT_EQ(out.find('\r'), std::string::npos) << out;
  ASSERT_TRUE(out.ends_with('\n'));
  EXPECT_EQ(out.find('\n'), out.size() - 1) << "a name broke the line: " << out;
  EXPECT_NE(out.find(R"(evil\u001b]0;title\u0007\u001b[2J\nsecond line\r)"), std::string::npos) << out;
  EXPECT_NE(out.find("\xef\xbf\xbd"), std::string::npos) << "invalid UTF-8 not replaced: " << out;
}

TEST(Console, NoColourOnAPipeOrFileInAutoMode) {
  // A pipe.
  int fds[2];
  ASSERT_EQ(::pipe(fds), 0);
  std::FILE* w = ::fdopen(fds[1], "w");
  ASSERT_NE(w, nullptr);
  std::string got;
  std::thread reader([&] {
    char buf[4096];
    ssize_t n;
    while ((n = ::read(fds[0], buf, sizeof buf)) > 0) got.append(buf, static_cast<std::size_t>(n));
  });
  {
    sg::ConsoleExporter ex({.stream = w, .color = sg::ColorMode::automatic});
    EXPECT_FALSE(ex.colored());
    const auto ev = sample_events();
    EXPECT_TRUE(ex.export_batch(ev));
    ex.shutdown();
  }
  std::fclose(w);
  reader.join();
  ::close(fds[0]);
  EXPECT_EQ(sgtest::split_lines(got).size(), 3u);
  EXPECT_EQ(got.find('\x1b'), std::string::npos) << got;

  // A regular file.
  std::FILE* f = std::tmpfile();
  ASSERT_NE(f, nullptr);
  sg::ConsoleExporter ex({.stream = f});
  EXPECT_FALSE(ex.colored());
  const auto ev = sample_events();
  ASSERT_TRUE(ex.export_batch(ev));
  const std::string out = contents(f);
  std::fclose(f);
  EXPECT_FALSE(out.empty());
  EXPECT_EQ(out.find('\x1b'), std::string::npos) << out;
}

TEST(Console, AlwaysColours) {
  std::FILE* f = std::tmpfile();
  ASSERT_NE(f, nullptr);
  sg::ConsoleExporter ex({.stream = f, .color = sg::ColorMode::always});
  EXPECT_TRUE(ex.colored());
  const auto ev = sample_events();
  ASSERT_TRUE(ex.export_batch(ev));
  const std::string out = contents(f);
  std::fclose(f);
  EXPECT_NE(out.find("\x1b[31merror\x1b[0m"), std::string::npos) << out;  // error in red
  EXPECT_NE(out.find("\x1b[32mok\x1b[0m"), std::string::npos) << out;     // ok in green
  EXPECT_EQ(sgtest::split_lines(out).size(), 3u);
  // Without the escapes the text is the uncoloured line.
  std::string plain;
  sg::ConsoleExporter::format(ev[0], false, plain);
  std::string stripped;
  const std::string first = sgtest::split_lines(out)[0];
  for (std::size_t i = 0; i < first.size(); ++i) {
    if (first[i] == '\x1b') {
      i = first.find('m', i);
      continue;
    }
    stripped.push_back(first[i]);
  }
  EXPECT_EQ(stripped + "\n", plain);
}

TEST(Console, ReportsAWriteErrorWithoutThrowing) {
  std::FILE* f = std::fopen("/dev/full", "w");
  if (f == nullptr) GTEST_SKIP() << "/dev/full is not available";
  sg::ConsoleExporter ex({.stream = f, .color = sg::ColorMode::never});
  const auto ev = sample_events();
  bool ok = true;
  sgtest::LogCapture log;
  EXPECT_NO_THROW(ok = ex.export_batch(ev));
  EXPECT_FALSE(ok);
  // Reported through the log hook, not written to stderr by the exporter.
  EXPECT_EQ(log.warnings(), 1u);
  const auto records = log.records();
  if (!records.empty()) {
    EXPECT_EQ(records[0],
              "console: cannot write " + std::to_string(ev.size()) + " event(s): No space left on device");
  } else {
    EXPECT_GT(sg::log_counts().suppressed, 0u);
  }
  std::fclose(f);
}

TEST(Console, ColoursOnATerminalUnlessNoColorIsSet) {
  int master = -1, slave = -1;
  if (::openpty(&master, &slave, nullptr, nullptr, nullptr) != 0) GTEST_SKIP() << "no pseudo-terminals here";
  std::FILE* tty = ::fdopen(slave, "w");
  ASSERT_NE(tty, nullptr);
  const char* saved = std::getenv("NO_COLOR");
  const std::string saved_value = saved != nullptr ? saved : "";
  ::unsetenv("NO_COLOR");
  EXPECT_TRUE(sg::ConsoleExporter({.stream = tty}).colored());
  ::setenv("NO_COLOR", "1", 1);
  EXPECT_FALSE(sg::ConsoleExporter({.stream = tty}).colored());
  EXPECT_TRUE(sg::ConsoleExporter({.stream = tty, .color = sg::ColorMode::always}).colored());
  ::setenv("NO_COLOR", "", 1);  // empty means unset (no-color.org)
  EXPECT_TRUE(sg::ConsoleExporter({.stream = tty}).colored());
  if (saved != nullptr) {
    ::setenv("NO_COLOR", saved_value.c_str(), 1);
  } else {
    ::unsetenv("NO_COLOR");
  }
  std::fclose(tty);
  ::close(master);
}
