// flags.h: the fanprobe command line -- which commands and flags exist,
// how they are spelled, which repeat -- parsed with CLI11, and the help
// text made from the same definitions.  Values are kept as typed; the
// commands give them meaning (request.h builds the batch request, and the
// value parsers below check durations and counts), so every message about
// a value quotes it the way the user wrote it.
//
// Example:
//   absl::StatusOr<Command> command = ParseCommandLine({"probe", "-k",
//       "-m", "2", "--timeout=5s", "https://a/"});
//   if (auto* probe = std::get_if<ProbeFlags>(&*command)) ...
//
// Grammar: `fanprobe [flags] COMMAND [flags] [arguments]`.  Flags are
// "--name=value", "--name value", "-X value" or "-Xvalue"; single-letter
// flags without a value may be grouped ("-k4").  Flags may come before the
// command too ("fanprobe -k probe URL").  A flag given twice keeps its last
// value unless it repeats (--server, -H, -d, --file, ...); of two flags
// that contradict each other (-L and --no-location, --http1.1 and --http2,
// -4 and -6) the last one counts.  "--" ends the flags.  A flag that does
// not exist is reported as typed ("unknown flag --bogus").
//
// Spelling: where curl has a flag for an option, it has curl's name (-X,
// -H, -d, -k, -m, -L, --max-redirs, ...); fanprobe's own options are named
// after their proto field (--return_when, --body_must_match, ...).
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

// Where `health` looks for a server when no --server is given.  (`probe`
// without --server runs the engine in-process instead.)
inline constexpr absl::string_view kDefaultServer = "127.0.0.1:50051";

// One request-body flag, in command-line order: curl joins several with
// '&', and each kind reads "@file" its own way.
struct DataFlag {
  enum class Kind {
    kData,    // -d, --data: "@file" is read with CR and LF dropped
    kBinary,  // --data-binary: "@file" is read as it is
    kRaw,     // --data-raw: never a file
  };
  Kind kind = Kind::kData;
  std::string value;

  bool operator==(const DataFlag&) const = default;
};

// `fanprobe probe`: the flags as typed; absent or empty = not given.
struct ProbeFlags {
  // Each --server, in order; one may hold a comma list.  None: the
  // embedded engine runs the batch.
  std::vector<std::string> servers;
  ConnectionFlags connection;

  // The batch.
  std::optional<std::string> return_when;  // all, first, first_exception
  std::optional<std::string> timeout;      // the whole batch's
  std::optional<std::string> concurrency;
  std::optional<std::string> per_host;

  // Every probe's options (the request's defaults), curl's names first.
  std::optional<std::string> method;    // -X, --request, --method; -I
  std::vector<std::string> headers;     // -H, --header: "Name: value"
  std::vector<DataFlag> data;           // -d, --data-binary, --data-raw
  std::optional<std::string> max_time;  // -m, --max-time, --probe_timeout
  std::optional<std::string> connect_timeout;  // --connect-timeout
  // -L/--location: true; --no-location/--no-follow: false; the last wins.
  std::optional<bool> follow_redirects;
  std::optional<std::string> max_redirs;    // --max-redirs
  std::optional<std::string> retry;         // --retry N: retries, as curl
  std::optional<std::string> retry_delay;   // --retry-delay SECONDS
  bool retry_all_errors = false;            // --retry-all-errors
  bool insecure = false;                    // -k, --insecure
  std::optional<std::string> cacert;        // --cacert FILE
  std::optional<std::string> http_version;  // "1.1" or "2", the last given
  std::optional<std::string> proxy;         // -x, --proxy URL
  std::vector<std::string> proxy_headers;   // --proxy-header 'K: V'
  std::optional<std::string> noproxy;       // --noproxy LIST
  bool proxy_resolves = false;              // --proxy-resolves
  std::optional<std::string> interface;     // --interface ADDRESS
  std::optional<std::string> tls_min;    // --tlsv1.2, --tlsv1.3: the last given
  std::optional<std::string> tls_max;    // --tls-max VERSION, as given
  std::optional<std::string> ip_family;  // "4" or "6", the last given
  std::optional<std::string> user_agent;    // -A, --user-agent
  std::optional<std::string> max_filesize;  // --max-filesize, max_body_bytes
  std::optional<std::string> expect;        // --expect: status ranges
  std::vector<std::string> body_must_match;
  std::vector<std::string> body_must_not_match;
  bool reuse_connections = false;

  // Input and output.
  std::optional<std::string> format;  // table, jsonl, csv
  std::optional<std::string> output;  // -o, --output FILE; "-" = stdout
  std::vector<std::string> files;     // target files; "-" = stdin
  std::vector<std::string> urls;      // the arguments; "-" = stdin

  // The embedded engine's destination policy (no --server).
  bool deny_private = false;
  bool deny_loopback = false;
  std::vector<std::string> allow_cidrs;  // each may hold a comma list
  std::vector<std::string> deny_cidrs;
  // The embedded engine's DNS servers (--dns-servers, as curl's: a comma
  // list, repeatable); none: resolv.conf's.
  std::vector<std::string> dns_servers;
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

// The full help: every command and its flags, and the exit statuses.
std::string Usage();

// Value parsers shared by the commands; `flag` names the flag in errors as
// the user knows it ("--timeout=soon: want a duration such as 5s, 250ms or
// 2.5 (seconds)").

// A finite, non-negative duration: absl's syntax ("5s", "250ms", "1m30s")
// or, as curl's -m and --connect-timeout take it, a number of seconds
// ("5", "2.5").
absl::StatusOr<absl::Duration> ParseDurationFlag(absl::string_view flag,
                                                 absl::string_view value);
// A non-negative integer that fits 32 bits.
absl::StatusOr<uint32_t> ParseCountFlag(absl::string_view flag,
                                        absl::string_view value);
// A byte count as curl's --max-filesize takes it: a non-negative integer,
// optionally with a k, M or G suffix (powers of 1024).
absl::StatusOr<uint64_t> ParseBytesFlag(absl::string_view flag,
                                        absl::string_view value);

}  // namespace fanprobe::cli

#endif  // FANPROBE_CLI_FLAGS_H_
