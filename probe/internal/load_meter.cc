#include "probe/internal/load_meter.h"

#include <algorithm>
#include <limits>

namespace fanprobe::internal {
namespace {

// The cost estimate is updated once a window holds this many probes begun
// (or, with fewer, when the window's CPU alone is this much).
constexpr int64_t kWindowProbes = 64;
constexpr int64_t kWindowCpuNs = 50'000'000;
// Weight of a new window in the running estimate.
constexpr double kNewWeight = 0.3;
// Long turns remembered for LongestTurnSince(); older ones are forgotten
// (a probe older than that many long turns sees only the recent ones).
constexpr size_t kMaxLongTurns = 4096;

}  // namespace

void LoadMeter::OnTurn(int64_t start_ns, int64_t end_ns, int64_t cpu_ns,
                       int begun) {
  const int64_t duration = std::max<int64_t>(0, end_ns - start_ns);
  const double seconds = duration / 1e9;
  size_t bucket = 0;
  while (bucket < kLagBucketCount && seconds > kLagBucketBounds[bucket]) {
    ++bucket;
  }
  buckets_[bucket].fetch_add(1, std::memory_order_relaxed);
  count_.fetch_add(1, std::memory_order_relaxed);
  sum_ns_.fetch_add(duration, std::memory_order_relaxed);
  if (duration >= kLongTurnNs) {
    long_turns_.push_back({end_ns, duration});
    if (long_turns_.size() > kMaxLongTurns) long_turns_.pop_front();
  }

  // The CPU a probe costs, including all the turns it was not begun in (its
  // handshake, its response, its close), is the window's CPU per probe
  // begun.
  window_cpu_ns_ += cpu_ns;
  window_begun_ += begun;
  if (window_begun_ >= kWindowProbes ||
      (window_begun_ > 0 && window_cpu_ns_ >= kWindowCpuNs)) {
    const double sample = static_cast<double>(window_cpu_ns_) /
                          static_cast<double>(window_begun_);
    cpu_per_probe_ns_ =
        cpu_per_probe_ns_ == 0
            ? sample
            : (1 - kNewWeight) * cpu_per_probe_ns_ + kNewWeight * sample;
    window_cpu_ns_ = 0;
    window_begun_ = 0;
  }
}

int64_t LoadMeter::ConnectingLimit() const {
  if (cpu_per_probe_ns_ <= 0) {
    // Nothing learnt yet: the first window's worth, then the estimate.
    return kWindowProbes;
  }
  const double limit = kConnectBudgetNs / cpu_per_probe_ns_;
  if (limit >= static_cast<double>(std::numeric_limits<int32_t>::max())) {
    return std::numeric_limits<int32_t>::max();
  }
  return std::max<int64_t>(kMinConnecting, static_cast<int64_t>(limit));
}

int64_t LoadMeter::LongestTurnSince(int64_t since_ns) const {
  int64_t longest = 0;
  for (auto it = long_turns_.rbegin();
       it != long_turns_.rend() && it->end_ns >= since_ns; ++it) {
    longest = std::max(longest, it->duration_ns);
  }
  return longest;
}

LagHistogram LoadMeter::Lag() const {
  LagHistogram lag;
  for (size_t i = 0; i < lag.counts.size(); ++i) {
    lag.counts[i] = buckets_[i].load(std::memory_order_relaxed);
  }
  lag.count = count_.load(std::memory_order_relaxed);
  lag.sum_seconds = sum_ns_.load(std::memory_order_relaxed) / 1e9;
  return lag;
}

}  // namespace fanprobe::internal
