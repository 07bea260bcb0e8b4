// flags.h: the fanprobe command line -- which commands and flags exist,
// how they are spelled, which repeat -- parsed with CLI11, and the help
// text made from the same definitions.  Values are kept as typed; the
// commands give them meaning (request.h builds the batch request, and the
// value parsers below check durations and counts), so every message about
// a value quotes it the way the user wrote it.
//
// Example:
//   absl::StatusOr<Command> command = ParseCommandLine({"probe",
//       "--server=127.0.0.1:50051", "--timeout=5s", "http://a/"});
//   if (auto* probe = std::get_if<ProbeFlags>(&*command)) ...
//
// Grammar: `fanprobe COMMAND [flags] [arguments]`.  Flags are "--name=value"
// or "--name value"; a flag given twice keeps its last value unless it
// repeats (--server, --header, --file); "--" ends the flags.  A flag that
// does not exist is reported as typed ("unknown flag -k").
//
// Thread-safety: the functions are pure; call them from any thread.

#ifndef FANPROBE_CLI_FLAGS_H_
#define FANPROBE_CLI_FLAGS_H_

#include <cstdint>
#include <optional>
#include <string>
#include <variant>
#include <vector>

#include "absl/status/statusor.h"
#include "absl/strings/string_view.h"
#include "absl/time/time.h"
#include "cli/connection.h"

namespace fanprobe::cli {

// Where both commands look for a server when no --server is given.
inline constexpr absl::string_view kDefaultServer = "127.0.0.1:50051";

// `fanprobe probe`: the flags as typed; absent or empty = not given.
struct ProbeFlags {
  // Each --server, in order; one may hold a comma list.
  std::vector<std::string> servers;
  ConnectionFlags connection;
  std::optional<std::string> return_when;    // all, first, first_exception
  std::optional<std::string> timeout;        // the batch's
  std::optional<std::string> probe_timeout;  // each probe's
  std::optional<std::string> concurrency;
  std::optional<std::string> per_host;
  std::optional<std::string> method;
  std::vector<std::string> headers;  // "Name: value", in order
  std::optional<std::string> expect;
  std::optional<std::string> format;  // table, jsonl
  std::vector<std::string> files;     // URL files; "-" = stdin
  std::vector<std::string> urls;      // the arguments
};

// `fanprobe health`.
struct HealthFlags {
  std::string server = std::string(kDefaultServer);
  ConnectionFlags connection;
  std::optional<std::string> timeout;
};

// --help, -h or `help`: print `text` on stdout, exit 0.
struct HelpRequest {
  std::string text;
};

// `version` or --version.
struct VersionRequest {};

using Command =
    std::variant<ProbeFlags, HealthFlags, HelpRequest, VersionRequest>;

// Parses the arguments after the program name.  kInvalidArgument with a
// message for the user on an unknown command or flag, a missing value or a
// stray argument; an empty `args` is one too (the caller prints Usage()).
absl::StatusOr<Command> ParseCommandLine(std::vector<std::string> args);

// The full help: every command and its flags.
std::string Usage();

// Value parsers shared by the commands; `flag` names the flag in errors
// ("--timeout=soon: want a duration such as 5s or 250ms").

// A finite, non-negative duration in absl's syntax: "5s", "250ms", "1m30s".
absl::StatusOr<absl::Duration> ParseDurationFlag(absl::string_view flag,
                                                 absl::string_view value);
// A non-negative integer that fits 32 bits.
absl::StatusOr<uint32_t> ParseCountFlag(absl::string_view flag,
                                        absl::string_view value);

}  // namespace fanprobe::cli

#endif  // FANPROBE_CLI_FLAGS_H_
