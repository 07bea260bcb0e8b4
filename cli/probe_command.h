// probe_command.h: `fanprobe probe`.  ResolveProbeCommand gives the flags
// their meaning (the servers, the output format, the batch request with
// its targets -- reading the URL files and stdin); RunProbeCommand splits
// the batch across the servers (one server: one share, split.h), prints
// the rows and the summary on stdout, and turns how it went into the exit
// status (exit_code.h).  SIGINT and SIGTERM during the run end the batch
// CANCELLED: the servers cancel their probes and the summary is printed.
//
// Example:
//   absl::StatusOr<ProbeCommand> command = ResolveProbeCommand(flags,
//                                                               std::cin);
//   if (!command.ok()) ...;  // a usage error, for the user
//   return RunProbeCommand(*command);
//
// Thread-safety: RunProbeCommand must be called from the main thread,
// before gRPC was used in the process: it blocks SIGINT and SIGTERM for the
// threads gRPC starts, so that its own thread can wait for them.

#ifndef FANPROBE_CLI_PROBE_COMMAND_H_
#define FANPROBE_CLI_PROBE_COMMAND_H_

#include <istream>
#include <string>
#include <vector>

#include "absl/status/statusor.h"
#include "cli/connection.h"
#include "cli/flags.h"
#include "cli/output.h"
#include "fanprobe/v1/prober.pb.h"

namespace fanprobe::cli {

struct ProbeCommand {
  // One share of the batch each, in order; at least one.
  std::vector<std::string> servers;
  ConnectionFlags connection;
  v1::ProbeBatchRequest request;
  Format format = Format::kTable;
};

// kInvalidArgument with a message for the user when a flag's value is bad,
// a file unreadable, or there is no target; `in` is read for "--file=-".
absl::StatusOr<ProbeCommand> ResolveProbeCommand(const ProbeFlags& flags,
                                                 std::istream& in);

// Runs the batch, writing stdout and stderr; returns the exit status.
int RunProbeCommand(const ProbeCommand& command);

}  // namespace fanprobe::cli

#endif  // FANPROBE_CLI_PROBE_COMMAND_H_
