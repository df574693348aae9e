// Label values must be valid UTF-8: to_valid_utf8 keeps valid text byte for byte and
// replaces each invalid byte with U+FFFD.

#include <gtest/gtest.h>

#include <string>

#include "spyglass/exporters/prometheus.hpp"

namespace {

using spyglass::prom::to_valid_utf8;
const std::string kReplacement = "\xef\xbf\xbd";

TEST(ToValidUtf8, KeepsValidText) {
  EXPECT_EQ(to_valid_utf8(""), "");
  EXPECT_EQ(to_valid_utf8("SELECT * FROM t"), "SELECT * FROM t");
  const std::string mixed = "caf\xc3\xa9 \xe2\x82\xac \xf0\x9f\x94\xa5 \xf4\x8f\xbf\xbf";  // é € 🔥 U+10FFFF
  EXPECT_EQ(to_valid_utf8(mixed), mixed);
  // Quotes, backslashes, newlines and NUL are valid UTF-8: escaping them is the serializer's job.
  const std::string control("a\"b\\c\nd\0e", 9);
  EXPECT_EQ(to_valid_utf8(control), control);
}

TEST(ToValidUtf8, ReplacesEachInvalidByte) {
  EXPECT_EQ(to_valid_utf8("a\xff"
                          "b"),
            "a" + kReplacement + "b");
  EXPECT_EQ(to_valid_utf8("\x80\x80"), kReplacement + kReplacement);  // lone continuation bytes
  EXPECT_EQ(to_valid_utf8("\xc3"), kReplacement);                     // truncated at the end
  EXPECT_EQ(to_valid_utf8("\xe2\x82"
                          "x"),
            kReplacement + kReplacement + "x");  // truncated in the middle
}

TEST(ToValidUtf8, RejectsOverlongSurrogatesAndOutOfRange) {
  EXPECT_EQ(to_valid_utf8("\xc0\xaf"), kReplacement + kReplacement);                     // overlong '/'
  EXPECT_EQ(to_valid_utf8("\xe0\x80\xaf"), kReplacement + kReplacement + kReplacement);  // overlong
  EXPECT_EQ(to_valid_utf8("\xed\xa0\x80"), kReplacement + kReplacement + kReplacement);  // U+D800
  EXPECT_EQ(to_valid_utf8("\xf4\x90\x80\x80"),
            kReplacement + kReplacement + kReplacement + kReplacement);  // > U+10FFFF
  EXPECT_EQ(to_valid_utf8("\xf5\x80\x80\x80"), kReplacement + kReplacement + kReplacement + kReplacement);
}

}  // namespace
