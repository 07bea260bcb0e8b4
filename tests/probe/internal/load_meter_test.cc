// load_meter_test.cc: the worker's own-load meter, with turns made up by
// the test: the connecting limit follows the CPU a probe costs, and a
// probe learns the longest turn it lived through.

#include "probe/internal/load_meter.h"

#include <cstdint>

#include "gtest/gtest.h"

namespace fanprobe::internal {
namespace {

constexpr int64_t kMs = 1'000'000;

TEST(LoadMeterTest, BeforeAnythingIsLearntAWindowsWorthMayConnect) {
  LoadMeter meter;
  EXPECT_EQ(meter.ConnectingLimit(), 64);
}

TEST(LoadMeterTest, LimitIsTheBudgetOverTheCpuAProbeCosts) {
  LoadMeter meter;
  // 64 probes begun for 64 ms of CPU: 1 ms each -> 250 may connect.
  meter.OnTurn(0, 64 * kMs, 64 * kMs, 64);
  EXPECT_EQ(meter.ConnectingLimit(), 250);
}

TEST(LoadMeterTest, CheapProbesAreNotHeldBack) {
  LoadMeter meter;
  // 50 us each (plain http): 5,000 may connect.
  meter.OnTurn(0, kMs, 64 * 50'000, 64);
  EXPECT_EQ(meter.ConnectingLimit(), 5000);
}

TEST(LoadMeterTest, CostlyProbesStillGetTheMinimum) {
  LoadMeter meter;
  meter.OnTurn(0, kMs, 64 * 100 * kMs, 64);  // 100 ms each
  EXPECT_EQ(meter.ConnectingLimit(), LoadMeter::kMinConnecting);
}

TEST(LoadMeterTest, TheEstimateFollowsTheLoadGradually) {
  LoadMeter meter;
  meter.OnTurn(0, kMs, 64 * kMs, 64);  // 1 ms per probe
  const int64_t before = meter.ConnectingLimit();
  meter.OnTurn(kMs, 2 * kMs, 64 * 3 * kMs, 64);  // 3 ms per probe
  const int64_t after = meter.ConnectingLimit();
  EXPECT_LT(after, before);
  EXPECT_GT(after, 250 / 3);  // not all the way at once
}

TEST(LoadMeterTest, TurnsWithoutNewProbesChargeTheNextOnes) {
  LoadMeter meter;
  // The handshakes of probes begun earlier: CPU, nothing begun.
  for (int i = 0; i < 10; ++i) meter.OnTurn(i, i + 1, 4 * kMs, 0);
  meter.OnTurn(10, 11, 24 * kMs, 64);  // 64 ms for 64 probes
  EXPECT_EQ(meter.ConnectingLimit(), 250);
}

TEST(LoadMeterTest, LongestTurnSinceAProbeBegan) {
  LoadMeter meter;
  meter.OnTurn(0, 40 * kMs, 0, 0);           // 40 ms, before the probe
  meter.OnTurn(100 * kMs, 101 * kMs, 0, 0);  // 1 ms: too short to remember
  meter.OnTurn(200 * kMs, 220 * kMs, 0, 0);  // 20 ms
  meter.OnTurn(300 * kMs, 308 * kMs, 0, 0);  // 8 ms
  EXPECT_EQ(meter.LongestTurnSince(50 * kMs), 20 * kMs);
  EXPECT_EQ(meter.LongestTurnSince(250 * kMs), 8 * kMs);
  EXPECT_EQ(meter.LongestTurnSince(400 * kMs), 0);
  EXPECT_EQ(meter.LongestTurnSince(0), 40 * kMs);
}

TEST(LoadMeterTest, TurnsAreCountedByDuration) {
  LoadMeter meter;
  meter.OnTurn(0, 500'000, 0, 0);     // 0.5 ms -> <= 1 ms
  meter.OnTurn(0, 3 * kMs, 0, 0);     // 3 ms -> <= 5 ms
  meter.OnTurn(0, 2000 * kMs, 0, 0);  // 2 s -> above every bound
  const LagHistogram lag = meter.Lag();
  EXPECT_EQ(lag.count, 3u);
  EXPECT_EQ(lag.counts[0], 1u);
  EXPECT_EQ(lag.counts[2], 1u);
  EXPECT_EQ(lag.counts[kLagBucketCount], 1u);
  EXPECT_NEAR(lag.sum_seconds, 2.0035, 1e-9);
}

}  // namespace
}  // namespace fanprobe::internal
