#include "tests/monitoring/tools.h"

#include <arpa/inet.h>
#include <fcntl.h>
#include <netinet/in.h>
#include <poll.h>
#include <signal.h>
#include <spawn.h>
#include <sys/socket.h>
#include <sys/stat.h>
#include <sys/syscall.h>
#include <sys/wait.h>
#include <unistd.h>

#include <cctype>
#include <cstdio>
#include <cstdlib>
#include <filesystem>
#include <fstream>
#include <optional>
#include <sstream>
#include <string>
#include <utility>
#include <vector>

#include "absl/strings/str_cat.h"
#include "absl/strings/string_view.h"
#include "absl/time/clock.h"
#include "absl/time/time.h"
#include "httplib.h"

extern char** environ;

namespace fanprobe::testing {
namespace {

void Check(bool ok, const char* what) {
  if (!ok) {
    std::perror(what);
    std::abort();
  }
}

pid_t Spawn(const std::vector<std::string>& argv, int stdin_fd, int out_fd) {
  posix_spawn_file_actions_t actions;
  posix_spawn_file_actions_init(&actions);
  posix_spawn_file_actions_adddup2(&actions, stdin_fd, STDIN_FILENO);
  posix_spawn_file_actions_adddup2(&actions, out_fd, STDOUT_FILENO);
  posix_spawn_file_actions_adddup2(&actions, out_fd, STDERR_FILENO);
  std::vector<char*> args;
  for (const std::string& arg : argv)
    args.push_back(const_cast<char*>(arg.c_str()));
  args.push_back(nullptr);
  pid_t pid = -1;
  const int rc = posix_spawn(&pid, argv[0].c_str(), &actions, nullptr,
                             args.data(), environ);
  posix_spawn_file_actions_destroy(&actions);
  Check(rc == 0, argv[0].c_str());
  return pid;
}

int PidFd(pid_t pid) {
  const int fd = static_cast<int>(syscall(SYS_pidfd_open, pid, 0));
  Check(fd >= 0, "pidfd_open");
  return fd;
}

// Waits up to `timeout` for the process behind `pidfd` to exit and reaps
// it.  Its exit status (-1 for a signal), or nullopt if it still runs.
std::optional<int> WaitExit(pid_t pid, int pidfd, absl::Duration timeout) {
  pollfd fd = {.fd = pidfd, .events = POLLIN, .revents = 0};
  const int ms = static_cast<int>(absl::ToInt64Milliseconds(timeout));
  if (poll(&fd, 1, ms) <= 0) return std::nullopt;
  int status = 0;
  if (waitpid(pid, &status, 0) != pid) return std::nullopt;
  return WIFEXITED(status) ? WEXITSTATUS(status) : -1;
}

std::string ReadAll(const std::string& path) {
  std::ifstream in(path);
  std::stringstream text;
  text << in.rdbuf();
  return text.str();
}

}  // namespace

std::optional<std::string> FindTool(absl::string_view name) {
  const std::string path = absl::StrCat("/usr/bin/", name);
  if (access(path.c_str(), X_OK) != 0) return std::nullopt;
  return path;
}

TempDir::TempDir() {
  const char* base = std::getenv("TMPDIR");
  std::string pattern =
      absl::StrCat(base != nullptr && *base != '\0' ? base : "/tmp",
                   "/fanprobe-monitoring-XXXXXX");
  Check(mkdtemp(pattern.data()) != nullptr, "mkdtemp");
  path_ = pattern;
}

TempDir::~TempDir() {
  std::error_code ignored;
  std::filesystem::remove_all(path_, ignored);
}

std::string TempDir::Write(absl::string_view name,
                           absl::string_view content) const {
  const std::filesystem::path path =
      std::filesystem::path(path_) / std::string(name);
  std::filesystem::create_directories(path.parent_path());
  std::ofstream out(path);
  out << content;
  Check(static_cast<bool>(out), "write");
  return path.string();
}

int FreePort() {
  const int fd = socket(AF_INET, SOCK_STREAM | SOCK_CLOEXEC, 0);
  Check(fd >= 0, "socket");
  sockaddr_in address = {};
  address.sin_family = AF_INET;
  address.sin_addr.s_addr = htonl(INADDR_LOOPBACK);
  socklen_t size = sizeof(address);
  Check(bind(fd, reinterpret_cast<sockaddr*>(&address), size) == 0 &&
            getsockname(fd, reinterpret_cast<sockaddr*>(&address), &size) == 0,
        "bind");
  close(fd);
  return ntohs(address.sin_port);
}

ChildProcess::ChildProcess(std::vector<std::string> argv, std::string log_path)
    : log_path_(std::move(log_path)) {
  const int in = open("/dev/null", O_RDONLY | O_CLOEXEC);
  const int out =
      open(log_path_.c_str(), O_WRONLY | O_CREAT | O_APPEND | O_CLOEXEC, 0644);
  Check(in >= 0 && out >= 0, "open");
  pid_ = Spawn(argv, in, out);
  close(in);
  close(out);
  pidfd_ = PidFd(pid_);
}

ChildProcess::~ChildProcess() {
  if (!exit_code_.has_value()) {
    kill(pid_, SIGTERM);
    if (!Wait(absl::Seconds(5)).has_value()) {
      kill(pid_, SIGKILL);
      Wait(absl::Seconds(5));
    }
  }
  close(pidfd_);
}

std::optional<int> ChildProcess::Wait(absl::Duration timeout) {
  if (!exit_code_.has_value()) exit_code_ = WaitExit(pid_, pidfd_, timeout);
  return exit_code_;
}

std::string ChildProcess::Log() const { return ReadAll(log_path_); }

RunResult RunCommand(std::vector<std::string> argv,
                     absl::string_view stdin_text, absl::Duration timeout) {
  TempDir dir;
  const std::string in_path = dir.Write("stdin", stdin_text);
  const std::string out_path = dir.path() + "/output";
  const int in = open(in_path.c_str(), O_RDONLY | O_CLOEXEC);
  const int out =
      open(out_path.c_str(), O_WRONLY | O_CREAT | O_TRUNC | O_CLOEXEC, 0644);
  Check(in >= 0 && out >= 0, "open");
  const pid_t pid = Spawn(argv, in, out);
  close(in);
  close(out);
  const int pidfd = PidFd(pid);
  RunResult result;
  std::optional<int> code = WaitExit(pid, pidfd, timeout);
  if (!code.has_value()) {
    kill(pid, SIGKILL);
    WaitExit(pid, pidfd, absl::Seconds(5));
  }
  close(pidfd);
  result.exit_code = code.value_or(-1);
  result.output = ReadAll(out_path);
  return result;
}

HttpReply HttpGet(
    const std::string& host_port, const std::string& path_and_query,
    const std::vector<std::pair<std::string, std::string>>& headers,
    absl::Duration timeout) {
  const size_t colon = host_port.rfind(':');
  httplib::Client client(host_port.substr(0, colon),
                         std::stoi(host_port.substr(colon + 1)));
  const auto seconds = absl::ToChronoSeconds(timeout);
  client.set_connection_timeout(seconds);
  client.set_read_timeout(seconds);
  httplib::Headers request_headers;
  for (const auto& [name, value] : headers)
    request_headers.emplace(name, value);
  httplib::Result result = client.Get(path_and_query, request_headers);
  HttpReply reply;
  if (!result) return reply;
  reply.status = result->status;
  reply.body = result->body;
  reply.content_type = result->get_header_value("Content-Type");
  reply.www_authenticate = result->get_header_value("WWW-Authenticate");
  return reply;
}

bool PollUntil(const std::function<bool()>& condition, absl::Duration timeout,
               absl::Duration interval) {
  const absl::Time deadline = absl::Now() + timeout;
  while (!condition()) {
    if (absl::Now() >= deadline) return false;
    absl::SleepFor(interval);
  }
  return true;
}

std::string UrlEncode(absl::string_view text) {
  static constexpr char kHex[] = "0123456789ABCDEF";
  std::string out;
  for (const unsigned char c : text) {
    if (std::isalnum(c) || c == '-' || c == '_' || c == '.' || c == '~') {
      out.push_back(static_cast<char>(c));
    } else {
      out.push_back('%');
      out.push_back(kHex[c >> 4]);
      out.push_back(kHex[c & 15]);
    }
  }
  return out;
}

}  // namespace fanprobe::testing
