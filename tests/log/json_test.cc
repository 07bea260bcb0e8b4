// Unit tests of log/json.h: JSON string escaping as RFC 8259 wants it,
// judged twice -- byte for byte, and by Python's json module after a strict
// UTF-8 decode (tests/support/json_lines.h), which rejects what
// absl::CEscape produced (\' and octal escapes).

#include "log/json.h"

#include <string>
#include <vector>

#include "absl/status/statusor.h"
#include "absl/strings/str_cat.h"
#include "gmock/gmock.h"
#include "gtest/gtest.h"
#include "tests/support/json_lines.h"

namespace fanprobe::log {
namespace {

using ::fanprobe::testing::ParseJsonLines;
using ::testing::ElementsAre;

TEST(JsonStringTest, EscapesQuotesBackslashesAndControlCharacters) {
  EXPECT_EQ(JsonString(""), R"("")");
  EXPECT_EQ(JsonString(R"(say "hi" \ bye)"), R"("say \"hi\" \\ bye")");
  EXPECT_EQ(JsonString("a\nb\tc\rd\be\ff"), R"("a\nb\tc\rd\be\ff")");
  EXPECT_EQ(JsonString(std::string("\0\x01\x1f", 3)),
            R"("\u0000\u0001\u001f")");
  // Not control characters in JSON: passed as they are.
  EXPECT_EQ(JsonString("' / \x7f"), "\"' / \x7f\"");
}

TEST(JsonStringTest, ValidUtf8PassesThrough) {
  // é (2 bytes), € (3), 𝄞 (4): the shortest and longest sequences.
  const std::string text = "tok'\xc3\xa9 \xe2\x82\xac \xf0\x9d\x84\x9e";
  EXPECT_EQ(JsonString(text), absl::StrCat("\"", text, "\""));
}

TEST(JsonStringTest, BytesThatAreNotUtf8BecomeEscapes) {
  // A lone lead byte, a lone continuation byte, an overlong '/', an encoded
  // surrogate (U+D800), a code point above U+10FFFF, a sequence cut short
  // at the end.
  EXPECT_EQ(JsonString("tok'\xc3"), R"("tok'\u00c3")");
  EXPECT_EQ(JsonString("a\x80z"), R"("a\u0080z")");
  EXPECT_EQ(JsonString("\xc0\xaf"), R"("\u00c0\u00af")");
  EXPECT_EQ(JsonString("\xed\xa0\x80"), R"("\u00ed\u00a0\u0080")");
  EXPECT_EQ(JsonString("\xf4\x90\x80\x80"), R"("\u00f4\u0090\u0080\u0080")");
  EXPECT_EQ(JsonString("\xe2\x82"), R"("\u00e2\u0082")");
  // A good sequence right after a bad byte is kept.
  EXPECT_EQ(JsonString("\xff\xc3\xa9"), "\"\\u00ff\xc3\xa9\"");
}

TEST(JsonStringTest, PythonReadsBackWhatWasWritten) {
  const std::vector<std::string> texts = {
      "tok'\xc3\xa9",           // what CEscape turned into tok\'\303\251
      "quote \" backslash \\",  // the two escapes JSON requires
      std::string("nul \0 and \x1b[0m", 14),
      "cut \xe2\x82",  // not UTF-8
      "\xed\xa0\x80 surrogate",
  };
  std::vector<std::string> lines;
  for (const std::string& text : texts) {
    lines.push_back(absl::StrCat("{\"v\":", JsonString(text), "}"));
  }
  absl::StatusOr<std::vector<std::string>> parsed = ParseJsonLines(lines);
  ASSERT_TRUE(parsed.ok()) << parsed.status();
  // Read back with non-ASCII as \uXXXX, each string intact (invalid bytes as
  // the code point of their value).
  EXPECT_THAT(*parsed, ElementsAre(R"({"v":"tok'\u00e9"})",
                                   R"({"v":"quote \" backslash \\"})",
                                   R"({"v":"nul \u0000 and \u001b[0m"})",
                                   R"({"v":"cut \u00e2\u0082"})",
                                   R"({"v":"\u00ed\u00a0\u0080 surrogate"})"));
}

TEST(JsonStringTest, TheJudgeRejectsWhatCEscapeWrote) {
  // The judge is strict enough to have caught the old log line.
  EXPECT_FALSE(ParseJsonLines({R"({"error":"tok\'\303\251"})"}).ok());
  EXPECT_FALSE(ParseJsonLines({"{\"error\":\"tok\xc3\"}"}).ok());
}

}  // namespace
}  // namespace fanprobe::log
