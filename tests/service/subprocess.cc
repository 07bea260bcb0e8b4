#include "tests/service/subprocess.h"

#include <fcntl.h>
#include <poll.h>
#include <signal.h>
#include <spawn.h>
#include <sys/wait.h>
#include <unistd.h>

#include <cerrno>
#include <cstdio>
#include <cstdlib>
#include <string>
#include <utility>
#include <vector>

#include "absl/time/clock.h"

extern char** environ;

namespace fanprobe::testing {
namespace {

void Check(bool ok, const char* what) {
  if (!ok) {
    std::perror(what);
    std::abort();
  }
}

}  // namespace

Subprocess::Subprocess(std::vector<std::string> argv, Options options) {
  int in[2];
  int out[2];
  int err[2];
  Check(pipe2(in, O_CLOEXEC) == 0 && pipe2(out, O_CLOEXEC) == 0, "pipe2");
  if (options.stderr_is_terminal) {
    err[0] = posix_openpt(O_RDWR | O_NOCTTY | O_CLOEXEC);
    Check(err[0] >= 0 && grantpt(err[0]) == 0 && unlockpt(err[0]) == 0,
          "posix_openpt");
    err[1] = open(ptsname(err[0]), O_RDWR | O_NOCTTY | O_CLOEXEC);
    Check(err[1] >= 0, "open pty");
  } else {
    Check(pipe2(err, O_CLOEXEC) == 0, "pipe2");
  }
  posix_spawn_file_actions_t actions;
  posix_spawn_file_actions_init(&actions);
  posix_spawn_file_actions_adddup2(&actions, in[0], STDIN_FILENO);
  posix_spawn_file_actions_adddup2(&actions, out[1], STDOUT_FILENO);
  posix_spawn_file_actions_adddup2(&actions, err[1], STDERR_FILENO);
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
  close(in[0]);
  close(out[1]);
  close(err[1]);
  stdout_fd_ = out[0];
  stderr_fd_ = err[0];

  // Small inputs only: the pipe buffer (64 KiB) takes them without the
  // child reading.
  signal(SIGPIPE, SIG_IGN);
  const std::string& data = options.stdin_data;
  size_t written = 0;
  while (written < data.size()) {
    const ssize_t n =
        write(in[1], data.data() + written, data.size() - written);
    if (n <= 0) break;
    written += static_cast<size_t>(n);
  }
  close(in[1]);
}

Subprocess::~Subprocess() {
  if (!exit_.has_value() && pid_ > 0) {
    kill(pid_, SIGKILL);
    waitpid(pid_, nullptr, 0);
  }
  if (stdout_fd_ >= 0) close(stdout_fd_);
  if (stderr_fd_ >= 0) close(stderr_fd_);
}

bool Subprocess::Pump(absl::Duration timeout) {
  pollfd fds[2];
  int count = 0;
  if (stdout_fd_ >= 0) fds[count++] = {stdout_fd_, POLLIN, 0};
  if (stderr_fd_ >= 0) fds[count++] = {stderr_fd_, POLLIN, 0};
  if (count == 0) return false;
  const int ready =
      poll(fds, count, static_cast<int>(absl::ToInt64Milliseconds(timeout)));
  if (ready <= 0) return true;
  for (int i = 0; i < count; ++i) {
    if (fds[i].revents == 0) continue;
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
  return true;
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

Subprocess::Exit Subprocess::Wait(absl::Duration timeout) {
  if (exit_.has_value()) return *exit_;
  const absl::Time deadline = absl::Now() + timeout;
  Exit exit;
  while (stdout_fd_ >= 0 || stderr_fd_ >= 0) {
    const absl::Duration left = deadline - absl::Now();
    if (left <= absl::ZeroDuration()) {
      exit.timed_out = true;
      kill(pid_, SIGKILL);
      break;
    }
    Pump(left);
  }
  int status = 0;
  while (waitpid(pid_, &status, WNOHANG) == 0) {
    if (absl::Now() >= deadline) {
      exit.timed_out = true;
      kill(pid_, SIGKILL);
      waitpid(pid_, &status, 0);
      break;
    }
    absl::SleepFor(absl::Milliseconds(1));  // output closed, exit imminent
  }
  if (WIFEXITED(status) && !exit.timed_out) exit.code = WEXITSTATUS(status);
  if (WIFSIGNALED(status)) exit.signal = WTERMSIG(status);
  exit_ = exit;
  return exit;
}

ProcessRun RunToExit(std::vector<std::string> argv, absl::Duration timeout,
                     SubprocessOptions options) {
  Subprocess child(std::move(argv), std::move(options));
  const Subprocess::Exit exit = child.Wait(timeout);
  return {exit.code, child.Stdout(), child.Stderr()};
}

}  // namespace fanprobe::testing
