// request.h: the batch request `fanprobe probe` runs, built from its
// flags: the targets (input.h), the options of the whole batch
// (--return_when, --timeout, --concurrency, --per_host) and the options
// every probe gets (the request's `defaults`: -X, -H, -d, -m, -k, ...),
// which a target's own options in a JSON line override field by field.
// The same request goes to a server or to the embedded engine.
//
// Example:
//   Stdin in{std::cin, false};
//   absl::StatusOr<v1::ProbeBatchRequest> request = BuildRequest(flags, in);
//   if (!request.ok()) ...;  // "--expect=2xx: want status ranges ..."
//
// A flag sets only its own field, so a flag not given leaves the default to
// whoever runs the batch.  Two of curl's habits are kept: a body (-d) makes
// the method POST unless -X says otherwise, and several -d are joined with
// '&'.
//
// Every error is kInvalidArgument with a message quoting the flag as
// given, so the caller can print it as a usage error.
//
// Thread-safety: the functions are pure apart from reading files and
// stdin; call them from one thread at a time per stream.

#ifndef FANPROBE_CLI_REQUEST_H_
#define FANPROBE_CLI_REQUEST_H_

#include <string>
#include <vector>

#include "absl/status/status.h"
#include "absl/status/statusor.h"
#include "absl/strings/string_view.h"
#include "cli/flags.h"
#include "cli/input.h"
#include "fanprobe/v1/prober.pb.h"

namespace fanprobe::cli {

// The whole request; at least one target, or an error.  `origins`, if
// given, gets where each target came from (input.h).
absl::StatusOr<v1::ProbeBatchRequest> BuildRequest(
    const ProbeFlags& flags, Stdin& in, TargetOrigins* origins = nullptr);

// The options every probe gets, from the flags alone.
absl::StatusOr<v1::ProbeOptions> BuildDefaults(const ProbeFlags& flags);

// The request body of the -d/--data-binary/--data-raw flags, in order,
// joined with '&' (reading each "@file").
absl::StatusOr<std::string> JoinData(const std::vector<DataFlag>& data);

// "all" | "first" | "first_exception".
absl::StatusOr<v1::ReturnWhen> ParseReturnWhen(absl::string_view value);
// "200-299,301" -> two ranges, each within 100-999.
absl::StatusOr<v1::StatusRanges> ParseExpect(absl::string_view value);
// "Name: value" -> a header; blanks around either part are dropped.  An
// error quotes `flag` (--header, --proxy-header).
absl::StatusOr<v1::Header> ParseHeader(absl::string_view value,
                                       absl::string_view flag = "--header");

}  // namespace fanprobe::cli

#endif  // FANPROBE_CLI_REQUEST_H_
