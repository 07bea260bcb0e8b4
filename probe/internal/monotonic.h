// monotonic.h: CLOCK_MONOTONIC in nanoseconds, the clock the workers'
// timers (timerfd) and deadlines use.  Internal to probe/.
//
// Example:
//   const int64_t deadline = MonotonicNanos() + absl::ToInt64Nanoseconds(d);
//
// Thread-safety: a pure function of the clock.

#ifndef FANPROBE_PROBE_INTERNAL_MONOTONIC_H_
#define FANPROBE_PROBE_INTERNAL_MONOTONIC_H_

#include <time.h>

#include <cstdint>

namespace fanprobe::internal {

// "No deadline": later than any clock reading.
inline constexpr int64_t kNoDeadline = INT64_MAX;

inline int64_t MonotonicNanos() {
  timespec now;
  clock_gettime(CLOCK_MONOTONIC, &now);
  return int64_t{now.tv_sec} * 1000000000 + now.tv_nsec;
}

}  // namespace fanprobe::internal

#endif  // FANPROBE_PROBE_INTERNAL_MONOTONIC_H_
