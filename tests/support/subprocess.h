// subprocess.h: the tests' one way to run another program -- fanprobe's own
// binaries (exit codes, output, signals) and the Debian tools they are
// checked against (prometheus, promtool, blackbox_exporter, python3).
//
// Example:
//   Subprocess cli({kCliBinary, "probe", "--server=...", url});
//   Subprocess::Exit exit = cli.Wait(absl::Seconds(10));
//   EXPECT_EQ(exit.code, 0);
//   EXPECT_THAT(cli.Stdout(), HasSubstr("ALL_COMPLETED"));
//
//   // A long-running tool whose output nobody reads as it comes:
//   Subprocess prometheus({*FindTool("prometheus"), ...},
//                         {.output_file = dir.File("prometheus.log")});
//   bool exited = prometheus.TryWait(absl::ZeroDuration()).has_value();
//
// Thread-safety: use one Subprocess from one thread.

#ifndef FANPROBE_TESTS_SUPPORT_SUBPROCESS_H_
#define FANPROBE_TESTS_SUPPORT_SUBPROCESS_H_

#include <sys/types.h>

#include <functional>
#include <optional>
#include <string>
#include <vector>

#include "absl/strings/string_view.h"
#include "absl/time/time.h"

namespace fanprobe::testing {

struct SubprocessOptions {
  // The child's stdin: this, then EOF.
  std::string stdin_data;
  // The child's stdin is a pseudo-terminal instead (stdin_data is then not
  // used): nothing is typed on it and it stays open until the Subprocess
  // is destroyed, so a child that reads it waits.
  bool stdin_is_terminal = false;
  // The child's stderr is a pseudo-terminal instead of a pipe, for
  // output that only a terminal gets.  Its "\n" arrive as "\r\n".
  bool stderr_is_terminal = false;
  // Set: stdout and stderr are appended to this file instead of captured,
  // for a child that runs long and logs more than a pipe holds while
  // nobody reads it; OutputFile() reads it.
  std::string output_file;
};

class Subprocess {
 public:
  using Options = SubprocessOptions;

  // How the child ended.  code is its exit status, or -1 when it was
  // killed (signal set) or did not end in time (timed_out).
  struct Exit {
    int code = -1;
    int signal = 0;
    bool timed_out = false;
  };

  // Starts argv[0] (a path) with no signal blocked and default signal
  // dispositions, as from a shell.  Aborts the test binary if it cannot.
  explicit Subprocess(std::vector<std::string> argv, Options options = {});
  // Kills the child (SIGKILL) if it still runs, and reaps it.
  ~Subprocess();

  Subprocess(const Subprocess&) = delete;
  Subprocess& operator=(const Subprocess&) = delete;

  // Reads the child's output until a stderr line satisfies `match` (that
  // line is returned) or `timeout` passes or the child closes stderr.
  std::optional<std::string> WaitForStderrLine(
      const std::function<bool(absl::string_view line)>& match,
      absl::Duration timeout);
  // The same for stdout (a server that announces its port there).
  std::optional<std::string> WaitForStdoutLine(
      const std::function<bool(absl::string_view line)>& match,
      absl::Duration timeout);

  void Signal(int signal_number);
  // The child's process id (for /proc/<pid>/...); valid until it is reaped.
  pid_t pid() const { return pid_; }

  // Reads all output until the child exits; kills it after `timeout`.
  Exit Wait(absl::Duration timeout);
  // Reads output for at most `timeout`: how the child ended if it has,
  // else nullopt, and it runs on.
  std::optional<Exit> TryWait(absl::Duration timeout);

  const std::string& Stdout() const { return stdout_; }
  const std::string& Stderr() const { return stderr_; }
  // What options.output_file holds so far.
  std::string OutputFile() const;

 private:
  // Reads whatever output is available within `timeout` and notes the
  // child's exit; returns early on either.
  void Pump(absl::Duration timeout);
  // Reaps the child once it has exited; true if it has.
  bool Reap();
  // WaitForStderrLine / WaitForStdoutLine on `output`, read from `fd`, from
  // `scanned` on.
  std::optional<std::string> WaitForLine(
      const std::string& output, const int& fd, size_t& scanned,
      const std::function<bool(absl::string_view line)>& match,
      absl::Duration timeout);

  pid_t pid_ = -1;
  int pidfd_ = -1;
  int stdout_fd_ = -1;
  int stderr_fd_ = -1;
  int stdin_terminal_fd_ = -1;  // the pty's parent side, when stdin is one
  std::string output_file_;
  std::string stdout_;
  std::string stderr_;
  size_t stderr_scanned_ = 0;  // stderr_ bytes WaitForStderrLine has seen
  size_t stdout_scanned_ = 0;  // stdout_ bytes WaitForStdoutLine has seen
  std::optional<Exit> exit_;
};

// A finished run: exit code (-1 if killed or not done within the timeout)
// and all the child printed.
struct ProcessRun {
  int code = -1;
  std::string out;
  std::string err;
};

// Runs argv to its end (at most `timeout`) and returns what it printed.
ProcessRun RunToExit(std::vector<std::string> argv, absl::Duration timeout,
                     SubprocessOptions options = {});

// The path of a Debian tool (/usr/bin/<name>); nullopt when it is not
// installed (the test then skips, naming the package to install).
std::optional<std::string> FindTool(absl::string_view name);

}  // namespace fanprobe::testing

#endif  // FANPROBE_TESTS_SUPPORT_SUBPROCESS_H_
