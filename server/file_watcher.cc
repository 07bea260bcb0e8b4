#include "server/file_watcher.h"

#include <fstream>
#include <sstream>
#include <utility>

#include "absl/strings/str_cat.h"

namespace fanprobe::server {

FileWatcher::FileWatcher(std::vector<std::string> paths,
                         absl::Duration interval, Callback callback,
                         Events events, log::Sink log)
    : paths_(std::move(paths)),
      interval_(interval),
      callback_(std::move(callback)),
      events_(std::move(events)),
      logger_(std::move(log)) {
  std::string error;
  seen_ = ReadAll(&error);
  thread_ = std::thread([this] { Run(); });
}

FileWatcher::~FileWatcher() {
  stop_.Notify();
  thread_.join();
}

std::vector<std::string> FileWatcher::ReadAll(std::string* error) const {
  std::vector<std::string> contents;
  for (const std::string& path : paths_) {
    std::ifstream in(path, std::ios::binary);
    std::ostringstream content;
    if (in) content << in.rdbuf();
    if (!in || in.bad()) {
      *error = absl::StrCat(path, ": cannot read the file");
      return {};
    }
    contents.push_back(content.str());
  }
  return contents;
}

void FileWatcher::Run() {
  std::string last_error;
  while (!stop_.WaitForNotificationWithTimeout(interval_)) {
    std::string error;
    std::vector<std::string> contents = ReadAll(&error);
    absl::Status status;
    if (contents.empty() && !paths_.empty()) {
      status = absl::UnavailableError(error);
    } else if (contents == seen_) {
      continue;
    } else {
      status = callback_(contents);
      // Taken or refused, these contents are done with: the next change
      // is tried again.
      seen_ = std::move(contents);
    }
    if (status.ok()) {
      last_error.clear();
      logger_.Log(log::Line(events_.changed));
    } else if (std::string(status.message()) != last_error) {
      // Once per problem, not once per interval.
      last_error = std::string(status.message());
      logger_.Log(log::Line(events_.refused).Add("error", status.message()));
    }
  }
}

}  // namespace fanprobe::server
