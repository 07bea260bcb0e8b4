// service_monitoring_test.cc: server/service_monitoring.h -- the gRPC
// service's calls counted in fanprobe's metrics, and the saturation rule
// /readyz applies to the engine and the service together.

#include "server/service_monitoring.h"

#include <string>

#include "absl/status/status.h"
#include "absl/time/time.h"
#include "gmock/gmock.h"
#include "gtest/gtest.h"
#include "monitoring/metrics.h"
#include "probe/engine.h"
#include "service/prober_service.h"
#include "tests/support/prom_text.h"

namespace fanprobe::server {
namespace {

using ::fanprobe::testing::Exposition;
using ::fanprobe::testing::ParseOrFail;
using ::testing::HasSubstr;

TEST(ServiceMetricsObserverTest, CountsStreamsRefusalsAndQueueWaits) {
  monitoring::ServerMetrics metrics;
  ServiceMetricsObserver observer(metrics);
  observer.CallRejected("ProbeBatch", absl::StatusCode::kResourceExhausted);
  observer.CallStarted("StreamProbes");
  observer.CallStarted("StreamProbes");
  observer.CallStarted("ProbeBatch");  // not a stream
  observer.CallEnded("StreamProbes");
  observer.StreamQueueWait(absl::Microseconds(50));

  const Exposition m = ParseOrFail(metrics.Render());
  EXPECT_EQ(m.Value("fanprobe_requests_rejected_total",
                    {{"api", "grpc"}, {"reason", "RESOURCE_EXHAUSTED"}}),
            1);
  EXPECT_EQ(m.Value("fanprobe_streams_active"), 1);
  EXPECT_EQ(m.Value("fanprobe_stream_queue_wait_seconds_count"), 1);
}

TEST(SaturationTest, EngineAtItsCapWithProbesWaiting) {
  EngineStats engine{
      .probes_in_flight = 10, .probes_queued = 0, .max_in_flight = 10};
  EXPECT_TRUE(SaturationStatus(engine, {}, 100).ok());  // full, none waiting
  engine.probes_queued = 3;
  absl::Status status = SaturationStatus(engine, {}, 100);
  EXPECT_EQ(status.code(), absl::StatusCode::kUnavailable);
  EXPECT_THAT(status.message(), HasSubstr("10 probes in flight"));
  engine.probes_in_flight = 9;  // a slot is free: the queue drains
  EXPECT_TRUE(SaturationStatus(engine, {}, 100).ok());
}

TEST(SaturationTest, PendingProbesAtTheLimit) {
  service::ServiceStats service{.pending_probes = 99};
  EXPECT_TRUE(SaturationStatus({}, service, 100).ok());
  service.pending_probes = 100;
  absl::Status status = SaturationStatus({}, service, 100);
  EXPECT_EQ(status.code(), absl::StatusCode::kUnavailable);
  EXPECT_THAT(status.message(), HasSubstr("--max_pending_probes"));
}

}  // namespace
}  // namespace fanprobe::server
