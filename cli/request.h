// request.h: the batch request `fanprobe probe` sends, built from its
// flags: the targets (URL arguments, then each --file in order, "-" being
// stdin) and the options that apply to the whole batch (--return_when,
// --timeout, --concurrency, --per_host) or to every probe (--method,
// --header, --expect, --probe_timeout).
//
// Example:
//   absl::StatusOr<v1::ProbeBatchRequest> request =
//       BuildRequest(flags, std::cin);
//   if (!request.ok()) ...;  // "--expect=2xx: want status ranges ..."
//
// Every error is kInvalidArgument with a message quoting the flag as
// given, so the caller can print it as a usage error.
//
// Thread-safety: the functions are pure apart from reading the files and
// `in`; call them from one thread at a time per stream.

#ifndef FANPROBE_CLI_REQUEST_H_
#define FANPROBE_CLI_REQUEST_H_

#include <istream>

#include "absl/status/status.h"
#include "absl/status/statusor.h"
#include "absl/strings/string_view.h"
#include "cli/flags.h"
#include "fanprobe/v1/prober.pb.h"

namespace fanprobe::cli {

// The whole request; at least one target, or an error.
absl::StatusOr<v1::ProbeBatchRequest> BuildRequest(const ProbeFlags& flags,
                                                   std::istream& in);

// Appends a target per line of `lines`: surrounding blanks are stripped,
// blank lines and lines starting with '#' skipped.
void ReadTargets(std::istream& lines, v1::ProbeBatchRequest& request);

// "all" | "first" | "first_exception".
absl::StatusOr<v1::ReturnWhen> ParseReturnWhen(absl::string_view value);
// "200-299,301" -> two ranges, each within 100-999.
absl::StatusOr<v1::StatusRanges> ParseExpect(absl::string_view value);
// "Name: value" -> a header; blanks around either part are dropped.
absl::StatusOr<v1::Header> ParseHeader(absl::string_view value);

}  // namespace fanprobe::cli

#endif  // FANPROBE_CLI_REQUEST_H_
