// output_test.cc: the table, jsonl and csv formats (cli/output.h), byte
// for byte where scripts or eyes depend on them.

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
  std::ostringstream err;
  Printer printer(Format::kTable, out, err);
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
  EXPECT_EQ(err.str(), "");
}

TEST(PrinterTest, ATableRowOfARetriedProbeListsItsAttempts) {
  std::ostringstream out;
  std::ostringstream err;
  Printer printer(Format::kTable, out, err);
  printer.Print(Event(R"pb(
    result {
      index: 4
      url: "http://c/"
      outcome: OUTCOME_OK
      status_code: 200
      timings { total { nanos: 2000000 } }
      attempts {
        outcome: OUTCOME_IO_ERROR
        timings { total { nanos: 1000000 } }
      }
      attempts {
        outcome: OUTCOME_OK
        start { nanos: 250000000 }
        timings { total { nanos: 2000000 } }
      }
    }
  )pb"));
  // TIME runs from the first attempt's start to the last one's end.
  EXPECT_EQ(out.str(),
            "INDEX  OUTCOME            STATUS       TIME  URL\n"
            "4      OK                    200    252.0ms  http://c/  "
            "[attempts: IO_ERROR, OK]\n");
}

TEST(PrinterTest, TableListsTwentyPendingIndicesAndCountsTheRest) {
  v1::ProbeEvent event = Event("summary { reason: END_REASON_TIMEOUT }");
  for (int i = 0; i < 25; ++i) event.mutable_summary()->add_pending_indices(i);
  std::ostringstream out;
  std::ostringstream err;
  Printer(Format::kTable, out, err).Print(event);
  EXPECT_THAT(out.str(),
              ::testing::HasSubstr("pending: 0, 1, 2, 3, 4, 5, 6, 7, 8, 9, "
                                   "10, 11, 12, 13, 14, 15, 16, 17, 18, 19, "
                                   "... (5 more)\n"));
  EXPECT_THAT(out.str(), ::testing::Not(::testing::HasSubstr("INDEX")));
}

TEST(PrinterTest, JsonlIsOneProbeEventPerLineWithTheProtosFieldNames) {
  std::ostringstream out;
  std::ostringstream err;
  Printer printer(Format::kJsonl, out, err);
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

TEST(PrinterTest, JsonlDurationsAndSixtyFourBitNumbersAreStrings) {
  // The contract scripts read: protobuf's JSON mapping, every field.
  std::ostringstream out;
  std::ostringstream err;
  Printer(Format::kJsonl, out, err).Print(Event(R"pb(result {
                                                       index: 1
                                                       outcome: OUTCOME_OK
                                                       body_bytes: 20
                                                       timings {
                                                         total { nanos: 27000 }
                                                       }
                                                     })pb"));
  EXPECT_THAT(out.str(), ::testing::HasSubstr(R"("total":"0.000027s")"));
  EXPECT_THAT(out.str(), ::testing::HasSubstr(R"("body_bytes":"20")"));
  EXPECT_THAT(out.str(), ::testing::HasSubstr(R"("outcome":"OUTCOME_OK")"));
  EXPECT_THAT(out.str(), ::testing::HasSubstr(R"("final_url":"")"));
}

TEST(PrinterTest, CsvHasAHeaderThenOneRowPerResultWithSecondsAsNumbers) {
  std::ostringstream out;
  std::ostringstream err;
  Printer printer(Format::kCsv, out, err);
  printer.Print(Event(kOk));
  printer.Print(Event(R"pb(
    result {
      index: 3
      id: "web, \"main\""
      labels { key: "z" value: "1" }
      labels { key: "a" value: "x=y" }
      url: "https://b/"
      outcome: OUTCOME_UNEXPECTED_STATUS
      status_code: 503
      error: "status 503 is not a valid status"
      timings {
        dns { nanos: 1000 }
        connect { nanos: 2000 }
        tls { nanos: 3000 }
        first_byte { nanos: 4000 }
        total { seconds: 1 nanos: 250000000 }
        redirect { nanos: 60 }
      }
      final_url: "https://b/final"
      http_version: "HTTP/2"
      remote_ip: "::1"
      remote_port: 443
      body_bytes: 18446744073709551615
      redirects: 2
      cert_expiry { seconds: 1798761600 nanos: 5 }
      attempts { outcome: OUTCOME_CONNECT_ERROR }
      attempts { outcome: OUTCOME_TIMEOUT }
      attempts { outcome: OUTCOME_UNEXPECTED_STATUS }
    }
  )pb"));
  printer.Print(Event(kSummary));
  EXPECT_EQ(out.str(),
            CsvHeader() + "\n" +
                "0,,http://a/,OK,200,,0.012300,0.000000,0.000000,0.000000,"
                "0.000000,0.000000,,,,0,0,0,,,1\n"
                "3,\"web, \"\"main\"\"\",https://b/,UNEXPECTED_STATUS,503,"
                "status 503 is not a valid status,1.250000,0.000001,0.000002,"
                "0.000003,0.000004,0.000000,https://b/final,HTTP/2,::1,443,"
                "18446744073709551615,2,2027-01-01T00:00:00Z,a=x=y;z=1,3\n");
  // The summary goes to err, in the table's words, so the CSV is rows only.
  EXPECT_EQ(err.str(),
            "\nFIRST_EXCEPTION in 0.5ms: 3 probes, 2 completed (1 ok, 1 "
            "failed), 1 cancelled\n"
            "pending: 2\n");
}

TEST(PrinterTest, CsvHeaderComesEvenWithoutResults) {
  std::ostringstream out;
  std::ostringstream err;
  Printer(Format::kCsv, out, err).Print(Event(kSummary));
  EXPECT_EQ(out.str(), CsvHeader() + "\n");
  EXPECT_EQ(CsvHeader(),
            "index,id,url,outcome,status_code,error,total_seconds,dns_seconds,"
            "connect_seconds,tls_seconds,first_byte_seconds,redirect_seconds,"
            "final_url,http_version,remote_ip,remote_port,body_bytes,"
            "redirects,cert_expiry,labels,attempts");
}

TEST(CsvFieldTest, QuotesOnlyWhatNeedsIt) {
  EXPECT_EQ(CsvField("plain text; ok"), "plain text; ok");
  EXPECT_EQ(CsvField(""), "");
  EXPECT_EQ(CsvField("a,b"), "\"a,b\"");
  EXPECT_EQ(CsvField("say \"hi\""), "\"say \"\"hi\"\"\"");
  EXPECT_EQ(CsvField("two\nlines"), "\"two\nlines\"");
  EXPECT_EQ(CsvField("cr\r"), "\"cr\r\"");
}

TEST(ParseFormatTest, TableJsonlOrCsv) {
  EXPECT_EQ(*ParseFormat("table"), Format::kTable);
  EXPECT_EQ(*ParseFormat("jsonl"), Format::kJsonl);
  EXPECT_EQ(*ParseFormat("csv"), Format::kCsv);
  EXPECT_EQ(ParseFormat("xml").status().message(),
            "--format=xml: want table, jsonl or csv");
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
