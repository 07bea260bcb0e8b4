// process_figures.h: the process figures every Prometheus client library
// exports (process_cpu_seconds_total, process_open_fds, ...), read from
// Linux's /proc.  collectors.h turns them into samples at scrape time.
//
// Example:
//   absl::StatusOr<ProcessFigures> figures = ReadProcessFigures();
//   if (figures.ok()) ... figures->resident_bytes ...
//
// Thread-safety: a plain function; it reads files only.

#ifndef FANPROBE_MONITORING_PROCESS_FIGURES_H_
#define FANPROBE_MONITORING_PROCESS_FIGURES_H_

#include <cstdint>
#include <string>

#include "absl/status/statusor.h"

namespace fanprobe::monitoring {

struct ProcessFigures {
  double cpu_seconds = 0;  // user + system
  uint64_t resident_bytes = 0;
  uint64_t virtual_bytes = 0;
  uint64_t open_fds = 0;
  uint64_t max_fds = 0;           // the RLIMIT_NOFILE soft limit
  double start_time_seconds = 0;  // since the Unix epoch
};

// Reads the figures of the calling process from `proc_root`/self/{stat,fd,
// limits} and `proc_root`/stat (the boot time).  Tests pass a directory laid
// out the same way.  kNotFound / kDataLoss when a file is missing or does not
// parse.
absl::StatusOr<ProcessFigures> ReadProcessFigures(
    const std::string& proc_root = "/proc");

}  // namespace fanprobe::monitoring

#endif  // FANPROBE_MONITORING_PROCESS_FIGURES_H_
