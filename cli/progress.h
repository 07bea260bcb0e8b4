// progress.h: the live "123/1000 done, 4 failed, 1.2s" line `fanprobe
// probe` keeps on stderr while a large batch runs on a terminal.  It is
// redrawn at most every 100 ms and erased before anything else is printed
// (rows on stdout, messages on stderr through Note), so it never mixes with
// them.
//
// Example:
//   Progress progress(ShowProgress(isatty(STDERR_FILENO), total), total,
//                     std::cerr);
//   progress.Clear();             // before printing a row
//   progress.Update(done, failed);
//   progress.Note("fanprobe: StreamProbes on ... failed: ...");
//
// Thread-safety: not thread-safe; one owner at a time (the split run uses
// it under its lock).

#ifndef FANPROBE_CLI_PROGRESS_H_
#define FANPROBE_CLI_PROGRESS_H_

#include <ostream>

#include "absl/strings/string_view.h"
#include "absl/time/clock.h"
#include "absl/time/time.h"

namespace fanprobe::cli {

// Batches at least this large get a progress line on a terminal.
inline constexpr int kProgressMinTargets = 20;

// Whether a batch of `total` targets gets a progress line.
bool ShowProgress(bool stderr_is_terminal, int total);

class Progress {
 public:
  // `start` is when the batch started: the line shows the time since.
  Progress(bool enabled, int total, std::ostream& err,
           absl::Time start = absl::Now());

  // Erases the line, if it is shown.
  void Clear();

  // Redraws the line unless it was drawn less than 100 ms before `now`.
  void Update(int done, int failed, absl::Time now = absl::Now());

  // Erases the line and prints `message` and a newline on the same stream.
  void Note(absl::string_view message);

 private:
  const bool enabled_;
  const int total_;
  std::ostream& err_;
  const absl::Time start_;
  absl::Time last_draw_ = absl::InfinitePast();
  bool shown_ = false;
};

}  // namespace fanprobe::cli

#endif  // FANPROBE_CLI_PROGRESS_H_
