// load_meter.h: a worker's view of its own load, so the prober never makes
// a healthy target look slow.  Internal to probe/.
//
// Two things come out of it:
// - Pacing.  A probe's clock starts when its worker begins it.  If a worker
//   began every probe of a burst at once, a thousand TLS handshakes would
//   share the CPU and each would take a thousand times longer: healthy
//   targets would time out.  The meter learns what a probe costs the worker
//   in CPU and lets at most kConnectBudget worth of probes be connecting
//   (resolving, connecting, handshaking) at once; the rest wait, clocks not
//   running.  A network-bound load (cheap probes, slow targets) is not held
//   back: the limit follows CPU, not counts.
// - Lag.  How long each loop turn took: while a turn runs, every other
//   probe's events wait.  Turns are counted in a histogram for /metrics,
//   and each result says the longest turn during its probe (ProbeResult::
//   prober_lag), so a user can tell a slow target from a saturated prober.
//
// Example (the worker loop):
//   meter.OnTurn(turn_start, MonotonicNanos(), cpu_used, probes_begun);
//   while (connecting < meter.ConnectingLimit()) ... begin a probe ...
//   result.prober_lag = meter.LongestTurnSince(probe_start);
//
// Thread-safety: OnTurn, ConnectingLimit and LongestTurnSince on the
// worker's thread only; Lag() from any thread.

#ifndef FANPROBE_PROBE_INTERNAL_LOAD_METER_H_
#define FANPROBE_PROBE_INTERNAL_LOAD_METER_H_

#include <array>
#include <atomic>
#include <cstdint>
#include <deque>

#include "probe/engine.h"

namespace fanprobe::internal {

class LoadMeter {
 public:
  // The CPU work a worker may have in progress in connecting probes.  Well
  // under any probe timeout, so a probe begun gets its share in time.
  static constexpr int64_t kConnectBudgetNs = 250'000'000;
  // Always allowed, however costly probes are.
  static constexpr int64_t kMinConnecting = 16;
  // Turns this long or longer are remembered for LongestTurnSince().
  static constexpr int64_t kLongTurnNs = 5'000'000;

  // One loop turn: when it started and ended (CLOCK_MONOTONIC), the CPU the
  // thread used in it, and how many probes it began.
  void OnTurn(int64_t start_ns, int64_t end_ns, int64_t cpu_ns, int begun);

  // How many probes may be connecting at once now.
  int64_t ConnectingLimit() const;

  // The longest turn that ended at or after `since_ns`, if it was at least
  // kLongTurnNs; else 0.
  int64_t LongestTurnSince(int64_t since_ns) const;

  // The turn-duration histogram so far (EngineStats::loop_lag).
  LagHistogram Lag() const;

 private:
  // CPU per probe begun, learnt over windows of turns.
  double cpu_per_probe_ns_ = 0;
  int64_t window_cpu_ns_ = 0;
  int64_t window_begun_ = 0;

  struct LongTurn {
    int64_t end_ns;
    int64_t duration_ns;
  };
  std::deque<LongTurn> long_turns_;  // oldest first, bounded

  std::array<std::atomic<uint64_t>, kLagBucketCount + 1> buckets_{};
  std::atomic<uint64_t> count_{0};
  std::atomic<int64_t> sum_ns_{0};
};

}  // namespace fanprobe::internal

#endif  // FANPROBE_PROBE_INTERNAL_LOAD_METER_H_
