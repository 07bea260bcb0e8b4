#include "cli/progress.h"

#include <ostream>

#include "absl/strings/str_format.h"
#include "absl/strings/string_view.h"
#include "absl/time/time.h"
#include "cli/output.h"

namespace fanprobe::cli {
namespace {

// Carriage return, then erase to the end of the line.
constexpr absl::string_view kErase = "\r\033[K";

constexpr absl::Duration kRedrawEvery = absl::Milliseconds(100);

}  // namespace

bool ShowProgress(bool stderr_is_terminal, int total) {
  return stderr_is_terminal && total >= kProgressMinTargets;
}

Progress::Progress(bool enabled, int total, std::ostream& err, absl::Time start)
    : enabled_(enabled), total_(total), err_(err), start_(start) {}

void Progress::Clear() {
  if (!shown_) return;
  err_ << kErase;
  err_.flush();
  shown_ = false;
}

void Progress::Update(int done, int failed, absl::Time now) {
  if (!enabled_ || now - last_draw_ < kRedrawEvery) return;
  last_draw_ = now;
  err_ << absl::StrFormat("%s%d/%d done, %d failed, %s", kErase, done, total_,
                          failed, HumanDuration(now - start_));
  err_.flush();
  shown_ = true;
}

void Progress::Note(absl::string_view message) {
  Clear();
  err_ << message << "\n";
  err_.flush();
}

}  // namespace fanprobe::cli
