// engine_input_test.cc: nothing a caller sends reaches the wire unchecked,
// and nothing a caller asks for exceeds the server's limits.  Every string
// option that ends up in the request is tried with CR, LF and NUL: the probe
// is kInvalidTarget naming the field, and the target receives nothing.

#include <memory>
#include <string>
#include <tuple>
#include <vector>

#include "absl/strings/str_cat.h"
#include "gmock/gmock.h"
#include "gtest/gtest.h"
#include "probe/engine.h"
#include "tests/probe/engine_test_util.h"
#include "tests/support/target_server.h"

namespace fanprobe {
namespace {

using ::fanprobe::testing::BatchRun;
using ::fanprobe::testing::Options;
using ::fanprobe::testing::Target;
using ::fanprobe::testing::TargetServer;
using ::testing::HasSubstr;
using ::testing::StartsWith;

struct InjectionCase {
  std::string name;
  std::string field;  // what the error must name first
  std::function<void(ProbeOptions&, const std::string& evil)> set;
};

std::vector<InjectionCase> InjectionCases() {
  return {
      {"Method", "method",
       [](ProbeOptions& o, const std::string& evil) { o.method = evil; }},
      {"UserAgent", "user_agent",
       [](ProbeOptions& o, const std::string& evil) { o.user_agent = evil; }},
      {"HeaderName", "headers[1].name",
       [](ProbeOptions& o, const std::string& evil) {
         o.headers = {{"X-Fine", "fine"}, {evil, "value"}};
       }},
      {"HeaderValue", "headers[1].value",
       [](ProbeOptions& o, const std::string& evil) {
         o.headers = {{"X-Fine", "fine"}, {"X-Evil", evil}};
       }},
      {"BasicAuthUsername", "basic_auth.username",
       [](ProbeOptions& o, const std::string& evil) {
         o.basic_auth = BasicAuth{.username = evil, .password = "secret"};
       }},
      {"BasicAuthPassword", "basic_auth.password",
       [](ProbeOptions& o, const std::string& evil) {
         o.basic_auth = BasicAuth{.username = "user", .password = evil};
       }},
      {"BearerToken", "bearer_token",
       [](ProbeOptions& o, const std::string& evil) { o.bearer_token = evil; }},
      {"HeaderRuleName", "header_must_match[0].name",
       [](ProbeOptions& o, const std::string& evil) {
         o.header_must_match = {{.name = evil, .pattern = "x"}};
       }},
  };
}

class InjectionTest
    : public ::testing::TestWithParam<std::tuple<InjectionCase, std::string>> {
 protected:
  TargetServer server_;
};

TEST_P(InjectionTest, IsInvalidTargetNamingTheFieldAndNothingIsSent) {
  // Not a structured binding: clang 14 cannot capture one in a lambda.
  const auto& c = std::get<0>(GetParam());
  const auto& evil_char = std::get<1>(GetParam());
  const std::string evil =
      absl::StrCat("fp", evil_char, "X-Injected: yes", evil_char, evil_char,
                   "GET /smuggled HTTP/1.1", evil_char, "Host: victim");
  auto options = Options([&](ProbeOptions& o) { c.set(o, evil); });
  std::unique_ptr<Engine> engine = testing::MakeEngine({.workers = 1});
  ASSERT_NE(engine, nullptr);
  const absl::Status check = engine->CheckOptions(*options);
  EXPECT_EQ(check.code(), absl::StatusCode::kInvalidArgument);
  EXPECT_THAT(std::string(check.message()), StartsWith(c.field + ":"));

  BatchRun run = testing::RunBatch(
      *engine, {Target(server_.url("/echo_headers"), options)});
  ASSERT_EQ(run.results.size(), 1u);
  EXPECT_EQ(run.results[0].outcome, Outcome::kInvalidTarget);
  EXPECT_THAT(run.results[0].error, StartsWith(c.field + ":"));
  EXPECT_TRUE(run.results[0].hops.empty());
  EXPECT_EQ(server_.Stats().http.requests, 0);
}

INSTANTIATE_TEST_SUITE_P(
    EveryStringOption, InjectionTest,
    ::testing::Combine(::testing::ValuesIn(InjectionCases()),
                       ::testing::Values(std::string("\r\n"), std::string("\n"),
                                         std::string("\r"),
                                         std::string(1, '\0'))),
    [](const auto& info) {
      const std::string& c = std::get<1>(info.param);
      const char* which = c == "\r\n" ? "CrLf"
                          : c == "\n" ? "Lf"
                          : c == "\r" ? "Cr"
                                      : "Nul";
      return absl::StrCat(std::get<0>(info.param).name, which);
    });

TEST(EngineInputTest, FramingHeadersAreTheEnginesToSet) {
  std::unique_ptr<Engine> engine = testing::MakeEngine({.workers = 1});
  for (const char* name : {"Content-Length", "transfer-encoding"}) {
    ProbeOptions options;
    options.headers = {{name, "5"}};
    const absl::Status status = engine->CheckOptions(options);
    EXPECT_EQ(status.code(), absl::StatusCode::kInvalidArgument) << name;
    EXPECT_THAT(std::string(status.message()), StartsWith("headers[0].name:"))
        << name;
  }
}

TEST(EngineInputTest, TheServersLimitsCapWhatAProbeMayAskFor) {
  EngineOptions engine_options;
  engine_options.workers = 1;
  engine_options.limits.max_body_bytes = 1 << 20;
  engine_options.limits.max_redirects = 20;
  engine_options.limits.max_request_header_bytes = 1024;
  engine_options.limits.max_request_body_bytes = 100;
  std::unique_ptr<Engine> engine = testing::MakeEngine(engine_options);
  struct Case {
    std::function<void(ProbeOptions&)> set;
    std::string field;
  };
  const std::vector<Case> cases = {
      {[](ProbeOptions& o) { o.max_body_bytes = uint64_t{1} << 40; },
       "max_body_bytes: 1099511627776 is above this server's limit of "
       "1048576"},
      {[](ProbeOptions& o) { o.max_redirects = 1 << 30; },
       "max_redirects: 1073741824 is above this server's limit of 20"},
      {[](ProbeOptions& o) {
         o.headers = {{"X-Big", std::string(2000, 'x')}};
       },
       "headers: more than this server's limit of 1024 bytes"},
      {[](ProbeOptions& o) { o.body = std::string(101, 'b'); },
       "body: 101 bytes is above this server's limit of 100"},
  };
  for (const Case& c : cases) {
    ProbeOptions options;
    c.set(options);
    const absl::Status status = engine->CheckOptions(options);
    EXPECT_EQ(status.code(), absl::StatusCode::kInvalidArgument);
    EXPECT_EQ(status.message(), c.field);
  }
  // At the limits, all is well.
  ProbeOptions at_limit;
  at_limit.max_body_bytes = 1 << 20;
  at_limit.max_redirects = 20;
  at_limit.body = std::string(100, 'b');
  EXPECT_TRUE(engine->CheckOptions(at_limit).ok());
}

TEST(EngineInputTest, ABadCaPemIsInvalidNamingTheField) {
  std::unique_ptr<Engine> engine = testing::MakeEngine({.workers = 1});
  ProbeOptions options;
  options.ca_pem = "-----BEGIN CERTIFICATE-----\nnot base64\n";
  const absl::Status status = engine->CheckOptions(options);
  EXPECT_EQ(status.code(), absl::StatusCode::kInvalidArgument);
  EXPECT_THAT(std::string(status.message()), StartsWith("ca_pem:"));
}

}  // namespace
}  // namespace fanprobe
