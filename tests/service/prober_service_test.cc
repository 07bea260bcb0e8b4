// prober_service_test.cc: the gRPC adapter, fanprobe.v1.Prober, end to end
// on its own -- a real gRPC client against the service alone
// (service_harness.h) whose engine probes loopback target servers
// (tests/support/target_server.h).  Tests wait on events (a stream's next
// message, a counter the target server keeps); the only timed waits check
// that something does NOT happen.  What the server adds around it (health,
// draining shutdown, credentials) is tests/server/'s.

#include <algorithm>
#include <memory>
#include <numeric>
#include <optional>
#include <ostream>
#include <string>
#include <thread>
#include <utility>
#include <vector>

#include "absl/strings/str_cat.h"
#include "absl/time/clock.h"
#include "absl/time/time.h"
#include "fanprobe/v1/prober.grpc.pb.h"
#include "fanprobe/v1/prober.pb.h"
#include "gmock/gmock.h"
#include "grpcpp/grpcpp.h"
#include "gtest/gtest.h"
#include "proto/duration.h"
#include "tests/service/service_harness.h"
#include "tests/support/batches.h"
#include "tests/support/dns_server.h"
#include "tests/support/target_server.h"
#include "tests/support/test_certs.h"
#include "tests/support/tls_target_server.h"
#include "tests/support/wait.h"

namespace fanprobe {
namespace {

using ::fanprobe::testing::BatchRequest;
using ::fanprobe::testing::ExpectSummary;
using ::fanprobe::testing::FieldViolationOf;
using ::fanprobe::testing::Indices;
using ::fanprobe::testing::kPatience;
using ::fanprobe::testing::ReadStream;
using ::fanprobe::testing::ServiceHarness;
using ::fanprobe::testing::SlowReaderArguments;
using ::fanprobe::testing::StreamOutcome;
using ::fanprobe::testing::TargetServer;
using ::fanprobe::testing::TargetStats;
using ::fanprobe::testing::WaitUntil;
using ::testing::AllOf;
using ::testing::Contains;
using ::testing::ElementsAre;
using ::testing::HasSubstr;
using ::testing::IsEmpty;
using ::testing::StartsWith;

class ProberServiceTest : public ::testing::Test {
 protected:
  TargetServer target_;
};

TEST_F(ProberServiceTest, StreamsResultsInCompletionOrder) {
  ServiceHarness server;
  v1::ProbeBatchRequest request =
      BatchRequest({target_.url("/delay/3000"), target_.url("/status/200"),
                    target_.url("/status/503")});
  request.mutable_targets(1)->set_id("fast");
  (*request.mutable_targets(1)->mutable_labels())["zone"] = "a";

  grpc::ClientContext context;
  const absl::Time start = absl::Now();
  auto reader = server.stub().StreamProbes(&context, request);
  v1::ProbeEvent first;
  ASSERT_TRUE(reader->Read(&first));
  ASSERT_TRUE(first.has_result());
  // The slow target cannot have answered yet: it waits 3 s after the
  // request, which was sent after `start` (3 s, so that a loaded machine
  // still streams the fast results well within it).
  EXPECT_LT(absl::Now() - start, absl::Seconds(3));
  EXPECT_NE(first.result().index(), 0u);

  StreamOutcome rest = ReadStream(*reader);
  ASSERT_TRUE(rest.status.ok()) << rest.status.error_message();
  ASSERT_EQ(rest.results.size(), 2u);
  EXPECT_EQ(rest.results.back().index(), 0u);  // the slowest comes last
  std::vector<v1::ProbeResult> all = {first.result(), rest.results[0],
                                      rest.results[1]};
  std::sort(all.begin(), all.end(),
            [](const auto& a, const auto& b) { return a.index() < b.index(); });
  EXPECT_EQ(all[0].outcome(), v1::OUTCOME_OK);
  EXPECT_GE(DurationFromProto(all[0].timings().total()).value(),
            absl::Seconds(3));
  EXPECT_EQ(all[1].outcome(), v1::OUTCOME_OK);
  EXPECT_EQ(all[1].status_code(), 200u);
  EXPECT_EQ(all[1].id(), "fast");
  EXPECT_EQ(all[1].labels().at("zone"), "a");
  EXPECT_EQ(all[1].url(), target_.url("/status/200"));
  EXPECT_EQ(all[1].remote_ip(), "127.0.0.1");
  EXPECT_EQ(all[1].remote_port(), static_cast<uint32_t>(target_.port()));
  EXPECT_EQ(all[2].outcome(), v1::OUTCOME_UNEXPECTED_STATUS);
  EXPECT_EQ(all[2].status_code(), 503u);
  EXPECT_THAT(all[2].error(), HasSubstr("503"));

  ASSERT_EQ(rest.summaries.size(), 1u);
  ExpectSummary(rest.summaries[0], {.reason = v1::END_REASON_ALL_COMPLETED,
                                    .total = 3,
                                    .completed = 3,
                                    .succeeded = 2,
                                    .failed = 1,
                                    .cancelled = 0,
                                    .pending = {{}},
                                    .min_elapsed = absl::Seconds(3)});
}

TEST_F(ProberServiceTest, AllCompletedReturnsEveryResultInRequestOrder) {
  ServiceHarness server;
  v1::ProbeBatchRequest request =
      BatchRequest({target_.url("/delay/100"), target_.url("/status/500"),
                    target_.url("/status/200"), "ftp://127.0.0.1/"});
  request.set_return_when(v1::RETURN_WHEN_ALL_COMPLETED);
  grpc::ClientContext context;
  v1::ProbeBatchResponse response;
  const grpc::Status status =
      server.stub().ProbeBatch(&context, request, &response);

  ASSERT_TRUE(status.ok()) << status.error_message();
  EXPECT_THAT(Indices(response.done()), ElementsAre(0, 1, 2, 3));
  EXPECT_EQ(response.done(0).outcome(), v1::OUTCOME_OK);
  EXPECT_EQ(response.done(1).outcome(), v1::OUTCOME_UNEXPECTED_STATUS);
  EXPECT_EQ(response.done(2).outcome(), v1::OUTCOME_OK);
  // A bad URL is that target's result, not an RPC error.
  EXPECT_EQ(response.done(3).outcome(), v1::OUTCOME_INVALID_TARGET);
  EXPECT_THAT(response.pending_indices(), IsEmpty());
  ExpectSummary(response.summary(), {.reason = v1::END_REASON_ALL_COMPLETED,
                                     .completed = 4,
                                     .succeeded = 2,
                                     .failed = 2});
}

TEST_F(ProberServiceTest, FirstCompletedEndsAtTheFastestAndCancelsTheRest) {
  ServiceHarness server;
  v1::ProbeBatchRequest request =
      BatchRequest({target_.raw_url("/hang"), target_.url("/status/200"),
                    target_.raw_url("/hang")});
  request.set_return_when(v1::RETURN_WHEN_FIRST_COMPLETED);
  grpc::ClientContext context;
  v1::ProbeBatchResponse response;
  const grpc::Status status =
      server.stub().ProbeBatch(&context, request, &response);

  ASSERT_TRUE(status.ok()) << status.error_message();
  EXPECT_THAT(Indices(response.done()), ElementsAre(1));
  EXPECT_THAT(response.pending_indices(), ElementsAre(0, 2));
  ExpectSummary(response.summary(), {.reason = v1::END_REASON_FIRST_COMPLETED,
                                     .completed = 1,
                                     .cancelled = 2,
                                     .pending = {{0, 2}}});
  // The hanging probes that had started were stopped: their connections
  // closed.
  EXPECT_TRUE(target_.WaitFor(
      [](const TargetStats& s) {
        return s.raw.abandoned == s.raw.requests && s.raw.open_connections == 0;
      },
      kPatience));
}

// The first target completes while the engine is still being given the
// batch's targets (an unusable one completes as soon as it is checked), so
// the batch ends before most of them are added.  Every one of them is still
// listed: the first as done, every other as pending.
TEST_F(ProberServiceTest, ABatchThatEndsWhileItsTargetsAreAddedListsThemAll) {
  ServiceHarness server;
  constexpr int kTargets = 20000;
  std::vector<std::string> urls(kTargets, target_.raw_url("/hang"));
  urls[0] = "ftp://127.0.0.1/";
  v1::ProbeBatchRequest request = BatchRequest(urls);
  request.set_return_when(v1::RETURN_WHEN_FIRST_COMPLETED);
  std::vector<uint32_t> rest(kTargets - 1);
  std::iota(rest.begin(), rest.end(), 1u);

  const StreamOutcome streamed = ReadStream(server.stub(), request);
  ASSERT_TRUE(streamed.status.ok()) << streamed.status.error_message();
  ASSERT_EQ(streamed.summaries.size(), 1u);
  ASSERT_EQ(streamed.results.size(), 1u);
  EXPECT_EQ(streamed.results[0].index(), 0u);
  ExpectSummary(streamed.summaries[0],
                {.reason = v1::END_REASON_FIRST_COMPLETED,
                 .total = kTargets,
                 .completed = 1,
                 .failed = 1,
                 .cancelled = kTargets - 1,
                 .pending = rest});

  grpc::ClientContext context;
  v1::ProbeBatchResponse response;
  const grpc::Status status =
      server.stub().ProbeBatch(&context, request, &response);
  ASSERT_TRUE(status.ok()) << status.error_message();
  EXPECT_THAT(Indices(response.done()), ElementsAre(0));
  EXPECT_EQ(response.pending_indices_size(), kTargets - 1);
  ExpectSummary(response.summary(), {.reason = v1::END_REASON_FIRST_COMPLETED,
                                     .total = kTargets,
                                     .cancelled = kTargets - 1,
                                     .pending = rest});
  EXPECT_EQ(target_.Stats().raw.requests, 0);  // none of them ran
}

TEST_F(ProberServiceTest, FirstExceptionEndsAtTheFirstFailure) {
  ServiceHarness server;
  v1::ProbeBatchRequest request =
      BatchRequest({target_.url("/status/200"), target_.raw_url("/hang"),
                    target_.url("/status/503")});
  request.set_return_when(v1::RETURN_WHEN_FIRST_EXCEPTION);
  grpc::ClientContext context;
  auto reader = server.stub().StreamProbes(&context, request);
  StreamOutcome outcome = ReadStream(*reader);

  ASSERT_TRUE(outcome.status.ok()) << outcome.status.error_message();
  ASSERT_EQ(outcome.summaries.size(), 1u);
  const v1::BatchSummary& summary = outcome.summaries[0];
  ExpectSummary(summary,
                {.reason = v1::END_REASON_FIRST_EXCEPTION,
                 .completed = static_cast<uint32_t>(outcome.results.size()),
                 .failed = 1});
  ASSERT_FALSE(outcome.results.empty());
  EXPECT_EQ(outcome.results.back().index(), 2u);
  EXPECT_EQ(outcome.results.back().outcome(), v1::OUTCOME_UNEXPECTED_STATUS);
  EXPECT_THAT(summary.pending_indices(), Contains(1u));
  EXPECT_EQ(summary.completed() + summary.cancelled(), 3u);
}

TEST_F(ProberServiceTest, FirstExceptionWithoutFailureEndsAsAllCompleted) {
  ServiceHarness server;
  v1::ProbeBatchRequest request =
      BatchRequest({target_.url("/status/200"), target_.url("/delay/50")});
  request.set_return_when(v1::RETURN_WHEN_FIRST_EXCEPTION);
  grpc::ClientContext context;
  v1::ProbeBatchResponse response;
  ASSERT_TRUE(server.stub().ProbeBatch(&context, request, &response).ok());
  ExpectSummary(response.summary(), {.reason = v1::END_REASON_ALL_COMPLETED});
  EXPECT_THAT(Indices(response.done()), ElementsAre(0, 1));
  EXPECT_THAT(response.pending_indices(), IsEmpty());
}

TEST_F(ProberServiceTest, RequestTimeoutEndsTheBatch) {
  ServiceHarness server;
  v1::ProbeBatchRequest request =
      BatchRequest({target_.url("/status/200"), target_.raw_url("/hang")});
  // Long enough for the fast probe on a loaded machine; the hanging one
  // would run for its 60 s probe timeout unless the batch's ends it.
  DurationToProto(absl::Seconds(2), request.mutable_timeout());
  DurationToProto(absl::Seconds(60),
                  request.mutable_defaults()->mutable_timeout());
  grpc::ClientContext context;
  v1::ProbeBatchResponse response;
  const absl::Time start = absl::Now();
  const grpc::Status status =
      server.stub().ProbeBatch(&context, request, &response);

  ASSERT_TRUE(status.ok()) << status.error_message();
  ExpectSummary(response.summary(), {.reason = v1::END_REASON_TIMEOUT,
                                     .min_elapsed = absl::Seconds(2)});
  EXPECT_THAT(Indices(response.done()), ElementsAre(0));
  EXPECT_THAT(response.pending_indices(), ElementsAre(1));
  EXPECT_LT(absl::Now() - start, absl::Seconds(10));
}

// A zero timeout ends the batch at once: nothing runs, and the summary
// lists every target as pending -- StreamProbes too, whose batch starts
// only once its response headers are out.
TEST_F(ProberServiceTest, ZeroTimeoutEndsTheBatchAtOnceWithEveryTargetPending) {
  ServiceHarness server;
  v1::ProbeBatchRequest request =
      BatchRequest(std::vector<std::string>(300, target_.url("/status/200")));
  request.mutable_timeout()->Clear();  // zero
  grpc::ClientContext context;
  auto reader = server.stub().StreamProbes(&context, request);
  StreamOutcome outcome = ReadStream(*reader);

  ASSERT_TRUE(outcome.status.ok()) << outcome.status.error_message();
  EXPECT_THAT(outcome.results, IsEmpty());
  ASSERT_EQ(outcome.summaries.size(), 1u);
  std::vector<uint32_t> every(300);
  std::iota(every.begin(), every.end(), 0u);
  ExpectSummary(outcome.summaries[0],
                {.reason = v1::END_REASON_TIMEOUT, .pending = every});
  EXPECT_EQ(target_.Stats().http.requests, 0);
}

TEST_F(ProberServiceTest, RpcDeadlineEndsTheBatchAndTheSummaryArrives) {
  ServiceHarness server;
  v1::ProbeBatchRequest request =
      BatchRequest({target_.url("/status/200"), target_.raw_url("/hang")});
  grpc::ClientContext context;
  // Long enough for the fast probe on a loaded machine.
  const absl::Time deadline = absl::Now() + absl::Seconds(3);
  context.set_deadline(absl::ToChronoTime(deadline));
  auto reader = server.stub().StreamProbes(&context, request);
  StreamOutcome outcome = ReadStream(*reader);

  // Not DEADLINE_EXCEEDED: the batch ended before the deadline.
  ASSERT_TRUE(outcome.status.ok())
      << outcome.status.error_code() << " " << outcome.status.error_message();
  ASSERT_EQ(outcome.summaries.size(), 1u);
  ExpectSummary(outcome.summaries[0],
                {.reason = v1::END_REASON_TIMEOUT, .pending = {{1}}});
  ASSERT_EQ(outcome.results.size(), 1u);
  EXPECT_EQ(outcome.results[0].index(), 0u);
  // The OK status is the proof that the summary beat the deadline (the call
  // would have ended DEADLINE_EXCEEDED otherwise); the clock after the read
  // would measure how soon a loaded machine ran this thread again.
}

TEST_F(ProberServiceTest, ClientCancelClosesTargetConnectionsAtOnce) {
  ServiceHarness server;
  v1::ProbeBatchRequest request =
      BatchRequest({target_.raw_url("/hang"), target_.raw_url("/hang"),
                    target_.raw_url("/hang"), target_.raw_url("/hang")});
  request.set_max_concurrency(3);  // the fourth waits in the queue
  grpc::ClientContext context;
  auto reader = server.stub().StreamProbes(&context, request);
  ASSERT_TRUE(target_.WaitFor(
      [](const TargetStats& s) { return s.raw.in_flight == 3; }, kPatience));

  const absl::Time cancelled = absl::Now();
  context.TryCancel();
  ASSERT_TRUE(target_.WaitFor(
      [](const TargetStats& s) {
        return s.raw.abandoned == 3 && s.raw.open_connections == 0;
      },
      kPatience));
  // At once: well before the probes' 10 s timeout, with a margin for a
  // loaded machine.
  EXPECT_LT(absl::Now() - cancelled, absl::Seconds(2));

  v1::ProbeEvent event;
  EXPECT_FALSE(reader->Read(&event));
  EXPECT_EQ(reader->Finish().error_code(), grpc::StatusCode::CANCELLED);
  // The batch ended as cancelled, and its queued probe never started.
  ASSERT_TRUE(server.log().WaitForLines(1));
  EXPECT_THAT(server.log().Lines()[0], HasSubstr(R"("reason":"CANCELLED")"));
  EXPECT_THAT(server.log().Lines()[0], HasSubstr(R"("cancelled":4)"));
  ASSERT_TRUE(server.service().WaitUntilIdle(absl::Now() + kPatience));
  EXPECT_EQ(target_.Stats().raw.requests, 3);
}

TEST_F(ProberServiceTest, UnaryClientCancelCancelsTheBatch) {
  ServiceHarness server;
  v1::ProbeBatchRequest request =
      BatchRequest({target_.raw_url("/hang"), target_.raw_url("/hang")});
  grpc::ClientContext context;
  v1::ProbeBatchResponse response;
  grpc::Status status;
  std::thread call(
      [&] { status = server.stub().ProbeBatch(&context, request, &response); });
  ASSERT_TRUE(target_.WaitFor(
      [](const TargetStats& s) { return s.raw.in_flight == 2; }, kPatience));
  context.TryCancel();
  call.join();
  EXPECT_EQ(status.error_code(), grpc::StatusCode::CANCELLED);
  EXPECT_TRUE(target_.WaitFor(
      [](const TargetStats& s) { return s.raw.abandoned == 2; }, kPatience));
  ASSERT_TRUE(server.log().WaitForLines(1));
  EXPECT_THAT(server.log().Lines()[0], HasSubstr(R"("reason":"CANCELLED")"));
}

// One request field that makes the whole request INVALID_ARGUMENT.
struct InvalidCase {
  const char* name;
  // The field the error message must start with.
  const char* field;
  void (*mutate)(v1::ProbeBatchRequest& request);
};

void PrintTo(const InvalidCase& c, std::ostream* os) { *os << c.name; }

class InvalidArgumentTest : public ::testing::TestWithParam<InvalidCase> {
 protected:
  static constexpr uint32_t kMaxBatchTargets = 50;

  // One server for all cases: no request reaches the engine.
  static void SetUpTestSuite() {
    service::ServiceOptions options;
    options.limits.max_batch_targets = kMaxBatchTargets;
    server_ = new ServiceHarness(options);
  }
  static void TearDownTestSuite() {
    delete server_;
    server_ = nullptr;
  }
  static ServiceHarness& Server() { return *server_; }

 private:
  static ServiceHarness* server_;
};

ServiceHarness* InvalidArgumentTest::server_ = nullptr;

const InvalidCase kInvalidCases[] = {
    {"NoTargets", "targets",
     [](v1::ProbeBatchRequest& r) { r.clear_targets(); }},
    {"TooManyTargets", "targets",
     [](v1::ProbeBatchRequest& r) {
       for (int i = 0; i < 50; ++i) r.add_targets()->set_url("http://a/");
     }},
    {"NegativeTimeout", "timeout",
     [](v1::ProbeBatchRequest& r) { r.mutable_timeout()->set_seconds(-1); }},
    {"MalformedTimeout", "timeout",
     [](v1::ProbeBatchRequest& r) {
       r.mutable_timeout()->set_seconds(1);
       r.mutable_timeout()->set_nanos(-5);
     }},
    {"UnknownReturnWhen", "return_when",
     [](v1::ProbeBatchRequest& r) {
       r.set_return_when(static_cast<v1::ReturnWhen>(7));
     }},
    {"NegativeDefaultProbeTimeout", "defaults.timeout",
     [](v1::ProbeBatchRequest& r) {
       r.mutable_defaults()->mutable_timeout()->set_nanos(-1000);
     }},
    {"ZeroTargetProbeTimeout", "targets[2].options.timeout",
     [](v1::ProbeBatchRequest& r) {
       r.mutable_targets(2)->mutable_options()->mutable_timeout();
     }},
    {"NegativeConnectTimeout", "targets[1].options.connect_timeout",
     [](v1::ProbeBatchRequest& r) {
       r.mutable_targets(1)
           ->mutable_options()
           ->mutable_connect_timeout()
           ->set_seconds(-3);
     }},
    {"UnknownHttpVersion", "targets[0].options.http_version",
     [](v1::ProbeBatchRequest& r) {
       r.mutable_targets(0)->mutable_options()->set_http_version(
           static_cast<v1::HttpVersion>(9));
     }},
    {"UnknownIpFamily", "defaults.ip_family",
     [](v1::ProbeBatchRequest& r) {
       r.mutable_defaults()->set_ip_family(static_cast<v1::IpFamily>(5));
     }},
    {"InvertedStatusRange", "targets[1].options.valid_status.ranges[1]",
     [](v1::ProbeBatchRequest& r) {
       auto* ranges =
           r.mutable_targets(1)->mutable_options()->mutable_valid_status();
       auto* ok = ranges->add_ranges();
       ok->set_min(200);
       ok->set_max(299);
       auto* inverted = ranges->add_ranges();
       inverted->set_min(400);
       inverted->set_max(300);
     }},
    // What the engine refuses (Engine::CheckOptions), at the server's
    // default caps (ProbeLimits).
    {"BodyCapExceeded", "targets[2].options.max_body_bytes",
     [](v1::ProbeBatchRequest& r) {
       r.mutable_targets(2)->mutable_options()->set_max_body_bytes(uint64_t{1}
                                                                   << 40);
     }},
    {"RedirectCapExceeded", "defaults.max_redirects",
     [](v1::ProbeBatchRequest& r) {
       r.mutable_defaults()->set_max_redirects(31);
     }},
    {"RedirectCapFarExceeded", "targets[1].options.max_redirects",
     [](v1::ProbeBatchRequest& r) {
       r.mutable_targets(1)->mutable_options()->set_max_redirects(4294967295u);
     }},
    {"RequestBodyCapExceeded", "defaults.body",
     [](v1::ProbeBatchRequest& r) {
       r.mutable_defaults()->set_body(std::string((1 << 20) + 1, 'b'));
     }},
    {"RequestHeaderCapExceeded", "targets[0].options.headers",
     [](v1::ProbeBatchRequest& r) {
       v1::Header* header = r.mutable_targets(0)
                                ->mutable_options()
                                ->mutable_headers()
                                ->add_headers();
       header->set_name("X-Large");
       header->set_value(std::string(64 << 10, 'h'));
     }},
    {"InjectedUserAgent", "targets[1].options.user_agent",
     [](v1::ProbeBatchRequest& r) {
       r.mutable_targets(1)->mutable_options()->set_user_agent(
           "fp\r\nX-Injected: yes\r\n\r\nGET /smuggled HTTP/1.1\r\nHost: v");
     }},
    {"MethodNotAToken", "targets[0].options.method",
     [](v1::ProbeBatchRequest& r) {
       r.mutable_targets(0)->mutable_options()->set_method("GET /x HTTP/1.1");
     }},
    {"LineFeedInAHeaderValue", "targets[2].options.headers.headers[1].value",
     [](v1::ProbeBatchRequest& r) {
       auto* headers =
           r.mutable_targets(2)->mutable_options()->mutable_headers();
       v1::Header* ok = headers->add_headers();
       ok->set_name("X-Ok");
       ok->set_value("fine");
       v1::Header* bad = headers->add_headers();
       bad->set_name("X-Bad");
       bad->set_value("a\nX-Injected: yes");
     }},
    {"NulInAHeaderName", "defaults.headers.headers[0].name",
     [](v1::ProbeBatchRequest& r) {
       r.mutable_defaults()->mutable_headers()->add_headers()->set_name(
           std::string("X-A\0B", 5));
     }},
    {"PatternThatDoesNotCompile", "defaults.body_must_not_match.patterns[0]",
     [](v1::ProbeBatchRequest& r) {
       r.mutable_defaults()->mutable_body_must_not_match()->add_patterns("(");
     }},
    {"SourceAddressThatIsAnInterfaceName", "targets[1].options.source_address",
     [](v1::ProbeBatchRequest& r) {
       r.mutable_targets(1)->mutable_options()->set_source_address("eth0");
     }},
};

// The same, machine-readable: the status's details name the field, and
// say what the message says after it.
void ExpectFieldViolation(const grpc::Status& status,
                          const std::string& field) {
  std::optional<v1::FieldViolation> violation = FieldViolationOf(status);
  ASSERT_TRUE(violation.has_value()) << status.error_message();
  EXPECT_EQ(violation->field(), field);
  EXPECT_EQ(absl::StrCat(violation->field(), ": ", violation->description()),
            status.error_message());
}

TEST_P(InvalidArgumentTest, StreamProbesNamesTheField) {
  v1::ProbeBatchRequest request = BatchRequest(
      {"http://127.0.0.1:1/a", "http://127.0.0.1:1/b", "http://127.0.0.1:1/c"});
  GetParam().mutate(request);
  grpc::ClientContext context;
  auto reader = Server().stub().StreamProbes(&context, request);
  v1::ProbeEvent event;
  EXPECT_FALSE(reader->Read(&event));
  const grpc::Status status = reader->Finish();
  EXPECT_EQ(status.error_code(), grpc::StatusCode::INVALID_ARGUMENT);
  EXPECT_THAT(status.error_message(),
              StartsWith(absl::StrCat(GetParam().field, ": ")));
  ExpectFieldViolation(status, GetParam().field);
}

TEST_P(InvalidArgumentTest, ProbeBatchNamesTheField) {
  v1::ProbeBatchRequest request = BatchRequest(
      {"http://127.0.0.1:1/a", "http://127.0.0.1:1/b", "http://127.0.0.1:1/c"});
  GetParam().mutate(request);
  grpc::ClientContext context;
  v1::ProbeBatchResponse response;
  const grpc::Status status =
      Server().stub().ProbeBatch(&context, request, &response);
  EXPECT_EQ(status.error_code(), grpc::StatusCode::INVALID_ARGUMENT);
  EXPECT_THAT(status.error_message(),
              StartsWith(absl::StrCat(GetParam().field, ": ")));
  ExpectFieldViolation(status, GetParam().field);
}

INSTANTIATE_TEST_SUITE_P(Cases, InvalidArgumentTest,
                         ::testing::ValuesIn(kInvalidCases),
                         [](const ::testing::TestParamInfo<InvalidCase>& info) {
                           return info.param.name;
                         });

TEST_F(ProberServiceTest, OverloadIsResourceExhausted) {
  service::ServiceOptions options;
  options.max_pending_probes = 2;
  ServiceHarness server(options);
  grpc::ClientContext hanging;
  auto reader = server.stub().StreamProbes(
      &hanging,
      BatchRequest({target_.raw_url("/hang"), target_.raw_url("/hang")}));
  ASSERT_TRUE(target_.WaitFor(
      [](const TargetStats& s) { return s.raw.in_flight == 2; }, kPatience));

  grpc::ClientContext context;
  v1::ProbeBatchResponse response;
  const grpc::Status status = server.stub().ProbeBatch(
      &context, BatchRequest({target_.url("/status/200")}), &response);
  EXPECT_EQ(status.error_code(), grpc::StatusCode::RESOURCE_EXHAUSTED);
  EXPECT_THAT(status.error_message(), HasSubstr("retry later"));

  hanging.TryCancel();
  ReadStream(*reader);
  ASSERT_TRUE(
      WaitUntil([&] { return server.service().Stats().pending_probes == 0; }));
  grpc::ClientContext again;
  EXPECT_TRUE(server.stub()
                  .ProbeBatch(&again,
                              BatchRequest({target_.url("/status/200")}),
                              &response)
                  .ok());
}

TEST_F(ProberServiceTest, SlowReaderPausesItsBatchWithinTheQueueBound) {
  // 10 ms probes, 2 at a time: each result is handed over long before the
  // next probe finishes, so the engine holds none back when the queue fills
  // and the bound is exactly stream_queue_limit + max_concurrency.
  constexpr int kTargets = 120;
  constexpr int kConcurrency = 2;
  constexpr int kQueueLimit = 8;
  service::ServiceOptions options;
  options.stream_queue_limit = kQueueLimit;
  ServiceHarness server(options);
  // An unread stream backs up into the service's queue.
  auto stub = v1::Prober::NewStub(server.NewChannel(SlowReaderArguments()));

  std::vector<std::string> urls(kTargets, target_.url("/delay/10"));
  v1::ProbeBatchRequest request = BatchRequest(urls);
  request.set_max_concurrency(kConcurrency);
  grpc::ClientContext context;
  auto reader = stub->StreamProbes(&context, request);
  v1::ProbeEvent event;
  ASSERT_TRUE(reader->Read(&event));

  // The reader stops reading: the stream's queue fills and the batch stops
  // starting probes.
  ASSERT_TRUE(
      WaitUntil([&] { return server.service().Stats().paused_streams == 1; }));
  ASSERT_TRUE(
      WaitUntil([&] { return server.engine().Stats().probes_in_flight == 0; }));
  const int started = target_.Stats().http.requests;
  EXPECT_LT(started, kTargets / 2);
  absl::SleepFor(absl::Milliseconds(200));  // nothing may start meanwhile
  EXPECT_EQ(target_.Stats().http.requests, started);

  // Reading again drains the queue and the batch runs to completion.
  int results = 1;
  int summaries = 0;
  while (reader->Read(&event)) {
    if (event.has_result()) ++results;
    if (event.has_summary()) {
      ++summaries;
      ExpectSummary(event.summary(), {.reason = v1::END_REASON_ALL_COMPLETED,
                                      .succeeded = kTargets});
    }
  }
  EXPECT_TRUE(reader->Finish().ok());
  EXPECT_EQ(results, kTargets);
  EXPECT_EQ(summaries, 1);
  EXPECT_LE(server.service().Stats().peak_stream_queue,
            static_cast<uint64_t>(kQueueLimit + kConcurrency));
  EXPECT_EQ(server.service().Stats().paused_streams, 0u);
}

TEST_F(ProberServiceTest, ResultsThatWaitTogetherShareAnEvent) {
  // As above, an unread stream backs results up in the queue; once it is
  // read again, what waits goes out several to an event.
  constexpr int kTargets = 60;
  constexpr int kPerEvent = 4;
  service::ServiceOptions options;
  options.stream_queue_limit = 8;
  ServiceHarness server(options);
  auto stub = v1::Prober::NewStub(server.NewChannel(SlowReaderArguments()));
  std::vector<std::string> urls(kTargets, target_.url("/delay/10"));
  v1::ProbeBatchRequest request = BatchRequest(urls);
  request.set_max_concurrency(2);
  request.set_max_results_per_event(kPerEvent);
  grpc::ClientContext context;
  auto reader = stub->StreamProbes(&context, request);
  v1::ProbeEvent first;
  ASSERT_TRUE(reader->Read(&first));
  ASSERT_TRUE(first.has_results()) << first.DebugString();
  ASSERT_TRUE(
      WaitUntil([&] { return server.service().Stats().paused_streams == 1; }));

  StreamOutcome rest = ReadStream(*reader);
  ASSERT_TRUE(rest.status.ok()) << rest.status.error_message();
  std::vector<int> sizes = {first.results().results_size()};
  sizes.insert(sizes.end(), rest.group_sizes.begin(), rest.group_sizes.end());
  std::vector<uint32_t> indices;
  for (const v1::ProbeResult& result : first.results().results()) {
    indices.push_back(result.index());
  }
  for (const v1::ProbeResult& result : rest.results) {
    EXPECT_EQ(result.outcome(), v1::OUTCOME_OK);
    indices.push_back(result.index());
  }
  // Every result once, each in a `results` event of at most kPerEvent, and
  // the queue's backlog in fuller ones.
  std::sort(indices.begin(), indices.end());
  std::vector<uint32_t> all(kTargets);
  for (int i = 0; i < kTargets; ++i) all[i] = i;
  EXPECT_EQ(indices, all);
  EXPECT_EQ(rest.group_sizes.size() + 1, sizes.size());
  EXPECT_EQ(*std::min_element(sizes.begin(), sizes.end()), 1);
  EXPECT_EQ(*std::max_element(sizes.begin(), sizes.end()), kPerEvent);
  ASSERT_EQ(rest.summaries.size(), 1u);
  ExpectSummary(rest.summaries[0], {.reason = v1::END_REASON_ALL_COMPLETED,
                                    .succeeded = kTargets});
}

TEST_F(ProberServiceTest, ALoneResultIsNotHeldBackForCompany) {
  ServiceHarness server;
  v1::ProbeBatchRequest request =
      BatchRequest({target_.url("/delay/3000"), target_.url("/status/200")});
  request.set_max_results_per_event(100);
  grpc::ClientContext context;
  const absl::Time start = absl::Now();
  auto reader = server.stub().StreamProbes(&context, request);
  v1::ProbeEvent first;
  ASSERT_TRUE(reader->Read(&first));
  // The slow target answers 3 s after its request; the fast result came
  // alone, without waiting for it.
  EXPECT_LT(absl::Now() - start, absl::Seconds(3));
  ASSERT_TRUE(first.has_results()) << first.DebugString();
  ASSERT_EQ(first.results().results_size(), 1);
  EXPECT_EQ(first.results().results(0).index(), 1u);
  EXPECT_EQ(first.results().results(0).status_code(), 200u);

  StreamOutcome rest = ReadStream(*reader);
  ASSERT_TRUE(rest.status.ok()) << rest.status.error_message();
  EXPECT_THAT(rest.group_sizes, ElementsAre(1));
  ASSERT_EQ(rest.results.size(), 1u);
  EXPECT_EQ(rest.results[0].index(), 0u);
  ASSERT_EQ(rest.summaries.size(), 1u);
  ExpectSummary(rest.summaries[0], {.reason = v1::END_REASON_ALL_COMPLETED,
                                    .succeeded = 2,
                                    .min_elapsed = absl::Seconds(3)});
}

TEST_F(ProberServiceTest, LogsOneJsonLinePerBatch) {
  ServiceHarness server;
  grpc::ClientContext context;
  v1::ProbeBatchResponse response;
  v1::ProbeBatchRequest request =
      BatchRequest({target_.url("/status/200"), target_.url("/status/404")});
  request.set_return_when(v1::RETURN_WHEN_FIRST_EXCEPTION);
  ASSERT_TRUE(server.stub().ProbeBatch(&context, request, &response).ok());
  ASSERT_TRUE(server.log().WaitForLines(1));
  const std::string line = server.log().Lines()[0];
  EXPECT_THAT(line,
              AllOf(StartsWith("{"), HasSubstr(R"("rpc":"ProbeBatch")"),
                    HasSubstr(R"("peer":"ipv4:127.0.0.1:)"),
                    HasSubstr(R"("targets":2)"),
                    HasSubstr(R"("return_when":"FIRST_EXCEPTION")"),
                    HasSubstr(R"("completed":)"), HasSubstr(R"("succeeded":)"),
                    HasSubstr(R"("failed":1)"), HasSubstr(R"("elapsed_ms":)")));
  EXPECT_EQ(server.log().Lines().size(), 1u);
}

TEST_F(ProberServiceTest, TargetOptionsOverrideDefaultsFieldByField) {
  ServiceHarness server;
  v1::ProbeBatchRequest request =
      BatchRequest({target_.url("/echo_headers"), target_.url("/echo_headers"),
                    target_.url("/status/404")});
  v1::ProbeOptions& defaults = *request.mutable_defaults();
  defaults.set_method("POST");
  v1::Header* header = defaults.mutable_headers()->add_headers();
  header->set_name("X-Fanprobe-Test");
  header->set_value("defaults");
  // Target 1 keeps the method, replaces the headers with none.
  request.mutable_targets(1)->mutable_options()->mutable_headers();
  // Target 2 accepts 404.
  v1::StatusRange* range = request.mutable_targets(2)
                               ->mutable_options()
                               ->mutable_valid_status()
                               ->add_ranges();
  range->set_min(404);
  range->set_max(404);
  grpc::ClientContext context;
  v1::ProbeBatchResponse response;
  ASSERT_TRUE(server.stub().ProbeBatch(&context, request, &response).ok());

  EXPECT_EQ(response.summary().succeeded(), 3u);
  std::vector<testing::RecordedRequest> seen = target_.Requests();
  ASSERT_EQ(seen.size(), 3u);
  int with_header = 0;
  for (const testing::RecordedRequest& r : seen) {
    EXPECT_EQ(r.method, "POST");
    for (const auto& [name, value] : r.headers) {
      if (name == "X-Fanprobe-Test") {
        EXPECT_EQ(value, "defaults");
        ++with_header;
      }
    }
  }
  EXPECT_EQ(with_header, 2);  // targets 0 and 2
}

// The server's caps are the engine's (EngineOptions::limits); a request
// beyond one is refused before anything is sent, with the engine's words.
TEST_F(ProberServiceTest, RequestsBeyondTheServersCapsSendNothing) {
  ServiceHarness server({}, {.limits = {.max_body_bytes = 1000,
                                        .max_request_header_bytes = 512,
                                        .max_request_body_bytes = 100,
                                        .max_redirects = 2}});
  v1::ProbeBatchRequest request =
      BatchRequest({target_.url("/status/200"), target_.url("/status/200"),
                    target_.url("/status/200"), target_.url("/status/200")});
  request.mutable_targets(3)->mutable_options()->set_max_body_bytes(1001);
  grpc::ClientContext context;
  v1::ProbeBatchResponse response;
  grpc::Status status = server.stub().ProbeBatch(&context, request, &response);
  EXPECT_EQ(status.error_code(), grpc::StatusCode::INVALID_ARGUMENT);
  EXPECT_EQ(status.error_message(),
            "targets[3].options.max_body_bytes: 1001 is above this server's "
            "limit of 1000");

  request.mutable_targets(3)->mutable_options()->set_max_body_bytes(1000);
  request.mutable_defaults()->set_max_redirects(3);
  grpc::ClientContext stream_context;
  auto reader = server.stub().StreamProbes(&stream_context, request);
  const StreamOutcome outcome = ReadStream(*reader);
  EXPECT_EQ(outcome.status.error_code(), grpc::StatusCode::INVALID_ARGUMENT);
  EXPECT_EQ(outcome.status.error_message(),
            "defaults.max_redirects: 3 is above this server's limit of 2");
  EXPECT_THAT(outcome.results, IsEmpty());

  EXPECT_EQ(server.service().Stats().batches_started, 0u);
  EXPECT_EQ(target_.Stats().http.requests, 0);

  // At the caps, it runs.
  request.mutable_defaults()->set_max_redirects(2);
  grpc::ClientContext ok_context;
  status = server.stub().ProbeBatch(&ok_context, request, &response);
  ASSERT_TRUE(status.ok()) << status.error_message();
  EXPECT_EQ(response.summary().succeeded(), 4u);
}

// The redirect chain arrives as hops: each request's URL, status, Location,
// address and timings.
TEST_F(ProberServiceTest, ARedirectChainArrivesHopByHop) {
  ServiceHarness server;
  v1::ProbeBatchRequest request = BatchRequest({target_.url("/redirect/2")});
  grpc::ClientContext context;
  v1::ProbeBatchResponse response;
  ASSERT_TRUE(server.stub().ProbeBatch(&context, request, &response).ok());
  ASSERT_EQ(response.done_size(), 1);
  const v1::ProbeResult& result = response.done(0);
  EXPECT_EQ(result.outcome(), v1::OUTCOME_OK) << result.error();
  EXPECT_EQ(result.redirects(), 2u);
  EXPECT_EQ(result.final_url(), target_.url("/status/200"));
  ASSERT_EQ(result.hops_size(), 3);
  const std::vector<std::pair<std::string, std::string>> expected = {
      {target_.url("/redirect/2"), target_.url("/redirect/1")},
      {target_.url("/redirect/1"), target_.url("/status/200")},
      {target_.url("/status/200"), ""}};
  for (int i = 0; i < 3; ++i) {
    SCOPED_TRACE(i);
    const v1::Hop& hop = result.hops(i);
    EXPECT_EQ(hop.url(), expected[i].first);
    EXPECT_EQ(hop.status_code(), i < 2 ? 302u : 200u);
    EXPECT_EQ(hop.location(), expected[i].second);
    EXPECT_EQ(hop.remote_ip(), "127.0.0.1");
    EXPECT_EQ(hop.remote_port(), static_cast<uint32_t>(target_.port()));
    const absl::Duration total =
        DurationFromProto(hop.timings().total()).value();
    EXPECT_GT(total, absl::ZeroDuration());
    EXPECT_LE(DurationFromProto(hop.timings().first_byte()).value(), total);
  }
  EXPECT_EQ(result.dns_failure(), v1::DNS_FAILURE_UNSPECIFIED);
  EXPECT_FALSE(result.has_tls());
  EXPECT_EQ(target_.Stats().http.requests, 3);
}

// An https probe says which session it had: version, cipher, a full
// handshake, and the certificate the server presented.
TEST_F(ProberServiceTest, ATlsProbeCarriesItsSession) {
  const testing::TestCa ca("service test CA");
  testing::TlsTargetServer tls_target(ca, {.allow_resumption = true});
  ServiceHarness server;
  v1::ProbeBatchRequest request =
      BatchRequest({tls_target.url("/status/200"), target_.url("/status/200")});
  request.mutable_defaults()->set_ca_pem(ca.cert_pem());
  grpc::ClientContext context;
  v1::ProbeBatchResponse response;
  ASSERT_TRUE(server.stub().ProbeBatch(&context, request, &response).ok());
  ASSERT_EQ(response.done_size(), 2);
  const v1::ProbeResult& https = response.done(0);
  ASSERT_EQ(https.outcome(), v1::OUTCOME_OK) << https.error();
  ASSERT_TRUE(https.has_tls());
  EXPECT_EQ(https.tls().version(), tls_target.Stats().last_protocol);
  EXPECT_THAT(https.tls().version(), StartsWith("TLSv1."));
  EXPECT_THAT(https.tls().cipher(), ::testing::Not(IsEmpty()));
  EXPECT_FALSE(https.tls().resumed());  // a fresh probe, a full handshake
  ASSERT_GE(https.tls().chain_size(), 1);
  const v1::CertificateInfo& leaf = https.tls().chain(0);
  EXPECT_THAT(leaf.subject(), ::testing::HasSubstr("CN=localhost"));
  EXPECT_THAT(leaf.issuer(), ::testing::HasSubstr("CN=service test CA"));
  EXPECT_THAT(leaf.sha256_fingerprint(),
              ::testing::MatchesRegex("[0-9a-f]{64}"));
  EXPECT_THAT(leaf.serial(), ::testing::MatchesRegex("[0-9a-f]+"));
  const absl::Time now = absl::Now();
  EXPECT_LT(absl::FromUnixSeconds(leaf.not_before().seconds()), now);
  EXPECT_GT(absl::FromUnixSeconds(leaf.not_after().seconds()), now);
  EXPECT_LE(https.cert_expiry().seconds(), leaf.not_after().seconds());
  // http:// has no TLS session.
  EXPECT_EQ(response.done(1).outcome(), v1::OUTCOME_OK);
  EXPECT_FALSE(response.done(1).has_tls());
}

// Names resolve through the server's DNS servers (EngineOptions::
// dns_servers, --dns_server), and how a lookup failed is in the result.
TEST_F(ProberServiceTest, DnsFailuresAreClassified) {
  absl::StatusOr<std::unique_ptr<testing::DnsServer>> started =
      testing::DnsServer::Start();
  ASSERT_TRUE(started.ok()) << started.status();
  testing::DnsServer& dns = **started;
  dns.AddA("web.test", "127.0.0.1");
  dns.SetRcode("broken.test", testing::DnsServer::kServFail);
  dns.SetRcode("closed.test", testing::DnsServer::kRefused);
  dns.AddAaaa("v6only.test", "::1");
  ServiceHarness server({}, {.dns_servers = {dns.address()},
                             .dns_timeout = absl::Seconds(5),
                             .hosts_file = ""});
  const std::string port = absl::StrCat(":", target_.port());
  v1::ProbeBatchRequest request =
      BatchRequest({absl::StrCat("http://web.test", port, "/status/200"),
                    absl::StrCat("http://missing.test", port, "/"),
                    absl::StrCat("http://broken.test", port, "/"),
                    absl::StrCat("http://closed.test", port, "/"),
                    absl::StrCat("http://v6only.test", port, "/")});
  request.mutable_targets(4)->mutable_options()->set_ip_family(
      v1::IP_FAMILY_IPV4);
  grpc::ClientContext context;
  v1::ProbeBatchResponse response;
  ASSERT_TRUE(server.stub().ProbeBatch(&context, request, &response).ok());
  ASSERT_EQ(response.done_size(), 5);
  EXPECT_EQ(response.done(0).outcome(), v1::OUTCOME_OK)
      << response.done(0).error();
  EXPECT_EQ(response.done(0).dns_failure(), v1::DNS_FAILURE_UNSPECIFIED);
  ASSERT_EQ(response.done(0).hops_size(), 1);
  EXPECT_THAT(response.done(0).hops(0).addresses(), Contains("127.0.0.1"));
  const std::vector<v1::DnsFailure> failures = {
      v1::DNS_FAILURE_NXDOMAIN, v1::DNS_FAILURE_SERVFAIL,
      v1::DNS_FAILURE_REFUSED, v1::DNS_FAILURE_NODATA};
  for (int i = 1; i < 5; ++i) {
    SCOPED_TRACE(request.targets(i).url());
    EXPECT_EQ(response.done(i).outcome(), v1::OUTCOME_DNS_ERROR);
    EXPECT_EQ(response.done(i).dns_failure(), failures[i - 1])
        << response.done(i).error();
    // The one hop began and found no address: no response, no connection.
    ASSERT_EQ(response.done(i).hops_size(), 1);
    EXPECT_EQ(response.done(i).hops(0).url(), request.targets(i).url());
    EXPECT_EQ(response.done(i).hops(0).status_code(), 0u);
    EXPECT_EQ(response.done(i).hops(0).remote_ip(), "");
  }
  // They were asked of the test server, not of the machine's resolver.
  EXPECT_GE(dns.QueryCount("missing.test"), 1u);
  EXPECT_GE(dns.QueryCount("web.test"), 1u);
  EXPECT_EQ(target_.Stats().http.requests, 1);
}

}  // namespace
}  // namespace fanprobe
