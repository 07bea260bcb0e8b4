// health_command.h: `fanprobe health` -- one grpc.health.v1 Check of the
// server (the empty service name: the server as a whole), for scripts and
// container health checks.  Prints the serving status; exits 0 when
// SERVING, 1 when the server answers otherwise (NOT_SERVING while it
// drains), 2 when it cannot be asked.
//
// Example:
//   absl::StatusOr<HealthCommand> command = ResolveHealthCommand(flags);
//   if (!command.ok()) ...;  // a usage error, for the user
//   return RunHealthCommand(*command, std::cout, std::cerr);
//
// Thread-safety: the functions may be called from any thread.

#ifndef FANPROBE_CLI_HEALTH_COMMAND_H_
#define FANPROBE_CLI_HEALTH_COMMAND_H_

#include <ostream>
#include <string>

#include "absl/status/statusor.h"
#include "absl/time/time.h"
#include "cli/connection.h"
#include "cli/flags.h"

namespace fanprobe::cli {

struct HealthCommand {
  std::string server;
  ConnectionFlags connection;
  // The Check's deadline.
  absl::Duration timeout = absl::Seconds(5);
};

// kInvalidArgument naming the flag when --timeout is not a duration.
absl::StatusOr<HealthCommand> ResolveHealthCommand(const HealthFlags& flags);

// Asks the server; prints its status ("SERVING") on `out`, or why it could
// not be asked on `err`; returns the exit status.
int RunHealthCommand(const HealthCommand& command, std::ostream& out,
                     std::ostream& err);

}  // namespace fanprobe::cli

#endif  // FANPROBE_CLI_HEALTH_COMMAND_H_
