// output_test.cc: the table and jsonl formats (cli/output.h), byte for
// byte where scripts or eyes depend on them.

#include "cli/output.h"

#include <sstream>
#include <string>

#include "absl/status/status.h"
#include "absl/time/time.h"
#include "fanprobe/v1/prober.pb.h"
#include "gmock/gmock.h"
#include "google/protobuf/text_format.h"
#include "google/protobuf/util/json_util.h"
#include "google/protobuf/util/message_differencer.h"
#include "gtest/gtest.h"

namespace fanprobe::cli {
namespace {

v1::ProbeEvent Event(const std::string& text) {
  v1::ProbeEvent event;
  EXPECT_TRUE(google::protobuf::TextFormat::ParseFromString(text, &event))
      << text;
  return event;
}

const char kOk[] = R"pb(
  result {
    index: 0
    url: "http://a/"
    outcome: OUTCOME_OK
    status_code: 200
    timings { total { nanos: 12300000 } }
  }
)pb";

const char kFailed[] = R"pb(
  result {
    index: 12
    url: "http://b/"
    outcome: OUTCOME_CONNECT_ERROR
    error: "Connection refused"
    timings { total { seconds: 1 nanos: 234000000 } }
  }
)pb";

const char kSummary[] = R"pb(
  summary {
    reason: END_REASON_FIRST_EXCEPTION
    total: 3
    completed: 2
    succeeded: 1
    failed: 1
    cancelled: 1
    pending_indices: 2
    elapsed { nanos: 500000 }
  }
)pb";

TEST(PrinterTest, TableHasAHeaderThenARowPerResultThenTheSummary) {
  std::ostringstream out;
  Printer printer(Format::kTable, out);
  printer.Print(Event(kOk));
  printer.Print(Event(kFailed));
  printer.Print(Event(kSummary));
  EXPECT_EQ(out.str(),
            "INDEX  OUTCOME            STATUS       TIME  URL\n"
            "0      OK                    200     12.3ms  http://a/\n"
            "12     CONNECT_ERROR           -     1.234s  http://b/  "
            "(Connection refused)\n"
            "\n"
            "FIRST_EXCEPTION in 0.5ms: 3 probes, 2 completed (1 ok, 1 "
            "failed), 1 cancelled\n"
            "pending: 2\n");
}

TEST(PrinterTest, TableListsTwentyPendingIndicesAndCountsTheRest) {
  v1::ProbeEvent event = Event("summary { reason: END_REASON_TIMEOUT }");
  for (int i = 0; i < 25; ++i) event.mutable_summary()->add_pending_indices(i);
  std::ostringstream out;
  Printer(Format::kTable, out).Print(event);
  EXPECT_THAT(out.str(),
              ::testing::HasSubstr("pending: 0, 1, 2, 3, 4, 5, 6, 7, 8, 9, "
                                   "10, 11, 12, 13, 14, 15, 16, 17, 18, 19, "
                                   "... (5 more)\n"));
  EXPECT_THAT(out.str(), ::testing::Not(::testing::HasSubstr("INDEX")));
}

TEST(PrinterTest, JsonlIsOneProbeEventPerLineWithTheProtosFieldNames) {
  std::ostringstream out;
  Printer printer(Format::kJsonl, out);
  printer.Print(Event(kFailed));
  printer.Print(Event(kSummary));
  const std::string text = out.str();
  const size_t newline = text.find('\n');
  ASSERT_NE(newline, std::string::npos);
  ASSERT_EQ(text.back(), '\n');
  EXPECT_THAT(text, ::testing::HasSubstr(R"("status_code":0)"));
  EXPECT_THAT(text, ::testing::HasSubstr(R"("pending_indices":[2])"));
  EXPECT_THAT(text, ::testing::HasSubstr(R"("total":"1.234s")"));
  // Each line parses back to the event printed.
  v1::ProbeEvent first;
  ASSERT_TRUE(google::protobuf::util::JsonStringToMessage(
                  text.substr(0, newline), &first)
                  .ok());
  EXPECT_TRUE(google::protobuf::util::MessageDifferencer::Equals(
      first, Event(kFailed)));
  v1::ProbeEvent second;
  ASSERT_TRUE(google::protobuf::util::JsonStringToMessage(
                  text.substr(newline + 1), &second)
                  .ok());
  EXPECT_TRUE(google::protobuf::util::MessageDifferencer::Equals(
      second, Event(kSummary)));
}

TEST(ParseFormatTest, TableOrJsonl) {
  EXPECT_EQ(*ParseFormat("table"), Format::kTable);
  EXPECT_EQ(*ParseFormat("jsonl"), Format::kJsonl);
  EXPECT_EQ(ParseFormat("xml").status().message(),
            "--format=xml: want table or jsonl");
}

TEST(HumanDurationTest, MillisecondsBelowASecondSecondsAbove) {
  EXPECT_EQ(HumanDuration(absl::Microseconds(27)), "0.0ms");
  EXPECT_EQ(HumanDuration(absl::Microseconds(12345)), "12.3ms");
  EXPECT_EQ(HumanDuration(absl::Milliseconds(999)), "999.0ms");
  EXPECT_EQ(HumanDuration(absl::Seconds(1)), "1.000s");
  EXPECT_EQ(HumanDuration(absl::Milliseconds(61234)), "61.234s");
}

}  // namespace
}  // namespace fanprobe::cli
