#include "server/descriptors.h"

#include <sys/resource.h>

#include <cerrno>
#include <cstdint>
#include <cstring>
#include <fstream>
#include <utility>
#include <vector>

#include "absl/status/status.h"
#include "absl/status/statusor.h"
#include "absl/strings/str_cat.h"

namespace fanprobe::server {
namespace {

// The most descriptors the kernel lets a process have: what an unlimited
// hard limit means in practice (setting RLIM_INFINITY is refused).
uint64_t NrOpen() {
  std::ifstream file("/proc/sys/fs/nr_open");
  uint64_t value = 0;
  if (file >> value && value > 0) return value;
  return 1 << 20;  // the kernel's default
}

}  // namespace

absl::StatusOr<FdLimits> RaiseFdLimit() {
  rlimit limit{};
  if (getrlimit(RLIMIT_NOFILE, &limit) != 0) {
    return absl::InternalError(
        absl::StrCat("getrlimit(RLIMIT_NOFILE): ", std::strerror(errno)));
  }
  FdLimits limits;
  limits.soft_before = limit.rlim_cur;
  limits.hard = limit.rlim_max == RLIM_INFINITY ? NrOpen() : limit.rlim_max;
  limits.soft = limits.soft_before;
  if (limits.soft_before < limits.hard) {
    limit.rlim_cur = limits.hard;
    if (setrlimit(RLIMIT_NOFILE, &limit) == 0) limits.soft = limits.hard;
  }
  return limits;
}

std::vector<log::Line> DescriptorBudgetLines(const FdLimits& limits,
                                             const EngineStats& stats,
                                             uint64_t requested_max_in_flight,
                                             uint64_t grpc_connections,
                                             uint64_t http_connections) {
  std::vector<log::Line> lines;
  log::Line budget("descriptor_budget");
  budget.Add("fd_limit", stats.fd_limit)
      .Add("fd_limit_at_start", limits.soft_before)
      .Add("fd_hard_limit", limits.hard)
      .Add("fd_open_at_start", stats.fd_open_at_start)
      .Add("fd_reserve", stats.fd_reserve);
  // The rest of the reserve is for the server's own files and the health
  // port.
  if (grpc_connections > 0) {
    budget.Add("fd_reserve_grpc_connections", grpc_connections);
  }
  if (http_connections > 0) {
    budget.Add("fd_reserve_http_connections", http_connections);
  }
  budget.Add("max_in_flight", stats.max_in_flight)
      .Add("max_in_flight_flag", requested_max_in_flight);
  lines.push_back(std::move(budget));
  if (stats.max_in_flight < requested_max_in_flight) {
    lines.push_back(
        log::Line("warning")
            .Add("message",
                 absl::StrCat(
                     "at most ", stats.max_in_flight,
                     " probes can run at once, not --max_in_flight=",
                     requested_max_in_flight, ": the descriptor limit is ",
                     stats.fd_limit, " (hard limit ", limits.hard, "), ",
                     stats.fd_open_at_start, " were open at start and ",
                     stats.fd_reserve,
                     " are kept for incoming connections and the server's "
                     "own files; raise the hard limit (ulimit -Hn, "
                     "LimitNOFILE=, the container's nofile), lower "
                     "--max_grpc_connections or --http_max_connections "
                     "(one each) or lower --max_in_flight"))
            .Add("fd_limit", stats.fd_limit)
            .Add("fd_reserve", stats.fd_reserve)
            .Add("max_in_flight", stats.max_in_flight)
            .Add("max_in_flight_flag", requested_max_in_flight));
  }
  return lines;
}

}  // namespace fanprobe::server
