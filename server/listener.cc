#include "server/listener.h"

#include <dirent.h>
#include <netinet/in.h>
#include <netinet/tcp.h>
#include <poll.h>
#include <sys/eventfd.h>
#include <sys/resource.h>
#include <sys/socket.h>
#include <unistd.h>

#include <algorithm>
#include <cerrno>
#include <cstdint>
#include <cstring>
#include <memory>
#include <string>
#include <utility>
#include <vector>

#include "absl/status/status.h"
#include "absl/status/statusor.h"
#include "absl/strings/match.h"
#include "absl/strings/numbers.h"
#include "absl/strings/str_cat.h"
#include "absl/strings/string_view.h"
#include "absl/strings/strip.h"
#include "absl/time/clock.h"
#include "absl/time/time.h"
#include "probe/socket_address.h"
#include "probe/unique_fd.h"

namespace fanprobe::server {
namespace {

// Connections accepted in one turn before the thread looks at Stop() again.
constexpr int kAcceptsPerTurn = 256;

// Descriptors the process may still open: the soft RLIMIT_NOFILE less
// those open.  0 when it cannot tell (it needs one descriptor to count).
uint64_t FreeDescriptors() {
  rlimit limit{};
  if (getrlimit(RLIMIT_NOFILE, &limit) != 0) return 0;
  DIR* dir = opendir("/proc/self/fd");
  if (dir == nullptr) return 0;
  uint64_t open = 0;
  while (const dirent* entry = readdir(dir)) {
    if (entry->d_name[0] != '.') ++open;
  }
  closedir(dir);  // counted among the open ones: one more is free now
  if (limit.rlim_cur == RLIM_INFINITY) return UINT64_MAX;
  return limit.rlim_cur > open - 1 ? limit.rlim_cur - (open - 1) : 0;
}

bool OutOfResources(int error) {
  return error == EMFILE || error == ENFILE || error == ENOBUFS ||
         error == ENOMEM;
}

// The connection failed before it was accepted (accept(2) passes on the
// network's errors): take the next one.
bool ConnectionGone(int error) {
  switch (error) {
    case ECONNABORTED:
    case EPROTO:
    case ENETDOWN:
    case ENOPROTOOPT:
    case EHOSTDOWN:
    case ENONET:
    case EHOSTUNREACH:
    case EOPNOTSUPP:
    case ENETUNREACH:
    case EPERM:  // a firewall rule refused it
      return true;
    default:
      return false;
  }
}

}  // namespace

absl::StatusOr<std::unique_ptr<Listener>> Listener::Bind(
    const std::string& address, ListenerOptions options) {
  std::string host;
  int port = 0;
  if (absl::Status status = SplitHostPort(address, &host, &port);
      !status.ok()) {
    return status;
  }
  absl::StatusOr<Listening> listening =
      ListenOn(host, port, /*every_address=*/true);
  if (!listening.ok()) {
    return absl::UnavailableError(absl::StrCat(
        "cannot listen on ", address, ": ", listening.status().message()));
  }
  std::unique_ptr<Listener> listener(new Listener(std::move(options)));
  listener->port_ = listening->port;
  listener->wake_fd_ = eventfd(0, EFD_CLOEXEC | EFD_NONBLOCK);
  if (listener->wake_fd_ < 0) {
    return absl::InternalError(absl::StrCat("eventfd: ", std::strerror(errno)));
  }
  for (UniqueFd& fd : listening->fds) {
    listener->listen_fds_.push_back(fd.release());
  }
  listener->address_ =
      absl::StrCat(address.substr(0, address.rfind(':')), ":", listener->port_);
  return listener;
}

Listener::Listener(ListenerOptions options)
    : options_(std::move(options)), logger_(options_.log) {}

Listener::~Listener() {
  Stop();
  if (wake_fd_ >= 0) close(wake_fd_);
}

void Listener::Start(OnConnection on_connection,
                     OnStateChange on_state_change) {
  on_connection_ = std::move(on_connection);
  on_state_change_ = std::move(on_state_change);
  thread_ = std::thread([this] { Run(); });
}

void Listener::Stop() {
  if (stopped_) return;
  stopped_ = true;
  if (thread_.joinable()) {
    const uint64_t one = 1;
    while (write(wake_fd_, &one, sizeof(one)) < 0 && errno == EINTR) {
    }
    thread_.join();
  }
  for (const int fd : listen_fds_) close(fd);
  listen_fds_.clear();
}

absl::Status Listener::Accepting() const {
  absl::MutexLock lock(&mu_);
  if (error_ == 0) return absl::OkStatus();
  return absl::UnavailableError(absl::StrCat(
      "the ", options_.name, " listener on ", address_,
      " cannot accept connections: ", std::strerror(error_), " (for ",
      absl::FormatDuration(
          absl::Trunc(absl::Now() - exhausted_since_, absl::Milliseconds(1))),
      "); it accepts again once descriptors are free"));
}

namespace {

// The inode of the socket descriptor `fd` of this process refers to now; 0
// when it is closed or no socket.  Read from /proc, not with fstat(): the
// descriptor is gRPC's, which may close it meanwhile on another thread.
uint64_t SocketInode(int fd) {
  char link[64];
  const std::string path = absl::StrCat("/proc/self/fd/", fd);
  const ssize_t n = readlink(path.c_str(), link, sizeof(link) - 1);
  if (n <= 0) return 0;
  absl::string_view target(link, static_cast<size_t>(n));
  uint64_t inode = 0;
  if (!absl::ConsumePrefix(&target, "socket:[") ||
      !absl::ConsumeSuffix(&target, "]") || !absl::SimpleAtoi(target, &inode)) {
    return 0;
  }
  return inode;
}

bool StillOpen(const std::pair<int, uint64_t>& connection) {
  return SocketInode(connection.first) == connection.second;
}

}  // namespace

ListenerStats Listener::Stats() const {
  absl::MutexLock lock(&mu_);
  ListenerStats stats = stats_;
  stats.open = static_cast<uint64_t>(
      std::count_if(open_.begin(), open_.end(), StillOpen));
  return stats;
}

void Listener::PruneClosedLocked() {
  // A descriptor gRPC closed is gone, or reused for another socket or file.
  std::erase_if(open_, [](const std::pair<int, uint64_t>& connection) {
    return !StillOpen(connection);
  });
}

bool Listener::Admit(int fd) {
  if (options_.max_connections == 0) return true;
  bool admitted = false;
  bool now_full = false;
  uint64_t refused_in_run = 0;
  {
    absl::MutexLock lock(&mu_);
    PruneClosedLocked();
    if (open_.size() >= options_.max_connections) {
      ++stats_.refused;
      ++refused_in_run_;
      now_full = !full_;
      full_ = true;
    } else {
      admitted = true;
      open_.emplace_back(fd, SocketInode(fd));
      if (full_) {
        full_ = false;
        refused_in_run = refused_in_run_;
        refused_in_run_ = 0;
      }
    }
  }
  if (now_full) {
    logger_.Log(
        log::Line("listener_full")
            .Add("listener", options_.name)
            .Add("address", address_)
            .Add("max_connections", options_.max_connections)
            .Add("message",
                 absl::StrCat("the ", options_.name, " listener holds ",
                              options_.max_connections,
                              " connections, its bound: new ones are closed "
                              "at once until one of them ends")));
  }
  if (refused_in_run > 0) {
    logger_.Log(log::Line("listener_has_room")
                    .Add("listener", options_.name)
                    .Add("address", address_)
                    .Add("refused", refused_in_run));
  }
  return admitted;
}

void Listener::Run() {
  std::vector<pollfd> polled;
  polled.push_back({.fd = wake_fd_, .events = POLLIN, .revents = 0});
  for (const int fd : listen_fds_) {
    polled.push_back({.fd = fd, .events = POLLIN, .revents = 0});
  }
  const int retry_ms = static_cast<int>(
      std::max<int64_t>(1, absl::ToInt64Milliseconds(options_.retry_interval)));
  for (;;) {
    bool exhausted;
    {
      absl::MutexLock lock(&mu_);
      exhausted = error_ != 0;
    }
    // Exhausted, the listening sockets stay readable (their connections
    // wait) and would spin the loop: only the wake-up is polled then, and
    // every listener is tried after each interval.
    const nfds_t count = exhausted ? 1 : polled.size();
    for (pollfd& p : polled) p.revents = 0;
    if (poll(polled.data(), count, exhausted ? retry_ms : -1) < 0 &&
        errno != EINTR) {
      // Only EINVAL/ENOMEM are possible: wait as if exhausted and retry.
      SetExhausted(errno);
      absl::SleepFor(options_.retry_interval);
      continue;
    }
    if (polled[0].revents != 0) return;  // Stop()
    bool failed = false;
    for (size_t i = 1; i < polled.size(); ++i) {
      if (exhausted || polled[i].revents != 0) {
        failed |= !AcceptAll(polled[i].fd);
      }
    }
    if (exhausted && !failed &&
        FreeDescriptors() >= options_.free_fds_to_resume) {
      SetRecovered();
    }
  }
}

bool Listener::AcceptAll(int listen_fd) {
  for (int n = 0; n < kAcceptsPerTurn; ++n) {
    const int fd =
        accept4(listen_fd, nullptr, nullptr, SOCK_NONBLOCK | SOCK_CLOEXEC);
    if (fd < 0) {
      const int error = errno;
      if (error == EINTR || ConnectionGone(error)) continue;
      if (error == EAGAIN || error == EWOULDBLOCK) return true;
      // Out of descriptors or memory -- or anything else, which is retried
      // the same way rather than giving the listener up.
      SetExhausted(error);
      return false;
    }
    if (!Admit(fd)) {
      close(fd);
      continue;
    }
    const int yes = 1;
    setsockopt(fd, IPPROTO_TCP, TCP_NODELAY, &yes, sizeof(yes));
    {
      absl::MutexLock lock(&mu_);
      ++stats_.accepted;
      if (error_ != 0) ++accepted_while_exhausted_;
    }
    on_connection_(fd, listen_fd);
  }
  return true;
}

void Listener::SetExhausted(int error) {
  {
    absl::MutexLock lock(&mu_);
    if (error_ != 0) return;
    error_ = error;
    exhausted_since_ = absl::Now();
    accepted_while_exhausted_ = 0;
    ++stats_.exhaustions;
  }
  rlimit limit{};
  getrlimit(RLIMIT_NOFILE, &limit);
  logger_.Log(
      log::Line("listener_exhausted")
          .Add("listener", options_.name)
          .Add("address", address_)
          .Add("error", std::strerror(error))
          .Add("fd_limit", static_cast<uint64_t>(limit.rlim_cur))
          .Add(
              "message",
              absl::StrCat(
                  "the ", options_.name,
                  " listener cannot accept connections (", std::strerror(error),
                  "): health is NOT_SERVING until it can; it retries every ",
                  absl::FormatDuration(options_.retry_interval),
                  OutOfResources(error)
                      ? " and accepts again once descriptors are free "
                        "(raise the descriptor limit, or find who holds "
                        "them: many idle connections?)"
                      : "")));
  if (on_state_change_) on_state_change_();
}

void Listener::SetRecovered() {
  absl::Duration exhausted_for;
  uint64_t accepted = 0;
  {
    absl::MutexLock lock(&mu_);
    if (error_ == 0) return;
    error_ = 0;
    exhausted_for = absl::Now() - exhausted_since_;
    accepted = accepted_while_exhausted_;
  }
  logger_.Log(log::Line("listener_recovered")
                  .Add("listener", options_.name)
                  .Add("address", address_)
                  .AddMilliseconds("exhausted_ms", exhausted_for)
                  .Add("accepted_while_exhausted", accepted));
  if (on_state_change_) on_state_change_();
}

}  // namespace fanprobe::server
