#include "tests/support/log_capture.h"

#include <string>
#include <vector>

#include "absl/strings/string_view.h"
#include "absl/synchronization/mutex.h"
#include "absl/time/time.h"

namespace fanprobe::testing {

log::Sink LogCapture::sink() {
  return [this](absl::string_view line) {
    absl::MutexLock lock(&mu_);
    lines_.emplace_back(line);
  };
}

std::vector<std::string> LogCapture::Lines() const {
  absl::MutexLock lock(&mu_);
  return lines_;
}

bool LogCapture::WaitForLines(size_t count, absl::Duration timeout) const {
  absl::MutexLock lock(&mu_);
  const auto enough = [this, count]() ABSL_EXCLUSIVE_LOCKS_REQUIRED(mu_) {
    return lines_.size() >= count;
  };
  return mu_.AwaitWithTimeout(absl::Condition(&enough), timeout);
}

}  // namespace fanprobe::testing
