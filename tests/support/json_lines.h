// json_lines.h: an independent judge of the JSON fanprobe writes.  Lines
// are parsed by Python's json module (Debian's python3) after a strict UTF-8
// decode -- what a log shipper or `json.loads` on a text line would do -- so
// a test asserts that a line parses, not only what it contains.
//
// Example:
//   absl::StatusOr<std::vector<std::string>> parsed =
//       ParseJsonLines({R"({"ts":"...","event":"stopped"})"});
//   ASSERT_TRUE(parsed.ok()) << parsed.status();
//   EXPECT_THAT((*parsed)[0], HasSubstr(R"("event":"stopped")"));
//
// Thread-safety: a plain function; it runs one child process per call.

#ifndef FANPROBE_TESTS_SUPPORT_JSON_LINES_H_
#define FANPROBE_TESTS_SUPPORT_JSON_LINES_H_

#include <string>
#include <vector>

#include "absl/status/statusor.h"

namespace fanprobe::testing {

// Each of `lines` (no newline inside) parsed as one JSON object and written
// back canonically: keys sorted, no spaces, non-ASCII as \uXXXX.
// kInvalidArgument with Python's message when a line is not valid UTF-8 or
// not a JSON object (NaN and Infinity are not JSON either);
// kFailedPrecondition when python3 is missing.
absl::StatusOr<std::vector<std::string>> ParseJsonLines(
    const std::vector<std::string>& lines);

}  // namespace fanprobe::testing

#endif  // FANPROBE_TESTS_SUPPORT_JSON_LINES_H_
