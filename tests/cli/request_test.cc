// request_test.cc: building the batch request from the probe flags
// (cli/request.h): the batch options, every probe default (curl's flags
// included: the body and its files, -d making a POST), the targets, and
// the messages for bad values.  Reading targets is input_test.cc's.

#include "cli/request.h"

#include <sstream>
#include <string>
#include <vector>

#include "absl/status/status.h"
#include "absl/status/statusor.h"
#include "cli/flags.h"
#include "cli/input.h"
#include "fanprobe/v1/prober.pb.h"
#include "gmock/gmock.h"
#include "google/protobuf/text_format.h"
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

absl::StatusOr<v1::ProbeBatchRequest> Build(const ProbeFlags& flags) {
  std::istringstream stream;
  Stdin in{stream, true};
  return BuildRequest(flags, in);
}

// The message of flags that must be refused.
std::string Refusal(const ProbeFlags& flags) {
  absl::StatusOr<v1::ProbeBatchRequest> request = Build(flags);
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
  std::istringstream stream("http://stdin/1\n\n# skipped\nhttp://stdin/2");
  Stdin in{stream, false};
  absl::StatusOr<v1::ProbeBatchRequest> request = BuildRequest(flags, in);
  ASSERT_TRUE(request.ok()) << request.status();
  EXPECT_THAT(Urls(*request), ElementsAre("http://arg/1", "http://arg/2",
                                          "http://file-a/1", "http://stdin/1",
                                          "http://stdin/2", "http://file-b/1"));
}

TEST(BuildRequestTest, NoFlagsLeaveEveryOptionToWhoeverRunsTheBatch) {
  ProbeFlags flags;
  flags.urls = {"http://a/"};
  absl::StatusOr<v1::ProbeBatchRequest> request = Build(flags);
  ASSERT_TRUE(request.ok()) << request.status();
  v1::ProbeBatchRequest want;
  want.add_targets()->set_url("http://a/");
  want.mutable_defaults();
  // Not a probe option: how many results a server may send in one message
  // (RemoteShare hands them on one by one).
  want.set_max_results_per_event(256);
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
  flags.max_time = "250ms";
  flags.method = "HEAD";
  flags.headers = {"X-One:  a, b ", "X-Two:c"};
  flags.expect = "200-299,301";
  absl::StatusOr<v1::ProbeBatchRequest> request = Build(flags);
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

TEST(BuildDefaultsTest, EveryProbeOptionHasAFlag) {
  TempDir dir;
  WriteFileAtomically(dir.File("ca.pem"), "-----BEGIN CERTIFICATE-----\n");
  ProbeFlags flags;
  flags.method = "PUT";
  flags.headers = {"A: 1"};
  flags.data = {{DataFlag::Kind::kRaw, "x=1"}};
  flags.max_time = "2.5";
  flags.connect_timeout = "1";
  flags.follow_redirects = false;
  flags.max_redirs = "3";
  flags.insecure = true;
  flags.cacert = dir.File("ca.pem");
  flags.http_version = "2";
  flags.tls_min = "1.3";
  flags.tls_max = "1.3";
  flags.proxy = "http://proxy.test:3128";
  flags.proxy_headers = {"Proxy-Authorization: Bearer t"};
  flags.noproxy = "web.test, .internal.test,10.0.0.0/8";
  flags.proxy_resolves = true;
  flags.interface = "::1";
  flags.ip_family = "6";
  flags.user_agent = "probe/1";
  flags.max_filesize = "2k";
  flags.expect = "200";
  flags.body_must_match = {"ok", "fine"};
  flags.body_must_not_match = {"error"};
  flags.reuse_connections = true;
  absl::StatusOr<v1::ProbeOptions> defaults = BuildDefaults(flags);
  ASSERT_TRUE(defaults.ok()) << defaults.status();
  v1::ProbeOptions want;
  ASSERT_TRUE(google::protobuf::TextFormat::ParseFromString(
      R"pb(
        method: "PUT"
        headers { headers { name: "A" value: "1" } }
        body: "x=1"
        timeout { seconds: 2 nanos: 500000000 }
        connect_timeout { seconds: 1 }
        follow_redirects: false
        max_redirects: 3
        valid_status { ranges { min: 200 max: 200 } }
        body_must_match { patterns: "ok" patterns: "fine" }
        body_must_not_match { patterns: "error" }
        max_body_bytes: 2048
        tls_verify: false
        ca_pem: "-----BEGIN CERTIFICATE-----\n"
        http_version: HTTP_VERSION_2
        ip_family: IP_FAMILY_IPV6
        reuse_connections: true
        user_agent: "probe/1"
        tls_min_version: TLS_VERSION_1_3
        tls_max_version: TLS_VERSION_1_3
        proxy {
          url: "http://proxy.test:3128"
          connect_headers { name: "Proxy-Authorization" value: "Bearer t" }
          no_proxy: "web.test"
          no_proxy: ".internal.test"
          no_proxy: "10.0.0.0/8"
          proxy_resolves: true
        }
        source_address: "::1"
      )pb",
      &want));
  EXPECT_TRUE(
      google::protobuf::util::MessageDifferencer::Equals(*defaults, want))
      << defaults->DebugString();
  // The other value of each choice.
  flags.http_version = "1.1";
  flags.tls_min = "1.2";
  flags.tls_max = "1.2";
  flags.ip_family = "4";
  flags.follow_redirects = true;
  defaults = BuildDefaults(flags);
  ASSERT_TRUE(defaults.ok()) << defaults.status();
  EXPECT_EQ(defaults->http_version(), v1::HTTP_VERSION_1_1);
  EXPECT_EQ(defaults->tls_min_version(), v1::TLS_VERSION_1_2);
  EXPECT_EQ(defaults->tls_max_version(), v1::TLS_VERSION_1_2);
  EXPECT_EQ(defaults->ip_family(), v1::IP_FAMILY_IPV4);
  EXPECT_TRUE(defaults->follow_redirects());
}

TEST(BuildDefaultsTest, ABodyMakesAPostUnlessTheMethodIsGiven) {
  ProbeFlags flags;
  flags.data = {{DataFlag::Kind::kData, "a=1"}};
  absl::StatusOr<v1::ProbeOptions> defaults = BuildDefaults(flags);
  ASSERT_TRUE(defaults.ok()) << defaults.status();
  EXPECT_EQ(defaults->method(), "POST");
  EXPECT_EQ(defaults->body(), "a=1");
  flags.method = "PUT";
  defaults = BuildDefaults(flags);
  ASSERT_TRUE(defaults.ok()) << defaults.status();
  EXPECT_EQ(defaults->method(), "PUT");
  // Without a body, nothing is set.
  defaults = BuildDefaults(ProbeFlags{});
  ASSERT_TRUE(defaults.ok()) << defaults.status();
  EXPECT_FALSE(defaults->has_method());
  EXPECT_FALSE(defaults->has_body());
  EXPECT_FALSE(defaults->has_tls_verify());
  EXPECT_FALSE(defaults->has_reuse_connections());
}

TEST(JoinDataTest, CurlsRulesForFilesAndRepeats) {
  TempDir dir;
  WriteFileAtomically(dir.File("form"), "a=1\r\n&b=2\n");
  WriteFileAtomically(dir.File("bin"), std::string("x\ny\0z", 5));
  absl::StatusOr<std::string> body =
      JoinData({{DataFlag::Kind::kData, "@" + dir.File("form")},
                {DataFlag::Kind::kBinary, "@" + dir.File("bin")},
                {DataFlag::Kind::kRaw, "@" + dir.File("form")},
                {DataFlag::Kind::kData, "c=3"}});
  ASSERT_TRUE(body.ok()) << body.status();
  EXPECT_EQ(*body, "a=1&b=2&" + std::string("x\ny\0z", 5) + "&@" +
                       dir.File("form") + "&c=3");
  EXPECT_EQ(*JoinData({}), "");

  EXPECT_EQ(JoinData({{DataFlag::Kind::kData, "@/nonexistent/body"}})
                .status()
                .message(),
            "cannot read --data=/nonexistent/body");
  EXPECT_EQ(
      JoinData({{DataFlag::Kind::kBinary, "@-"}}).status().message(),
      "--data-binary=@-: stdin holds the targets; give the body in a file");
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
            "--timeout=soon: want a duration such as 5s, 250ms or 2.5 "
            "(seconds)");
  flags = base;
  flags.max_time = "0s";
  EXPECT_EQ(Refusal(flags), "--max-time must be positive");
  flags = base;
  flags.connect_timeout = "0";
  EXPECT_EQ(Refusal(flags), "--connect-timeout must be positive");
  flags = base;
  flags.max_redirs = "-1";
  EXPECT_EQ(Refusal(flags), "--max-redirs=-1: want a non-negative integer");
  flags = base;
  flags.max_filesize = "big";
  EXPECT_EQ(Refusal(flags),
            "--max-filesize=big: want a byte count such as 65536 or 64k");
  flags = base;
  flags.noproxy = "web.test";
  EXPECT_EQ(Refusal(flags),
            "--proxy-header, --noproxy and --proxy-resolves need -x/--proxy");
  flags = base;
  flags.proxy = "http://proxy.test";
  flags.proxy_headers = {"NoColon"};
  EXPECT_EQ(Refusal(flags), "--proxy-header=NoColon: want 'Name: value'");
  flags = base;
  flags.tls_max = "1.1";
  EXPECT_EQ(Refusal(flags),
            "--tls-max=1.1: want 1.2, 1.3 or default (nothing older than TLS "
            "1.2 is offered)");
  flags = base;
  flags.cacert = "/nonexistent/ca.pem";
  EXPECT_EQ(Refusal(flags), "cannot read --cacert=/nonexistent/ca.pem");
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
  EXPECT_EQ(Refusal(ProbeFlags{}),
            "no targets: give URLs, --file=FILE, or pipe them to stdin");
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
