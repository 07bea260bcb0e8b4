#include "tests/support/wait.h"

#include <functional>

#include "absl/time/clock.h"
#include "absl/time/time.h"

namespace fanprobe::testing {

bool WaitUntil(const std::function<bool()>& condition, absl::Duration timeout,
               absl::Duration interval) {
  const absl::Time deadline = absl::Now() + timeout;
  while (!condition()) {
    if (absl::Now() >= deadline) return false;
    absl::SleepFor(interval);
  }
  return true;
}

}  // namespace fanprobe::testing
