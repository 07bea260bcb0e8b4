#include "monitoring/process_figures.h"

#include <dirent.h>
#include <unistd.h>

#include <cstdint>
#include <fstream>
#include <memory>
#include <sstream>
#include <string>
#include <vector>

#include "absl/status/status.h"
#include "absl/status/statusor.h"
#include "absl/strings/numbers.h"
#include "absl/strings/str_cat.h"
#include "absl/strings/str_split.h"
#include "absl/strings/string_view.h"
#include "absl/strings/strip.h"

namespace fanprobe::monitoring {
namespace {

absl::StatusOr<std::string> ReadFile(const std::string& path) {
  std::ifstream in(path);
  if (!in) return absl::NotFoundError(absl::StrCat("cannot read ", path));
  std::stringstream text;
  text << in.rdbuf();
  return text.str();
}

}  // namespace

absl::StatusOr<ProcessFigures> ReadProcessFigures(
    const std::string& proc_root) {
  ProcessFigures figures;
  absl::StatusOr<std::string> stat = ReadFile(proc_root + "/self/stat");
  if (!stat.ok()) return stat.status();
  // The command name (field 2) is in parentheses and may hold spaces; the
  // fields after its closing parenthesis start with field 3 (state).
  const size_t paren = stat->rfind(')');
  if (paren == std::string::npos) {
    return absl::DataLossError("unexpected format of /proc/self/stat");
  }
  std::vector<absl::string_view> fields = absl::StrSplit(
      absl::string_view(*stat).substr(paren + 1), ' ', absl::SkipEmpty());
  // Field n (1-based, as proc(5) numbers them) is fields[n - 3].
  auto field = [&fields](int n, uint64_t* value) {
    const size_t i = static_cast<size_t>(n - 3);
    return i < fields.size() &&
           absl::SimpleAtoi(absl::StripAsciiWhitespace(fields[i]), value);
  };
  uint64_t utime = 0, stime = 0, starttime = 0, vsize = 0, rss_pages = 0;
  if (!field(14, &utime) || !field(15, &stime) || !field(22, &starttime) ||
      !field(23, &vsize) || !field(24, &rss_pages)) {
    return absl::DataLossError("unexpected format of /proc/self/stat");
  }
  const double ticks = static_cast<double>(sysconf(_SC_CLK_TCK));
  figures.cpu_seconds = static_cast<double>(utime + stime) / ticks;
  figures.virtual_bytes = vsize;
  figures.resident_bytes =
      rss_pages * static_cast<uint64_t>(sysconf(_SC_PAGESIZE));

  absl::StatusOr<std::string> system_stat = ReadFile(proc_root + "/stat");
  if (!system_stat.ok()) return system_stat.status();
  uint64_t boot_time = 0;
  for (absl::string_view line : absl::StrSplit(*system_stat, '\n')) {
    if (absl::ConsumePrefix(&line, "btime ")) {
      (void)absl::SimpleAtoi(line, &boot_time);
    }
  }
  if (boot_time == 0) return absl::DataLossError("no btime in /proc/stat");
  figures.start_time_seconds =
      static_cast<double>(boot_time) + static_cast<double>(starttime) / ticks;

  absl::StatusOr<std::string> limits = ReadFile(proc_root + "/self/limits");
  if (!limits.ok()) return limits.status();
  for (absl::string_view line : absl::StrSplit(*limits, '\n')) {
    if (!absl::ConsumePrefix(&line, "Max open files")) continue;
    std::vector<absl::string_view> values =
        absl::StrSplit(line, ' ', absl::SkipEmpty());
    // "Max open files  <soft>  <hard>  files"; "unlimited" stays 0.
    if (!values.empty()) (void)absl::SimpleAtoi(values[0], &figures.max_fds);
  }

  const std::string fd_dir = proc_root + "/self/fd";
  std::unique_ptr<DIR, int (*)(DIR*)> dir(opendir(fd_dir.c_str()), closedir);
  if (dir == nullptr) return absl::NotFoundError("cannot list " + fd_dir);
  while (const dirent* entry = readdir(dir.get())) {
    if (entry->d_name[0] != '.') ++figures.open_fds;
  }
  // Like the Prometheus client libraries, this counts the descriptor that
  // lists the directory too.
  return figures;
}

}  // namespace fanprobe::monitoring
