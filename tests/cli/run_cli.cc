#include "tests/cli/run_cli.h"

#include <string>
#include <utility>
#include <vector>

#include "absl/strings/str_split.h"
#include "google/protobuf/util/json_util.h"
#include "gtest/gtest.h"
#include "tests/support/wait.h"

namespace fanprobe::testing {

const char* CliBinary() { return FANPROBE_CLI_BINARY; }

CliRun RunCli(std::vector<std::string> args, SubprocessOptions options) {
  args.insert(args.begin(), CliBinary());
  return RunToExit(std::move(args), kPatience, std::move(options));
}

std::vector<std::string> Lines(const std::string& text) {
  return absl::StrSplit(text, '\n', absl::SkipEmpty());
}

JsonlEvents ParseJsonl(const std::string& out) {
  JsonlEvents events;
  const std::vector<std::string> lines = Lines(out);
  for (size_t i = 0; i < lines.size(); ++i) {
    v1::ProbeEvent event;
    EXPECT_TRUE(
        google::protobuf::util::JsonStringToMessage(lines[i], &event).ok())
        << lines[i];
    if (event.has_result()) {
      events.results.push_back(event.result());
    } else {
      EXPECT_EQ(i, lines.size() - 1) << "summary before the last line";
      events.summary = event.summary();
    }
  }
  return events;
}

}  // namespace fanprobe::testing
