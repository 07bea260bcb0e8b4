// server_flags.h: the parts of fanprobe-server's command line that need more
// than Abseil flags give: list flags that may be repeated (Abseil keeps only
// the last occurrence, which for --deny_cidr would silently drop a rule), and
// what the start-up log says about the destination policy the flags built
// (probe/address_flags.h parses them, for the CLI too).
//
// Example (server_main.cc):
//   absl::StatusOr<std::vector<std::string>> args =
//       ExpandCommandLine({argv, argv + argc}, {"allow_cidr", "deny_cidr"});
//   ... absl::ParseCommandLine over *args ...
//   ... DestinationPolicyFromFlags(...) ...
//   log PolicyJson(*policy), and each of PolicyWarnings(*policy)
//
// Thread-safety: plain functions of their arguments (ExpandCommandLine reads
// the flag files named on the command line).

#ifndef FANPROBE_SERVER_SERVER_FLAGS_H_
#define FANPROBE_SERVER_SERVER_FLAGS_H_

#include <string>
#include <vector>

#include "absl/status/statusor.h"
#include "absl/strings/string_view.h"
#include "probe/destination_policy.h"

namespace fanprobe::server {

// Returns `args` (argv, program name first) with every --flagfile expanded in
// place (Abseil's format: one flag per line, '#' comments and blank lines
// skipped, nested --flagfile allowed) and every occurrence of a flag named in
// `list_flags` merged into one "--name=a,b,c" at the first occurrence's
// place, so a repeated list flag accumulates wherever it is given.  Both
// "--name=value" and "--name value" (and a single dash) are understood;
// arguments after "--" are left alone.  kInvalidArgument when a flag file
// cannot be read, nests too deep, or a list flag has no value.
absl::StatusOr<std::vector<std::string>> ExpandCommandLine(
    std::vector<std::string> args, const std::vector<std::string>& list_flags);

// A one-line description of what `policy` allows, for the start-up log:
// {"deny_private":true,"deny_loopback":false,"allow":[...],"deny":[...]}.
std::string PolicyJson(const DestinationPolicy& policy);

// Warnings about a policy that is legal but probably not meant, e.g. an
// --allow_cidr that re-opens the cloud metadata address.  Empty when none.
std::vector<std::string> PolicyWarnings(const DestinationPolicy& policy);

}  // namespace fanprobe::server

#endif  // FANPROBE_SERVER_SERVER_FLAGS_H_
