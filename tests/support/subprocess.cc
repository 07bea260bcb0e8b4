#include "tests/support/subprocess.h"

#include <fcntl.h>
#include <poll.h>
#include <signal.h>
#include <spawn.h>
#include <sys/mman.h>
#include <sys/syscall.h>
#include <sys/wait.h>
#include <unistd.h>

#include <cerrno>
#include <cstdio>
#include <cstdlib>
#include <fstream>
#include <optional>
#include <sstream>
#include <string>
#include <utility>
#include <vector>

#include "absl/strings/str_cat.h"
#include "absl/time/clock.h"
#include "absl/time/time.h"

extern char** environ;

namespace fanprobe::testing {
namespace {

void Check(bool ok, const char* what) {
  if (!ok) {
    std::perror(what);
    std::abort();
  }
}

// The child's stdin: a memory file holding `data`, read from its start, so
// input of any size needs no reader on this side.
int StdinFile(const std::string& data) {
  const int fd = memfd_create("fanprobe-test-stdin", MFD_CLOEXEC);
  Check(fd >= 0, "memfd_create");
  size_t written = 0;
  while (written < data.size()) {
    const ssize_t n = write(fd, data.data() + written, data.size() - written);
    Check(n > 0, "write stdin");
    written += static_cast<size_t>(n);
  }
  Check(lseek(fd, 0, SEEK_SET) == 0, "lseek");
  return fd;
}

int PollTimeoutMs(absl::Duration timeout) {
  if (timeout <= absl::ZeroDuration()) return 0;
  // Rounded up, so a short wait does not spin.
  return static_cast<int>(
      absl::ToInt64Milliseconds(timeout + absl::Microseconds(999)));
}

}  // namespace

Subprocess::Subprocess(std::vector<std::string> argv, Options options)
    : output_file_(std::move(options.output_file)) {
  int in = -1;
  if (options.stdin_is_terminal) {
    stdin_terminal_fd_ = posix_openpt(O_RDWR | O_NOCTTY | O_CLOEXEC);
    Check(stdin_terminal_fd_ >= 0 && grantpt(stdin_terminal_fd_) == 0 &&
              unlockpt(stdin_terminal_fd_) == 0,
          "posix_openpt");
    in = open(ptsname(stdin_terminal_fd_), O_RDWR | O_NOCTTY | O_CLOEXEC);
    Check(in >= 0, "open pty");
  } else {
    in = StdinFile(options.stdin_data);
  }
  int out[2] = {-1, -1};
  int err[2] = {-1, -1};
  if (!output_file_.empty()) {
    out[1] = open(output_file_.c_str(),
                  O_WRONLY | O_CREAT | O_APPEND | O_CLOEXEC, 0644);
    Check(out[1] >= 0, output_file_.c_str());
  } else {
    Check(pipe2(out, O_CLOEXEC) == 0, "pipe2");
    if (options.stderr_is_terminal) {
      err[0] = posix_openpt(O_RDWR | O_NOCTTY | O_CLOEXEC);
      Check(err[0] >= 0 && grantpt(err[0]) == 0 && unlockpt(err[0]) == 0,
            "posix_openpt");
      err[1] = open(ptsname(err[0]), O_RDWR | O_NOCTTY | O_CLOEXEC);
      Check(err[1] >= 0, "open pty");
    } else {
      Check(pipe2(err, O_CLOEXEC) == 0, "pipe2");
    }
  }
  posix_spawn_file_actions_t actions;
  posix_spawn_file_actions_init(&actions);
  posix_spawn_file_actions_adddup2(&actions, in, STDIN_FILENO);
  posix_spawn_file_actions_adddup2(&actions, out[1], STDOUT_FILENO);
  posix_spawn_file_actions_adddup2(&actions, err[1] >= 0 ? err[1] : out[1],
                                   STDERR_FILENO);
  // The test binary may block signals (gRPC threads); the child starts
  // with none blocked and default dispositions, as from a shell.
  posix_spawnattr_t attr;
  posix_spawnattr_init(&attr);
  sigset_t none;
  sigemptyset(&none);
  sigset_t all;
  sigfillset(&all);
  posix_spawnattr_setsigmask(&attr, &none);
  posix_spawnattr_setsigdefault(&attr, &all);
  posix_spawnattr_setflags(&attr,
                           POSIX_SPAWN_SETSIGMASK | POSIX_SPAWN_SETSIGDEF);

  std::vector<char*> args;
  for (std::string& arg : argv) args.push_back(arg.data());
  args.push_back(nullptr);
  const int spawned =
      posix_spawn(&pid_, args[0], &actions, &attr, args.data(), environ);
  posix_spawn_file_actions_destroy(&actions);
  posix_spawnattr_destroy(&attr);
  errno = spawned;
  Check(spawned == 0, argv[0].c_str());
  close(in);
  close(out[1]);
  if (err[1] >= 0) close(err[1]);
  stdout_fd_ = out[0];
  stderr_fd_ = err[0];
  // Waiting on a pidfd needs no polling for the exit.
  pidfd_ = static_cast<int>(syscall(SYS_pidfd_open, pid_, 0));
  Check(pidfd_ >= 0, "pidfd_open");
}

Subprocess::~Subprocess() {
  if (!exit_.has_value() && pid_ > 0) {
    kill(pid_, SIGKILL);
    waitpid(pid_, nullptr, 0);
  }
  if (pidfd_ >= 0) close(pidfd_);
  if (stdout_fd_ >= 0) close(stdout_fd_);
  if (stderr_fd_ >= 0) close(stderr_fd_);
  if (stdin_terminal_fd_ >= 0) close(stdin_terminal_fd_);
}

bool Subprocess::Reap() {
  if (exit_.has_value()) return true;
  int status = 0;
  if (waitpid(pid_, &status, WNOHANG) != pid_) return false;
  Exit exit;
  if (WIFEXITED(status)) exit.code = WEXITSTATUS(status);
  if (WIFSIGNALED(status)) exit.signal = WTERMSIG(status);
  exit_ = exit;
  return true;
}

void Subprocess::Pump(absl::Duration timeout) {
  pollfd fds[3];
  int count = 0;
  if (stdout_fd_ >= 0) fds[count++] = {stdout_fd_, POLLIN, 0};
  if (stderr_fd_ >= 0) fds[count++] = {stderr_fd_, POLLIN, 0};
  if (!exit_.has_value()) fds[count++] = {pidfd_, POLLIN, 0};
  if (count == 0) return;
  if (poll(fds, count, PollTimeoutMs(timeout)) <= 0) return;
  for (int i = 0; i < count; ++i) {
    if (fds[i].revents == 0) continue;
    if (fds[i].fd == pidfd_) {
      Reap();
      continue;
    }
    char buffer[4096];
    const ssize_t n = read(fds[i].fd, buffer, sizeof(buffer));
    const bool is_stdout = fds[i].fd == stdout_fd_;
    if (n > 0) {
      (is_stdout ? stdout_ : stderr_).append(buffer, static_cast<size_t>(n));
    } else {  // EOF, or EIO from a terminal whose child side closed
      close(fds[i].fd);
      (is_stdout ? stdout_fd_ : stderr_fd_) = -1;
    }
  }
}

std::optional<std::string> Subprocess::WaitForStderrLine(
    const std::function<bool(absl::string_view line)>& match,
    absl::Duration timeout) {
  return WaitForLine(stderr_, stderr_fd_, stderr_scanned_, match, timeout);
}

std::optional<std::string> Subprocess::WaitForStdoutLine(
    const std::function<bool(absl::string_view line)>& match,
    absl::Duration timeout) {
  return WaitForLine(stdout_, stdout_fd_, stdout_scanned_, match, timeout);
}

std::optional<std::string> Subprocess::WaitForLine(
    const std::string& output, const int& fd, size_t& scanned,
    const std::function<bool(absl::string_view line)>& match,
    absl::Duration timeout) {
  const absl::Time deadline = absl::Now() + timeout;
  for (;;) {
    size_t end;
    while ((end = output.find('\n', scanned)) != std::string::npos) {
      std::string line = output.substr(scanned, end - scanned);
      scanned = end + 1;
      if (match(line)) return line;
    }
    const absl::Duration left = deadline - absl::Now();
    if (left <= absl::ZeroDuration() || fd < 0) return std::nullopt;
    Pump(left);  // may append to `output` and close `fd`
  }
}

void Subprocess::Signal(int signal_number) {
  if (!exit_.has_value()) kill(pid_, signal_number);
}

std::optional<Subprocess::Exit> Subprocess::TryWait(absl::Duration timeout) {
  const absl::Time deadline = absl::Now() + timeout;
  // Done once the child has exited and its output is read to the end.
  while (!exit_.has_value() || stdout_fd_ >= 0 || stderr_fd_ >= 0) {
    const absl::Duration left = deadline - absl::Now();
    Pump(left);
    if (left <= absl::ZeroDuration()) break;
  }
  if (!exit_.has_value()) return std::nullopt;
  return exit_;
}

Subprocess::Exit Subprocess::Wait(absl::Duration timeout) {
  if (std::optional<Exit> exit = TryWait(timeout); exit.has_value()) {
    return *exit;
  }
  kill(pid_, SIGKILL);
  int status = 0;
  waitpid(pid_, &status, 0);
  Exit exit;
  exit.timed_out = true;
  if (WIFSIGNALED(status)) exit.signal = WTERMSIG(status);
  exit_ = exit;
  return exit;
}

std::string Subprocess::OutputFile() const {
  std::ifstream in(output_file_);
  std::stringstream text;
  text << in.rdbuf();
  return text.str();
}

ProcessRun RunToExit(std::vector<std::string> argv, absl::Duration timeout,
                     SubprocessOptions options) {
  Subprocess child(std::move(argv), std::move(options));
  const Subprocess::Exit exit = child.Wait(timeout);
  return {exit.code, child.Stdout(), child.Stderr()};
}

std::optional<std::string> FindTool(absl::string_view name) {
  const std::string path = absl::StrCat("/usr/bin/", name);
  if (access(path.c_str(), X_OK) != 0) return std::nullopt;
  return path;
}

}  // namespace fanprobe::testing
