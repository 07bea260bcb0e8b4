#include "log/logger.h"

#include <unistd.h>

#include <cerrno>
#include <string>

#include "absl/strings/str_cat.h"
#include "absl/strings/str_format.h"
#include "absl/strings/string_view.h"
#include "absl/time/time.h"
#include "log/json.h"

namespace fanprobe::log {

Line::Line(absl::string_view event, absl::Time now) {
  text_ = "{\"ts\":";
  AppendJsonString(
      absl::FormatTime(absl::RFC3339_full, now, absl::UTCTimeZone()), &text_);
  text_.append(",\"event\":");
  AppendJsonString(event, &text_);
}

Line& Line::Add(absl::string_view key, absl::string_view value) {
  text_.push_back(',');
  AppendJsonString(key, &text_);
  text_.push_back(':');
  AppendJsonString(value, &text_);
  return *this;
}

Line& Line::AddMilliseconds(absl::string_view key, absl::Duration duration) {
  return AddJson(key,
                 absl::StrFormat("%.3f", absl::ToDoubleMilliseconds(duration)));
}

Line& Line::AddJson(absl::string_view key, absl::string_view json) {
  text_.push_back(',');
  AppendJsonString(key, &text_);
  text_.push_back(':');
  text_.append(json.data(), json.size());
  return *this;
}

void WriteToStderr(absl::string_view line) {
  const std::string out = absl::StrCat(line, "\n");
  absl::string_view rest = out;
  while (!rest.empty()) {
    const ssize_t n = ::write(STDERR_FILENO, rest.data(), rest.size());
    if (n < 0 && errno == EINTR) continue;
    if (n <= 0) return;  // nowhere to report a broken stderr
    rest.remove_prefix(static_cast<size_t>(n));
  }
}

void Logger::Log(const Line& line) const {
  const std::string text = line.text();
  if (sink_) {
    sink_(text);
  } else {
    WriteToStderr(text);
  }
}

}  // namespace fanprobe::log
