// Unit tests of log/logger.h: a line's shape (timestamp and event first,
// members in order, values escaped), and where lines go.

#include "log/logger.h"

#include <cstdint>
#include <string>
#include <vector>

#include "absl/status/statusor.h"
#include "absl/strings/string_view.h"
#include "absl/time/time.h"
#include "gmock/gmock.h"
#include "gtest/gtest.h"
#include "tests/support/json_lines.h"

namespace fanprobe::log {
namespace {

using ::fanprobe::testing::ParseJsonLines;
using ::testing::ElementsAre;
using ::testing::MatchesRegex;

const absl::Time kSomeTime =
    absl::FromUnixNanos(int64_t{1795252564} * 1000000000 + 217981594);

TEST(LineTest, StartsWithTheUtcTimeAndTheEventThenMembersInOrder) {
  const Line line = Line("batch", kSomeTime)
                        .Add("rpc", "ProbeBatch")
                        .Add("peer", std::string("ipv4:127.0.0.1:4242"))
                        .Add("targets", uint32_t{2})
                        .Add("offset", int64_t{-3})
                        .AddMilliseconds("elapsed_ms", absl::Microseconds(1237))
                        .AddJson("policy", R"({"deny":[]})");
  EXPECT_EQ(line.text(),
            R"({"ts":"2026-11-21T09:16:04.217981594+00:00","event":"batch",)"
            R"("rpc":"ProbeBatch","peer":"ipv4:127.0.0.1:4242","targets":2,)"
            R"("offset":-3,"elapsed_ms":1.237,"policy":{"deny":[]}})");
}

TEST(LineTest, ANowTimestampIsRfc3339Utc) {
  EXPECT_THAT(Line("stopped").text(),
              MatchesRegex(R"re(\{"ts":"[0-9]{4}-[0-9]{2}-[0-9]{2}T[0-9]{2}:)re"
                           R"re([0-9]{2}:[0-9]{2}(\.[0-9]+)?\+00:00",)re"
                           R"re("event":"stopped"\})re"));
}

TEST(LineTest, EveryValueIsEscapedSoTheLineIsJson) {
  const Line line = Line("auth_token_file_ignored", kSomeTime)
                        .Add("error", "--auth_token_file=/t/tok'\xc3\xa9\n")
                        .Add("raw", "\xc3 \"");
  absl::StatusOr<std::vector<std::string>> parsed =
      ParseJsonLines({line.text()});
  ASSERT_TRUE(parsed.ok()) << parsed.status() << "\n" << line.text();
  EXPECT_THAT(*parsed,
              ElementsAre(R"({"error":"--auth_token_file=/t/tok'\u00e9\n",)"
                          R"("event":"auth_token_file_ignored",)"
                          R"("raw":"\u00c3 \"",)"
                          R"("ts":"2026-11-21T09:16:04.217981594+00:00"})"));
}

TEST(LoggerTest, LinesGoToTheSinkWithoutANewline) {
  std::vector<std::string> lines;
  const Logger logger(
      [&lines](absl::string_view line) { lines.emplace_back(line); });
  logger.Log(Line("listening", kSomeTime).Add("address", "127.0.0.1:1"));
  logger.Log(Line("stopped", kSomeTime));
  EXPECT_THAT(
      lines,
      ElementsAre(
          R"({"ts":"2026-11-21T09:16:04.217981594+00:00","event":"listening",)"
          R"("address":"127.0.0.1:1"})",
          R"({"ts":"2026-11-21T09:16:04.217981594+00:00","event":"stopped"})"));
}

}  // namespace
}  // namespace fanprobe::log
