// engine_response_test.cc: what a probe reads of a response besides its
// status and body, and what it sends to get it, against the loopback
// target (tests/support/target_server.h): response headers kept and
// matched, basic and bearer credentials, compressed bodies decoded within
// the body cap, Content-Length and Last-Modified.

#include <memory>
#include <string>
#include <utility>
#include <vector>

#include "absl/strings/escaping.h"
#include "absl/strings/match.h"
#include "absl/strings/str_cat.h"
#include "absl/time/time.h"
#include "gmock/gmock.h"
#include "gtest/gtest.h"
#include "probe/engine.h"
#include "tests/probe/engine_test_util.h"
#include "tests/support/dns_server.h"
#include "tests/support/fault_server.h"
#include "tests/support/target_server.h"

namespace fanprobe {
namespace {

using ::fanprobe::testing::BatchRun;
using ::fanprobe::testing::DnsServer;
using ::fanprobe::testing::Fault;
using ::fanprobe::testing::FaultServer;
using ::fanprobe::testing::Options;
using ::fanprobe::testing::RecordedRequest;
using ::fanprobe::testing::Target;
using ::fanprobe::testing::TargetServer;
using ::testing::Contains;
using ::testing::HasSubstr;
using ::testing::IsEmpty;
using ::testing::Not;
using ::testing::Pair;
using ::testing::StartsWith;

class EngineResponseTest : public ::testing::Test {
 protected:
  void SetUp() override {
    engine_ = testing::MakeEngine({.workers = 1});
    ASSERT_NE(engine_, nullptr);
  }

  ProbeResult RunOne(const std::string& url,
                     const std::function<void(ProbeOptions&)>& edit) {
    BatchRun run =
        testing::RunBatch(*engine_, {Target(url, Options([&](ProbeOptions& o) {
                                              o.timeout = absl::Seconds(5);
                                              edit(o);
                                            }))});
    testing::ExpectConsistent(run);
    EXPECT_EQ(run.results.size(), 1u);
    return run.results.empty() ? ProbeResult{} : run.results[0];
  }

  // The Authorization headers the target received, in order.
  std::vector<std::string> AuthorizationsSent() const {
    std::vector<std::string> values;
    for (const auto& request : server_.Requests()) {
      for (const auto& [name, value] : request.headers) {
        if (absl::EqualsIgnoreCase(name, "Authorization")) {
          values.push_back(value);
        }
      }
    }
    return values;
  }

  TargetServer server_;
  std::unique_ptr<Engine> engine_;
};

// --- Response headers ------------------------------------------------------

TEST_F(EngineResponseTest, HeadersAreKeptOnlyWhenAsked) {
  const std::string url = server_.url("/headers?X-Build=42&X-Build=43");
  ProbeResult kept =
      RunOne(url, [](ProbeOptions& o) { o.keep_response_headers = true; });
  ASSERT_EQ(kept.outcome, Outcome::kOk) << kept.error;
  // Two lines of one name stay two values, in the order sent.
  EXPECT_THAT(kept.response_headers, Contains(Pair("X-Build", "42")));
  EXPECT_THAT(kept.response_headers, Contains(Pair("X-Build", "43")));
  EXPECT_THAT(kept.response_headers,
              Contains(Pair("Content-Type", "text/plain")));
  // No status line, no blank line.
  for (const auto& [name, value] : kept.response_headers) {
    EXPECT_THAT(name, Not(StartsWith("HTTP/")));
    EXPECT_FALSE(name.empty());
  }

  ProbeResult not_kept = RunOne(url, [](ProbeOptions& o) {});
  ASSERT_EQ(not_kept.outcome, Outcome::kOk) << not_kept.error;
  EXPECT_THAT(not_kept.response_headers, IsEmpty());
}

TEST_F(EngineResponseTest, OnlyTheFinalResponsesHeadersAreKept) {
  // /redirect/1 answers 302 with a Location, then /status/200 answers.
  ProbeResult r = RunOne(server_.url("/redirect/1"), [](ProbeOptions& o) {
    o.keep_response_headers = true;
    o.header_must_not_match = {
        {.name = "Location", .pattern = ".", .allow_missing = true}};
  });
  ASSERT_EQ(r.outcome, Outcome::kOk) << r.error;
  EXPECT_EQ(r.redirects, 1);
  for (const auto& [name, value] : r.response_headers) {
    EXPECT_FALSE(absl::EqualsIgnoreCase(name, "Location")) << value;
  }
}

TEST_F(EngineResponseTest, HeaderMustMatch) {
  const std::string url = server_.url("/headers?X-Version=v2.7.1");
  // Case-insensitive names; unanchored patterns.
  ProbeResult ok = RunOne(url, [](ProbeOptions& o) {
    o.header_must_match = {{.name = "x-version", .pattern = R"(2\.7)"}};
  });
  EXPECT_EQ(ok.outcome, Outcome::kOk) << ok.error;

  ProbeResult mismatch = RunOne(url, [](ProbeOptions& o) {
    o.header_must_match = {{.name = "X-Version", .pattern = "^v3"}};
  });
  EXPECT_EQ(mismatch.outcome, Outcome::kHeaderMismatch);
  EXPECT_EQ(mismatch.error, "no value of the X-Version header matches \"^v3\"");
  EXPECT_EQ(mismatch.status_code, 200);

  ProbeResult missing = RunOne(url, [](ProbeOptions& o) {
    o.header_must_match = {{.name = "X-Absent", .pattern = "."}};
  });
  EXPECT_EQ(missing.outcome, Outcome::kHeaderMismatch);
  EXPECT_EQ(missing.error, "the response has no X-Absent header");

  ProbeResult allowed = RunOne(url, [](ProbeOptions& o) {
    o.header_must_match = {
        {.name = "X-Absent", .pattern = ".", .allow_missing = true}};
  });
  EXPECT_EQ(allowed.outcome, Outcome::kOk) << allowed.error;
}

TEST_F(EngineResponseTest, HeaderMustMatchIsSatisfiedByAnyOfItsValues) {
  const std::string url = server_.url("/headers?X-Role=replica&X-Role=primary");
  ProbeResult r = RunOne(url, [](ProbeOptions& o) {
    o.header_must_match = {{.name = "X-Role", .pattern = "^primary$"}};
  });
  EXPECT_EQ(r.outcome, Outcome::kOk) << r.error;
}

TEST_F(EngineResponseTest, HeaderMustNotMatch) {
  const std::string url = server_.url("/headers?X-Role=replica&X-Role=primary");
  // Any one value matching fails the rule.
  ProbeResult r = RunOne(url, [](ProbeOptions& o) {
    o.header_must_not_match = {{.name = "X-ROLE", .pattern = "replica"}};
  });
  EXPECT_EQ(r.outcome, Outcome::kHeaderMismatch);
  EXPECT_EQ(r.error, "the X-ROLE header matches \"replica\"");

  ProbeResult ok = RunOne(url, [](ProbeOptions& o) {
    o.header_must_not_match = {{.name = "X-Role", .pattern = "standby"}};
  });
  EXPECT_EQ(ok.outcome, Outcome::kOk) << ok.error;

  // As blackbox_exporter: a missing header fails a must-not rule too,
  // unless the rule allows it.
  ProbeResult missing = RunOne(url, [](ProbeOptions& o) {
    o.header_must_not_match = {{.name = "X-Absent", .pattern = "x"}};
  });
  EXPECT_EQ(missing.outcome, Outcome::kHeaderMismatch);
  EXPECT_EQ(missing.error, "the response has no X-Absent header");
  ProbeResult allowed = RunOne(url, [](ProbeOptions& o) {
    o.header_must_not_match = {
        {.name = "X-Absent", .pattern = "x", .allow_missing = true}};
  });
  EXPECT_EQ(allowed.outcome, Outcome::kOk) << allowed.error;
}

TEST_F(EngineResponseTest, StatusIsJudgedBeforeHeadersAndHeadersBeforeBody) {
  ProbeResult status = RunOne(server_.url("/status/503"), [](ProbeOptions& o) {
    o.header_must_match = {{.name = "X-Absent", .pattern = "."}};
  });
  EXPECT_EQ(status.outcome, Outcome::kUnexpectedStatus);
  ProbeResult header = RunOne(server_.url("/match"), [](ProbeOptions& o) {
    o.header_must_match = {{.name = "X-Absent", .pattern = "."}};
    o.body_must_match = {"no such text"};
  });
  EXPECT_EQ(header.outcome, Outcome::kHeaderMismatch);
}

TEST_F(EngineResponseTest, TooManyResponseHeadersStopTheProbe) {
  ProbeResult r = RunOne(server_.url("/many_headers/50"), [](ProbeOptions& o) {
    o.keep_response_headers = true;
    o.max_response_headers = 20;
  });
  EXPECT_EQ(r.outcome, Outcome::kIoError);
  EXPECT_THAT(r.error, HasSubstr("max_response_headers (20)"));
  EXPECT_THAT(r.response_headers, IsEmpty());

  // Within the cap they are all there.
  ProbeResult fits =
      RunOne(server_.url("/many_headers/50"), [](ProbeOptions& o) {
        o.keep_response_headers = true;
        o.max_response_headers = 100;
      });
  ASSERT_EQ(fits.outcome, Outcome::kOk) << fits.error;
  EXPECT_THAT(fits.response_headers, Contains(Pair("X-Many-49", "v")));
}

TEST_F(EngineResponseTest, TooManyResponseHeaderBytesStopTheProbe) {
  const std::string value(3000, 'v');
  ProbeResult r = RunOne(
      server_.url(absl::StrCat("/headers?X-Big=", value)), [](ProbeOptions& o) {
        o.header_must_match = {{.name = "X-Big", .pattern = "v"}};
        o.max_response_header_bytes = 2048;
      });
  EXPECT_EQ(r.outcome, Outcome::kIoError);
  EXPECT_THAT(r.error, HasSubstr("max_response_header_bytes (2048 bytes)"));
}

TEST_F(EngineResponseTest, UnwatchedHeadersAreNotCounted) {
  // Neither kept nor matched: a response with many headers is no concern.
  ProbeResult r = RunOne(server_.url("/many_headers/50"),
                         [](ProbeOptions& o) { o.max_response_headers = 20; });
  EXPECT_EQ(r.outcome, Outcome::kOk) << r.error;
}

TEST_F(EngineResponseTest, ResponseHeaderCapsAreTheServersLimits) {
  std::unique_ptr<Engine> engine =
      testing::MakeEngine({.workers = 1,
                           .limits = {.max_response_headers = 50,
                                      .max_response_header_bytes = 4096}});
  ASSERT_NE(engine, nullptr);
  ProbeOptions options;
  options.max_response_headers = 51;
  EXPECT_EQ(engine->CheckOptions(options).message(),
            "max_response_headers: 51 is above this server's limit of 50");
  options = ProbeOptions();
  options.max_response_headers = 50;
  options.max_response_header_bytes = 4097;
  EXPECT_EQ(
      engine->CheckOptions(options).message(),
      "max_response_header_bytes: 4097 is above this server's limit of 4096");
  options = ProbeOptions();
  options.max_response_headers = 0;
  EXPECT_EQ(engine->CheckOptions(options).message(),
            "max_response_headers: must be positive");
}

TEST_F(EngineResponseTest, BadHeaderRulesAreInvalidArguments) {
  ProbeOptions options;
  options.header_must_not_match = {{.name = "X-Ok", .pattern = "("}};
  const absl::Status status = engine_->CheckOptions(options);
  EXPECT_EQ(status.code(), absl::StatusCode::kInvalidArgument);
  EXPECT_THAT(std::string(status.message()),
              StartsWith("header_must_not_match[0].pattern: not a valid RE2"));
  options.header_must_not_match = {{.name = "Bad Name", .pattern = "x"}};
  EXPECT_THAT(std::string(engine_->CheckOptions(options).message()),
              StartsWith("header_must_not_match[0].name: "));
}

// --- Credentials -----------------------------------------------------------

TEST_F(EngineResponseTest, BasicAuthIsSent) {
  ProbeResult r =
      RunOne(server_.url("/basic_auth/alice/s3cret"), [](ProbeOptions& o) {
        o.basic_auth = BasicAuth{.username = "alice", .password = "s3cret"};
      });
  EXPECT_EQ(r.outcome, Outcome::kOk) << r.error;
  EXPECT_EQ(r.status_code, 200);
  EXPECT_THAT(AuthorizationsSent(),
              ::testing::ElementsAre(
                  absl::StrCat("Basic ", absl::Base64Escape("alice:s3cret"))));

  ProbeResult wrong =
      RunOne(server_.url("/basic_auth/alice/s3cret"), [](ProbeOptions& o) {
        o.basic_auth = BasicAuth{.username = "alice", .password = "guess"};
      });
  EXPECT_EQ(wrong.outcome, Outcome::kUnexpectedStatus);
  EXPECT_EQ(wrong.status_code, 401);
  EXPECT_THAT(wrong.error, Not(HasSubstr("guess")));
}

TEST_F(EngineResponseTest, BearerTokenIsSent) {
  ProbeResult r = RunOne(server_.url("/bearer/tok-123"),
                         [](ProbeOptions& o) { o.bearer_token = "tok-123"; });
  EXPECT_EQ(r.outcome, Outcome::kOk) << r.error;
  EXPECT_THAT(AuthorizationsSent(), ::testing::ElementsAre("Bearer tok-123"));
  ProbeResult none =
      RunOne(server_.url("/bearer/tok-123"), [](ProbeOptions&) {});
  EXPECT_EQ(none.status_code, 401);
}

TEST_F(EngineResponseTest, CredentialsDoNotFollowARedirectToAnotherHost) {
  // 127.0.0.1 -> other.auth.test: another host, the same target, named
  // through the test's own DNS server.
  absl::StatusOr<std::unique_ptr<DnsServer>> dns = DnsServer::Start();
  ASSERT_TRUE(dns.ok()) << dns.status();
  (*dns)->AddWildcardA("auth.test", "127.0.0.1");
  EngineOptions options{.workers = 1};
  testing::ResolveOnlyThrough((*dns)->address(), &options);
  engine_ = testing::MakeEngine(options);
  ASSERT_NE(engine_, nullptr);
  const std::string elsewhere =
      absl::StrCat("http://other.auth.test:", server_.port(), "/bearer/tok");
  ProbeResult r =
      RunOne(server_.url(absl::StrCat("/redirect_to?url=", elsewhere)),
             [](ProbeOptions& o) { o.bearer_token = "tok"; });
  ASSERT_EQ(r.redirects, 1) << r.error;
  EXPECT_EQ(r.status_code, 401);  // the token stayed behind
  EXPECT_THAT(AuthorizationsSent(), ::testing::ElementsAre("Bearer tok"));
}

TEST_F(EngineResponseTest, CredentialsAreCheckedAndNeverEchoed) {
  ProbeOptions options;
  options.basic_auth = BasicAuth{.username = "a:b", .password = "pw"};
  EXPECT_EQ(engine_->CheckOptions(options).message(),
            "basic_auth.username: holds ':'");
  options.basic_auth = BasicAuth{.username = "a", .password = "top\nsecret"};
  const absl::Status status = engine_->CheckOptions(options);
  EXPECT_EQ(status.code(), absl::StatusCode::kInvalidArgument);
  EXPECT_THAT(std::string(status.message()), Not(HasSubstr("secret")));
  options.basic_auth = BasicAuth{.username = "a", .password = "b"};
  options.bearer_token = "t";
  EXPECT_THAT(std::string(engine_->CheckOptions(options).message()),
              StartsWith("bearer_token: not with basic_auth"));
  options.basic_auth.reset();
  options.headers = {{"authorization", "Bearer other"}};
  EXPECT_EQ(engine_->CheckOptions(options).message(),
            "headers[0].name: Authorization is set by the engine from "
            "bearer_token");
  // An Authorization header of one's own stays possible without them.
  options.bearer_token.clear();
  EXPECT_TRUE(engine_->CheckOptions(options).ok());
}

TEST_F(EngineResponseTest, CredentialsCountAgainstTheRequestHeaderLimit) {
  std::unique_ptr<Engine> engine = testing::MakeEngine(
      {.workers = 1, .limits = {.max_request_header_bytes = 256}});
  ASSERT_NE(engine, nullptr);
  ProbeOptions options;
  options.bearer_token = std::string(300, 't');
  EXPECT_THAT(std::string(engine->CheckOptions(options).message()),
              StartsWith("headers: more than this server's limit of 256"));
}

// --- Compression -----------------------------------------------------------

TEST_F(EngineResponseTest, GzipBodyIsDecodedBeforeMatching) {
  ProbeResult r = RunOne(server_.url("/gzip/10000"), [](ProbeOptions& o) {
    o.accept_encoding = "gzip";
    o.body_must_match = {"^(fanprobe )+f$"};  // 10000 = 9 * 1111 + 1
    o.keep_response_headers = true;
  });
  ASSERT_EQ(r.outcome, Outcome::kOk) << r.error;
  EXPECT_EQ(r.decoded_body_bytes, 10000u);
  EXPECT_LT(r.body_bytes, 1000u);  // what came over the wire
  ASSERT_TRUE(r.content_length.has_value());
  EXPECT_EQ(*r.content_length, r.body_bytes);
  EXPECT_THAT(r.response_headers, Contains(Pair("Content-Encoding", "gzip")));
  ASSERT_EQ(server_.Requests().size(), 1u);
  EXPECT_THAT(server_.Requests()[0].headers,
              Contains(Pair("Accept-Encoding", "gzip")));
}

TEST_F(EngineResponseTest, DeflateBodyIsDecoded) {
  ProbeResult r = RunOne(server_.url("/deflate/5000"), [](ProbeOptions& o) {
    o.accept_encoding = "gzip, deflate";
    o.body_must_match = {"^fanprobe "};
  });
  ASSERT_EQ(r.outcome, Outcome::kOk) << r.error;
  EXPECT_EQ(r.decoded_body_bytes, 5000u);
  EXPECT_LT(r.body_bytes, r.decoded_body_bytes);
}

TEST_F(EngineResponseTest, BrotliBodyIsDecoded) {
  if (!testing::HasBrotliTarget()) {
    GTEST_SKIP() << "the test target was built without brotli's encoder";
  }
  const auto& supported = SupportedEncodings();
  if (std::find(supported.begin(), supported.end(), "br") == supported.end()) {
    GTEST_SKIP() << "this libcurl decodes no brotli";
  }
  ProbeResult r = RunOne(server_.url("/br/5000"), [](ProbeOptions& o) {
    o.accept_encoding = "br";
    o.body_must_match = {"^fanprobe "};
  });
  ASSERT_EQ(r.outcome, Outcome::kOk) << r.error;
  EXPECT_EQ(r.decoded_body_bytes, 5000u);
  EXPECT_LT(r.body_bytes, r.decoded_body_bytes);
}

TEST_F(EngineResponseTest, WithoutAcceptEncodingTheBodyIsTakenAsItComes) {
  ProbeResult r = RunOne(server_.url("/gzip/10000"), [](ProbeOptions& o) {
    o.body_must_match = {"fanprobe"};
  });
  // The gzip bytes, not decoded: the text is not there.
  EXPECT_EQ(r.outcome, Outcome::kBodyMismatch);
  EXPECT_EQ(r.decoded_body_bytes, r.body_bytes);
  EXPECT_LT(r.body_bytes, 1000u);
  const std::vector<RecordedRequest> requests = server_.Requests();
  ASSERT_EQ(requests.size(), 1u);
  for (const auto& [name, value] : requests[0].headers) {
    EXPECT_FALSE(absl::EqualsIgnoreCase(name, "Accept-Encoding")) << value;
  }
}

TEST_F(EngineResponseTest, DecodedBodyIsHeldToTheBodyCap) {
  ProbeResult r = RunOne(server_.url("/gzip/200000"), [](ProbeOptions& o) {
    o.accept_encoding = "gzip";
    o.max_body_bytes = 64 * 1024;
  });
  EXPECT_EQ(r.outcome, Outcome::kBodyTooLarge);
  EXPECT_EQ(r.error, "the decoded body exceeds max_body_bytes (65536 bytes)");
  EXPECT_GT(r.decoded_body_bytes, 64u * 1024);
}

TEST_F(EngineResponseTest, GzipBombIsCutAtTheCap) {
  FaultServer faults;
  ProbeResult r = RunOne(faults.url(Fault::kGzipBomb), [](ProbeOptions& o) {
    o.accept_encoding = "gzip";
    o.max_body_bytes = 64 * 1024;
  });
  EXPECT_EQ(r.outcome, Outcome::kBodyTooLarge);
  // Inflating stopped within one decoding step (libcurl's 16 KiB) of the
  // cap, not at the bomb's 10 MiB.
  EXPECT_GT(r.decoded_body_bytes, 64u * 1024);
  EXPECT_LE(r.decoded_body_bytes, 64u * 1024 + 16 * 1024);
  EXPECT_LT(faults.gzip_bomb_inflated_size(), 1u << 30);
  EXPECT_LE(r.body_bytes, faults.gzip_bomb_size());
}

TEST_F(EngineResponseTest, AcceptEncodingIsChecked) {
  ProbeOptions options;
  options.accept_encoding = "gzip, compress";
  const absl::Status status = engine_->CheckOptions(options);
  EXPECT_EQ(status.code(), absl::StatusCode::kInvalidArgument);
  EXPECT_THAT(std::string(status.message()),
              StartsWith("accept_encoding: \"compress\" is not a content "
                         "coding this server decodes"));
  options.accept_encoding = "gzip;q=1";
  EXPECT_FALSE(engine_->CheckOptions(options).ok());
  options.accept_encoding = "gzip";
  options.headers = {{"Accept-Encoding", "br"}};
  EXPECT_EQ(engine_->CheckOptions(options).message(),
            "headers[0].name: Accept-Encoding is set by the engine from "
            "accept_encoding");
  options.headers.clear();
  options.accept_encoding = "GZIP,identity";
  EXPECT_TRUE(engine_->CheckOptions(options).ok());
}

// --- Content-Length and Last-Modified --------------------------------------

TEST_F(EngineResponseTest, LastModifiedIsParsed) {
  ProbeResult r = RunOne(server_.url("/last_modified"), [](ProbeOptions&) {});
  ASSERT_EQ(r.outcome, Outcome::kOk) << r.error;
  ASSERT_TRUE(r.last_modified.has_value());
  EXPECT_EQ(*r.last_modified,
            absl::FromUnixSeconds(testing::kLastModifiedUnix));

  ProbeResult none = RunOne(server_.url("/status/200"), [](ProbeOptions&) {});
  EXPECT_FALSE(none.last_modified.has_value());
}

TEST_F(EngineResponseTest, ContentLengthIsReportedWhenSent) {
  ProbeResult sized = RunOne(server_.url("/bytes/1234"), [](ProbeOptions&) {});
  ASSERT_TRUE(sized.content_length.has_value());
  EXPECT_EQ(*sized.content_length, 1234u);
  EXPECT_EQ(sized.body_bytes, 1234u);
  EXPECT_EQ(sized.decoded_body_bytes, 1234u);

  ProbeResult chunked =
      RunOne(server_.url("/chunked/1234"), [](ProbeOptions&) {});
  EXPECT_FALSE(chunked.content_length.has_value());
  EXPECT_EQ(chunked.body_bytes, 1234u);
}

}  // namespace
}  // namespace fanprobe
