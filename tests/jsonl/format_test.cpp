// The line format: every member and value of every kind, escaping of hostile names, and
// RFC 3339 timestamps checked against `date` and known constants. Lines are read back with
// simdjson and with jq.

#include <gtest/gtest.h>

#include <cinttypes>
#include <cstdio>
#include <string>
#include <vector>

#include "spyglass/exporters/jsonl.hpp"
#include "support.hpp"

namespace sg = spyglass;
using sgtest::Parsed;

namespace {

std::string hex16(std::uint64_t v) {
  char b[17];
  std::snprintf(b, sizeof b, "%016" PRIx64, v);
  return b;
}

/// Writes `events` with a fresh exporter and returns the one file's lines.
std::vector<std::string> export_lines(const std::vector<sg::Event>& events, const sgtest::TempDir& dir,
                                      std::string* file = nullptr) {
  sg::JsonlOptions o;
  o.directory = dir.str();
  sg::JsonlExporter ex(o);
  EXPECT_TRUE(ex.export_batch(events));
  const std::string path = ex.current_path();
  ex.shutdown();
  EXPECT_EQ(ex.lines_written(), events.size());
  const auto files = sgtest::list_files(dir.path());
  EXPECT_EQ(files.size(), 1u);
  EXPECT_EQ(files.at(0).string(), path);
  const std::string text = sgtest::read_file(path);
  EXPECT_EQ(ex.bytes_written(), text.size());
  EXPECT_TRUE(text.ends_with('\n'));
  if (file != nullptr) *file = path;
  return sgtest::split_lines(text);
}

}  // namespace

TEST(JsonlFormat, EveryKindAndMemberReadsBackExactly) {
  sgtest::TempDir dir;
  std::vector<sg::Event> events;
  for (std::uint64_t i = 0; i < 40; ++i) events.push_back(sgtest::make_event(i));
  events[5].detail = "";  // a function event ignores detail anyway; make a request without method too
  events[4].detail = "";  // request without method
  events[6].detail = "";  // db without system
  // Client calls: with method and server, without server, without method.
  for (std::uint64_t i = 40; i < 43; ++i) {
    sg::Event e = sgtest::make_event(i);
    e.kind = sg::EventKind::client;
    e.name = "/users/{id}";
    e.detail = i == 42 ? "" : "GET";
    e.peer = i == 41 ? "" : "http://api.example.com:8080";
    events.push_back(e);
  }
  std::string file;
  const auto lines = export_lines(events, dir, &file);
  ASSERT_EQ(lines.size(), events.size());

  for (std::size_t i = 0; i < lines.size(); ++i) {
    SCOPED_TRACE(lines[i]);
    const sg::Event& e = events[i];
    Parsed p;
    ASSERT_TRUE(sgtest::parse_line(lines[i], p));
    EXPECT_EQ(p.kind, std::string(sg::to_string(e.kind)));
    EXPECT_EQ(p.name, e.name);
    EXPECT_EQ(p.dur_ns, e.duration);
    EXPECT_EQ(p.trace_id, hex16(e.trace_id.hi) + hex16(e.trace_id.lo));
    EXPECT_EQ(p.span_id, hex16(e.span_id));
    EXPECT_EQ(p.has_parent, e.parent_span_id != 0);
    if (e.parent_span_id != 0) {
      EXPECT_EQ(p.parent_span_id, hex16(e.parent_span_id));
    }
    EXPECT_EQ(p.thread, e.thread_id);
    EXPECT_EQ(p.status, e.status == sg::Status::ok ? "ok" : "error");
    std::size_t members = 8 + (e.parent_span_id != 0 ? 1 : 0);
    const bool has_detail = e.detail[0] != '\0';
    if (e.kind == sg::EventKind::request || e.kind == sg::EventKind::client) {
      EXPECT_TRUE(p.has_http);
      EXPECT_EQ(p.http_status, e.http_status);
      EXPECT_EQ(p.bytes_in, e.bytes_in);
      EXPECT_EQ(p.bytes_out, e.bytes_out);
      EXPECT_EQ(p.has_method, has_detail);
      if (has_detail) {
        EXPECT_EQ(p.method, e.detail);
      }
      members += 3 + (has_detail ? 1 : 0);
    } else {
      EXPECT_FALSE(p.has_http);
      EXPECT_FALSE(p.has_method);
    }
    const bool has_server = e.kind == sg::EventKind::client && e.peer[0] != '\0';
    EXPECT_EQ(p.has_server, has_server);
    if (has_server) {
      EXPECT_EQ(p.server, e.peer);
      ++members;
    }
    if (e.kind == sg::EventKind::db) {
      EXPECT_TRUE(p.has_rows);
      EXPECT_EQ(p.rows, e.rows);
      EXPECT_EQ(p.has_db_system, has_detail);
      if (has_detail) {
        EXPECT_EQ(p.db_system, e.detail);
      }
      members += 1 + (has_detail ? 1 : 0);
    } else {
      EXPECT_FALSE(p.has_rows);
      EXPECT_FALSE(p.has_db_system);
    }
    EXPECT_EQ(p.members, members);
    // The schema's member order.
    EXPECT_TRUE(lines[i].starts_with(R"({"ts":")"));
    EXPECT_LT(lines[i].find(R"("kind":)"), lines[i].find(R"("name":)"));
    EXPECT_LT(lines[i].find(R"("name":)"), lines[i].find(R"("dur_ns":)"));
  }

  // jq, an independent parser, reads every line and agrees on a few values.
  int status = -1;
  const std::string clients =
      sgtest::run(std::string(SPYGLASS_JQ) +
                      " -c 'select(.kind == \"client\") | [.method, .server, .http_status]' " + file,
                  &status);
  EXPECT_EQ(status, 0);
  EXPECT_EQ(clients,
            "[\"GET\",\"http://api.example.com:8080\",240]\n[\"GET\",null,241]\n[null,\"http://"
            "api.example.com:8080\",242]\n");
  const std::string out =
      sgtest::run(std::string(SPYGLASS_JQ) + " -c '[.kind, .span_id, .dur_ns]' " + file, &status);
  EXPECT_EQ(status, 0);
  const auto jq_lines = sgtest::split_lines(out);
  ASSERT_EQ(jq_lines.size(), events.size());
  for (std::size_t i = 0; i < events.size(); ++i) {
    EXPECT_EQ(jq_lines[i], "[\"" + std::string(sg::to_string(events[i].kind)) + "\",\"" +
                               hex16(events[i].span_id) + "\"," + std::to_string(events[i].duration) + "]");
  }
}

TEST(JsonlFormat, ExtremeValues) {
  sgtest::TempDir dir;
  sg::Event e;
  e.kind = sg::EventKind::request;
  e.start = ~0ULL;
  e.duration = ~0ULL;
  e.trace_id = {~0ULL, ~0ULL};
  e.span_id = ~0ULL;
  e.parent_span_id = 1;
  e.thread_id = ~0U;
  e.http_status = 0xffff;
  e.bytes_in = ~0ULL;
  e.bytes_out = 0;
  const auto lines = export_lines({e}, dir);
  ASSERT_EQ(lines.size(), 1u);
  Parsed p;
  ASSERT_TRUE(sgtest::parse_line(lines[0], p));
  EXPECT_EQ(p.ts, "2554-07-21T23:34:33.709551615Z");
  EXPECT_EQ(p.dur_ns, ~0ULL);
  EXPECT_EQ(p.trace_id, std::string(32, 'f'));
  EXPECT_EQ(p.parent_span_id, "0000000000000001");
  EXPECT_EQ(p.thread, 0xffffffffULL);
  EXPECT_EQ(p.http_status, 65535u);
  EXPECT_EQ(p.bytes_in, ~0ULL);
  EXPECT_EQ(p.bytes_out, 0u);
}

TEST(JsonlFormat, HostileNamesAreEscapedAndReadBackByBothParsers) {
  std::string all_controls;
  for (int c = 1; c < 0x20; ++c) all_controls.push_back(static_cast<char>(c));
  // {name as sent, name as it must read back}
  const std::vector<std::pair<std::string, std::string>> cases = {
      {R"(say "hi")", R"(say "hi")"},
      {R"(C:\path\to\file \\ \")", R"(C:\path\to\file \\ \")"},
      {"line1\nline2\r\n\ttab", "line1\nline2\r\n\ttab"},
      {all_controls, all_controls},
      {"esc \x1b[31mred\x1b[0m del \x7f", "esc \x1b[31mred\x1b[0m del \x7f"},
      {"utf8 \xc3\xa9\xe2\x82\xac\xf0\x9f\x98\x80 ok", "utf8 \xc3\xa9\xe2\x82\xac\xf0\x9f\x98\x80 ok"},
      {"bad \xff lead", "bad \xef\xbf\xbd lead"},
      {"cut \xe2\x82", "cut \xef\xbf\xbd"},
      {"overlong \xc0\xaf", "overlong \xef\xbf\xbd\xef\xbf\xbd"},
      {"surrogate \xed\xa0\x80", "surrogate \xef\xbf\xbd\xef\xbf\xbd\xef\xbf\xbd"},
      {"</script><!-- {} [] ,:", "</script><!-- {} [] ,:"},
      {"", ""},
  };
  std::vector<sg::Event> events;
  for (std::size_t i = 0; i < cases.size(); ++i) {
    sg::Event e = sgtest::make_event(i);
    e.name = cases[i].first.c_str();
    // Detail strings go through the same escaping.
    e.detail = cases[(i + 1) % cases.size()].first.c_str();
    events.push_back(e);
  }
  sgtest::TempDir dir;
  std::string file;
  const auto lines = export_lines(events, dir, &file);
  ASSERT_EQ(lines.size(), cases.size());  // no raw newline leaked into a line
  for (std::size_t i = 0; i < lines.size(); ++i) {
    SCOPED_TRACE(i);
    for (char c : lines[i]) EXPECT_GE(static_cast<unsigned char>(c), 0x20u) << "raw control byte in line";
    Parsed p;
    ASSERT_TRUE(sgtest::parse_line(lines[i], p));
    EXPECT_EQ(p.name, cases[i].second);
    const std::string& want_detail = cases[(i + 1) % cases.size()].second;
    if (events[i].kind == sg::EventKind::request) {
      EXPECT_EQ(p.method, want_detail);
    }
    if (events[i].kind == sg::EventKind::db) {
      EXPECT_EQ(p.db_system, want_detail);
    }
  }
  // jq prints the raw strings separated by NUL (names never contain NUL).
  int status = -1;
  const std::string raw =
      sgtest::run(std::string(SPYGLASS_JQ) + R"( -j '.name + "\u0000"' )" + file, &status);
  EXPECT_EQ(status, 0);
  std::vector<std::string> names;
  std::size_t start = 0;
  for (std::size_t z = raw.find('\0'); z != std::string::npos; z = raw.find('\0', start)) {
    names.push_back(raw.substr(start, z - start));
    start = z + 1;
  }
  ASSERT_EQ(names.size(), cases.size());
  for (std::size_t i = 0; i < cases.size(); ++i) EXPECT_EQ(names[i], cases[i].second) << i;
}

TEST(JsonlFormat, Rfc3339KnownConstants) {
  char b[sg::jsonl::kTimestampSize];
  auto fmt = [&](std::uint64_t ns) {
    sg::jsonl::format_rfc3339(ns, b);
    return std::string(b, sizeof b);
  };
  EXPECT_EQ(fmt(0), "1970-01-01T00:00:00.000000000Z");
  EXPECT_EQ(fmt(1), "1970-01-01T00:00:00.000000001Z");
  EXPECT_EQ(fmt(999'999'999), "1970-01-01T00:00:00.999999999Z");
  EXPECT_EQ(fmt(86'399'000'000'000ULL), "1970-01-01T23:59:59.000000000Z");
  EXPECT_EQ(fmt(951'782'400'000'000'000ULL), "2000-02-29T00:00:00.000000000Z");
  EXPECT_EQ(fmt(951'868'799'123'456'789ULL), "2000-02-29T23:59:59.123456789Z");
  EXPECT_EQ(fmt(4'107'542'399'000'000'000ULL), "2100-02-28T23:59:59.000000000Z");
  EXPECT_EQ(fmt(4'107'542'400'000'000'000ULL), "2100-03-01T00:00:00.000000000Z");
  EXPECT_EQ(fmt(1'795'324'007'123'456'789ULL), "2026-11-22T05:06:47.123456789Z");
}

TEST(JsonlFormat, Rfc3339MatchesDateCommand) {
  // Edge cases (month and year ends, leap days of 4/100/400-year rules) plus a spread of
  // pseudo-random seconds over the whole representable range (1970..2554).
  std::vector<std::uint64_t> secs = {0,           59,          60,         3599,       86399,      86400,
                                     2678399,     2678400,     5097599,    5097600,    31535999,   31536000,
                                     68255999,    68256000,    946684799,  946684800,  951782399,  951782400,
                                     951868800,   1078012800,  1709164800, 1709251200, 4107542400, 4107628800,
                                     13574563200, 13574649600, 18446744073};
  std::uint64_t x = 0x9e3779b97f4a7c15ULL;
  for (int i = 0; i < 120; ++i) {
    x ^= x << 13;
    x ^= x >> 7;
    x ^= x << 17;
    secs.push_back(x % 18446744073ULL);
  }
  std::string cmd = "for s in";
  for (auto s : secs) cmd += " " + std::to_string(s);
  cmd += "; do date -u -d @$s +%Y-%m-%dT%H:%M:%S; done";
  int status = -1;
  const auto expected = sgtest::split_lines(sgtest::run(cmd, &status));
  ASSERT_EQ(status, 0);
  ASSERT_EQ(expected.size(), secs.size());

  // Through the exporter too, whose formatter caches the date part per second: visit the
  // seconds forwards, then backwards, with repeats, so every cache transition is exercised.
  std::vector<sg::Event> events;
  std::vector<std::string> want;
  auto add = [&](std::size_t k, std::uint32_t frac) {
    sg::Event e = sgtest::make_event(events.size());
    e.start = secs[k] * 1'000'000'000ULL + frac;
    if (e.start / 1'000'000'000ULL != secs[k]) return;  // beyond uint64 ns
    events.push_back(e);
    char f[16];
    std::snprintf(f, sizeof f, ".%09uZ", frac);
    want.push_back(expected[k] + f);
  };
  char b[sg::jsonl::kTimestampSize];
  for (std::size_t k = 0; k < secs.size(); ++k) {
    const std::uint32_t frac = static_cast<std::uint32_t>((secs[k] * 2654435761ULL) % 1'000'000'000ULL);
    if (secs[k] > 18446744072ULL) continue;
    sg::jsonl::format_rfc3339(secs[k] * 1'000'000'000ULL + frac, b);
    char f[16];
    std::snprintf(f, sizeof f, ".%09uZ", frac);
    EXPECT_EQ(std::string(b, sizeof b), expected[k] + f) << secs[k];
    add(k, frac);
    add(k, 0);
  }
  for (std::size_t k = secs.size(); k-- > 0;) add(k, 999'999'999);

  sgtest::TempDir dir;
  const auto lines = export_lines(events, dir);
  ASSERT_EQ(lines.size(), want.size());
  for (std::size_t i = 0; i < lines.size(); ++i) {
    Parsed p;
    ASSERT_TRUE(sgtest::parse_line(lines[i], p));
    EXPECT_EQ(p.ts, want[i]);
  }
}

TEST(JsonlFormat, AppendLineMatchesTheFile) {
  sgtest::TempDir dir;
  std::vector<sg::Event> events;
  for (std::uint64_t i = 0; i < 8; ++i) events.push_back(sgtest::make_event(i * 1000));
  const auto lines = export_lines(events, dir);
  ASSERT_EQ(lines.size(), events.size());
  for (std::size_t i = 0; i < events.size(); ++i) {
    std::string s;
    sg::jsonl::append_line(events[i], s);
    EXPECT_EQ(s, lines[i] + "\n");
  }
}
