// W3C traceparent: every parsing rule, bounds, and format -> parse round trips.
#include "spyglass/traceparent.hpp"

#include <gtest/gtest.h>

#include <cstring>
#include <memory>
#include <random>
#include <string>
#include <vector>

namespace sg = spyglass;

namespace {

// The example header of the W3C Trace Context recommendation.
constexpr std::string_view kValid = "00-4bf92f3577b34da6a3ce929d0e0e4736-00f067aa0ba902b7-01";

// Parses from an exact-size heap copy, so that AddressSanitizer flags any read past the end.
std::optional<sg::TraceParent> parse_exact(std::string_view s) {
  auto buf = std::make_unique<char[]>(s.size() + 1);  // +1: make_unique<char[]>(0) is fine too
  std::memcpy(buf.get(), s.data(), s.size());
  return sg::parse_traceparent(std::string_view(buf.get(), s.size()));
}

std::string with(std::string s, std::size_t pos, char c) {
  s[pos] = c;
  return s;
}

TEST(TraceParent, ParsesTheSpecExample) {
  const auto tp = parse_exact(kValid);
  ASSERT_TRUE(tp.has_value());
  EXPECT_EQ(tp->trace_id.hi, 0x4bf92f3577b34da6ULL);
  EXPECT_EQ(tp->trace_id.lo, 0xa3ce929d0e0e4736ULL);
  EXPECT_EQ(tp->parent_id, 0x00f067aa0ba902b7ULL);
  EXPECT_EQ(tp->flags, 1);
  EXPECT_TRUE(tp->sampled());
}

TEST(TraceParent, FlagsOtherThanSampledAreKept) {
  const std::string base(kValid);
  // Appended in place: GCC 12 at -O2 warns (-Warray-bounds, falsely) on operator+ of these temporaries.
  std::string header = base.substr(0, 53);
  header += "00";
  auto tp = parse_exact(header);
  ASSERT_TRUE(tp);
  EXPECT_FALSE(tp->sampled());
  EXPECT_EQ(tp->flags, 0);
  tp = parse_exact(base.substr(0, 53) + "03");
  ASSERT_TRUE(tp);
  EXPECT_TRUE(tp->sampled());
  EXPECT_EQ(tp->flags, 3);
  tp = parse_exact(base.substr(0, 53) + "fe");
  ASSERT_TRUE(tp);
  EXPECT_FALSE(tp->sampled());
  EXPECT_EQ(tp->flags, 0xfe);
}

TEST(TraceParent, TrimsSpacesAndTabs) {
  const std::string v(kValid);
  for (const std::string& s : {" " + v, v + " ", "\t " + v + " \t", "  \t\t" + v}) {
    const auto tp = parse_exact(s);
    ASSERT_TRUE(tp) << "'" << s << "'";
    EXPECT_EQ(tp->parent_id, 0x00f067aa0ba902b7ULL);
  }
  // Other whitespace is not optional whitespace in HTTP fields.
  EXPECT_FALSE(parse_exact("\n" + v));
  EXPECT_FALSE(parse_exact(v + "\r"));
  EXPECT_FALSE(parse_exact(v + "\v"));
}

TEST(TraceParent, RejectsMalformedHeaders) {
  const std::string v(kValid);
  struct Case {
    std::string header;
    const char* why;
  };
  const std::vector<Case> cases = {
      {"", "empty"},
      {"   ", "only whitespace"},
      {v.substr(0, 54), "one character short"},
      {v + "0", "version 00 one character long"},
      {v + "-", "version 00 with a '-' after it"},
      {v + "-00", "version 00 with extra fields"},
      {"ff" + v.substr(2), "version ff is invalid"},
      {"0g" + v.substr(2), "version not hex"},
      {"0A" + v.substr(2), "uppercase version"},
      {with(v, 3, 'A'), "uppercase in trace id (first char)"},
      {with(v, 34, 'F'), "uppercase in trace id (last char)"},
      {with(v, 20, 'g'), "non-hex in trace id"},
      {with(v, 36, 'B'), "uppercase in parent id"},
      {with(v, 51, 'z'), "non-hex in parent id"},
      {v.substr(0, 53) + "0A", "uppercase flags"},
      {v.substr(0, 53) + "0x", "non-hex flags"},
      {v.substr(0, 53) + " 1", "space in flags"},
      {"00-00000000000000000000000000000000-00f067aa0ba902b7-01", "all-zero trace id"},
      {"00-4bf92f3577b34da6a3ce929d0e0e4736-0000000000000000-01", "all-zero parent id"},
      {with(v, 2, '_'), "bad separator after version"},
      {with(v, 35, '_'), "bad separator after trace id"},
      {with(v, 52, '_'), "bad separator after parent id"},
      {"00-4bf92f3577b34da6a3ce929d0e0e473-600f067aa0ba902b7-01", "separator moved left"},
      {"00-4bf92f3577b34da6a3ce929d0e0e4736-00f067aa0ba902b-701", "separator moved right"},
      {"00 4bf92f3577b34da6a3ce929d0e0e4736 00f067aa0ba902b7 01", "spaces instead of dashes"},
      {"00-4bf92f3577b34da6a3ce929d0e0e4736-00f067aa0ba902b7-1", "one-digit flags"},
      {"0-4bf92f3577b34da6a3ce929d0e0e4736-00f067aa0ba902b7-01", "one-digit version"},
      {"01" + v.substr(2) + "x", "future version: 56th char is not '-'"},
      {"01" + v.substr(2) + "0-extra", "future version: extra char before '-'"},
      {"fe" + v.substr(2, 30), "future version too short"},
      {with(v, 10, '\0'), "NUL inside"},
      {"00-4bf92f3577b34da6a3ce929d0e0e4736-00f067aa0ba902b7 -01", "space inside"},
  };
  for (const auto& c : cases) EXPECT_FALSE(parse_exact(c.header)) << c.why << ": '" << c.header << "'";
}

TEST(TraceParent, AcceptsFutureVersions) {
  const std::string rest(kValid.substr(2));
  std::string long_tail(201, 'Z');  // "-" and 200 more (no operator+: see above)
  long_tail[0] = '-';
  const std::string tails[] = {std::string(), std::string("-"), std::string("-what-ever"), long_tail};
  for (const char* ver : {"01", "42", "cc", "fe"}) {
    for (const std::string& tail : tails) {
      const auto tp = parse_exact(std::string(ver).append(rest).append(tail));
      ASSERT_TRUE(tp) << ver << rest << tail;
      EXPECT_EQ(tp->trace_id.lo, 0xa3ce929d0e0e4736ULL);
      EXPECT_EQ(tp->parent_id, 0x00f067aa0ba902b7ULL);
      EXPECT_TRUE(tp->sampled());
    }
  }
  // A future version still may not use uppercase or zero ids in its first 55 characters.
  EXPECT_FALSE(parse_exact("01-4BF92F3577B34DA6A3CE929D0E0E4736-00f067aa0ba902b7-01-x"));
  EXPECT_FALSE(parse_exact("01-00000000000000000000000000000000-00f067aa0ba902b7-01"));
}

TEST(TraceParent, EveryPrefixAndTruncationIsRejectedWithoutOverread) {
  for (std::size_t len = 0; len < kValid.size(); ++len) {
    EXPECT_FALSE(parse_exact(kValid.substr(0, len))) << len;
    EXPECT_FALSE(parse_exact(kValid.substr(kValid.size() - len))) << len;
  }
  // Also when the bytes after the view would make it valid.
  EXPECT_FALSE(sg::parse_traceparent(kValid.substr(0, 54)));
}

TEST(TraceParent, EverySingleCharacterSubstitution) {
  // Changing any one character of a valid header to a character that is not allowed at
  // that position must reject it; to an allowed one must keep it valid.
  const std::string v(kValid);
  for (std::size_t pos = 0; pos < v.size(); ++pos) {
    for (int ch = 0; ch < 256; ++ch) {
      const char c = static_cast<char>(ch);
      const std::string s = with(v, pos, c);
      const bool dash_pos = pos == 2 || pos == 35 || pos == 52;
      const bool lower_hex = (c >= '0' && c <= '9') || (c >= 'a' && c <= 'f');
      bool ok = dash_pos ? c == '-' : lower_hex;
      // Versions other than 00 and ff are future versions, accepted at exactly 55 characters.
      if (pos < 2 && s.substr(0, 2) == "ff") ok = false;
      EXPECT_EQ(parse_exact(s).has_value(), ok) << "pos " << pos << " char " << ch;
    }
  }
}

TEST(TraceParent, FormatsTheSpecExample) {
  const sg::TraceId id{0x4bf92f3577b34da6ULL, 0xa3ce929d0e0e4736ULL};
  EXPECT_EQ(sg::format_traceparent(id, 0x00f067aa0ba902b7ULL, true), kValid);
  EXPECT_EQ(sg::format_traceparent(id, 0x00f067aa0ba902b7ULL, false),
            "00-4bf92f3577b34da6a3ce929d0e0e4736-00f067aa0ba902b7-00");
}

TEST(TraceParent, FormatWritesExactly55Characters) {
  char buf[57];
  std::memset(buf, '#', sizeof buf);
  sg::format_traceparent(sg::TraceId{1, 2}, 3, true, reinterpret_cast<char(&)[55]>(buf[1]));
  EXPECT_EQ(buf[0], '#');
  EXPECT_EQ(buf[56], '#');
  EXPECT_EQ(std::string(buf + 1, 55), "00-00000000000000010000000000000002-0000000000000003-01");
}

TEST(TraceParent, RoundTripFormatParse) {
  std::mt19937_64 rng(20240601);
  std::vector<std::pair<sg::TraceId, sg::SpanId>> ids = {
      {sg::TraceId{0, 1}, 1},
      {sg::TraceId{1, 0}, ~0ULL},
      {sg::TraceId{~0ULL, ~0ULL}, 0x8000000000000000ULL},
  };
  for (int i = 0; i < 2000; ++i) {
    sg::TraceId t{rng(), rng()};
    sg::SpanId s = rng();
    if (!t.valid() || s == 0) continue;
    ids.emplace_back(t, s);
  }
  for (const auto& [trace, span] : ids) {
    for (bool sampled : {false, true}) {
      char buf[sg::kTraceParentSize];
      sg::format_traceparent(trace, span, sampled, buf);
      const std::string str = sg::format_traceparent(trace, span, sampled);
      ASSERT_EQ(str, std::string(buf, sizeof buf));
      const auto tp = parse_exact(str);
      ASSERT_TRUE(tp) << str;
      EXPECT_EQ(tp->trace_id, trace);
      EXPECT_EQ(tp->parent_id, span);
      EXPECT_EQ(tp->sampled(), sampled);
      EXPECT_EQ(tp->flags, sampled ? 1 : 0);
      EXPECT_EQ(sg::to_hex(trace), str.substr(3, 32));
    }
  }
}

}  // namespace
