#include "tests/support/fault_server.h"

#include <arpa/inet.h>
#include <errno.h>
#include <netinet/in.h>
#include <signal.h>
#include <sys/epoll.h>
#include <sys/eventfd.h>
#include <sys/socket.h>
#include <unistd.h>
#include <zlib.h>

#include <algorithm>
#include <array>
#include <cstdint>
#include <cstdio>
#include <cstdlib>
#include <cstring>
#include <map>
#include <string>
#include <thread>
#include <unordered_map>
#include <utility>

#include "absl/strings/str_cat.h"
#include "absl/strings/string_view.h"
#include "absl/synchronization/mutex.h"
#include "absl/time/clock.h"
#include "absl/time/time.h"

namespace fanprobe::testing {
namespace {

[[noreturn]] void Die(absl::string_view what) {
  std::fprintf(stderr, "fault_server: %.*s: %s\n",
               static_cast<int>(what.size()), what.data(), strerror(errno));
  std::abort();
}

// epoll tags: connections use their fd; these are above any fd.
constexpr uint64_t kListenerTag = uint64_t{1} << 32;
constexpr uint64_t kStopTag = uint64_t{2} << 32;

constexpr absl::string_view kDripResponse =
    "HTTP/1.1 200 OK\r\nContent-Type: text/plain\r\nContent-Length: 2\r\n"
    "\r\nok";
constexpr absl::string_view kGarbage =
    "\x16\x03\x01 this is not HTTP \xff\xfe\x00 at all\r\n\r\nnor is this\n";
constexpr absl::string_view kEndlessHeaders =
    "HTTP/1.1 200 OK\r\nContent-Type: application/octet-stream\r\n"
    "Connection: close\r\n\r\n";
constexpr absl::string_view kLoopRedirect =
    "HTTP/1.1 302 Found\r\nLocation: /fault\r\nContent-Length: 0\r\n\r\n";
constexpr absl::string_view kMetadataRedirect =
    "HTTP/1.1 302 Found\r\n"
    "Location: http://169.254.169.254/latest/meta-data/iam/"
    "security-credentials/\r\nContent-Length: 0\r\n\r\n";
constexpr int kCloseMidBodyLength = 1000;

// How much an endless body writes per turn of the loop, so one fast reader
// does not starve the other connections.
constexpr size_t kEndlessChunk = 64 * 1024;

// gzip of `inflated` zero bytes: a small body that a client which decodes
// Content-Encoding would blow up 1000-fold.
std::string GzipOfZeros(uint64_t inflated) {
  z_stream z{};
  if (deflateInit2(&z, 9, Z_DEFLATED, 15 + 16, 9, Z_DEFAULT_STRATEGY) != Z_OK) {
    Die("deflateInit2");
  }
  const std::string zeros(1 << 20, '\0');
  std::string out;
  char buffer[1 << 16];
  uint64_t left = inflated;
  int flush = Z_NO_FLUSH;
  while (flush != Z_FINISH) {
    const size_t n = std::min<uint64_t>(left, zeros.size());
    left -= n;
    flush = left == 0 ? Z_FINISH : Z_NO_FLUSH;
    z.next_in = reinterpret_cast<Bytef*>(const_cast<char*>(zeros.data()));
    z.avail_in = static_cast<uInt>(n);
    do {
      z.next_out = reinterpret_cast<Bytef*>(buffer);
      z.avail_out = sizeof(buffer);
      deflate(&z, flush);
      out.append(buffer, sizeof(buffer) - z.avail_out);
    } while (z.avail_out == 0);
  }
  deflateEnd(&z);
  return out;
}

}  // namespace

absl::string_view FaultName(Fault fault) {
  switch (fault) {
    case Fault::kResetAfterAccept:
      return "reset_after_accept";
    case Fault::kNeverAnswer:
      return "never_answer";
    case Fault::kOneBytePerSecond:
      return "one_byte_per_second";
    case Fault::kGarbage:
      return "garbage";
    case Fault::kEndlessBody:
      return "endless_body";
    case Fault::kGzipBomb:
      return "gzip_bomb";
    case Fault::kRedirectLoop:
      return "redirect_loop";
    case Fault::kRedirectToMetadata:
      return "redirect_to_metadata";
    case Fault::kCloseMidBody:
      return "close_mid_body";
  }
  return "unknown";
}

class FaultServer::Loop {
 public:
  Loop() : gzip_inflated_(10 << 20), gzip_bomb_(GzipOfZeros(gzip_inflated_)) {
    // A client that goes away makes send() fail; never die of SIGPIPE.
    signal(SIGPIPE, SIG_IGN);
    epoll_fd_ = epoll_create1(EPOLL_CLOEXEC);
    stop_fd_ = eventfd(0, EFD_CLOEXEC | EFD_NONBLOCK);
    if (epoll_fd_ < 0 || stop_fd_ < 0) Die("epoll/eventfd");
    Watch(stop_fd_, EPOLLIN, kStopTag);
    for (int i = 0; i < kFaultCount; ++i) {
      const int fd =
          socket(AF_INET, SOCK_STREAM | SOCK_NONBLOCK | SOCK_CLOEXEC, 0);
      if (fd < 0) Die("socket");
      const int one = 1;
      setsockopt(fd, SOL_SOCKET, SO_REUSEADDR, &one, sizeof(one));
      sockaddr_in address{};
      address.sin_family = AF_INET;
      address.sin_addr.s_addr = htonl(INADDR_LOOPBACK);
      socklen_t length = sizeof(address);
      if (bind(fd, reinterpret_cast<sockaddr*>(&address), length) != 0 ||
          listen(fd, SOMAXCONN) != 0 ||
          getsockname(fd, reinterpret_cast<sockaddr*>(&address), &length) !=
              0) {
        Die("bind/listen");
      }
      listen_fds_[i] = fd;
      ports_[i] = ntohs(address.sin_port);
      Watch(fd, EPOLLIN, kListenerTag | static_cast<uint64_t>(i));
    }
    thread_ = std::thread([this] { Run(); });
  }

  ~Loop() {
    const uint64_t one = 1;
    (void)write(stop_fd_, &one, sizeof(one));
    thread_.join();
    for (auto& [fd, connection] : connections_) close(fd);
    for (const int fd : listen_fds_) close(fd);
    close(stop_fd_);
    close(epoll_fd_);
  }

  int port(Fault fault) const { return ports_[static_cast<int>(fault)]; }
  size_t gzip_bomb_size() const { return gzip_bomb_.size(); }
  uint64_t gzip_inflated() const { return gzip_inflated_; }

  FaultStats Stats() const {
    absl::MutexLock lock(&mu_);
    return stats_;
  }

  bool WaitForIdle(absl::Duration timeout) const {
    absl::MutexLock lock(&mu_);
    const auto idle = [this]() ABSL_EXCLUSIVE_LOCKS_REQUIRED(mu_) {
      return stats_.open_connections == 0;
    };
    return mu_.AwaitWithTimeout(absl::Condition(&idle), timeout);
  }

 private:
  struct Connection {
    Fault fault;
    uint64_t generation = 0;  // tells a drip entry for a reused fd apart
    std::string in;           // bytes read and not yet part of a request
    std::string out;          // to send, from out_offset
    size_t out_offset = 0;
    bool writable_armed = false;  // EPOLLOUT registered
    bool close_after_write = false;
    bool endless = false;
    size_t dripped = 0;  // kOneBytePerSecond: response bytes sent
    bool dripping = false;
  };

  void Watch(int fd, uint32_t events, uint64_t tag) {
    epoll_event event{};
    event.events = events;
    event.data.u64 = tag;
    if (epoll_ctl(epoll_fd_, EPOLL_CTL_ADD, fd, &event) != 0) {
      Die("epoll_ctl");
    }
  }

  void Rearm(int fd, Connection& connection, bool writable) {
    if (connection.writable_armed == writable) return;
    connection.writable_armed = writable;
    epoll_event event{};
    event.events = EPOLLIN | EPOLLRDHUP | (writable ? uint32_t{EPOLLOUT} : 0u);
    event.data.u64 = static_cast<uint64_t>(fd);
    epoll_ctl(epoll_fd_, EPOLL_CTL_MOD, fd, &event);
  }

  void Run() {
    std::array<epoll_event, 256> events;
    for (;;) {
      int timeout_ms = -1;
      if (!drips_.empty()) {
        timeout_ms = static_cast<int>(std::clamp<int64_t>(
            absl::ToInt64Milliseconds(drips_.begin()->first - absl::Now()) + 1,
            0, 1000));
      }
      const int n = epoll_wait(epoll_fd_, events.data(),
                               static_cast<int>(events.size()), timeout_ms);
      if (n < 0 && errno != EINTR) Die("epoll_wait");
      for (int i = 0; i < n; ++i) {
        const uint64_t tag = events[i].data.u64;
        if (tag == kStopTag) return;
        if ((tag & kListenerTag) != 0) {
          AcceptAll(static_cast<Fault>(tag & 0xff));
          continue;
        }
        const int fd = static_cast<int>(tag);
        if ((events[i].events & (EPOLLIN | EPOLLRDHUP | EPOLLHUP | EPOLLERR)) !=
            0) {
          if (!ReadFrom(fd)) continue;  // closed
        }
        if ((events[i].events & EPOLLOUT) != 0) Flush(fd);
      }
      Drip();
    }
  }

  void AcceptAll(Fault fault) {
    const int listen_fd = listen_fds_[static_cast<int>(fault)];
    for (;;) {
      const int fd =
          accept4(listen_fd, nullptr, nullptr, SOCK_NONBLOCK | SOCK_CLOEXEC);
      if (fd < 0) return;  // EAGAIN, or EMFILE: retried on the next event
      {
        absl::MutexLock lock(&mu_);
        ++stats_.accepted[static_cast<int>(fault)];
        if (fault != Fault::kResetAfterAccept) ++stats_.open_connections;
      }
      if (fault == Fault::kResetAfterAccept) {
        // SO_LINGER 0: close() sends RST instead of FIN.
        const linger reset = {1, 0};
        setsockopt(fd, SOL_SOCKET, SO_LINGER, &reset, sizeof(reset));
        close(fd);
        continue;
      }
      Connection& connection = connections_[fd];
      connection = Connection{.fault = fault, .generation = ++generation_};
      Watch(fd, EPOLLIN | EPOLLRDHUP, static_cast<uint64_t>(fd));
    }
  }

  // Reads what is there and answers complete requests; false when the
  // connection was closed.
  bool ReadFrom(int fd) {
    auto it = connections_.find(fd);
    if (it == connections_.end()) return false;
    Connection& connection = it->second;
    char buffer[16 * 1024];
    for (;;) {
      const ssize_t n = read(fd, buffer, sizeof(buffer));
      if (n == 0 || (n < 0 && errno != EAGAIN && errno != EINTR)) {
        Close(fd);  // the client closed or reset it
        return false;
      }
      if (n < 0) break;
      if (connection.fault == Fault::kNeverAnswer) {
        if (absl::string_view(buffer, static_cast<size_t>(n))
                .find("\r\n\r\n") != absl::string_view::npos) {
          CountRequest(connection.fault);
        }
        continue;
      }
      connection.in.append(buffer, static_cast<size_t>(n));
    }
    size_t end;
    while ((end = connection.in.find("\r\n\r\n")) != std::string::npos) {
      connection.in.erase(0, end + 4);
      CountRequest(connection.fault);
      if (!Respond(fd, connection)) return false;
    }
    return true;
  }

  void CountRequest(Fault fault) {
    absl::MutexLock lock(&mu_);
    ++stats_.requests[static_cast<int>(fault)];
  }

  // Queues the fault's answer and starts sending it; false when that closed
  // the connection.
  bool Respond(int fd, Connection& connection) {
    switch (connection.fault) {
      case Fault::kResetAfterAccept:
      case Fault::kNeverAnswer:
        return true;
      case Fault::kOneBytePerSecond:
        if (!connection.dripping) {
          connection.dripping = true;
          drips_.emplace(absl::Now(),
                         std::make_pair(fd, connection.generation));
        }
        return true;
      case Fault::kGarbage:
        absl::StrAppend(&connection.out, kGarbage);
        connection.close_after_write = true;
        break;
      case Fault::kEndlessBody:
        absl::StrAppend(&connection.out, kEndlessHeaders);
        connection.endless = true;
        break;
      case Fault::kGzipBomb:
        absl::StrAppend(&connection.out,
                        "HTTP/1.1 200 OK\r\nContent-Type: text/plain\r\n"
                        "Content-Encoding: gzip\r\nContent-Length: ",
                        gzip_bomb_.size(), "\r\n\r\n", gzip_bomb_);
        break;
      case Fault::kRedirectLoop:
        absl::StrAppend(&connection.out, kLoopRedirect);
        break;
      case Fault::kRedirectToMetadata:
        absl::StrAppend(&connection.out, kMetadataRedirect);
        break;
      case Fault::kCloseMidBody:
        absl::StrAppend(&connection.out,
                        "HTTP/1.1 200 OK\r\nContent-Type: text/plain\r\n"
                        "Content-Length: ",
                        kCloseMidBodyLength, "\r\n\r\n",
                        std::string(kCloseMidBodyLength / 2, 'x'));
        connection.close_after_write = true;
        break;
    }
    return Flush(fd);
  }

  // Sends what is queued; false when the connection was closed.
  bool Flush(int fd) {
    auto it = connections_.find(fd);
    if (it == connections_.end()) return false;
    Connection& connection = it->second;
    size_t budget = kEndlessChunk;
    for (;;) {
      if (connection.out_offset == connection.out.size()) {
        connection.out.clear();
        connection.out_offset = 0;
        if (connection.close_after_write) {
          Close(fd);
          return false;
        }
        if (!connection.endless || budget == 0) break;
        const size_t more = std::min<size_t>(budget, 16 * 1024);
        connection.out.assign(more, 'x');
        budget -= more;
      }
      const ssize_t n =
          send(fd, connection.out.data() + connection.out_offset,
               connection.out.size() - connection.out_offset, MSG_NOSIGNAL);
      if (n < 0 && (errno == EAGAIN || errno == EINTR)) break;
      if (n < 0) {
        Close(fd);
        return false;
      }
      connection.out_offset += static_cast<size_t>(n);
    }
    Rearm(fd, connection,
          connection.out_offset < connection.out.size() || connection.endless);
    return true;
  }

  // kOneBytePerSecond: the next byte of every connection that is due.
  void Drip() {
    const absl::Time now = absl::Now();
    while (!drips_.empty() && drips_.begin()->first <= now) {
      const auto [fd, generation] = drips_.begin()->second;
      drips_.erase(drips_.begin());
      auto it = connections_.find(fd);
      if (it == connections_.end() || it->second.generation != generation) {
        continue;  // closed meanwhile
      }
      Connection& connection = it->second;
      if (connection.dripped >= kDripResponse.size()) continue;
      if (send(fd, kDripResponse.data() + connection.dripped, 1,
               MSG_NOSIGNAL) == 1) {
        ++connection.dripped;
      }
      drips_.emplace(now + absl::Seconds(1), std::make_pair(fd, generation));
    }
  }

  void Close(int fd) {
    close(fd);  // also leaves the epoll set
    connections_.erase(fd);
    absl::MutexLock lock(&mu_);
    --stats_.open_connections;
  }

  // Constant after construction.
  const uint64_t gzip_inflated_;
  const std::string gzip_bomb_;
  int epoll_fd_ = -1;
  int stop_fd_ = -1;
  std::array<int, kFaultCount> listen_fds_{};
  std::array<int, kFaultCount> ports_{};

  // Touched only by the serving thread.
  std::unordered_map<int, Connection> connections_;
  std::multimap<absl::Time, std::pair<int, uint64_t>> drips_;
  uint64_t generation_ = 0;

  mutable absl::Mutex mu_;
  FaultStats stats_ ABSL_GUARDED_BY(mu_);

  std::thread thread_;  // last: starts after everything above exists
};

FaultServer::FaultServer() : loop_(std::make_unique<Loop>()) {}
FaultServer::~FaultServer() = default;

int FaultServer::port(Fault fault) const { return loop_->port(fault); }

std::string FaultServer::url(Fault fault) const {
  return absl::StrCat("http://127.0.0.1:", port(fault), "/fault");
}

size_t FaultServer::gzip_bomb_size() const { return loop_->gzip_bomb_size(); }
uint64_t FaultServer::gzip_bomb_inflated_size() const {
  return loop_->gzip_inflated();
}

FaultStats FaultServer::Stats() const { return loop_->Stats(); }

bool FaultServer::WaitForIdle(absl::Duration timeout) const {
  return loop_->WaitForIdle(timeout);
}

}  // namespace fanprobe::testing
