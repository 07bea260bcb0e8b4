// descriptors.h: the file-descriptor budget of fanprobe-server.  Each
// running probe holds a socket, so the soft RLIMIT_NOFILE (often 1024)
// bounds how many probes can run; the engine reads the limit and keeps
// probes inside it (EngineOptions::fd_reserve), but raising it is the
// program's business, done here once at start.  What the budget then
// allows is logged, and a warning said when it is less than
// --max_in_flight asked for, so a server started under a low `ulimit -n`
// does not quietly run probes a few at a time.
//
// Example (server_main.cc):
//   absl::StatusOr<FdLimits> limits = RaiseFdLimit();  // before any thread
//   ... start the server ...
//   for (const log::Line& line : DescriptorBudgetLines(
//            *limits, server->engine().Stats(), flag_max_in_flight,
//            flag_http_max_connections)) {
//     logger.Log(line);
//   }
//
// Thread-safety: RaiseFdLimit changes the process's limit: call it once, at
// start, before threads that open descriptors run.  DescriptorBudgetLines
// is a plain function.

#ifndef FANPROBE_SERVER_DESCRIPTORS_H_
#define FANPROBE_SERVER_DESCRIPTORS_H_

#include <cstdint>
#include <vector>

#include "absl/status/statusor.h"
#include "log/logger.h"
#include "probe/engine.h"

namespace fanprobe::server {

// RLIMIT_NOFILE before and after RaiseFdLimit.
struct FdLimits {
  uint64_t soft_before = 0;  // the soft limit the process was started with
  uint64_t soft = 0;         // the soft limit now
  uint64_t hard = 0;         // the hard limit (which only root may raise)
};

// Raises the soft RLIMIT_NOFILE to the hard limit (to the kernel's
// fs.nr_open when the hard limit is unlimited).  The OS's error
// (kInternal) when the limit cannot be read; a limit that cannot be raised
// is kept, and the result says so (soft == soft_before).
absl::StatusOr<FdLimits> RaiseFdLimit();

// The start-up log lines of the budget: one "descriptor_budget" line with
// the limits, the descriptors open at the engine's start, its reserve (and
// how much of it is for gRPC and HTTP connections: `grpc_connections` and
// `http_connections`, the sides' max_connections, which the server adds to
// the engine's reserve) and the effective max in flight, and a "warning"
// line when that is below `requested_max_in_flight` (--max_in_flight).
std::vector<log::Line> DescriptorBudgetLines(const FdLimits& limits,
                                             const EngineStats& stats,
                                             uint64_t requested_max_in_flight,
                                             uint64_t grpc_connections = 0,
                                             uint64_t http_connections = 0);

}  // namespace fanprobe::server

#endif  // FANPROBE_SERVER_DESCRIPTORS_H_
