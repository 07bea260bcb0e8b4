// remote_share_test.cc: a share run on a real, in-process fanprobe server
// (cli/remote_share.h): its stream, its errors as the user reads them, and
// a cancel before or during the call.

#include "cli/remote_share.h"

#include <algorithm>
#include <cstdint>
#include <string>
#include <thread>
#include <utility>
#include <vector>

#include "absl/status/status.h"
#include "absl/status/statusor.h"
#include "absl/strings/str_cat.h"
#include "cli/connection.h"
#include "fanprobe/v1/prober.pb.h"
#include "gmock/gmock.h"
#include "gtest/gtest.h"
#include "tests/support/batches.h"
#include "tests/support/target_server.h"
#include "tests/support/test_server.h"
#include "tests/support/wait.h"

namespace fanprobe::cli {
namespace {

using ::fanprobe::testing::BatchRequest;
using ::fanprobe::testing::kPatience;
using ::fanprobe::testing::RefusedPort;
using ::fanprobe::testing::TargetServer;
using ::fanprobe::testing::TargetStats;
using ::fanprobe::testing::TestServer;
using ::testing::StartsWith;

Connection Plaintext() { return *Connection::Resolve({}); }

TEST(RemoteShareTest, PassesEveryEventOfTheStreamInOrder) {
  TargetServer target;
  TestServer server;
  const Connection connection = Plaintext();
  RemoteShare share(server.address(), connection);
  EXPECT_EQ(share.name(), server.address());
  std::vector<v1::ProbeEvent> events;
  const absl::Status status = share.Run(
      BatchRequest({target.url("/status/200"), target.url("/status/503")}),
      [&](v1::ProbeEvent event) { events.push_back(std::move(event)); });
  ASSERT_TRUE(status.ok()) << status;
  ASSERT_EQ(events.size(), 3u);
  EXPECT_TRUE(events[0].has_result());
  EXPECT_TRUE(events[1].has_result());
  ASSERT_TRUE(events[2].has_summary());
  EXPECT_EQ(events[2].summary().succeeded(), 1u);
  EXPECT_EQ(events[2].summary().failed(), 1u);
}

TEST(RemoteShareTest, HandsOnResultsSentTogetherOneByOne) {
  TargetServer target;
  TestServer server;
  const Connection connection = Plaintext();
  RemoteShare share(server.address(), connection);
  v1::ProbeBatchRequest request =
      BatchRequest(std::vector<std::string>(50, target.url("/status/200")));
  request.set_max_results_per_event(256);
  std::vector<v1::ProbeEvent> events;
  const absl::Status status = share.Run(request, [&](v1::ProbeEvent event) {
    events.push_back(std::move(event));
  });
  ASSERT_TRUE(status.ok()) << status;
  ASSERT_EQ(events.size(), 51u);
  std::vector<uint32_t> indices;
  for (size_t i = 0; i < 50; ++i) {
    ASSERT_TRUE(events[i].has_result()) << events[i].DebugString();
    indices.push_back(events[i].result().index());
  }
  std::sort(indices.begin(), indices.end());
  for (uint32_t i = 0; i < 50; ++i) EXPECT_EQ(indices[i], i);
  ASSERT_TRUE(events[50].has_summary());
  EXPECT_EQ(events[50].summary().succeeded(), 50u);
}

TEST(RemoteShareTest, AFailedCallKeepsItsCodeAndNamesTheServer) {
  RefusedPort refused;
  const std::string address = absl::StrCat("127.0.0.1:", refused.port());
  const Connection connection = Plaintext();
  RemoteShare share(address, connection);
  int events = 0;
  const absl::Status status = share.Run(BatchRequest({"http://127.0.0.1:1/"}),
                                        [&](v1::ProbeEvent) { ++events; });
  EXPECT_EQ(status.code(), absl::StatusCode::kUnavailable);
  EXPECT_THAT(std::string(status.message()),
              StartsWith(absl::StrCat("StreamProbes on ", address,
                                      " failed: UNAVAILABLE: ")));
  EXPECT_EQ(events, 0);
}

TEST(RemoteShareTest, CancelledBeforeTheCallItEndsAtOnce) {
  TargetServer target;
  TestServer server;
  const Connection connection = Plaintext();
  RemoteShare share(server.address(), connection);
  share.Cancel();
  const absl::Status status =
      share.Run(BatchRequest({target.raw_url("/hang")}), [](v1::ProbeEvent) {});
  EXPECT_EQ(status.code(), absl::StatusCode::kCancelled) << status;
  // The call never reached the server.
  EXPECT_EQ(server.server().service().Stats().batches_started, 0u);
  EXPECT_EQ(target.Stats().raw.connections, 0);
}

TEST(RemoteShareTest, CancelDuringTheCallEndsItAndItsProbes) {
  TargetServer target;
  TestServer server;
  const Connection connection = Plaintext();
  RemoteShare share(server.address(), connection);
  absl::Status status;
  std::thread run([&] {
    status = share.Run(BatchRequest({target.raw_url("/hang")}),
                       [](v1::ProbeEvent) {});
  });
  ASSERT_TRUE(target.WaitFor(
      [](const TargetStats& s) { return s.raw.in_flight == 1; }, kPatience));
  share.Cancel();
  run.join();
  EXPECT_EQ(status.code(), absl::StatusCode::kCancelled) << status;
  EXPECT_TRUE(target.WaitFor(
      [](const TargetStats& s) { return s.raw.abandoned == 1; }, kPatience));
}

TEST(RemoteShareTest, ALargeBatchGoesMessageByMessageThroughProbeStream) {
  // A server that takes at most 500 targets in one message: 1,200 in one
  // StreamProbes request are refused, and the same through ProbeStream, in
  // messages of 500, all run.
  TargetServer target;
  server::ServerOptions options;
  options.service.limits.max_batch_targets = RemoteShare::kTargetsPerMessage;
  TestServer server(options);
  const Connection connection = Plaintext();
  v1::ProbeBatchRequest request =
      BatchRequest(std::vector<std::string>(1200, target.url("/status/200")));
  request.set_max_results_per_event(256);

  RemoteShare whole(server.address(), connection);
  const absl::Status refused = whole.Run(request, [](v1::ProbeEvent) {});
  EXPECT_EQ(refused.code(), absl::StatusCode::kInvalidArgument);
  EXPECT_THAT(std::string(refused.message()),
              StartsWith(absl::StrCat("StreamProbes on ", server.address(),
                                      " failed: INVALID_ARGUMENT: targets: "
                                      "1200 targets, more than")));

  RemoteShare streamed(server.address(), connection, /*stream_above=*/1000);
  std::vector<uint32_t> indices;
  std::vector<v1::BatchSummary> summaries;
  const absl::Status status = streamed.Run(request, [&](v1::ProbeEvent event) {
    if (event.has_result()) indices.push_back(event.result().index());
    if (event.has_summary()) summaries.push_back(event.summary());
  });
  ASSERT_TRUE(status.ok()) << status;
  std::sort(indices.begin(), indices.end());
  ASSERT_EQ(indices.size(), 1200u);
  for (uint32_t i = 0; i < 1200; ++i) ASSERT_EQ(indices[i], i);
  ASSERT_EQ(summaries.size(), 1u);
  EXPECT_EQ(summaries[0].total(), 1200u);
  EXPECT_EQ(summaries[0].succeeded(), 1200u);
  ASSERT_TRUE(server.log().WaitForLines(1));
  EXPECT_THAT(
      server.log().Lines(),
      ::testing::Contains(::testing::HasSubstr(R"("rpc":"ProbeStream")")));
}

}  // namespace
}  // namespace fanprobe::cli
