// logger.h: fanprobe-server's log, one JSON object per line.  Every line
// the server writes -- start-up, the destination policy, one per batch,
// credentials reloads, draining, stopped -- is built with log::Line and
// written by a log::Logger, so every line is valid JSON (json.h), starts
// with "ts" (RFC 3339, UTC) and "event", and reaches stderr in one write.
//
// Example:
//   log::Logger logger;  // stderr
//   logger.Log(log::Line("listening").Add("address", address).Add("port", 80));
//   // {"ts":"2026-11-21T09:16:04.217981594+00:00","event":"listening",
//   //  "address":"127.0.0.1:50051","port":80}
//
// Thread-safety: a Line is built by one thread.  Logger::Log may be called
// from any thread; it holds no lock of its own, so it may run where a
// caller must not block on one (engine callbacks), and callers must not
// call it while holding theirs: build the Line under the lock, log it after.

#ifndef FANPROBE_LOG_LOGGER_H_
#define FANPROBE_LOG_LOGGER_H_

#include <cstdint>
#include <functional>
#include <string>
#include <type_traits>
#include <utility>

#include "absl/strings/str_cat.h"
#include "absl/strings/string_view.h"
#include "absl/time/clock.h"
#include "absl/time/time.h"

namespace fanprobe::log {

// One log line: a JSON object whose members are written in the order they
// are added.  Keys are the caller's constants (plain ASCII names); values
// are escaped as json.h says.
class Line {
 public:
  // {"ts":"<now, RFC 3339 UTC>","event":"<event>"
  explicit Line(absl::string_view event, absl::Time now = absl::Now());

  // A string member.
  Line& Add(absl::string_view key, absl::string_view value);
  Line& Add(absl::string_view key, const char* value) {
    return Add(key, absl::string_view(value));
  }
  Line& Add(absl::string_view key, const std::string& value) {
    return Add(key, absl::string_view(value));
  }
  // A number member (integers only: bool and char are not numbers here).
  template <typename Integer,
            typename = std::enable_if_t<std::is_integral_v<Integer> &&
                                        !std::is_same_v<Integer, bool> &&
                                        !std::is_same_v<Integer, char>>>
  Line& Add(absl::string_view key, Integer value) {
    return AddJson(key, absl::StrCat(value));
  }
  // `duration` in milliseconds with three decimals ("elapsed_ms":1.237).
  Line& AddMilliseconds(absl::string_view key, absl::Duration duration);
  // A member whose value is already JSON text (an object or array built
  // with json.h); it is written as it is.
  Line& AddJson(absl::string_view key, absl::string_view json);

  // The line without its newline.
  std::string text() const { return absl::StrCat(text_, "}"); }

 private:
  std::string text_;  // the object so far, without its closing brace
};

// Where lines go: given each line without its newline.
using Sink = std::function<void(absl::string_view line)>;

// Writes `line` and a newline to stderr with one write(2) call (repeated
// only for what a short write left), so lines from different threads do
// not interleave and no stdio lock is taken.
void WriteToStderr(absl::string_view line);

class Logger {
 public:
  // Lines go to `sink`; null means stderr (WriteToStderr).
  explicit Logger(Sink sink = nullptr) : sink_(std::move(sink)) {}

  void Log(const Line& line) const;

 private:
  // Constant after construction.
  const Sink sink_;
};

}  // namespace fanprobe::log

#endif  // FANPROBE_LOG_LOGGER_H_
