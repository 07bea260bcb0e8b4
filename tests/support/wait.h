// wait.h: how the tests wait for what offers nothing to wait on (live stats,
// another process becoming ready), and how long they are patient.
//
// Example:
//   ASSERT_TRUE(WaitUntil([&] { return service.Stats().paused_streams == 1;
//   })); ASSERT_TRUE(WaitUntil([&] { return HttpGet(address, "/-/ready").status
//   ==
//                                      200; },
//                         absl::Seconds(30), absl::Milliseconds(50)));
//
// Thread-safety: WaitUntil calls `condition` on the calling thread only.

#ifndef FANPROBE_TESTS_SUPPORT_WAIT_H_
#define FANPROBE_TESTS_SUPPORT_WAIT_H_

#include <functional>

#include "absl/time/time.h"

namespace fanprobe::testing {

// How long a test waits for something that must happen.  Generous: the
// suite runs beside others on two cores; a passing test never waits it out.
inline constexpr absl::Duration kPatience = absl::Seconds(10);

// Calls `condition` every `interval` until it holds (true) or `timeout`
// passes (false).  Wait on an event instead whenever there is one.
bool WaitUntil(const std::function<bool()>& condition,
               absl::Duration timeout = kPatience,
               absl::Duration interval = absl::Milliseconds(1));

}  // namespace fanprobe::testing

#endif  // FANPROBE_TESTS_SUPPORT_WAIT_H_
