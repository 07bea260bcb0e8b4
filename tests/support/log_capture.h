// log_capture.h: a log sink (log/logger.h) that keeps the lines, for tests
// of what a server logs.
//
// Example:
//   LogCapture log;
//   options.log = log.sink();
//   ... run a batch ...
//   ASSERT_TRUE(log.WaitForLines(1));
//   EXPECT_THAT(log.Lines()[0], HasSubstr(R"("event":"batch")"));
//
// Thread-safety: the sink may be called from any thread, concurrently with
// Lines() and WaitForLines(); the LogCapture must outlive every user of
// its sink.

#ifndef FANPROBE_TESTS_SUPPORT_LOG_CAPTURE_H_
#define FANPROBE_TESTS_SUPPORT_LOG_CAPTURE_H_

#include <cstddef>
#include <string>
#include <vector>

#include "absl/base/thread_annotations.h"
#include "absl/synchronization/mutex.h"
#include "absl/time/time.h"
#include "log/logger.h"
#include "tests/support/wait.h"

namespace fanprobe::testing {

class LogCapture {
 public:
  // A sink that appends each line here.
  log::Sink sink();

  // The lines so far.
  std::vector<std::string> Lines() const;
  // Blocks until `count` lines were written or `timeout` passes.
  bool WaitForLines(size_t count, absl::Duration timeout = kPatience) const;

 private:
  mutable absl::Mutex mu_;
  std::vector<std::string> lines_ ABSL_GUARDED_BY(mu_);
};

}  // namespace fanprobe::testing

#endif  // FANPROBE_TESTS_SUPPORT_LOG_CAPTURE_H_
