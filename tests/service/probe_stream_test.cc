// ProbeStream through a real gRPC client: targets sent message by message,
// read by the server only as their results come back, and the stream's
// ends -- closed, abandoned, unread, cancelled, or broken by a bad message.

#include <algorithm>
#include <atomic>
#include <memory>
#include <string>
#include <thread>
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
#include "tests/support/target_server.h"
#include "tests/support/wait.h"

namespace fanprobe {
namespace {

using ::fanprobe::testing::BatchRequest;
using ::fanprobe::testing::ExpectSummary;
using ::fanprobe::testing::FieldViolationOf;
using ::fanprobe::testing::kPatience;
using ::fanprobe::testing::ReadStream;
using ::fanprobe::testing::ServiceHarness;
using ::fanprobe::testing::SlowReaderArguments;
using ::fanprobe::testing::StreamOutcome;
using ::fanprobe::testing::TargetServer;
using ::fanprobe::testing::TargetStats;
using ::fanprobe::testing::WaitUntil;
using ::testing::ElementsAreArray;
using ::testing::HasSubstr;
using ::testing::IsEmpty;
using ::testing::Not;

using Stream = grpc::ClientReaderWriter<v1::ProbeStreamRequest, v1::ProbeEvent>;

// The first message: settings, and `urls` as the first targets.
v1::ProbeStreamRequest First(const std::vector<std::string>& urls,
                             uint32_t max_concurrency = 0) {
  v1::ProbeStreamRequest message;
  *message.mutable_batch() = BatchRequest(urls);
  if (urls.empty()) message.mutable_batch()->clear_targets();
  message.mutable_batch()->set_max_concurrency(max_concurrency);
  return message;
}

// A later message of `urls`.
v1::ProbeStreamRequest More(const std::vector<std::string>& urls) {
  v1::ProbeStreamRequest message;
  for (const std::string& url : urls) message.add_targets()->set_url(url);
  return message;
}

// The indices of `results`, ascending.
std::vector<uint32_t> SortedIndices(
    const std::vector<v1::ProbeResult>& results) {
  std::vector<uint32_t> indices;
  for (const v1::ProbeResult& result : results) {
    indices.push_back(result.index());
  }
  std::sort(indices.begin(), indices.end());
  return indices;
}

std::vector<uint32_t> Range(uint32_t count) {
  std::vector<uint32_t> all(count);
  for (uint32_t i = 0; i < count; ++i) all[i] = i;
  return all;
}

class ProbeStreamTest : public ::testing::Test {
 protected:
  TargetServer target_;
};

TEST_F(ProbeStreamTest, TargetsOfEveryMessageAreIndexedInStreamOrder) {
  ServiceHarness server;
  grpc::ClientContext context;
  std::unique_ptr<Stream> stream = server.stub().ProbeStream(&context);
  v1::ProbeStreamRequest first = First({target_.url("/status/200")});
  first.add_targets()->set_url(target_.url("/status/503"));
  ASSERT_TRUE(stream->Write(first));
  ASSERT_TRUE(stream->Write(More({target_.url("/status/201")})));
  v1::ProbeStreamRequest labelled = More({target_.url("/status/202")});
  labelled.mutable_targets(0)->set_id("late");
  ASSERT_TRUE(stream->Write(labelled));
  ASSERT_TRUE(stream->Write(More({"ftp://nowhere.test/"})));
  ASSERT_TRUE(stream->WritesDone());

  StreamOutcome outcome = ReadStream(*stream);
  ASSERT_TRUE(outcome.status.ok()) << outcome.status.error_message();
  ASSERT_EQ(outcome.results.size(), 5u);
  std::sort(outcome.results.begin(), outcome.results.end(),
            [](const auto& a, const auto& b) { return a.index() < b.index(); });
  EXPECT_EQ(outcome.results[0].status_code(), 200u);
  EXPECT_EQ(outcome.results[1].status_code(), 503u);
  EXPECT_EQ(outcome.results[2].status_code(), 201u);
  EXPECT_EQ(outcome.results[3].status_code(), 202u);
  EXPECT_EQ(outcome.results[3].id(), "late");
  EXPECT_EQ(outcome.results[4].outcome(), v1::OUTCOME_INVALID_TARGET);
  ASSERT_EQ(outcome.summaries.size(), 1u);
  ExpectSummary(outcome.summaries[0], {.reason = v1::END_REASON_ALL_COMPLETED,
                                       .total = 5,
                                       .completed = 5,
                                       .succeeded = 3,
                                       .failed = 2,
                                       .pending = {{}}});
  ASSERT_TRUE(server.log().WaitForLines(1));
  EXPECT_THAT(server.log().Lines()[0], HasSubstr(R"("rpc":"ProbeStream")"));
  EXPECT_THAT(server.log().Lines()[0], HasSubstr(R"("targets":5)"));
}

TEST_F(ProbeStreamTest, ManyTargetsPassThroughAServerThatReadsOnlyWhatRuns) {
  // 10,000 targets in messages of 500, 50 at a time: the client writes as
  // fast as gRPC lets it, the server reads a message only when fewer than
  // 50 of the targets it has read are still running, so it never holds
  // more than 50 + 500.
  constexpr int kTargets = 10000;
  constexpr int kPerMessage = 500;
  constexpr uint32_t kConcurrency = 50;
  ServiceHarness server;
  grpc::ClientContext context;
  std::unique_ptr<Stream> stream = server.stub().ProbeStream(&context);
  v1::ProbeStreamRequest first = First({}, kConcurrency);
  first.mutable_batch()->set_max_results_per_event(256);
  ASSERT_TRUE(stream->Write(first));
  std::thread writer([&] {
    for (int sent = 0; sent < kTargets; sent += kPerMessage) {
      std::vector<std::string> urls(kPerMessage, target_.url("/status/200"));
      if (!stream->Write(More(urls))) return;
    }
    stream->WritesDone();
  });
  StreamOutcome outcome = ReadStream(*stream);
  writer.join();
  ASSERT_TRUE(outcome.status.ok()) << outcome.status.error_message();
  // Results that waited together came together, as the first message
  // asked.
  EXPECT_THAT(outcome.group_sizes, Not(IsEmpty()));
  EXPECT_THAT(SortedIndices(outcome.results),
              ElementsAreArray(Range(kTargets)));
  ASSERT_EQ(outcome.summaries.size(), 1u);
  ExpectSummary(outcome.summaries[0], {.reason = v1::END_REASON_ALL_COMPLETED,
                                       .total = kTargets,
                                       .succeeded = kTargets,
                                       .pending = {{}}});
  const uint64_t peak = server.service().Stats().peak_stream_outstanding;
  EXPECT_GT(peak, 0u);
  EXPECT_LE(peak, kConcurrency + kPerMessage);
  EXPECT_EQ(server.service().Stats().pending_probes, 0u);
}

TEST_F(ProbeStreamTest,
       AClientThatStopsSendingKeepsItsBatchOpenUntilItsTimeout) {
  ServiceHarness server;
  grpc::ClientContext context;
  std::unique_ptr<Stream> stream = server.stub().ProbeStream(&context);
  v1::ProbeStreamRequest first =
      First({target_.url("/status/200"), target_.url("/status/200")});
  DurationToProto(absl::Seconds(1), first.mutable_batch()->mutable_timeout());
  ASSERT_TRUE(stream->Write(first));
  // Both results come, and the batch does not end with them: the client
  // may send more.  It never does, nor closes its side: the timeout ends it.
  StreamOutcome outcome = ReadStream(*stream);
  ASSERT_TRUE(outcome.status.ok()) << outcome.status.error_message();
  EXPECT_EQ(outcome.results.size(), 2u);
  ASSERT_EQ(outcome.summaries.size(), 1u);
  ExpectSummary(outcome.summaries[0], {.reason = v1::END_REASON_TIMEOUT,
                                       .total = 2,
                                       .completed = 2,
                                       .cancelled = 0,
                                       .pending = {{}},
                                       .min_elapsed = absl::Seconds(1)});
}

TEST_F(ProbeStreamTest,
       AClientThatStopsReadingStopsTheServerReadingItsTargets) {
  constexpr uint32_t kConcurrency = 2;
  constexpr int kPerMessage = 100;
  constexpr int kMessages = 2000;
  service::ServiceOptions options;
  options.stream_queue_limit = 8;
  ServiceHarness server(options);
  auto stub = v1::Prober::NewStub(server.NewChannel(SlowReaderArguments()));
  grpc::ClientContext context;
  std::unique_ptr<Stream> stream = stub->ProbeStream(&context);
  ASSERT_TRUE(stream->Write(First({}, kConcurrency)));
  std::atomic<int> written{0};
  std::thread writer([&] {
    for (int i = 0; i < kMessages; ++i) {
      std::vector<std::string> urls(kPerMessage, target_.url("/status/200"));
      if (!stream->Write(More(urls))) return;
      ++written;
    }
  });
  // Nothing is read: the stream's queue fills, its batch pauses, and with
  // no result coming back the server reads no further message.
  ASSERT_TRUE(
      WaitUntil([&] { return server.service().Stats().paused_streams == 1; }));
  ASSERT_TRUE(
      WaitUntil([&] { return server.engine().Stats().probes_in_flight == 0; }));
  const int probed = target_.Stats().http.requests;
  EXPECT_LE(server.service().Stats().peak_stream_outstanding,
            kConcurrency + kPerMessage);
  EXPECT_LT(probed, kConcurrency + kPerMessage + 8);
  // The client's writes back up too (gRPC's flow control), well short of
  // all of them.
  EXPECT_LT(written.load(), kMessages);

  context.TryCancel();
  writer.join();
  EXPECT_EQ(stream->Finish().error_code(), grpc::StatusCode::CANCELLED);
  ASSERT_TRUE(server.service().WaitUntilIdle(absl::Now() + kPatience));
  EXPECT_EQ(server.service().Stats().pending_probes, 0u);
}

TEST_F(ProbeStreamTest, CancellingMidStreamClosesTargetConnectionsAtOnce) {
  ServiceHarness server;
  grpc::ClientContext context;
  std::unique_ptr<Stream> stream = server.stub().ProbeStream(&context);
  ASSERT_TRUE(stream->Write(First({target_.raw_url("/hang")}, 3)));
  ASSERT_TRUE(stream->Write(
      More({target_.raw_url("/hang"), target_.raw_url("/hang")})));
  ASSERT_TRUE(target_.WaitFor(
      [](const TargetStats& s) { return s.raw.in_flight == 3; }, kPatience));
  context.TryCancel();
  ASSERT_TRUE(target_.WaitFor(
      [](const TargetStats& s) {
        return s.raw.abandoned == 3 && s.raw.open_connections == 0;
      },
      kPatience));
  EXPECT_EQ(stream->Finish().error_code(), grpc::StatusCode::CANCELLED);
  ASSERT_TRUE(server.log().WaitForLines(1));
  EXPECT_THAT(server.log().Lines()[0], HasSubstr(R"("reason":"CANCELLED")"));
  EXPECT_THAT(server.log().Lines()[0], HasSubstr(R"("cancelled":3)"));
}

TEST_F(ProbeStreamTest, FirstCompletedEndsTheStreamAndSaysHowManyWereRead) {
  ServiceHarness server;
  grpc::ClientContext context;
  std::unique_ptr<Stream> stream = server.stub().ProbeStream(&context);
  v1::ProbeStreamRequest first =
      First({target_.raw_url("/hang"), target_.url("/status/200")});
  first.mutable_batch()->set_return_when(v1::RETURN_WHEN_FIRST_COMPLETED);
  ASSERT_TRUE(stream->Write(first));
  StreamOutcome outcome = ReadStream(*stream);
  ASSERT_TRUE(outcome.status.ok()) << outcome.status.error_message();
  ASSERT_EQ(outcome.results.size(), 1u);
  EXPECT_EQ(outcome.results[0].index(), 1u);
  ASSERT_EQ(outcome.summaries.size(), 1u);
  ExpectSummary(outcome.summaries[0], {.reason = v1::END_REASON_FIRST_COMPLETED,
                                       .total = 2,
                                       .completed = 1,
                                       .cancelled = 1,
                                       .pending = {{0}}});
}

TEST_F(ProbeStreamTest, ABadMessageEndsTheStreamNamingItsTargetByStreamIndex) {
  ServiceHarness server;
  grpc::ClientContext context;
  std::unique_ptr<Stream> stream = server.stub().ProbeStream(&context);
  ASSERT_TRUE(stream->Write(First({target_.url("/status/200")})));
  v1::ProbeEvent event;
  ASSERT_TRUE(stream->Read(&event));
  ASSERT_TRUE(event.has_result());

  v1::ProbeStreamRequest bad =
      More({target_.url("/status/200"), target_.url("/status/200")});
  DurationToProto(absl::ZeroDuration(),
                  bad.mutable_targets(1)->mutable_options()->mutable_timeout());
  stream->Write(bad);
  StreamOutcome rest = ReadStream(*stream);
  EXPECT_EQ(rest.status.error_code(), grpc::StatusCode::INVALID_ARGUMENT);
  EXPECT_THAT(rest.status.error_message(),
              HasSubstr("targets[2].options.timeout: must be positive"));
  std::optional<v1::FieldViolation> violation = FieldViolationOf(rest.status);
  ASSERT_TRUE(violation);
  EXPECT_EQ(violation->field(), "targets[2].options.timeout");
  EXPECT_THAT(rest.summaries, IsEmpty());
  ASSERT_TRUE(server.service().WaitUntilIdle(absl::Now() + kPatience));
}

TEST_F(ProbeStreamTest, TheFirstMessageMustHoldTheSettings) {
  ServiceHarness server;
  {
    grpc::ClientContext context;
    std::unique_ptr<Stream> stream = server.stub().ProbeStream(&context);
    stream->Write(More({target_.url("/status/200")}));
    stream->WritesDone();
    StreamOutcome outcome = ReadStream(*stream);
    EXPECT_EQ(outcome.status.error_code(), grpc::StatusCode::INVALID_ARGUMENT);
    EXPECT_EQ(outcome.status.error_message(),
              "batch: the first message must hold the batch's settings");
  }
  {
    grpc::ClientContext context;
    std::unique_ptr<Stream> stream = server.stub().ProbeStream(&context);
    stream->WritesDone();
    StreamOutcome outcome = ReadStream(*stream);
    EXPECT_EQ(outcome.status.error_code(), grpc::StatusCode::INVALID_ARGUMENT);
    EXPECT_EQ(outcome.status.error_message(),
              "batch: the stream ended before its first message");
  }
  {
    grpc::ClientContext context;
    std::unique_ptr<Stream> stream = server.stub().ProbeStream(&context);
    v1::ProbeStreamRequest first = First({target_.url("/status/200")});
    DurationToProto(absl::Seconds(-1),
                    first.mutable_batch()->mutable_timeout());
    stream->Write(first);
    stream->WritesDone();
    StreamOutcome outcome = ReadStream(*stream);
    EXPECT_EQ(outcome.status.error_code(), grpc::StatusCode::INVALID_ARGUMENT);
    EXPECT_THAT(outcome.status.error_message(), HasSubstr("batch.timeout: "));
    EXPECT_EQ(target_.Stats().http.requests, 0);
  }
  ASSERT_TRUE(server.service().WaitUntilIdle(absl::Now() + kPatience));
  EXPECT_EQ(server.service().Stats().batches_started, 0u);
}

}  // namespace
}  // namespace fanprobe
