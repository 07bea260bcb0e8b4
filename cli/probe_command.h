// probe_command.h: `fanprobe probe`.  ResolveProbeCommand gives the flags
// their meaning (where the batch runs, the output, the batch request with
// its targets -- reading the target files and stdin); RunProbeCommand runs
// the batch -- in-process on the probe engine without --server
// (engine_share.h), else split across the servers (one server: one share,
// split.h) -- prints the rows and the summary, and turns how it went into
// the exit status (exit_code.h).  SIGINT and SIGTERM during the run end the
// batch CANCELLED: the probes are cancelled and the summary is printed.
//
// Example:
//   Stdin in{std::cin, isatty(STDIN_FILENO) == 1};
//   absl::StatusOr<ProbeCommand> command = ResolveProbeCommand(flags, in);
//   if (!command.ok()) ...;  // a usage error, for the user
//   return RunProbeCommand(*command);
//
// Thread-safety: RunProbeCommand must be called from the main thread,
// before gRPC or an engine was used in the process: it blocks SIGINT and
// SIGTERM for the threads they start, so that its own thread can wait for
// them.

#ifndef FANPROBE_CLI_PROBE_COMMAND_H_
#define FANPROBE_CLI_PROBE_COMMAND_H_

#include <istream>
#include <string>
#include <vector>

#include "absl/status/statusor.h"
#include "cli/connection.h"
#include "cli/engine_share.h"
#include "cli/flags.h"
#include "cli/input.h"
#include "cli/output.h"
#include "cli/split.h"
#include "fanprobe/v1/prober.pb.h"
#include "probe/engine.h"

namespace fanprobe::cli {

struct ProbeCommand {
  // One share of the batch each, in order.  Empty: the in-process engine
  // runs the whole batch, with `engine`.
  std::vector<std::string> servers;
  ConnectionFlags connection;
  EngineOptions engine;
  v1::ProbeBatchRequest request;
  // Where each target came from (input.h), for messages about a line.
  TargetOrigins origins;
  Format format = Format::kTable;
  // Where the output goes; empty = stdout.
  std::string output;
};

// kInvalidArgument with a message for the user when a flag's value is bad,
// a flag does not apply (an engine flag with --server, a connection flag
// without), a file or line is unreadable, or there is no target.
absl::StatusOr<ProbeCommand> ResolveProbeCommand(const ProbeFlags& flags,
                                                 Stdin& in);

// Runs the batch, writing the output and stderr; returns the exit status.
// In-process, options the engine would refuse for every probe they apply
// to are a usage error before anything is sent (OptionsProblemMessage).
int RunProbeCommand(const ProbeCommand& command);

// The message for options the in-process engine refuses: the flag behind
// the field when the flags are at fault ("--cacert: ca_pem: ..."), else the
// target's line ("urls.jsonl:3: options.body_must_match[0]: ...").
std::string OptionsProblemMessage(const OptionsProblem& problem,
                                  const TargetOrigins& origins);

// The exit status of a run that went as `outcome` says (exit_code.h).
int ProbeExitStatus(const SplitOutcome& outcome);

}  // namespace fanprobe::cli

#endif  // FANPROBE_CLI_PROBE_COMMAND_H_
