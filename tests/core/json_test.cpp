// json_escape and JsonWriter, checked against two independent JSON parsers (simdjson, jq).
#include "spyglass/json.hpp"

#include <gtest/gtest.h>
#include <simdjson.h>

#include <unistd.h>
#include <cmath>
#include <cstdint>
#include <cstdio>
#include <cstdlib>
#include <limits>
#include <string>
#include <vector>

namespace sg = spyglass;

namespace {

const std::string kR = "\xEF\xBF\xBD";  // U+FFFD REPLACEMENT CHARACTER

std::string escape(std::string_view in) {
  std::string out;
  sg::json_escape(in, out);
  return out;
}

// Decodes one JSON document that must be a string; fails the test when simdjson rejects it.
std::string simdjson_decode_string(const std::string& json) {
  simdjson::dom::parser parser;
  simdjson::dom::element el;
  const auto err = parser.parse(json).get(el);
  EXPECT_EQ(err, simdjson::SUCCESS) << simdjson::error_message(err) << " in " << json;
  if (err != simdjson::SUCCESS) return {};
  std::string_view sv;
  EXPECT_EQ(el.get_string().get(sv), simdjson::SUCCESS) << json;
  return std::string(sv);
}

// Runs `jq -c .` over the documents (one per line) and returns its output lines.
std::vector<std::string> jq_compact(const std::vector<std::string>& docs) {
  char path[] = "/tmp/spyglass_jq_XXXXXX";
  const int fd = mkstemp(path);
  EXPECT_GE(fd, 0);
  if (fd < 0) return {};
  FILE* f = fdopen(fd, "w");
  for (const auto& d : docs) {
    std::fwrite(d.data(), 1, d.size(), f);
    std::fputc('\n', f);
  }
  std::fclose(f);
  const std::string cmd = std::string(SPYGLASS_JQ) + " -c . " + path + " 2>&1";
  FILE* p = popen(cmd.c_str(), "r");
  EXPECT_NE(p, nullptr);
  std::vector<std::string> lines;
  if (p != nullptr) {
    std::string cur;
    int c;
    while ((c = std::fgetc(p)) != EOF) {
      if (c == '\n') {
        lines.push_back(cur);
        cur.clear();
      } else {
        cur.push_back(static_cast<char>(c));
      }
    }
    EXPECT_EQ(pclose(p), 0) << "jq failed: " << (lines.empty() ? "" : lines.back());
  }
  unlink(path);
  return lines;
}

// Escapes every input, wraps it in quotes, and checks that simdjson and jq both decode
// it to `expected[i]`.
void expect_decodes(const std::vector<std::string>& inputs, const std::vector<std::string>& expected) {
  ASSERT_EQ(inputs.size(), expected.size());
  std::vector<std::string> docs;
  for (std::size_t i = 0; i < inputs.size(); ++i) {
    docs.push_back("\"" + escape(inputs[i]) + "\"");
    EXPECT_EQ(simdjson_decode_string(docs.back()), expected[i]) << "case " << i;
  }
  const auto lines = jq_compact(docs);
  ASSERT_EQ(lines.size(), docs.size());
  for (std::size_t i = 0; i < lines.size(); ++i) {
    EXPECT_EQ(simdjson_decode_string(lines[i]), expected[i]) << "jq case " << i << ": " << lines[i];
  }
}

TEST(JsonEscape, EveryControlByte) {
  std::vector<std::string> inputs, expected;
  for (int c = 0; c < 0x20; ++c) {
    const std::string in(1, static_cast<char>(c));
    std::string want;
    switch (c) {
      case 0x08: want = "\\b"; break;
      case 0x09: want = "\\t"; break;
      case 0x0a: want = "\\n"; break;
      case 0x0c: want = "\\f"; break;
      case 0x0d: want = "\\r"; break;
      default: {
        char buf[8];
        std::snprintf(buf, sizeof buf, "\\u%04x", c);
        want = buf;
      }
    }
    EXPECT_EQ(escape(in), want) << "byte " << c;
    inputs.push_back("a" + in + "b");
    expected.push_back(inputs.back());
  }
  expect_decodes(inputs, expected);
}

TEST(JsonEscape, QuotesBackslashAndPlainAscii) {
  EXPECT_EQ(escape(R"(say "hi")"), R"(say \"hi\")");
  EXPECT_EQ(escape(R"(C:\dir\)"), R"(C:\\dir\\)");
  EXPECT_EQ(escape("a/b"), "a/b");  // '/' may stay unescaped
  EXPECT_EQ(escape("\x7f"), "\x7f");
  EXPECT_EQ(escape(""), "");
  std::string printable;
  for (int c = 0x20; c < 0x7f; ++c) printable.push_back(static_cast<char>(c));
  std::string want;
  for (char c : printable) {
    if (c == '"' || c == '\\') want.push_back('\\');
    want.push_back(c);
  }
  EXPECT_EQ(escape(printable), want);
  expect_decodes({printable, "\x7f", R"("\")"}, {printable, "\x7f", R"("\")"});
}

TEST(JsonEscape, AppendsWithoutTouchingExistingContent) {
  std::string out = "prefix:";
  sg::json_escape("a\"b", out);
  sg::json_escape("\n", out);
  EXPECT_EQ(out, "prefix:a\\\"b\\n");
}

TEST(JsonEscape, EmbeddedNulIsEscaped) {
  const std::string in("a\0b", 3);
  EXPECT_EQ(escape(in), "a\\u0000b");
  expect_decodes({in}, {in});
}

TEST(JsonEscape, ValidUtf8IsCopiedUnchanged) {
  const std::vector<std::string> valid = {
      "\xC2\x80",          // U+0080, smallest 2-byte
      "\xDF\xBF",          // U+07FF
      "\xE0\xA0\x80",      // U+0800, smallest 3-byte
      "\xED\x9F\xBF",      // U+D7FF, just below the surrogates
      "\xEE\x80\x80",      // U+E000, just above them
      "\xEF\xBF\xBF",      // U+FFFF
      "\xF0\x90\x80\x80",  // U+10000, smallest 4-byte
      "\xF4\x8F\xBF\xBF",  // U+10FFFF, the largest code point
      "h\xC3\xA9llo w\xC3\xB6rld \xE2\x82\xAC \xF0\x9F\x98\x80 \xE4\xB8\xAD\xE6\x96\x87",
      "\xEF\xBF\xBD",  // U+FFFD itself is valid
  };
  for (const auto& s : valid) EXPECT_EQ(escape(s), s);
  expect_decodes(valid, valid);
}

TEST(JsonEscape, InvalidUtf8BecomesOneReplacementPerMaximalSubpart) {
  struct Case {
    std::string in, want;
  };
  const std::vector<Case> cases = {
      {"\x80", kR},                                               // lone continuation byte
      {"\xBF\x80", kR + kR},                                      // two lone continuation bytes
      {"\xC0\x80", kR + kR},                                      // overlong NUL: C0 is never a lead byte
      {"\xC1\xBF", kR + kR},                                      // overlong: C1 is never a lead byte
      {"\xE0\x80\x80", kR + kR + kR},                             // overlong 3-byte: E0 needs A0..BF next
      {"\xE0\x9F\xBF", kR + kR + kR},                             // overlong U+07FF
      {"\xF0\x80\x80\x80", kR + kR + kR + kR},                    // overlong 4-byte: F0 needs 90..BF next
      {"\xF0\x8F\xBF\xBF", kR + kR + kR + kR},                    // overlong U+FFFF
      {"\xED\xA0\x80", kR + kR + kR},                             // U+D800, a surrogate
      {"\xED\xBF\xBF", kR + kR + kR},                             // U+DFFF, a surrogate
      {"\xED\xA0\x80\xED\xB0\x80", kR + kR + kR + kR + kR + kR},  // a UTF-16 surrogate pair encoded as UTF-8
      {"\xF4\x90\x80\x80", kR + kR + kR + kR},                    // U+110000, above the last code point
      {"\xF5\x80\x80\x80", kR + kR + kR + kR},                    // F5 is never a lead byte
      {"\xFE", kR},
      {"\xFF", kR},
      {"\xC2", kR},                       // truncated 2-byte at the end
      {"\xE2\x82", kR},                   // truncated 3-byte: one subpart
      {"\xF0\x9F\x98", kR},               // truncated 4-byte: one subpart
      {"\xE2\x82x", kR + "x"},            // truncated by an ASCII byte
      {"\xC2\xC2\xA9", kR + "\xC2\xA9"},  // bad lead then a valid sequence
      {"\xF0\x9F\x98\"", kR + "\\\""},    // truncated, then a quote that must be escaped
      {"\xE2\x82\n", kR + "\\n"},         // truncated, then a control byte
      // The example of Unicode 15 section 3.9 (U+FFFD substitution of maximal subparts).
      {"\x61\xF1\x80\x80\xE1\x80\xC2\x62\x80\x63\x80\xBF\x64",
       "a" + kR + kR + kR + "b" + kR + "c" + kR + kR + "d"},
  };
  std::vector<std::string> inputs, decoded;
  for (const auto& [in, want] : cases) {
    EXPECT_EQ(escape(in), want) << "input of " << in.size() << " bytes";
    inputs.push_back(in);
    // The decoded JSON string is the escaped text with its escapes undone.
    std::string dec = want;
    for (std::size_t pos; (pos = dec.find("\\\"")) != std::string::npos;) dec.replace(pos, 2, "\"");
    for (std::size_t pos; (pos = dec.find("\\n")) != std::string::npos;) dec.replace(pos, 2, "\n");
    decoded.push_back(dec);
  }
  expect_decodes(inputs, decoded);
}

TEST(JsonEscape, EveryByteValueAloneAndInContext) {
  // Each byte alone and between ASCII: the output must always be valid JSON.
  std::vector<std::string> inputs, decoded;
  for (int b = 0; b < 256; ++b) {
    const std::string in = "<" + std::string(1, static_cast<char>(b)) + ">";
    inputs.push_back(in);
    decoded.push_back(b >= 0x80 ? "<" + kR + ">" : in);
  }
  expect_decodes(inputs, decoded);
}

TEST(JsonEscape, LongAsciiRunsAroundEscapes) {
  const std::string run(1000, 'x');
  const std::string in = run + "\"" + run + "\x01" + run + "\xC3\xA9" + run;
  const std::string want = run + "\\\"" + run + "\\u0001" + run + "\xC3\xA9" + run;
  EXPECT_EQ(escape(in), want);
  expect_decodes({in}, {in});
}

TEST(JsonEscape, EveryByteAtEveryOffsetOfTheWordScan) {
  // Plain text is scanned 8 bytes at a time: each byte value at each position of two
  // words and a tail must still be found and escaped (or replaced).
  std::vector<std::string> inputs, decoded;
  for (int b = 0; b < 256; ++b) {
    for (std::size_t at = 0; at < 19; ++at) {
      std::string in(19, 'a');
      in[at] = static_cast<char>(b);
      std::string want = in;
      if (b >= 0x80) want.replace(at, 1, kR);
      inputs.push_back(std::move(in));
      decoded.push_back(std::move(want));
    }
  }
  expect_decodes(inputs, decoded);
}

TEST(JsonWriter, KeysAndStringsOfEveryLengthAndByte) {
  // Keys and string values are assembled on the stack when short and need no escaping,
  // and escaped into the string otherwise: both sides of that line, with each byte value
  // in them, must come out as the same text that simdjson and jq read back.
  std::string out;
  sg::JsonWriter w(out);
  std::vector<std::string> texts;
  for (std::size_t len : {0U, 1U, 7U, 8U, 9U, 119U, 120U, 121U, 200U}) {
    for (int b : {int{'a'}, 0x01, int{'"'}, int{'\\'}, 0x7f, 0xC3, 0xff}) {
      std::string t(len, 'k');
      if (len != 0) t[len / 2] = static_cast<char>(b);
      texts.push_back(t);
    }
  }
  w.begin_array();
  for (const auto& t : texts) {
    w.begin_object();
    w.key(t);
    w.value(t);
    w.key("n");
    w.value(t.size());
    w.end_object();
  }
  w.end_array();
  simdjson::dom::parser parser;
  simdjson::dom::element doc;
  ASSERT_EQ(parser.parse(out).get(doc), simdjson::SUCCESS) << out;
  simdjson::dom::array arr;
  ASSERT_EQ(doc.get_array().get(arr), simdjson::SUCCESS);
  ASSERT_EQ(arr.size(), texts.size());
  std::size_t i = 0;
  for (simdjson::dom::element el : arr) {
    const std::string want = simdjson_decode_string("\"" + escape(texts[i]) + "\"");
    simdjson::dom::object obj;
    ASSERT_EQ(el.get_object().get(obj), simdjson::SUCCESS);
    auto it = obj.begin();
    EXPECT_EQ(std::string(it.key()), want) << "case " << i;
    std::string_view v;
    ASSERT_EQ(it.value().get_string().get(v), simdjson::SUCCESS);
    EXPECT_EQ(std::string(v), want) << "case " << i;
    std::uint64_t n = 0;
    ASSERT_EQ(obj["n"].get_uint64().get(n), simdjson::SUCCESS);
    EXPECT_EQ(n, texts[i].size());
    ++i;
  }
  const auto lines = jq_compact({out});
  ASSERT_EQ(lines.size(), 1u);
}

TEST(JsonEscape, IntoABufferSizedForTheLongestEscape) {
  // Every byte value, then a run of the longest escape (\u0001), into 6 bytes per byte.
  std::string in;
  for (int b = 0; b < 256; ++b) in.push_back(static_cast<char>(b));
  in += std::string(64, '\x01');
  std::vector<char> buf(6 * in.size());
  char* end = sg::json_escape(in, buf.data());
  ASSERT_LE(static_cast<std::size_t>(end - buf.data()), buf.size());
  const std::string out(buf.data(), end);
  EXPECT_EQ(out, escape(in));
  std::string ascii = in.substr(0, 0x80) + in.substr(256);
  EXPECT_EQ(simdjson_decode_string("\"" + std::string(buf.data(), sg::json_escape(ascii, buf.data())) + "\""),
            ascii);
}

TEST(JsonWriter, ObjectsArraysAndCommas) {
  std::string out;
  sg::JsonWriter w(out);
  w.begin_object();
  w.key("name");
  w.value("db \"query\"");
  w.key("ok");
  w.value(true);
  w.key("bad");
  w.value(false);
  w.key("nothing");
  w.null();
  w.key("list");
  w.begin_array();
  w.value(1);
  w.begin_object();
  w.end_object();
  w.begin_array();
  w.end_array();
  w.value("x");
  w.end_array();
  w.key("raw");
  w.raw(R"({"a":[1,2]})");
  w.key("empty");
  w.value("");
  w.end_object();
  EXPECT_EQ(out, R"({"name":"db \"query\"","ok":true,"bad":false,"nothing":null,"list":[1,{},[],"x"],)"
                 R"("raw":{"a":[1,2]},"empty":""})");

  simdjson::dom::parser parser;
  simdjson::dom::element doc;
  ASSERT_EQ(parser.parse(out).get(doc), simdjson::SUCCESS);
  std::string_view name;
  ASSERT_EQ(doc["name"].get_string().get(name), simdjson::SUCCESS);
  EXPECT_EQ(name, "db \"query\"");
  std::int64_t a1 = 0;
  ASSERT_EQ(doc.at_pointer("/raw/a/1").get_int64().get(a1), simdjson::SUCCESS);
  EXPECT_EQ(a1, 2);
  EXPECT_EQ(jq_compact({out}), std::vector<std::string>{out});  // already compact: jq prints it back
}

TEST(JsonWriter, TopLevelSequenceAndAppend) {
  std::string out = "[";
  sg::JsonWriter w(out);
  w.value(1);
  w.value(2);
  out.push_back(']');
  EXPECT_EQ(out, "[1,2]");
  EXPECT_EQ(&w.str(), &out);
}

TEST(JsonWriter, IntegersOfEveryType) {
  std::string out;
  sg::JsonWriter w(out);
  w.begin_array();
  w.value(std::numeric_limits<std::int64_t>::min());
  w.value(std::numeric_limits<std::int64_t>::max());
  w.value(std::numeric_limits<std::uint64_t>::max());
  w.value(0);
  w.value(-1);
  w.value(7u);
  w.value(8L);
  w.value(9UL);
  w.value(10LL);
  w.value(11ULL);
  w.value(static_cast<short>(-12));
  w.value(static_cast<unsigned char>(200));
  w.value(static_cast<std::int8_t>(-5));
  w.value(static_cast<std::uint16_t>(65535));
  w.end_array();
  EXPECT_EQ(out,
            "[-9223372036854775808,9223372036854775807,18446744073709551615,0,-1,7,8,9,10,11,-12,200,-5,"
            "65535]");
  simdjson::dom::parser parser;
  simdjson::dom::array arr;
  ASSERT_EQ(parser.parse(out).get_array().get(arr), simdjson::SUCCESS);
  std::uint64_t big = 0;
  ASSERT_EQ(arr.at(2).get_uint64().get(big), simdjson::SUCCESS);
  EXPECT_EQ(big, std::numeric_limits<std::uint64_t>::max());
  std::int64_t small = 0;
  ASSERT_EQ(arr.at(0).get_int64().get(small), simdjson::SUCCESS);
  EXPECT_EQ(small, std::numeric_limits<std::int64_t>::min());
}

TEST(JsonWriter, DoublesRoundTripShortestAndNonFiniteIsNull) {
  const std::vector<double> values = {
      0.0, -0.0, 0.1, 1.0 / 3.0, 1e300, -1e-300, 5e-324, 1.5e-3, 123456.0, 2.5, -7.25,
      std::numeric_limits<double>::max(), 1e21, 1e-7,
      // Shortest form is a 20+ digit integer, too big for int64/uint64 readers.
      18446744073709551616.0, 1.2345678901234567e+20, -9.3e18};
  std::string out;
  sg::JsonWriter w(out);
  w.begin_array();
  for (double d : values) w.value(d);
  w.value(std::nan(""));
  w.value(std::numeric_limits<double>::infinity());
  w.value(-std::numeric_limits<double>::infinity());
  w.value(0.1f);
  w.value(std::numeric_limits<float>::quiet_NaN());
  w.end_array();

  simdjson::dom::parser parser;
  simdjson::dom::array arr;
  ASSERT_EQ(parser.parse(out).get_array().get(arr), simdjson::SUCCESS) << out;
  ASSERT_EQ(arr.size(), values.size() + 5);
  for (std::size_t i = 0; i < values.size(); ++i) {
    double got = 0;
    ASSERT_EQ(arr.at(i).get_double().get(got), simdjson::SUCCESS) << out;
    EXPECT_EQ(got, values[i]) << "index " << i << " in " << out;
    // JSON parsers read "-0" as the integer 0, so the sign of zero is not checked.
    if (values[i] != 0) {
      EXPECT_EQ(std::signbit(got), std::signbit(values[i]));
    }
  }
  for (std::size_t i = values.size(); i < values.size() + 3; ++i) EXPECT_TRUE(arr.at(i).is_null());
  double f = 0;
  ASSERT_EQ(arr.at(values.size() + 3).get_double().get(f), simdjson::SUCCESS);
  EXPECT_EQ(static_cast<float>(f), 0.1f);
  EXPECT_TRUE(arr.at(values.size() + 4).is_null());
  EXPECT_NE(out.find(",0.1,"), std::string::npos) << "0.1 is not printed shortest: " << out;
  EXPECT_NE(out.find("null,0.1,null]"), std::string::npos) << "0.1f is not printed shortest: " << out;
}

TEST(JsonWriter, NullCStringAndEscapedKeys) {
  std::string out;
  sg::JsonWriter w(out);
  w.begin_object();
  const char* none = nullptr;
  w.key("a\nb\xFF");
  w.value(none);
  w.key("c");
  w.value(std::string("str"));
  w.end_object();
  EXPECT_EQ(out, "{\"a\\nb" + kR + "\":null,\"c\":\"str\"}");
  const auto lines = jq_compact({out});
  ASSERT_EQ(lines.size(), 1U);
  EXPECT_EQ(lines[0], out);
}

}  // namespace

// member(): the same text as key() then value(), for every kind of number and name: plain,
// empty, needing escapes, and longer than its one-append path takes.
TEST(JsonWriter, MemberWritesWhatKeyThenValueWrite) {
  const std::vector<std::string> names = {"count",
                                          "",
                                          "p50_ns",
                                          "a\"b\\c\n\xFF",
                                          std::string(120, 'k'),
                                          std::string(121, 'l'),
                                          std::string(200, 'm')};
  std::string got, want;
  sg::JsonWriter g(got), w(want);
  g.begin_object();
  w.begin_object();
  for (const auto& n : names) {
    g.member(n, std::numeric_limits<std::uint64_t>::max());
    w.key(n);
    w.value(std::numeric_limits<std::uint64_t>::max());
    g.member(n, std::numeric_limits<std::int64_t>::min());
    w.key(n);
    w.value(std::numeric_limits<std::int64_t>::min());
    g.member(n, 7);
    w.key(n);
    w.value(7);
    g.member(n, 1.0 / 3.0);
    w.key(n);
    w.value(1.0 / 3.0);
    g.member(n, 18446744073709551616.0);
    w.key(n);
    w.value(18446744073709551616.0);
    g.member(n, std::numeric_limits<double>::infinity());
    w.key(n);
    w.value(std::numeric_limits<double>::infinity());
    g.member(n, 0.1f);
    w.key(n);
    w.value(0.1f);
  }
  g.end_object();
  w.end_object();
  EXPECT_EQ(got, want);
  EXPECT_NE(
      got.find(R"({"count":18446744073709551615,"count":-9223372036854775808,"count":7,)"
               R"("count":0.3333333333333333,"count":1.8446744073709552e+19,"count":null,"count":0.1,)"),
      std::string::npos)
      << got;
  simdjson::dom::parser parser;
  simdjson::dom::object obj;
  ASSERT_EQ(parser.parse(got).get_object().get(obj), simdjson::SUCCESS) << got;
  EXPECT_EQ(obj.size(), names.size() * 7);
  EXPECT_EQ(jq_compact({got}).size(), 1u);
}

// fixed(): what printf's %.*f writes, less trailing zeros, for values away from a tie
// (half away from zero there, where printf rounds the binary value); shortest form where
// the digits would not fit; read back by simdjson and jq.
TEST(JsonWriter, FixedDecimals) {
  struct Case {
    double v;
    int decimals;
    const char* want;
  };
  const std::vector<Case> cases = {{0.0, 6, "0"},
                                   {-0.0, 6, "0"},
                                   {1.0 / 3.0, 6, "0.333333"},
                                   {2.0 / 3.0, 6, "0.666667"},
                                   {0.02, 6, "0.02"},
                                   {20.0, 6, "20"},
                                   {-7.25, 1, "-7.3"},
                                   {-7.24, 1, "-7.2"},
                                   {1e-7, 6, "0"},
                                   {-4e-7, 6, "0"},
                                   {6e-7, 6, "0.000001"},
                                   {123456.789, 0, "123457"},
                                   {0.1, 12, "0.1"},
                                   {5.5, -3, "6"},
                                   {999999.9999996, 6, "1000000"},
                                   {1e300, 6, "1e+300"},
                                   {9007199254.740993, 6, "9007199254.740993"},
                                   {-0.000123, 6, "-0.000123"}};
  std::string out;
  sg::JsonWriter w(out);
  w.begin_array();
  for (const auto& c : cases) w.value(sg::JsonWriter::fixed(c.v, c.decimals));
  w.value(sg::JsonWriter::fixed(std::nan(""), 6));
  w.value(sg::JsonWriter::fixed(-std::numeric_limits<double>::infinity(), 6));
  w.end_array();
  std::string want = "[";
  for (const auto& c : cases) want += std::string(c.want) + ",";
  want += "null,null]";
  EXPECT_EQ(out, want);
  // Away from ties, the same digits as printf.
  for (int i = 1; i < 2000; ++i) {
    const double v = 1000.0 / (i * 7.0 + 0.3);
    char buf[64];
    std::snprintf(buf, sizeof buf, "%.6f", v);
    std::string p = buf;
    while (p.back() == '0') p.pop_back();
    if (p.back() == '.') p.pop_back();
    std::string got;
    sg::JsonWriter g(got);
    g.value(sg::JsonWriter::fixed(v, 6));
    ASSERT_EQ(got, p) << v;
  }
  simdjson::dom::parser parser;
  simdjson::dom::array arr;
  ASSERT_EQ(parser.parse(out).get_array().get(arr), simdjson::SUCCESS) << out;
  double third = 0;
  ASSERT_EQ(arr.at(2).get_double().get(third), simdjson::SUCCESS);
  EXPECT_EQ(third, 0.333333);
  EXPECT_EQ(jq_compact({out}).size(), 1u);  // valid (jq prints its numbers its own way)
  std::string m;
  sg::JsonWriter mw(m);
  mw.begin_object();
  mw.member("rate_per_s", sg::JsonWriter::fixed(2.5, 6));
  mw.member("x\"y", sg::JsonWriter::fixed(-1.0, 6));
  mw.end_object();
  EXPECT_EQ(m, R"({"rate_per_s":2.5,"x\"y":-1})");
}
