// input.h: where `fanprobe probe`'s targets come from -- the URL
// arguments, target files (--file) and stdin -- and how a line becomes a
// target.
//
// A line, once surrounding blanks are stripped, is one of:
//   - blank, or starting with '#': skipped;
//   - starting with '{': a fanprobe.v1.ProbeTarget in protobuf's JSON
//     mapping, with options of its own that override the flags field by
//     field:  {"url": "https://a/", "id": "web", "labels": {"env": "prod"},
//              "options": {"method": "HEAD", "timeout": "2s"}}
//   - otherwise a URL, which holds no blanks.
// A line that is none of these, or whose options the server would refuse
// (a negative timeout, an unknown enum value, a bad status range), is an
// error naming its source and line number ("urls.jsonl:3: options.timeout:
// must be positive"); the caller sends nothing then.
//
// Order: the URL arguments in order ("-" among them reads stdin there),
// then each --file in order ("-" = stdin).  With neither, stdin is read
// when it is not a terminal, so `grep prod urls | fanprobe probe` works;
// a terminal is never waited on.
//
// Example:
//   Stdin in{std::cin, isatty(STDIN_FILENO) == 1};
//   v1::ProbeBatchRequest request;
//   absl::Status status = AddTargets(flags, in, request);
//
// Thread-safety: the functions are pure apart from reading the files and
// stdin; call them from one thread at a time per stream.

#ifndef FANPROBE_CLI_INPUT_H_
#define FANPROBE_CLI_INPUT_H_

#include <istream>
#include <string>
#include <vector>

#include "absl/status/status.h"
#include "absl/status/statusor.h"
#include "absl/strings/string_view.h"
#include "cli/flags.h"
#include "fanprobe/v1/prober.pb.h"

namespace fanprobe::cli {

// The process's stdin, as the targets see it.
struct Stdin {
  std::istream& stream;
  // A terminal is read only when "-" asks for it.
  bool is_terminal = false;
};

// Where each target of a request came from, by index: "FILE:LINE"
// ("stdin:3") for a line, empty for a URL argument -- so that a problem
// found later (the engine refusing a line's options) still names its line.
using TargetOrigins = std::vector<std::string>;

// Appends to `request` the targets of the URL arguments, the files and
// stdin, by the rules above, and to `origins` (if given) where each came
// from.  kInvalidArgument with a message for the user on an unreadable
// file or a bad line; "no targets" when there are none.
absl::Status AddTargets(const ProbeFlags& flags, Stdin& in,
                        v1::ProbeBatchRequest& request,
                        TargetOrigins* origins = nullptr);

// Appends a target per line of `lines`; `source` names the stream in
// errors ("urls.txt", "stdin") and in `origins` (if given).
absl::Status ReadTargets(std::istream& lines, absl::string_view source,
                         v1::ProbeBatchRequest& request,
                         TargetOrigins* origins = nullptr);

// One line that is neither blank nor a comment, stripped, as a target;
// kInvalidArgument with the reason (without the line number).
absl::StatusOr<v1::ProbeTarget> ParseTargetLine(absl::string_view line);

}  // namespace fanprobe::cli

#endif  // FANPROBE_CLI_INPUT_H_
