// request_test.cc: building the batch request from the probe flags
// (cli/request.h): targets from arguments, files and stdin, the batch
// options, the probe defaults, and the messages for bad values.

#include "cli/request.h"

#include <sstream>
#include <string>
#include <vector>

#include "absl/status/status.h"
#include "absl/status/statusor.h"
#include "cli/flags.h"
#include "fanprobe/v1/prober.pb.h"
#include "gmock/gmock.h"
#include "google/protobuf/util/message_differencer.h"
#include "gtest/gtest.h"
#include "tests/support/temp_dir.h"
#include "tests/support/test_certs.h"

namespace fanprobe::cli {
namespace {

using ::fanprobe::testing::TempDir;
using ::fanprobe::testing::WriteFileAtomically;
using ::testing::ElementsAre;

std::vector<std::string> Urls(const v1::ProbeBatchRequest& request) {
  std::vector<std::string> urls;
  for (const v1::ProbeTarget& target : request.targets()) {
    urls.push_back(target.url());
  }
  return urls;
}

// The message of flags that must be refused.
std::string Refusal(const ProbeFlags& flags) {
  std::istringstream in;
  absl::StatusOr<v1::ProbeBatchRequest> request = BuildRequest(flags, in);
  EXPECT_EQ(request.status().code(), absl::StatusCode::kInvalidArgument);
  return std::string(request.status().message());
}

TEST(BuildRequestTest, TargetsFromArgumentsThenEachFileInOrder) {
  TempDir dir;
  WriteFileAtomically(dir.File("a"), "# first\n\n  http://file-a/1  \n");
  WriteFileAtomically(dir.File("b"), "http://file-b/1\n#http://no/\n");
  ProbeFlags flags;
  flags.urls = {"http://arg/1", "", "http://arg/2"};
  flags.files = {dir.File("a"), "-", dir.File("b")};
  std::istringstream in("http://stdin/1\n\n# skipped\nhttp://stdin/2");
  absl::StatusOr<v1::ProbeBatchRequest> request = BuildRequest(flags, in);
  ASSERT_TRUE(request.ok()) << request.status();
  EXPECT_THAT(Urls(*request), ElementsAre("http://arg/1", "http://arg/2",
                                          "http://file-a/1", "http://stdin/1",
                                          "http://stdin/2", "http://file-b/1"));
}

TEST(BuildRequestTest, NoFlagsLeaveEveryOptionToTheServer) {
  ProbeFlags flags;
  flags.urls = {"http://a/"};
  std::istringstream in;
  absl::StatusOr<v1::ProbeBatchRequest> request = BuildRequest(flags, in);
  ASSERT_TRUE(request.ok()) << request.status();
  v1::ProbeBatchRequest want;
  want.add_targets()->set_url("http://a/");
  want.mutable_defaults();
  EXPECT_TRUE(
      google::protobuf::util::MessageDifferencer::Equals(*request, want))
      << request->DebugString();
}

TEST(BuildRequestTest, EveryFlagLandsInItsField) {
  ProbeFlags flags;
  flags.urls = {"http://a/"};
  flags.return_when = "first_exception";
  flags.timeout = "1.5s";
  flags.concurrency = "7";
  flags.per_host = "2";
  flags.probe_timeout = "250ms";
  flags.method = "HEAD";
  flags.headers = {"X-One:  a, b ", "X-Two:c"};
  flags.expect = "200-299,301";
  std::istringstream in;
  absl::StatusOr<v1::ProbeBatchRequest> request = BuildRequest(flags, in);
  ASSERT_TRUE(request.ok()) << request.status();
  EXPECT_EQ(request->return_when(), v1::RETURN_WHEN_FIRST_EXCEPTION);
  EXPECT_EQ(request->timeout().seconds(), 1);
  EXPECT_EQ(request->timeout().nanos(), 500'000'000);
  EXPECT_EQ(request->max_concurrency(), 7u);
  EXPECT_EQ(request->max_per_host(), 2u);
  const v1::ProbeOptions& defaults = request->defaults();
  EXPECT_EQ(defaults.timeout().seconds(), 0);
  EXPECT_EQ(defaults.timeout().nanos(), 250'000'000);
  EXPECT_EQ(defaults.method(), "HEAD");
  ASSERT_EQ(defaults.headers().headers_size(), 2);
  EXPECT_EQ(defaults.headers().headers(0).name(), "X-One");
  EXPECT_EQ(defaults.headers().headers(0).value(), "a, b");
  EXPECT_EQ(defaults.headers().headers(1).name(), "X-Two");
  EXPECT_EQ(defaults.headers().headers(1).value(), "c");
  ASSERT_EQ(defaults.valid_status().ranges_size(), 2);
  EXPECT_EQ(defaults.valid_status().ranges(1).min(), 301u);
  EXPECT_EQ(defaults.valid_status().ranges(1).max(), 301u);
}

TEST(BuildRequestTest, BadValuesAreUsageErrorsQuotingTheFlag) {
  ProbeFlags base;
  base.urls = {"http://a/"};
  ProbeFlags flags = base;
  flags.return_when = "sometimes";
  EXPECT_EQ(Refusal(flags),
            "--return_when=sometimes: want all, first or first_exception");
  flags = base;
  flags.timeout = "soon";
  EXPECT_EQ(Refusal(flags),
            "--timeout=soon: want a duration such as 5s or 250ms");
  flags = base;
  flags.probe_timeout = "0s";
  EXPECT_EQ(Refusal(flags), "--probe_timeout must be positive");
  flags = base;
  flags.concurrency = "-1";
  EXPECT_EQ(Refusal(flags), "--concurrency=-1: want a non-negative integer");
  flags = base;
  flags.headers = {"A: 1", "NoColon"};
  EXPECT_EQ(Refusal(flags), "--header=NoColon: want 'Name: value'");
  flags = base;
  flags.expect = "2xx";
  EXPECT_EQ(Refusal(flags),
            "--expect=2xx: want status ranges such as 200-299,301");
  flags = base;
  flags.files = {"/nonexistent/urls"};
  EXPECT_EQ(Refusal(flags), "cannot read --file=/nonexistent/urls");
  EXPECT_EQ(Refusal(ProbeFlags{}), "no targets: give URLs or --file=FILE");
}

TEST(ParseExpectTest, RangesAndSingleCodes) {
  absl::StatusOr<v1::StatusRanges> ranges = ParseExpect("404,500-599,,");
  ASSERT_TRUE(ranges.ok()) << ranges.status();
  ASSERT_EQ(ranges->ranges_size(), 2);
  EXPECT_EQ(ranges->ranges(0).min(), 404u);
  EXPECT_EQ(ranges->ranges(0).max(), 404u);
  EXPECT_EQ(ranges->ranges(1).min(), 500u);
  EXPECT_EQ(ranges->ranges(1).max(), 599u);
  for (const char* bad : {"", ",", "99", "1000", "300-200", "2xx", "-300"}) {
    EXPECT_EQ(ParseExpect(bad).status().code(),
              absl::StatusCode::kInvalidArgument)
        << bad;
  }
}

TEST(ParseHeaderTest, NameAndValueAreTrimmed) {
  absl::StatusOr<v1::Header> header = ParseHeader(" X-A :  v: w ");
  ASSERT_TRUE(header.ok()) << header.status();
  EXPECT_EQ(header->name(), "X-A");
  EXPECT_EQ(header->value(), "v: w");
  header = ParseHeader("X-Empty:");
  ASSERT_TRUE(header.ok()) << header.status();
  EXPECT_EQ(header->value(), "");
  EXPECT_EQ(ParseHeader(": v").status().code(),
            absl::StatusCode::kInvalidArgument);
}

TEST(ParseReturnWhenTest, EveryRule) {
  EXPECT_EQ(*ParseReturnWhen("all"), v1::RETURN_WHEN_ALL_COMPLETED);
  EXPECT_EQ(*ParseReturnWhen("first"), v1::RETURN_WHEN_FIRST_COMPLETED);
  EXPECT_EQ(*ParseReturnWhen("first_exception"),
            v1::RETURN_WHEN_FIRST_EXCEPTION);
  EXPECT_EQ(ParseReturnWhen("ALL").status().code(),
            absl::StatusCode::kInvalidArgument);
}

}  // namespace
}  // namespace fanprobe::cli
