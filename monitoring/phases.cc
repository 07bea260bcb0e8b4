#include "monitoring/phases.h"

#include <algorithm>

#include "absl/time/time.h"

namespace fanprobe::monitoring {
namespace {

absl::Duration NonNegative(absl::Duration d) {
  return std::max(d, absl::ZeroDuration());
}

}  // namespace

PhaseDurations PhasesOf(const Timings& t) {
  PhaseDurations phases;
  phases.resolve = NonNegative(t.dns);
  if (t.connect > absl::ZeroDuration()) {
    phases.connect = NonNegative(t.connect - t.dns);
  }
  if (t.tls > absl::ZeroDuration()) {
    phases.tls = NonNegative(t.tls - t.connect);
  }
  if (t.first_byte > absl::ZeroDuration()) {
    phases.processing =
        NonNegative(t.first_byte - std::max({t.dns, t.connect, t.tls}));
    phases.transfer = NonNegative(t.total - t.first_byte);
  }
  return phases;
}

}  // namespace fanprobe::monitoring
