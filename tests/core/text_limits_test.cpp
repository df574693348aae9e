// Interning makes dynamic text fit for every exporter: names and redacted SQL are capped
// at a UTF-8 character boundary with a visible marker, NUL bytes become U+FFFD, and
// invalid UTF-8 is repaired with the one rule of utf8.hpp, checked against Python's
// `bytes.decode('utf-8', 'replace')` (run as a process) and the Unicode standard's vectors.
//
// The interning tables are process-wide: every test uses names of its own and measures
// intern_stats() as differences, so the tests hold in one process or one process each.
#include <gtest/gtest.h>
#include <stdlib.h>
#include <unistd.h>

#include <cstdint>
#include <cstdio>
#include <cstring>
#include <fstream>
#include <string>
#include <string_view>
#include <vector>

#include "spyglass/intern.hpp"
#include "spyglass/redact.hpp"
#include "spyglass/utf8.hpp"

namespace sg = spyglass;

namespace {

const std::string kR = "\xEF\xBF\xBD";         // U+FFFD REPLACEMENT CHARACTER
const std::string kEllipsis = "\xE2\x80\xA6";  // U+2026 HORIZONTAL ELLIPSIS
constexpr std::size_t kCap = 1024;             // InternLimits{}.max_name_bytes
constexpr std::size_t kSqlCap = 4096;          // InternLimits{}.max_statement_bytes

std::string repeat(std::string_view unit, std::size_t times) {
  std::string s;
  s.reserve(unit.size() * times);
  for (std::size_t i = 0; i < times; ++i) s.append(unit);
  return s;
}

std::string interned(std::string_view text) { return sg::intern(text); }

/// Restores the default limits when a test that changed them ends, however it ends.
struct DefaultLimitsAfter {
  ~DefaultLimitsAfter() { sg::set_intern_limits({}); }
};

std::string to_hex(std::string_view s) {
  static constexpr char kDigits[] = "0123456789abcdef";
  std::string h;
  for (const char c : s) {
    h.push_back(kDigits[static_cast<unsigned char>(c) >> 4]);
    h.push_back(kDigits[static_cast<unsigned char>(c) & 15]);
  }
  return h;
}

/// Each input decoded by CPython with errors='replace' (maximal subparts, like utf8.hpp)
/// and NUL replaced by U+FFFD, re-encoded as UTF-8. Runs python3 once for all inputs.
std::vector<std::string> python_repaired(const std::vector<std::string>& inputs) {
  char dir[] = "/tmp/spyglass-text-limits-XXXXXX";
  if (::mkdtemp(dir) == nullptr) {
    ADD_FAILURE() << "mkdtemp failed";
    return {};
  }
  const std::string in_path = std::string(dir) + "/in.hex";
  const std::string script_path = std::string(dir) + "/repair.py";
  {
    std::ofstream in(in_path);
    for (const auto& s : inputs) in << to_hex(s) << '\n';
    std::ofstream script(script_path);
    script
        << "import sys\n"
           "for line in open(sys.argv[1]):\n"
           "    text = bytes.fromhex(line.strip()).decode('utf-8', 'replace').replace('\\x00', '\\ufffd')\n"
           "    print(text.encode('utf-8').hex())\n";
  }
  std::vector<std::string> out;
  FILE* p = ::popen((std::string(SPYGLASS_PYTHON3) + " " + script_path + " " + in_path).c_str(), "r");
  if (p == nullptr) {
    ADD_FAILURE() << "cannot run " << SPYGLASS_PYTHON3;
    return {};
  }
  std::string text;
  char buf[4096];
  std::size_t n;
  while ((n = std::fread(buf, 1, sizeof buf, p)) > 0) text.append(buf, n);
  EXPECT_EQ(::pclose(p), 0) << "python3 failed";
  std::size_t start = 0;
  for (std::size_t nl = text.find('\n'); nl != std::string::npos; nl = text.find('\n', start)) {
    const std::string hex = text.substr(start, nl - start);
    std::string bytes;
    for (std::size_t i = 0; i + 1 < hex.size(); i += 2) {
      bytes.push_back(static_cast<char>(std::stoi(hex.substr(i, 2), nullptr, 16)));
    }
    out.push_back(bytes);
    start = nl + 1;
  }
  std::remove(in_path.c_str());
  std::remove(script_path.c_str());
  ::rmdir(dir);
  return out;
}

}  // namespace

TEST(TextLimits, MarkerIsTheHorizontalEllipsis) {
  EXPECT_EQ(sg::kTruncationMarker, kEllipsis);
  EXPECT_EQ(sg::InternLimits{}.max_name_bytes, kCap);
  EXPECT_EQ(sg::InternLimits{}.max_statement_bytes, kSqlCap);
}

TEST(TextLimits, OneMebibyteNameIsCutToTheCapWithTheMarker) {
  const std::string name = "mib-name/" + std::string(1024 * 1024 - 9, 'x');
  const auto before = sg::intern_stats();
  const char* p = sg::intern(name);
  const auto after = sg::intern_stats();
  const std::string want = "mib-name/" + std::string(kCap - 3 - 9, 'x') + kEllipsis;
  ASSERT_EQ(want.size(), kCap);
  EXPECT_EQ(std::string(p), want);
  EXPECT_EQ(after.names - before.names, 1u);
  EXPECT_EQ(after.bytes - before.bytes, kCap);  // the table grew by the cap, not by 1 MiB
  EXPECT_EQ(after.truncated - before.truncated, 1u);
  EXPECT_EQ(after.overflowed, before.overflowed);

  // The same text again, and another long name with the same first 1021 bytes, share the
  // entry: a truncated name is interned as its truncated text.
  EXPECT_EQ(sg::intern(name), p);
  EXPECT_EQ(sg::intern("mib-name/" + std::string(5000, 'x') + "different tail"), p);
  EXPECT_EQ(sg::intern(want), p);  // the cut text itself is already within the cap
  const auto again = sg::intern_stats();
  EXPECT_EQ(again.names, after.names);
  EXPECT_EQ(again.bytes, after.bytes);
  EXPECT_EQ(again.truncated - after.truncated, 2u);
}

TEST(TextLimits, ManyHugeNamesGrowTheTableByTheCapEach) {
  const auto before = sg::intern_stats();
  const std::string tail(1024 * 1024, 'y');
  for (int i = 0; i < 20; ++i) sg::intern("huge-" + std::to_string(100 + i) + tail);
  const auto after = sg::intern_stats();
  EXPECT_EQ(after.names - before.names, 20u);
  EXPECT_EQ(after.bytes - before.bytes, 20 * kCap);
  EXPECT_EQ(after.truncated - before.truncated, 20u);
}

TEST(TextLimits, TextAtTheCapIsKeptOneByteMoreIsCut) {
  const std::string at = "at-cap-" + std::string(kCap - 7, 'b');
  ASSERT_EQ(at.size(), kCap);
  EXPECT_EQ(interned(at), at);
  const std::string over = "over-cap-" + std::string(kCap - 8, 'b');
  ASSERT_EQ(over.size(), kCap + 1);
  EXPECT_EQ(interned(over), over.substr(0, kCap - 3) + kEllipsis);
}

TEST(TextLimits, CutFallsOnACharacterBoundary) {
  // 2-byte characters from offset 0: byte 1021 is the second byte of one, so the cut
  // steps back to 1020.
  const std::string two = repeat("\xC3\xA9", 100000);  // é
  EXPECT_EQ(interned(two), repeat("\xC3\xA9", 510) + kEllipsis);
  // 3-byte characters: 1021 = 3 * 340 + 1, back to 1020.
  const std::string three = repeat("\xE2\x82\xAC", 100000);  // €
  EXPECT_EQ(interned(three), repeat("\xE2\x82\xAC", 340) + kEllipsis);
  // 4-byte characters after one ASCII byte: 1021 = 1 + 4 * 255, exactly on a boundary.
  const std::string four = "z" + repeat("\xF0\x9F\x98\x80", 100000);  // U+1F600
  EXPECT_EQ(interned(four), "z" + repeat("\xF0\x9F\x98\x80", 255) + kEllipsis);
  // A 4-byte character straddling 1021: back to its first byte.
  const std::string straddle = std::string(1019, 'c') + repeat("\xF0\x9F\x98\x80", 10);
  EXPECT_EQ(interned(straddle), std::string(1019, 'c') + kEllipsis);
  for (const auto* s : {&two, &three, &four, &straddle}) EXPECT_TRUE(sg::is_valid_utf8(interned(*s)));
}

TEST(TextLimits, CapIsMeasuredAfterRepair) {
  // Every 0xFF becomes a 3-byte U+FFFD: 340 of them fit before the marker.
  EXPECT_EQ(interned(std::string(1024 * 1024, '\xFF')), repeat(kR, 340) + kEllipsis);
  // 400 invalid bytes grow to 1200 bytes: cut, though the input was within the cap.
  EXPECT_EQ(interned("rep-" + std::string(400, '\x80')), "rep-" + repeat(kR, 339) + kEllipsis);
  // A valid sequence cut off by the end of the text is one U+FFFD (no cut needed).
  EXPECT_EQ(interned(std::string(1000, 'd') + "\xE2\x82"), std::string(1000, 'd') + kR);
}

TEST(TextLimits, ConfiguredCapsAndTheirMinimum) {
  DefaultLimitsAfter restore;
  sg::set_intern_limits({.max_name_bytes = 32});
  EXPECT_EQ(interned("configured-cap-" + std::string(100, 'e')),
            "configured-cap-" + std::string(14, 'e') + kEllipsis);
  EXPECT_EQ(interned("short-enough"), "short-enough");
  sg::set_intern_limits({.max_name_bytes = 2});  // below the minimum: 16
  ASSERT_EQ(sg::kMinTextCap, 16u);
  EXPECT_EQ(interned("minimum-cap-0123456789"), "minimum-cap-0" + kEllipsis);
  sg::set_intern_limits({});
  EXPECT_EQ(interned("minimum-cap-0123456789"), "minimum-cap-0123456789");
}

TEST(TextLimits, NulBecomesAVisibleReplacementCharacter) {
  using namespace std::string_view_literals;
  EXPECT_EQ(interned("nul-a\0b"sv), "nul-a" + kR + "b");
  EXPECT_EQ(interned("\0nul-lead"sv), kR + "nul-lead");
  EXPECT_EQ(interned("nul-trail\0"sv), "nul-trail" + kR);
  EXPECT_EQ(interned("nul-two\0\0x"sv), "nul-two" + kR + kR + "x");
  // NUL next to invalid UTF-8: the truncated sequence before it is one U+FFFD of its own.
  EXPECT_EQ(interned("nul-seq\xE2\x82\0\x80"sv), "nul-seq" + kR + kR + kR);
  // The name is no longer cut at the NUL: "nul-a" alone is a different name.
  EXPECT_NE(sg::intern("nul-a\0b"sv), sg::intern("nul-a"));
  EXPECT_EQ(std::strlen(sg::intern("nul-a\0b"sv)), 9u);
}

TEST(TextLimits, UnicodeStandardMaximalSubpartVectors) {
  // The Unicode Standard 15, section 3.9, Table 3-8 (U+FFFD for non-shortest forms /
  // ill-formed sequences), and the examples around it.
  EXPECT_EQ(interned("\x61\xF1\x80\x80\xE1\x80\xC2\x62\x80\x63\x80\xBF\x64"),
            "a" + kR + kR + kR + "b" + kR + "c" + kR + kR + "d");
  EXPECT_EQ(interned("u-\xC0\xAF"), "u-" + kR + kR);                    // overlong
  EXPECT_EQ(interned("u-\xE0\x80\xAF"), "u-" + kR + kR + kR);           // overlong, 3 bytes
  EXPECT_EQ(interned("u-\xED\xA0\x80"), "u-" + kR + kR + kR);           // surrogate
  EXPECT_EQ(interned("u-\xF4\x90\x80\x80"), "u-" + kR + kR + kR + kR);  // above U+10FFFF
  EXPECT_EQ(interned("u-\xF0\x9F\x98"), "u-" + kR);                     // truncated 4-byte
  EXPECT_EQ(interned("u-\xF5"), "u-" + kR);                             // never a lead byte
}

TEST(TextLimits, RepairMatchesPython) {
  std::vector<std::string> inputs = {"",
                                     "plain ascii",
                                     "caf\xC3\xA9",
                                     "\xFF",
                                     "\xC3",
                                     "\xE2\x82",
                                     "\xE2\x82\xAC\x80",
                                     "\xF0\x9F\x98\x80\xF0\x9F",
                                     "\xED\x9F\xBF\xED\xA0\x80",
                                     "\xF4\x8F\xBF\xBF\xF4\x90",
                                     std::string("a\0b", 3),
                                     "\xC0\x80\xC1\xBF"};
  // Deterministic pseudo-random strings, biased to bytes that make sequences.
  std::uint64_t x = 0x2545f4914f6cdd1dULL;
  const auto next = [&] {
    x ^= x << 13;
    x ^= x >> 7;
    x ^= x << 17;
    return x;
  };
  static const unsigned char kInteresting[] = {0x00, 0x41, 0x7F, 0x80, 0x8F, 0x90, 0x9F, 0xA0,
                                               0xBF, 0xC0, 0xC1, 0xC2, 0xDF, 0xE0, 0xE1, 0xED,
                                               0xEE, 0xEF, 0xF0, 0xF1, 0xF4, 0xF5, 0xF8, 0xFF};
  for (int i = 0; i < 3000; ++i) {
    std::string s = "py" + std::to_string(i) + ":";
    const std::size_t len = next() % 24;
    for (std::size_t k = 0; k < len; ++k) {
      const std::uint64_t r = next();
      s.push_back(static_cast<char>(r % 3 == 0 ? static_cast<unsigned char>(r >> 8)
                                               : kInteresting[(r >> 8) % sizeof kInteresting]));
    }
    inputs.push_back(s);
  }
  const auto want = python_repaired(inputs);
  ASSERT_EQ(want.size(), inputs.size());
  std::size_t repaired = 0;
  for (std::size_t i = 0; i < inputs.size(); ++i) {
    EXPECT_EQ(to_hex(interned(inputs[i])), to_hex(want[i])) << "input " << to_hex(inputs[i]);
    if (want[i] != inputs[i]) ++repaired;
  }
  EXPECT_GT(repaired, inputs.size() / 2) << "the vectors should mostly need repair";
}

TEST(TextLimits, SqlIsCappedAfterRedaction) {
  // Columns c0, c1, ... and a literal at the end: the redacted statement is longer than
  // the cap, and is cut only after redaction, so the literal never shows.
  std::string sql = "SELECT capped_sql";
  std::string redacted = sql;
  for (int i = 0; i < 1000; ++i) {
    const std::string col = ", c" + std::to_string(i);
    sql += col;
    redacted += col;
  }
  sql += " FROM t WHERE secret = 'hunter2' AND n = 42";
  redacted += " FROM t WHERE secret = ? AND n = ?";
  ASSERT_GT(redacted.size(), kSqlCap);
  ASSERT_EQ(sg::redact_sql(sql), redacted);
  const auto before = sg::intern_stats();
  const std::string got = sg::intern_sql(sql);
  EXPECT_EQ(got, redacted.substr(0, kSqlCap - 3) + kEllipsis);
  EXPECT_EQ(got.size(), kSqlCap);
  EXPECT_EQ(sg::intern_stats().truncated - before.truncated, 1u);
  EXPECT_EQ(sg::intern_stats().bytes - before.bytes, kSqlCap);

  // A literal that straddles the cut: redaction has already replaced it whole.
  const std::string straddle =
      "SELECT straddle_sql, " + std::string(4000, 'k') + ", '" + std::string(200, 'z') + "'";
  ASSERT_GT(straddle.size(), kSqlCap);
  EXPECT_EQ(std::string(sg::intern_sql(straddle)), "SELECT straddle_sql, " + std::string(4000, 'k') + ", ?");
  // A 1 MiB IN list redacts to a short statement: nothing to cut.
  std::string in_list = "SELECT * FROM huge_in WHERE id IN (1";
  while (in_list.size() < 1024 * 1024) in_list += ", 123456789";
  in_list += ")";
  EXPECT_EQ(std::string(sg::intern_sql(in_list)), "SELECT * FROM huge_in WHERE id IN (?)");
}

TEST(TextLimits, SqlFarLongerThanTheCapIsNotCached) {
  std::string sql = "SELECT not_cached FROM t WHERE s = '" + std::string(8 * kSqlCap, 's') + "'";
  const auto before = sg::intern_stats();
  const char* first = sg::intern_sql(sql);
  const char* second = sg::intern_sql(sql);
  const auto after = sg::intern_stats();
  EXPECT_STREQ(first, "SELECT not_cached FROM t WHERE s = ?");
  EXPECT_EQ(first, second);  // the redacted text is interned once all the same
  EXPECT_EQ(after.sql_uncached - before.sql_uncached, 2u);
  EXPECT_EQ(after.sql_cached, before.sql_cached);

  // At 8 times the cap exactly, it is cached.
  std::string cached = "SELECT cached FROM t WHERE s = '";
  cached += std::string(8 * kSqlCap - cached.size() - 1, 's') + "'";
  ASSERT_EQ(cached.size(), 8 * kSqlCap);
  const auto b2 = sg::intern_stats();
  EXPECT_STREQ(sg::intern_sql(cached), "SELECT cached FROM t WHERE s = ?");
  EXPECT_EQ(sg::intern_stats().sql_cached - b2.sql_cached, 1u);
  EXPECT_EQ(sg::intern_stats().sql_uncached, b2.sql_uncached);
}

TEST(TextLimits, SqlWithNulAndInvalidUtf8IsRepaired) {
  using namespace std::string_view_literals;
  EXPECT_STREQ(sg::intern_sql("SELECT repaired_sql\0x FROM \xFF t WHERE a = 1"sv),
               ("SELECT repaired_sql" + kR + "x FROM " + kR + " t WHERE a = ?").c_str());
}
