// tools.h: what the monitoring tests need to run the real Prometheus tools
// (Debian's prometheus, promtool and prometheus-blackbox-exporter) next to
// fanprobe: long-running child processes that log to a file and are killed
// on exit, one-shot commands, temporary directories, free ports, and HTTP
// GETs against loopback servers.
//
// Example:
//   TempDir dir;
//   ChildProcess prometheus({*FindTool("prometheus"), "--config.file=..."},
//                           dir.path() + "/prometheus.log");
//   ASSERT_TRUE(PollUntil([&] { return HttpGet(url).status == 200; },
//                         absl::Seconds(30)));
//
// Thread-safety: use each object from one thread.

#ifndef FANPROBE_TESTS_MONITORING_TOOLS_H_
#define FANPROBE_TESTS_MONITORING_TOOLS_H_

#include <sys/types.h>

#include <functional>
#include <optional>
#include <string>
#include <utility>
#include <vector>

#include "absl/strings/string_view.h"
#include "absl/time/time.h"

namespace fanprobe::testing {

// The path of a Debian tool (/usr/bin/<name>); nullopt when it is not
// installed (the test then skips, naming the package to install).
std::optional<std::string> FindTool(absl::string_view name);

// A fresh directory under $TMPDIR (or /tmp), removed with its contents.
class TempDir {
 public:
  TempDir();
  ~TempDir();
  TempDir(const TempDir&) = delete;
  TempDir& operator=(const TempDir&) = delete;

  const std::string& path() const { return path_; }
  // Writes `content` to path()/name (creating subdirectories) and returns
  // the file's path.
  std::string Write(absl::string_view name, absl::string_view content) const;

 private:
  std::string path_;
};

// A loopback TCP port nothing listens on right now.  Another process could
// take it before the caller binds it; the tools tested here cannot be
// handed a listening socket, and port 0 is not an option for them.
int FreePort();

// A process running in the background, stdout and stderr appended to
// `log_path`, stdin from /dev/null.  Aborts the test binary if it cannot be
// started.
class ChildProcess {
 public:
  ChildProcess(std::vector<std::string> argv, std::string log_path);
  // SIGTERM, then SIGKILL if it has not exited within 5 s.
  ~ChildProcess();
  ChildProcess(const ChildProcess&) = delete;
  ChildProcess& operator=(const ChildProcess&) = delete;

  // Waits for the process to exit, at most `timeout` (without sleeping: a
  // pidfd is polled).  The exit status, or nullopt if it still runs; -1 if
  // a signal ended it.
  std::optional<int> Wait(absl::Duration timeout);
  // What it has logged so far.
  std::string Log() const;

 private:
  pid_t pid_ = -1;
  int pidfd_ = -1;
  std::optional<int> exit_code_;
  std::string log_path_;
};

// Runs argv to completion with `stdin_text` on its stdin; returns its exit
// status (-1 when killed after `timeout`) and its stdout + stderr.
struct RunResult {
  int exit_code = -1;
  std::string output;
};
RunResult RunCommand(std::vector<std::string> argv,
                     absl::string_view stdin_text, absl::Duration timeout);

struct HttpReply {
  int status = 0;  // 0 when the request failed (no connection)
  std::string body;
  std::string content_type;
  std::string www_authenticate;  // the WWW-Authenticate header, if any
};
// GET http://<host_port><path_and_query> with optional extra headers.
HttpReply HttpGet(
    const std::string& host_port, const std::string& path_and_query,
    const std::vector<std::pair<std::string, std::string>>& headers = {},
    absl::Duration timeout = absl::Seconds(10));

// Calls `condition` every `interval` until it holds or `timeout` passes.
// For state of another process that offers nothing to wait on (a server
// becoming ready, Prometheus having scraped).
bool PollUntil(const std::function<bool()>& condition, absl::Duration timeout,
               absl::Duration interval = absl::Milliseconds(50));

// Percent-encodes a query parameter value.
std::string UrlEncode(absl::string_view text);

}  // namespace fanprobe::testing

#endif  // FANPROBE_TESTS_MONITORING_TOOLS_H_
