#include "tests/support/json_lines.h"

#include <optional>
#include <string>
#include <vector>

#include "absl/status/status.h"
#include "absl/status/statusor.h"
#include "absl/strings/str_cat.h"
#include "absl/strings/str_split.h"
#include "absl/time/time.h"
#include "tests/support/subprocess.h"

namespace fanprobe::testing {
namespace {

// Reads newline-separated lines from stdin as bytes; each must decode as
// UTF-8 (strictly: no surrogates) and parse as a JSON object.
constexpr char kJudge[] = R"py(
import json, sys

def no_constants(name):
    raise ValueError("not JSON: " + name)

for number, raw in enumerate(sys.stdin.buffer.read().split(b"\n")[:-1]):
    try:
        value = json.loads(raw.decode("utf-8"), parse_constant=no_constants)
        if not isinstance(value, dict):
            raise ValueError("not an object")
    except ValueError as e:
        sys.stderr.write("line %d: %s\n" % (number, e))
        sys.exit(1)
    print(json.dumps(value, sort_keys=True, separators=(",", ":")))
)py";

}  // namespace

absl::StatusOr<std::vector<std::string>> ParseJsonLines(
    const std::vector<std::string>& lines) {
  const std::optional<std::string> python = FindTool("python3");
  if (!python.has_value()) {
    return absl::FailedPreconditionError("python3 is not installed");
  }
  std::string input;
  for (const std::string& line : lines) absl::StrAppend(&input, line, "\n");
  const ProcessRun run = RunToExit({*python, "-c", kJudge}, absl::Seconds(30),
                                   {.stdin_data = input});
  if (run.code != 0) {
    return absl::InvalidArgumentError(
        absl::StrCat("not JSON lines: ", run.err, run.out));
  }
  std::vector<std::string> parsed =
      absl::StrSplit(run.out, '\n', absl::SkipEmpty());
  return parsed;
}

}  // namespace fanprobe::testing
