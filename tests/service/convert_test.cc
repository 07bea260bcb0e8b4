// convert_test.cc: proto <-> engine conversion, option merging, limits and
// the deadline-bounded batch timeout, without a server.  The request
// validation errors are covered end to end in prober_service_test.cc.

#include "service/convert.h"

#include <functional>
#include <memory>
#include <optional>
#include <string>
#include <vector>

#include "absl/status/status.h"
#include "absl/strings/str_cat.h"
#include "absl/strings/str_join.h"
#include "absl/time/time.h"
#include "fanprobe/v1/prober.pb.h"
#include "gmock/gmock.h"
#include "gtest/gtest.h"
#include "probe/engine.h"
#include "probe/probe.h"
#include "tests/support/batches.h"

namespace fanprobe::service {
namespace {

using ::fanprobe::testing::FieldViolationOf;
using ::testing::ElementsAre;
using ::testing::IsEmpty;
using ::testing::Pair;

// The checks the server makes: a real engine's (Engine::CheckOptions) with
// the default caps.  One worker, made once.
const Engine& CheckingEngine() {
  static const Engine* const engine =
      Engine::Create({.workers = 1}).value().release();
  return *engine;
}

absl::StatusOr<BatchRequest> Convert(const v1::ProbeBatchRequest& request,
                                     const RequestLimits& limits,
                                     const Engine& engine = CheckingEngine()) {
  return BatchFromProto(request, limits, engine);
}

v1::ProbeBatchRequest ThreeTargets() {
  v1::ProbeBatchRequest request;
  for (const char* url : {"http://a/", "http://b/", "http://c/"}) {
    request.add_targets()->set_url(url);
  }
  return request;
}

TEST(BatchFromProtoTest, UnsetFieldsTakeTheEngineDefaults) {
  v1::ProbeBatchRequest request = ThreeTargets();
  request.mutable_targets(0)->set_id("a");
  (*request.mutable_targets(0)->mutable_labels())["zone"] = "eu";
  const absl::StatusOr<BatchRequest> batch = Convert(request, {});
  ASSERT_TRUE(batch.ok()) << batch.status();

  EXPECT_EQ(batch->options.return_when, ReturnWhen::kAllCompleted);
  EXPECT_EQ(batch->options.timeout, absl::InfiniteDuration());
  EXPECT_EQ(batch->options.max_concurrency, 100u);
  EXPECT_EQ(batch->options.max_per_host, 0u);
  ASSERT_EQ(batch->targets.size(), 3u);
  EXPECT_EQ(batch->targets[0].url, "http://a/");
  EXPECT_EQ(batch->targets[0].id, "a");
  EXPECT_THAT(batch->targets[0].labels, ElementsAre(Pair("zone", "eu")));
  const ProbeOptions& options = *batch->targets[0].options;
  const ProbeOptions engine_defaults;
  EXPECT_EQ(options.method, engine_defaults.method);
  EXPECT_EQ(options.timeout, engine_defaults.timeout);
  EXPECT_EQ(options.follow_redirects, engine_defaults.follow_redirects);
  EXPECT_EQ(options.max_redirects, engine_defaults.max_redirects);
  EXPECT_EQ(options.max_body_bytes, engine_defaults.max_body_bytes);
  EXPECT_EQ(options.reuse_connections, engine_defaults.reuse_connections);
  ASSERT_EQ(options.valid_status.size(), 1u);
  EXPECT_EQ(options.valid_status[0].min, 200);
  EXPECT_EQ(options.valid_status[0].max, 399);
  // Targets without options of their own share one copy.
  EXPECT_EQ(batch->targets[0].options, batch->targets[2].options);
}

TEST(BatchFromProtoTest, TargetOptionsOverrideDefaultsFieldByField) {
  v1::ProbeBatchRequest request = ThreeTargets();
  v1::ProbeOptions& defaults = *request.mutable_defaults();
  defaults.set_method("HEAD");
  defaults.mutable_timeout()->set_seconds(2);
  defaults.set_follow_redirects(false);
  defaults.set_http_version(v1::HTTP_VERSION_2);
  defaults.set_tls_min_version(v1::TLS_VERSION_1_3);
  v1::Header* header = defaults.mutable_headers()->add_headers();
  header->set_name("Authorization");
  header->set_value("Bearer x");
  defaults.mutable_body_must_match()->add_patterns("ok");

  v1::ProbeOptions& one = *request.mutable_targets(1)->mutable_options();
  one.mutable_timeout()->set_nanos(500000000);
  one.set_follow_redirects(true);  // back to the engine's default
  one.mutable_headers();           // set, and empty: no headers
  one.set_ip_family(v1::IP_FAMILY_IPV6);
  one.set_max_body_bytes(10);
  one.set_tls_min_version(v1::TLS_VERSION_UNSPECIFIED);  // back to TLS 1.2
  one.set_tls_max_version(v1::TLS_VERSION_1_2);

  const absl::StatusOr<BatchRequest> batch = Convert(request, {});
  ASSERT_TRUE(batch.ok()) << batch.status();
  const ProbeOptions& zero = *batch->targets[0].options;
  EXPECT_EQ(zero.method, "HEAD");
  EXPECT_EQ(zero.timeout, absl::Seconds(2));
  EXPECT_FALSE(zero.follow_redirects);
  EXPECT_EQ(zero.http_version, HttpVersion::kHttp2);
  EXPECT_EQ(zero.tls_min_version, TlsVersion::kTls1_3);
  EXPECT_EQ(zero.tls_max_version, TlsVersion::kTls1_3);
  EXPECT_THAT(zero.headers, ElementsAre(Pair("Authorization", "Bearer x")));
  EXPECT_THAT(zero.body_must_match, ElementsAre("ok"));

  const ProbeOptions& overridden = *batch->targets[1].options;
  EXPECT_EQ(overridden.method, "HEAD");  // inherited
  EXPECT_EQ(overridden.timeout, absl::Milliseconds(500));
  EXPECT_TRUE(overridden.follow_redirects);
  EXPECT_THAT(overridden.headers, IsEmpty());
  EXPECT_THAT(overridden.body_must_match, ElementsAre("ok"));  // inherited
  EXPECT_EQ(overridden.http_version, HttpVersion::kHttp2);     // inherited
  EXPECT_EQ(overridden.ip_family, IpFamily::kIpv6);
  EXPECT_EQ(overridden.max_body_bytes, 10u);
  EXPECT_EQ(overridden.tls_min_version, TlsVersion::kTls1_2);
  EXPECT_EQ(overridden.tls_max_version, TlsVersion::kTls1_2);
  // The defaults' copy is untouched.
  EXPECT_EQ(batch->targets[2].options, batch->targets[0].options);
}

TEST(BatchFromProtoTest, AProxyAndAServerNameAndATargetThatDropsTheProxy) {
  v1::ProbeBatchRequest request = ThreeTargets();
  v1::Proxy& proxy = *request.mutable_defaults()->mutable_proxy();
  proxy.set_url("http://proxy.test:3128");
  v1::Header* header = proxy.add_connect_headers();
  header->set_name("Proxy-Authorization");
  header->set_value("Bearer t");
  proxy.add_no_proxy(".internal.test");
  proxy.set_proxy_resolves(true);
  request.mutable_defaults()->set_tls_server_name("vhost.test");
  // Set with an empty URL: no proxy for this one.
  request.mutable_targets(1)->mutable_options()->mutable_proxy();

  const absl::StatusOr<BatchRequest> batch = Convert(request, {});
  ASSERT_TRUE(batch.ok()) << batch.status();
  const ProbeOptions& zero = *batch->targets[0].options;
  ASSERT_TRUE(zero.proxy.has_value());
  EXPECT_EQ(zero.proxy->url, "http://proxy.test:3128");
  EXPECT_THAT(zero.proxy->connect_headers,
              ElementsAre(Pair("Proxy-Authorization", "Bearer t")));
  EXPECT_THAT(zero.proxy->no_proxy, ElementsAre(".internal.test"));
  EXPECT_TRUE(zero.proxy->proxy_resolves);
  EXPECT_EQ(zero.tls_server_name, "vhost.test");
  const ProbeOptions& one = *batch->targets[1].options;
  EXPECT_FALSE(one.proxy.has_value());
  EXPECT_EQ(one.tls_server_name, "vhost.test");
}

TEST(BatchFromProtoTest, ARetryPolicyReplacesTheDefaultsWhole) {
  v1::ProbeBatchRequest request = ThreeTargets();
  v1::RetryPolicy& retry = *request.mutable_defaults()->mutable_retry();
  retry.set_max_attempts(3);
  retry.mutable_initial_backoff()->set_nanos(200000000);
  retry.mutable_max_backoff()->set_seconds(2);
  retry.set_backoff_multiplier(1.5);
  retry.add_retry_on(v1::OUTCOME_UNEXPECTED_STATUS);
  retry.add_retry_on(v1::OUTCOME_TLS_ERROR);
  // Set, it replaces the defaults' policy: unset fields are the engine's.
  request.mutable_targets(1)
      ->mutable_options()
      ->mutable_retry()
      ->set_max_attempts(2);
  // Set but empty: one attempt.
  request.mutable_targets(2)->mutable_options()->mutable_retry();

  const absl::StatusOr<BatchRequest> batch = Convert(request, {});
  ASSERT_TRUE(batch.ok()) << batch.status();
  const RetryPolicy& zero = batch->targets[0].options->retry;
  EXPECT_EQ(zero.max_attempts, 3);
  EXPECT_EQ(zero.initial_backoff, absl::Milliseconds(200));
  EXPECT_EQ(zero.max_backoff, absl::Seconds(2));
  EXPECT_EQ(zero.backoff_multiplier, 1.5);
  EXPECT_THAT(zero.retry_on,
              ElementsAre(Outcome::kUnexpectedStatus, Outcome::kTlsError));
  const RetryPolicy& one = batch->targets[1].options->retry;
  EXPECT_EQ(one.max_attempts, 2);
  EXPECT_EQ(one.initial_backoff, RetryPolicy().initial_backoff);
  EXPECT_EQ(one.retry_on, RetryPolicy().retry_on);
  EXPECT_EQ(batch->targets[2].options->retry.max_attempts, 1);
}

TEST(BatchFromProtoTest, EmptyStatusRangesMeanTheDefault) {
  v1::ProbeBatchRequest request = ThreeTargets();
  request.mutable_defaults()->mutable_valid_status();
  const absl::StatusOr<BatchRequest> batch = Convert(request, {});
  ASSERT_TRUE(batch.ok()) << batch.status();
  ASSERT_EQ(batch->targets[0].options->valid_status.size(), 1u);
  EXPECT_EQ(batch->targets[0].options->valid_status[0].min, 200);
  EXPECT_EQ(batch->targets[0].options->valid_status[0].max, 399);
}

TEST(BatchFromProtoTest, ConcurrencyDefaultsTo100AndIsCapped) {
  v1::ProbeBatchRequest request = ThreeTargets();
  RequestLimits limits;
  limits.max_in_flight = 50;
  absl::StatusOr<BatchRequest> batch = Convert(request, limits);
  ASSERT_TRUE(batch.ok());
  EXPECT_EQ(batch->options.max_concurrency, 50u);  // 100, capped

  request.set_max_concurrency(7);
  request.set_max_per_host(2);
  batch = Convert(request, limits);
  ASSERT_TRUE(batch.ok());
  EXPECT_EQ(batch->options.max_concurrency, 7u);
  EXPECT_EQ(batch->options.max_per_host, 2u);

  request.set_max_concurrency(5000);
  batch = Convert(request, limits);
  ASSERT_TRUE(batch.ok());
  EXPECT_EQ(batch->options.max_concurrency, 50u);
}

TEST(BatchFromProtoTest, ReturnWhenAndTimeout) {
  v1::ProbeBatchRequest request = ThreeTargets();
  request.set_return_when(v1::RETURN_WHEN_FIRST_EXCEPTION);
  request.mutable_timeout()->set_seconds(1);
  request.mutable_timeout()->set_nanos(250000000);
  absl::StatusOr<BatchRequest> batch = Convert(request, {});
  ASSERT_TRUE(batch.ok());
  EXPECT_EQ(batch->options.return_when, ReturnWhen::kFirstException);
  EXPECT_EQ(batch->options.timeout, absl::Milliseconds(1250));

  request.mutable_timeout()->Clear();  // zero: end at once, allowed
  batch = Convert(request, {});
  ASSERT_TRUE(batch.ok());
  EXPECT_EQ(batch->options.timeout, absl::ZeroDuration());
}

TEST(BatchFromProtoTest, TheTargetLimitIsInclusive) {
  v1::ProbeBatchRequest request = ThreeTargets();
  RequestLimits limits;
  limits.max_batch_targets = 3;
  EXPECT_TRUE(Convert(request, limits).ok());
  request.add_targets()->set_url("http://d/");
  const absl::StatusOr<BatchRequest> batch = Convert(request, limits);
  EXPECT_EQ(batch.status().code(), absl::StatusCode::kInvalidArgument);
  EXPECT_EQ(batch.status().message(),
            "targets: 4 targets, more than the server's limit of 3");
}

// Everything the engine refuses is the request's error, at the request's
// path of the field -- in the defaults or in a target's own options -- and
// with the engine's words.
TEST(BatchFromProtoTest, OptionsTheEngineRefusesNameTheRequestField) {
  struct Case {
    std::string name;
    std::function<void(v1::ProbeBatchRequest&)> set;
    std::string message;
  };
  const std::vector<Case> cases = {
      {"body cap",
       [](v1::ProbeBatchRequest& r) {
         r.mutable_targets(2)->mutable_options()->set_max_body_bytes(1001);
       },
       "targets[2].options.max_body_bytes: 1001 is above this server's limit "
       "of 1000"},
      {"redirect cap in the defaults",
       [](v1::ProbeBatchRequest& r) {
         r.mutable_defaults()->set_max_redirects(4);
       },
       "defaults.max_redirects: 4 is above this server's limit of 3"},
      {"request body cap",
       [](v1::ProbeBatchRequest& r) {
         r.mutable_targets(0)->mutable_options()->set_body(
             std::string(101, 'x'));
       },
       "targets[0].options.body: 101 bytes is above this server's limit of "
       "100"},
      {"request header cap",
       [](v1::ProbeBatchRequest& r) {
         v1::Header* header = r.mutable_targets(1)
                                  ->mutable_options()
                                  ->mutable_headers()
                                  ->add_headers();
         header->set_name("X-Big");
         header->set_value(std::string(300, 'v'));
       },
       "targets[1].options.headers: more than this server's limit of 256 "
       "bytes"},
      {"CR LF in the user agent",
       [](v1::ProbeBatchRequest& r) {
         r.mutable_targets(1)->mutable_options()->set_user_agent(
             "fp\r\nX-Injected: yes");
       },
       "targets[1].options.user_agent: holds CR, LF, NUL or another control "
       "character"},
      {"more attempts than the server allows",
       [](v1::ProbeBatchRequest& r) {
         r.mutable_targets(1)
             ->mutable_options()
             ->mutable_retry()
             ->set_max_attempts(11);
       },
       "targets[1].options.retry.max_attempts: 11 is above this server's "
       "limit of 10"},
      {"a success to retry",
       [](v1::ProbeBatchRequest& r) {
         auto* retry = r.mutable_defaults()->mutable_retry();
         retry->add_retry_on(v1::OUTCOME_TIMEOUT);
         retry->add_retry_on(v1::OUTCOME_OK);
       },
       "defaults.retry.retry_on[1]: OK is a success, not a failure to retry"},
      {"a cancel to retry",
       [](v1::ProbeBatchRequest& r) {
         r.mutable_defaults()->mutable_retry()->add_retry_on(
             v1::OUTCOME_CANCELLED);
       },
       "defaults.retry.retry_on[0]: OUTCOME_CANCELLED is not an outcome a "
       "probe ends with"},
      {"a backoff that shrinks",
       [](v1::ProbeBatchRequest& r) {
         r.mutable_targets(0)
             ->mutable_options()
             ->mutable_retry()
             ->set_backoff_multiplier(0.5);
       },
       "targets[0].options.retry.backoff_multiplier: 0.5 is not within 1 to "
       "1000000"},
      {"a negative backoff",
       [](v1::ProbeBatchRequest& r) {
         r.mutable_defaults()
             ->mutable_retry()
             ->mutable_initial_backoff()
             ->set_seconds(-1);
       },
       "defaults.retry.initial_backoff: must not be negative, got -1s 0ns"},
      {"a method that is not a token",
       [](v1::ProbeBatchRequest& r) {
         r.mutable_defaults()->set_method("GET / HTTP/1.1\r\n");
       },
       "defaults.method: \"GET / HTTP/1.1\\r\\n\" is not an HTTP method "
       "token"},
      {"NUL in a header value",
       [](v1::ProbeBatchRequest& r) {
         auto* headers =
             r.mutable_targets(2)->mutable_options()->mutable_headers();
         headers->add_headers()->set_name("X-Ok");
         v1::Header* header = headers->add_headers();
         header->set_name("X-Bad");
         header->set_value(std::string("a\0b", 3));
       },
       "targets[2].options.headers.headers[1].value: the value of \"X-Bad\" "
       "holds CR, LF, NUL or another control character"},
      {"a header name that is not a token",
       [](v1::ProbeBatchRequest& r) {
         r.mutable_defaults()->mutable_headers()->add_headers()->set_name(
             "X Bad:");
       },
       "defaults.headers.headers[0].name: \"X Bad:\" is not a valid HTTP "
       "header name"},
      {"a pattern that does not compile",
       [](v1::ProbeBatchRequest& r) {
         auto* patterns =
             r.mutable_targets(0)->mutable_options()->mutable_body_must_match();
         patterns->add_patterns("ok");
         patterns->add_patterns("(unclosed");
       },
       "targets[0].options.body_must_match.patterns[1]: not a valid RE2 "
       "pattern: missing ): (unclosed"},
      {"a header rule that does not compile",
       [](v1::ProbeBatchRequest& r) {
         auto* patterns = r.mutable_targets(1)
                              ->mutable_options()
                              ->mutable_header_must_not_match();
         patterns->add_patterns()->set_name("X-Ok");
         v1::HeaderPattern* bad = patterns->add_patterns();
         bad->set_name("X-Bad");
         bad->set_pattern("[z-a]");
       },
       "targets[1].options.header_must_not_match.patterns[1].pattern: not a "
       "valid RE2 pattern: invalid character class range: z-a"},
      {"response header cap",
       [](v1::ProbeBatchRequest& r) {
         r.mutable_defaults()->set_max_response_headers(11);
       },
       "defaults.max_response_headers: 11 is above this server's limit of "
       "10"},
      {"LF in a basic auth password",
       [](v1::ProbeBatchRequest& r) {
         v1::BasicAuth* auth =
             r.mutable_targets(0)->mutable_options()->mutable_basic_auth();
         auth->set_username("u");
         auth->set_password("pass\nword");
       },
       "targets[0].options.basic_auth.password: holds CR, LF, NUL or another "
       "control character"},
      {"a coding the server cannot decode",
       [](v1::ProbeBatchRequest& r) {
         r.mutable_targets(2)->mutable_options()->set_accept_encoding("lzma");
       },
       absl::StrCat("targets[2].options.accept_encoding: \"lzma\" is not a "
                    "content coding this server decodes (",
                    absl::StrJoin(SupportedEncodings(), ", "), ")")},
      {"a client key that is not PEM",
       [](v1::ProbeBatchRequest& r) {
         auto* certificate = r.mutable_defaults()->mutable_client_certificate();
         certificate->set_cert_pem("garbage");
         certificate->set_key_pem("garbage");
       },
       "defaults.client_certificate.cert_pem: holds no PEM certificate that "
       "parses"},
      {"a TLS floor above the inherited ceiling",
       [](v1::ProbeBatchRequest& r) {
         r.mutable_defaults()->set_tls_max_version(v1::TLS_VERSION_1_2);
         r.mutable_targets(1)->mutable_options()->set_tls_min_version(
             v1::TLS_VERSION_1_3);
       },
       "targets[1].options.tls_min_version: TLSv1.3 is above tls_max_version "
       "TLSv1.2"},
      {"a TLS version this server does not know",
       [](v1::ProbeBatchRequest& r) {
         r.mutable_targets(0)->mutable_options()->set_tls_max_version(
             static_cast<v1::TlsVersion>(7));
       },
       "targets[0].options.tls_max_version: unknown TlsVersion value 7"},
  };
  const std::unique_ptr<Engine> engine =
      Engine::Create({.workers = 1,
                      .limits = {.max_body_bytes = 1000,
                                 .max_request_header_bytes = 256,
                                 .max_request_body_bytes = 100,
                                 .max_redirects = 3,
                                 .max_response_headers = 10}})
          .value();
  for (const Case& c : cases) {
    SCOPED_TRACE(c.name);
    v1::ProbeBatchRequest request = ThreeTargets();
    c.set(request);
    const absl::StatusOr<BatchRequest> batch = Convert(request, {}, *engine);
    EXPECT_EQ(batch.status().code(), absl::StatusCode::kInvalidArgument);
    EXPECT_EQ(batch.status().message(), c.message);
  }
  // At the caps, the request is fine.
  v1::ProbeBatchRequest request = ThreeTargets();
  request.mutable_defaults()->set_max_body_bytes(1000);
  request.mutable_defaults()->set_max_redirects(3);
  request.mutable_targets(0)->mutable_options()->set_body(
      std::string(100, 'x'));
  const absl::StatusOr<BatchRequest> batch = Convert(request, {}, *engine);
  ASSERT_TRUE(batch.ok()) << batch.status();
  EXPECT_EQ(batch->targets[0].options->max_body_bytes, 1000u);
}

// A server capping below the engine's defaults (64 KiB of body, 10
// redirects) does not refuse requests that ask for nothing: unset fields
// take the cap.
TEST(BatchFromProtoTest, UnsetFieldsTakeACapBelowTheDefault) {
  const std::unique_ptr<Engine> engine =
      Engine::Create({.workers = 1,
                      .limits = {.max_body_bytes = 1000, .max_redirects = 3}})
          .value();
  v1::ProbeBatchRequest request = ThreeTargets();
  request.mutable_targets(1)->mutable_options()->set_max_redirects(1);
  const absl::StatusOr<BatchRequest> batch = Convert(request, {}, *engine);
  ASSERT_TRUE(batch.ok()) << batch.status();
  EXPECT_EQ(batch->targets[0].options->max_body_bytes, 1000u);
  EXPECT_EQ(batch->targets[0].options->max_redirects, 3);
  EXPECT_EQ(batch->targets[1].options->max_body_bytes, 1000u);
  EXPECT_EQ(batch->targets[1].options->max_redirects, 1);
  // Under the default caps, the defaults are the engine's.
  const absl::StatusOr<BatchRequest> plain = Convert(request, {});
  ASSERT_TRUE(plain.ok()) << plain.status();
  EXPECT_EQ(plain->targets[0].options->max_body_bytes,
            ProbeOptions().max_body_bytes);
  EXPECT_EQ(plain->targets[0].options->max_redirects,
            ProbeOptions().max_redirects);
}

// A target that overrides the field the defaults got wrong is still a bad
// request: the defaults are checked on their own.
TEST(BatchFromProtoTest, BadDefaultsAreAnErrorEvenWhenEveryTargetOverrides) {
  v1::ProbeBatchRequest request = ThreeTargets();
  request.mutable_defaults()->set_user_agent("a\nb");
  for (v1::ProbeTarget& target : *request.mutable_targets()) {
    target.mutable_options()->set_user_agent("fine");
  }
  const absl::StatusOr<BatchRequest> batch = Convert(request, {});
  EXPECT_EQ(batch.status().code(), absl::StatusCode::kInvalidArgument);
  EXPECT_THAT(std::string(batch.status().message()),
              ::testing::StartsWith("defaults.user_agent: "));
}

TEST(EffectiveTimeoutTest, TheEarlierOfTimeoutAndDeadlineLessMargin) {
  const absl::Time now = absl::FromUnixSeconds(1000);
  const absl::Duration margin = absl::Milliseconds(100);
  // No deadline: the request's timeout (or none).
  EXPECT_EQ(
      EffectiveTimeout(absl::Seconds(3), absl::InfiniteFuture(), now, margin),
      absl::Seconds(3));
  EXPECT_EQ(EffectiveTimeout(absl::InfiniteDuration(), absl::InfiniteFuture(),
                             now, margin),
            absl::InfiniteDuration());
  // A far deadline: the full margin.
  EXPECT_EQ(EffectiveTimeout(absl::InfiniteDuration(), now + absl::Seconds(5),
                             now, margin),
            absl::Milliseconds(4900));
  // The request's timeout comes first.
  EXPECT_EQ(
      EffectiveTimeout(absl::Seconds(1), now + absl::Seconds(5), now, margin),
      absl::Seconds(1));
  // A near deadline: a fifth of what is left.
  EXPECT_EQ(EffectiveTimeout(absl::InfiniteDuration(),
                             now + absl::Milliseconds(200), now, margin),
            absl::Milliseconds(160));
  // A passed deadline: end at once.
  EXPECT_EQ(EffectiveTimeout(absl::InfiniteDuration(), now - absl::Seconds(1),
                             now, margin),
            absl::ZeroDuration());
}

TEST(ResultToProtoTest, CarriesEveryField) {
  ProbeResult result;
  result.index = 7;
  result.id = "web-1";
  result.labels = {{"zone", "eu"}};
  result.url = "https://example.test/";
  result.final_url = "https://example.test/home";
  result.outcome = Outcome::kUnexpectedStatus;
  result.status_code = 503;
  result.http_version = ResponseVersion::kHttp2;
  result.remote_ip = "192.0.2.1";
  result.remote_port = 443;
  result.error = "status 503 is not a valid status";
  result.timings = {.dns = absl::Microseconds(10),
                    .connect = absl::Microseconds(20),
                    .tls = absl::Microseconds(30),
                    .first_byte = absl::Microseconds(40),
                    .total = absl::Milliseconds(1500),
                    .redirect = absl::Microseconds(5)};
  result.body_bytes = 123;
  result.redirects = 2;
  result.cert_expiry = absl::FromUnixSeconds(1900000000) + absl::Nanoseconds(5);

  const v1::ProbeResult proto = ResultToProto(result);
  EXPECT_EQ(proto.index(), 7u);
  EXPECT_EQ(proto.id(), "web-1");
  EXPECT_EQ(proto.labels().at("zone"), "eu");
  EXPECT_EQ(proto.url(), "https://example.test/");
  EXPECT_EQ(proto.final_url(), "https://example.test/home");
  EXPECT_EQ(proto.outcome(), v1::OUTCOME_UNEXPECTED_STATUS);
  EXPECT_EQ(proto.status_code(), 503u);
  EXPECT_EQ(proto.http_version(), "HTTP/2");
  EXPECT_EQ(proto.remote_ip(), "192.0.2.1");
  EXPECT_EQ(proto.remote_port(), 443u);
  EXPECT_EQ(proto.error(), "status 503 is not a valid status");
  EXPECT_EQ(proto.timings().dns().nanos(), 10000);
  EXPECT_EQ(proto.timings().first_byte().nanos(), 40000);
  EXPECT_EQ(proto.timings().total().seconds(), 1);
  EXPECT_EQ(proto.timings().total().nanos(), 500000000);
  EXPECT_EQ(proto.timings().redirect().nanos(), 5000);
  EXPECT_EQ(proto.body_bytes(), 123u);
  EXPECT_EQ(proto.redirects(), 2u);
  EXPECT_EQ(proto.cert_expiry().seconds(), 1900000000);
  EXPECT_EQ(proto.cert_expiry().nanos(), 5);

  // Not a DNS error, no hops, no TLS, no lag.
  EXPECT_EQ(proto.dns_failure(), v1::DNS_FAILURE_UNSPECIFIED);
  EXPECT_EQ(proto.hops_size(), 0);
  EXPECT_FALSE(proto.has_tls());
  EXPECT_FALSE(proto.has_prober_lag());

  result.cert_expiry.reset();
  EXPECT_FALSE(ResultToProto(result).has_cert_expiry());
}

TEST(BatchFromProtoTest, ResponseCredentialAndEncodingOptions) {
  v1::ProbeBatchRequest request = ThreeTargets();
  v1::ProbeOptions* defaults = request.mutable_defaults();
  v1::HeaderPattern* must =
      defaults->mutable_header_must_match()->add_patterns();
  must->set_name("Content-Type");
  must->set_pattern("json");
  v1::HeaderPattern* must_not =
      defaults->mutable_header_must_not_match()->add_patterns();
  must_not->set_name("X-Degraded");
  must_not->set_pattern(".");
  must_not->set_allow_missing(true);
  defaults->set_keep_response_headers(true);
  defaults->set_max_response_headers(7);
  defaults->set_max_response_header_bytes(999);
  defaults->mutable_basic_auth()->set_username("alice");
  defaults->mutable_basic_auth()->set_password("s3cret");
  defaults->set_accept_encoding("gzip");
  // Target 1 swaps basic auth for a token (an empty basic_auth drops the
  // inherited one) and drops the header rules.
  v1::ProbeOptions* one = request.mutable_targets(1)->mutable_options();
  one->mutable_basic_auth();
  one->set_bearer_token("tok");
  one->mutable_header_must_match();
  const absl::StatusOr<BatchRequest> batch = Convert(request, {});
  ASSERT_TRUE(batch.ok()) << batch.status();
  const ProbeOptions& o = *batch->targets[0].options;
  ASSERT_EQ(o.header_must_match.size(), 1u);
  EXPECT_EQ(o.header_must_match[0].name, "Content-Type");
  EXPECT_EQ(o.header_must_match[0].pattern, "json");
  EXPECT_FALSE(o.header_must_match[0].allow_missing);
  ASSERT_EQ(o.header_must_not_match.size(), 1u);
  EXPECT_TRUE(o.header_must_not_match[0].allow_missing);
  EXPECT_TRUE(o.keep_response_headers);
  EXPECT_EQ(o.max_response_headers, 7);
  EXPECT_EQ(o.max_response_header_bytes, 999u);
  ASSERT_TRUE(o.basic_auth.has_value());
  EXPECT_EQ(o.basic_auth->username, "alice");
  EXPECT_EQ(o.basic_auth->password, "s3cret");
  EXPECT_EQ(o.accept_encoding, "gzip");
  EXPECT_FALSE(o.client_certificate.has_value());
  const ProbeOptions& o1 = *batch->targets[1].options;
  EXPECT_FALSE(o1.basic_auth.has_value());
  EXPECT_EQ(o1.bearer_token, "tok");
  EXPECT_TRUE(o1.header_must_match.empty());
  EXPECT_EQ(o1.header_must_not_match.size(), 1u);
}

TEST(ResultToProtoTest, CarriesResponseHeadersLengthsAndLastModified) {
  ProbeResult result;
  result.outcome = Outcome::kHeaderMismatch;
  result.response_headers = {{"Content-Type", "text/plain"}, {"X-Build", "42"}};
  result.body_bytes = 100;
  result.decoded_body_bytes = 4000;
  result.content_length = 100;
  result.last_modified = absl::FromUnixSeconds(1445412480);
  v1::ProbeResult proto = ResultToProto(result);
  EXPECT_EQ(proto.outcome(), v1::OUTCOME_HEADER_MISMATCH);
  ASSERT_EQ(proto.response_headers_size(), 2);
  EXPECT_EQ(proto.response_headers(1).name(), "X-Build");
  EXPECT_EQ(proto.response_headers(1).value(), "42");
  EXPECT_EQ(proto.body_bytes(), 100u);
  EXPECT_EQ(proto.decoded_body_bytes(), 4000u);
  ASSERT_TRUE(proto.has_content_length());
  EXPECT_EQ(proto.content_length(), 100u);
  EXPECT_EQ(proto.last_modified().seconds(), 1445412480);
  // Not sent: not set.
  proto = ResultToProto(ProbeResult{});
  EXPECT_FALSE(proto.has_content_length());
  EXPECT_FALSE(proto.has_last_modified());
  EXPECT_EQ(proto.response_headers_size(), 0);
}

TEST(ResultToProtoTest, CarriesEveryAttempt) {
  ProbeResult result;
  result.outcome = Outcome::kOk;
  result.attempts = {
      {.outcome = Outcome::kDnsError,
       .error = "SERVFAIL",
       .dns_failure = DnsFailure::kServFail},
      {.outcome = Outcome::kOk,
       .status_code = 200,
       .remote_ip = "127.0.0.1",
       .remote_port = 8080,
       .start = absl::Milliseconds(1500),
       .timings = {.connect = absl::Microseconds(30),
                   .total = absl::Milliseconds(2)}},
  };
  v1::ProbeResult proto = ResultToProto(result);
  ASSERT_EQ(proto.attempts_size(), 2);
  const v1::Attempt& failed = proto.attempts(0);
  EXPECT_EQ(failed.outcome(), v1::OUTCOME_DNS_ERROR);
  EXPECT_EQ(failed.error(), "SERVFAIL");
  EXPECT_EQ(failed.dns_failure(), v1::DNS_FAILURE_SERVFAIL);
  EXPECT_EQ(failed.start().seconds(), 0);
  const v1::Attempt& ok = proto.attempts(1);
  EXPECT_EQ(ok.outcome(), v1::OUTCOME_OK);
  EXPECT_EQ(ok.status_code(), 200u);
  EXPECT_EQ(ok.remote_ip(), "127.0.0.1");
  EXPECT_EQ(ok.remote_port(), 8080u);
  EXPECT_EQ(ok.start().seconds(), 1);
  EXPECT_EQ(ok.start().nanos(), 500000000);
  EXPECT_EQ(ok.timings().connect().nanos(), 30000);
  EXPECT_EQ(ok.timings().total().nanos(), 2000000);
  EXPECT_EQ(ResultToProto(ProbeResult{}).attempts_size(), 0);
}

TEST(ResultToProtoTest, CarriesHopsTlsDnsFailureAndLag) {
  ProbeResult result;
  result.outcome = Outcome::kDnsError;
  result.dns_failure = DnsFailure::kServFail;
  result.hops.push_back({.url = "https://a.test/",
                         .status_code = 302,
                         .location = "/b",
                         .remote_ip = "192.0.2.1",
                         .remote_port = 443,
                         .addresses = {"192.0.2.1", "2001:db8::1"},
                         .timings = {.dns = absl::Microseconds(7),
                                     .total = absl::Milliseconds(3)}});
  result.hops.push_back({.url = "https://a.test/b", .status_code = 200});
  TlsInfo tls;
  tls.version = "TLSv1.3";
  tls.cipher = "TLS_AES_128_GCM_SHA256";
  tls.resumed = true;
  tls.chain.push_back({.subject = "CN=a.test",
                       .issuer = "CN=Test CA",
                       .serial = "0a1b",
                       .sha256_fingerprint = "00ff",
                       .not_before = absl::FromUnixSeconds(1700000000),
                       .not_after = absl::FromUnixSeconds(1800000000),
                       .dns_names = {"a.test", "*.a.test"}});
  result.tls = tls;
  result.prober_lag = absl::Milliseconds(12);

  const v1::ProbeResult proto = ResultToProto(result);
  EXPECT_EQ(proto.dns_failure(), v1::DNS_FAILURE_SERVFAIL);
  ASSERT_EQ(proto.hops_size(), 2);
  EXPECT_EQ(proto.hops(0).url(), "https://a.test/");
  EXPECT_EQ(proto.hops(0).status_code(), 302u);
  EXPECT_EQ(proto.hops(0).location(), "/b");
  EXPECT_EQ(proto.hops(0).remote_ip(), "192.0.2.1");
  EXPECT_EQ(proto.hops(0).remote_port(), 443u);
  EXPECT_THAT(proto.hops(0).addresses(),
              ElementsAre("192.0.2.1", "2001:db8::1"));
  EXPECT_EQ(proto.hops(0).timings().dns().nanos(), 7000);
  EXPECT_EQ(proto.hops(0).timings().total().nanos(), 3000000);
  EXPECT_EQ(proto.hops(1).url(), "https://a.test/b");
  EXPECT_EQ(proto.hops(1).status_code(), 200u);
  ASSERT_TRUE(proto.has_tls());
  EXPECT_EQ(proto.tls().version(), "TLSv1.3");
  EXPECT_EQ(proto.tls().cipher(), "TLS_AES_128_GCM_SHA256");
  EXPECT_TRUE(proto.tls().resumed());
  ASSERT_EQ(proto.tls().chain_size(), 1);
  EXPECT_EQ(proto.tls().chain(0).subject(), "CN=a.test");
  EXPECT_EQ(proto.tls().chain(0).issuer(), "CN=Test CA");
  EXPECT_EQ(proto.tls().chain(0).serial(), "0a1b");
  EXPECT_EQ(proto.tls().chain(0).sha256_fingerprint(), "00ff");
  EXPECT_THAT(proto.tls().chain(0).dns_names(),
              ElementsAre("a.test", "*.a.test"));
  EXPECT_EQ(proto.tls().chain(0).not_before().seconds(), 1700000000);
  EXPECT_EQ(proto.tls().chain(0).not_after().seconds(), 1800000000);
  EXPECT_EQ(proto.prober_lag().nanos(), 12000000);
}

TEST(EnumsToProtoTest, EveryEngineValueHasItsProtoName) {
  for (int i = 0; i < kNumOutcomes; ++i) {
    const Outcome outcome = static_cast<Outcome>(i);
    EXPECT_EQ(v1::Outcome_Name(OutcomeToProto(outcome)),
              absl::StrCat("OUTCOME_", OutcomeName(outcome)));
  }
  EXPECT_EQ(DnsFailureToProto(DnsFailure::kNone), v1::DNS_FAILURE_UNSPECIFIED);
  for (int i = 1; i <= static_cast<int>(DnsFailure::kOther); ++i) {
    const DnsFailure failure = static_cast<DnsFailure>(i);
    EXPECT_EQ(v1::DnsFailure_Name(DnsFailureToProto(failure)),
              absl::StrCat("DNS_FAILURE_", DnsFailureName(failure)));
  }
  for (int i = 0; i <= static_cast<int>(EndReason::kCancelled); ++i) {
    const EndReason reason = static_cast<EndReason>(i);
    EXPECT_EQ(v1::EndReason_Name(EndReasonToProto(reason)),
              absl::StrCat("END_REASON_", EndReasonName(reason)));
  }
}

TEST(SummaryToProtoTest, CarriesCountsPendingAndElapsed) {
  BatchSummary summary;
  summary.reason = EndReason::kTimeout;
  summary.total = 5;
  summary.completed = 3;
  summary.succeeded = 2;
  summary.failed = 1;
  summary.cancelled = 2;
  summary.pending_indices = {1, 4};
  summary.elapsed = absl::Milliseconds(2500);
  const v1::BatchSummary proto = SummaryToProto(summary);
  EXPECT_EQ(proto.reason(), v1::END_REASON_TIMEOUT);
  EXPECT_EQ(proto.total(), 5u);
  EXPECT_EQ(proto.completed(), 3u);
  EXPECT_EQ(proto.succeeded(), 2u);
  EXPECT_EQ(proto.failed(), 1u);
  EXPECT_EQ(proto.cancelled(), 2u);
  EXPECT_THAT(proto.pending_indices(), ElementsAre(1, 4));
  EXPECT_EQ(proto.elapsed().seconds(), 2);
  EXPECT_EQ(proto.elapsed().nanos(), 500000000);
}

TEST(ToGrpcStatusTest, KeepsCodeAndMessage) {
  const grpc::Status status =
      ToGrpcStatus(absl::InvalidArgumentError("targets: empty"));
  EXPECT_EQ(status.error_code(), grpc::StatusCode::INVALID_ARGUMENT);
  EXPECT_EQ(status.error_message(), "targets: empty");
  EXPECT_EQ(ToGrpcStatus(absl::UnavailableError("x")).error_code(),
            grpc::StatusCode::UNAVAILABLE);
  EXPECT_EQ(ToGrpcStatus(absl::ResourceExhaustedError("x")).error_code(),
            grpc::StatusCode::RESOURCE_EXHAUSTED);
  EXPECT_TRUE(ToGrpcStatus(absl::OkStatus()).ok());
}

TEST(ToGrpcStatusTest, AFieldErrorCarriesItsFieldViolation) {
  const grpc::Status status = ToGrpcStatus(absl::InvalidArgumentError(
      "targets[3].options.headers.headers[1].value: holds a line feed"));
  EXPECT_EQ(status.error_message(),
            "targets[3].options.headers.headers[1].value: holds a line feed");
  std::optional<v1::FieldViolation> violation = FieldViolationOf(status);
  ASSERT_TRUE(violation.has_value());
  EXPECT_EQ(violation->field(), "targets[3].options.headers.headers[1].value");
  EXPECT_EQ(violation->description(), "holds a line feed");
}

TEST(ToGrpcStatusTest, OnlyAMessageThatNamesAFieldHasDetails) {
  for (const absl::Status& status :
       {absl::InvalidArgumentError("the request is odd"),
        absl::InvalidArgumentError("Targets: capitalised"),
        absl::InvalidArgumentError("targets[x]: not an index"),
        absl::InvalidArgumentError("targets.: empty name"),
        absl::ResourceExhaustedError("max_batches: overloaded")}) {
    EXPECT_EQ(ToGrpcStatus(status).error_details(), "") << status;
  }
}

}  // namespace
}  // namespace fanprobe::service
