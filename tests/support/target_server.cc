#include "tests/support/target_server.h"

#include <arpa/inet.h>
#include <netinet/in.h>
#include <poll.h>
#include <signal.h>
#include <sys/eventfd.h>
#include <sys/socket.h>
#include <unistd.h>

#include <algorithm>
#include <atomic>
#include <cerrno>
#include <cstdint>
#include <cstdio>
#include <cstdlib>
#include <cstring>
#include <list>
#include <map>
#include <optional>
#include <thread>

#include "absl/strings/ascii.h"
#include "absl/strings/match.h"
#include "absl/strings/numbers.h"
#include "absl/strings/str_cat.h"
#include "absl/strings/str_split.h"
#include "absl/synchronization/notification.h"
#include "absl/time/clock.h"
#include "httplib.h"
#include "probe/unique_fd.h"
#include "tests/support/httplib_target.h"

namespace fanprobe::testing {
namespace {

constexpr size_t kHttpThreads = 256;

// Test support has no error path worth recovering from: a loopback socket
// that cannot be made means the machine, not the test, is broken.
[[noreturn]] void Die(const char* what) {
  std::fprintf(stderr, "target_server: %s: %s\n", what, std::strerror(errno));
  std::abort();
}

int LocalPort(int fd) {
  sockaddr_in addr{};
  socklen_t len = sizeof(addr);
  if (::getsockname(fd, reinterpret_cast<sockaddr*>(&addr), &len) != 0) {
    Die("getsockname");
  }
  return ntohs(addr.sin_port);
}

// A non-blocking TCP socket bound to 127.0.0.1 on an ephemeral port.
UniqueFd BindLoopback() {
  UniqueFd fd(::socket(AF_INET, SOCK_STREAM | SOCK_NONBLOCK | SOCK_CLOEXEC, 0));
  if (fd.get() < 0) Die("socket");
  sockaddr_in addr{};
  addr.sin_family = AF_INET;
  addr.sin_addr.s_addr = htonl(INADDR_LOOPBACK);
  addr.sin_port = 0;
  if (::bind(fd.get(), reinterpret_cast<sockaddr*>(&addr), sizeof(addr)) != 0) {
    Die("bind 127.0.0.1:0");
  }
  return fd;
}

std::string LoopbackUrl(int port, absl::string_view path) {
  return absl::StrCat("http://127.0.0.1:", port, path);
}

absl::string_view Reason(int status) {
  switch (status) {
    case 200:
      return "OK";
    case 302:
      return "Found";
    case 404:
      return "Not Found";
    default:
      return "Status";
  }
}

}  // namespace

// ---------------------------------------------------------------------------
// The HTTP listener: cpp-httplib on a thread of its own, handlers on a pool.

class TargetServer::HttpListener {
 public:
  explicit HttpListener(TargetServer* owner) : owner_(owner) {
    // Tests hold hundreds of connections open at once; each one occupies a
    // pool thread for as long as its handler runs.
    server_.new_task_queue = [] {
      return new httplib::ThreadPool(kHttpThreads);
    };
    // Bounded so that stopping never waits long on an idle keep-alive
    // connection a client still holds.
    server_.set_keep_alive_timeout(1);
    server_.set_keep_alive_max_count(1000);
    server_.set_read_timeout(2);
    server_.set_write_timeout(2);
    AddTargetRoutes(
        server_, stopping_,
        [this](const httplib::Request& req, httplib::Response& res,
               const RouteHandler& handler) {
          owner_->RecordHttpRequest({.method = req.method,
                                     .path = req.path,
                                     .headers = SentHeaders(req),
                                     .body = req.body,
                                     .client_address = req.remote_addr,
                                     .client_port = req.remote_port});
          handler(req, res);
          owner_->RecordHttpAnswered();
        });
    runner_.emplace(server_);
  }

  ~HttpListener() {
    stopping_.Notify();  // ends every /delay
    runner_.reset();     // stops the server, joins its pool
  }

  int port() const { return runner_->port(); }

 private:
  TargetServer* const owner_;
  httplib::Server server_;
  absl::Notification stopping_;
  std::optional<HttplibRunner> runner_;
};

// ---------------------------------------------------------------------------
// The raw listener: one thread, poll(), a minimal HTTP/1.1 server that sees
// every connection's accept, EOF and reset.

class TargetServer::RawListener {
 public:
  explicit RawListener(TargetServer* owner)
      : owner_(owner),
        listen_fd_(BindLoopback()),
        wake_fd_(::eventfd(0, EFD_NONBLOCK | EFD_CLOEXEC)) {
    if (wake_fd_.get() < 0) Die("eventfd");
    if (::listen(listen_fd_.get(), SOMAXCONN) != 0) Die("listen");
    port_ = LocalPort(listen_fd_.get());
    thread_ = std::thread([this] { Run(); });
  }

  ~RawListener() {
    stopping_.store(true);
    uint64_t one = 1;
    if (::write(wake_fd_.get(), &one, sizeof(one)) < 0) Die("eventfd write");
    thread_.join();
    // Connections still open close here, as the server's, not the client's.
    for (Connection& c : connections_) {
      owner_->RecordRawClosed(/*by_client=*/false, c.request_pending());
    }
  }

  int port() const { return port_; }

 private:
  enum class State {
    kReading,   // waiting for (the rest of) a request
    kDelaying,  // /delay: answer at `deadline`
    kHanging,   // /hang: never answer
    kWriting,   // sending `out`
  };

  struct Connection {
    UniqueFd fd;
    State state = State::kReading;
    std::string in;
    std::string out;
    size_t out_sent = 0;
    absl::Time deadline;
    int delayed_status = 200;
    bool close_after_write = false;
    bool head = false;  // the pending request is a HEAD: answer without body
    bool dead = false;  // closed; erased after this round

    bool request_pending() const { return state != State::kReading; }
  };

  void Run() {
    std::vector<pollfd> fds;
    std::vector<Connection*> polled;
    while (!stopping_.load()) {
      fds.clear();
      polled.clear();
      fds.push_back({wake_fd_.get(), POLLIN, 0});
      fds.push_back({listen_fd_.get(), POLLIN, 0});
      absl::Time next_deadline = absl::InfiniteFuture();
      for (Connection& c : connections_) {
        short events = POLLIN | POLLRDHUP;
        if (c.state == State::kWriting) events |= POLLOUT;
        if (c.state == State::kDelaying) {
          next_deadline = std::min(next_deadline, c.deadline);
        }
        fds.push_back({c.fd.get(), events, 0});
        polled.push_back(&c);
      }
      int timeout_ms = -1;
      if (next_deadline != absl::InfiniteFuture()) {
        timeout_ms = static_cast<int>(std::max<int64_t>(
            0, absl::ToInt64Milliseconds(absl::Ceil(next_deadline - absl::Now(),
                                                    absl::Milliseconds(1)))));
      }
      int ready = ::poll(fds.data(), fds.size(), timeout_ms);
      if (ready < 0) {
        if (errno == EINTR) continue;
        Die("poll");
      }
      if (fds[1].revents & POLLIN) Accept();
      for (size_t i = 0; i < polled.size(); ++i) {
        short revents = fds[i + 2].revents;
        Connection& c = *polled[i];
        if (revents & (POLLIN | POLLRDHUP | POLLHUP | POLLERR)) Read(c);
        if (!c.dead && (revents & POLLOUT)) Flush(c);
      }
      absl::Time now = absl::Now();
      for (Connection& c : connections_) {
        if (!c.dead && c.state == State::kDelaying && c.deadline <= now) {
          Answer(c, c.delayed_status);
        }
      }
      connections_.remove_if([](const Connection& c) { return c.dead; });
    }
  }

  void Accept() {
    for (;;) {
      int fd = ::accept4(listen_fd_.get(), nullptr, nullptr,
                         SOCK_NONBLOCK | SOCK_CLOEXEC);
      if (fd < 0) {
        if (errno == EINTR || errno == ECONNABORTED) continue;
        if (errno == EAGAIN || errno == EWOULDBLOCK) return;
        Die("accept4");
      }
      connections_.emplace_back().fd = UniqueFd(fd);
      owner_->RecordRawAccepted();
    }
  }

  void Read(Connection& c) {
    char buf[16 * 1024];
    for (;;) {
      ssize_t n = ::recv(c.fd.get(), buf, sizeof(buf), 0);
      if (n > 0) {
        c.in.append(buf, static_cast<size_t>(n));
        continue;
      }
      if (n < 0 && (errno == EINTR)) continue;
      if (n < 0 && (errno == EAGAIN || errno == EWOULDBLOCK)) break;
      // EOF or an error (a reset): the client is gone.
      Close(c, /*by_client=*/true);
      return;
    }
    if (c.state == State::kReading) ParseRequest(c);
  }

  // Handles one complete request from `c.in`, if there is one.
  void ParseRequest(Connection& c) {
    size_t header_end = c.in.find("\r\n\r\n");
    if (header_end == std::string::npos) return;
    std::vector<absl::string_view> lines =
        absl::StrSplit(absl::string_view(c.in).substr(0, header_end), "\r\n");
    std::vector<absl::string_view> request_line =
        absl::StrSplit(lines[0], ' ', absl::SkipEmpty());
    uint64_t content_length = 0;
    bool close = false;
    for (size_t i = 1; i < lines.size(); ++i) {
      std::pair<absl::string_view, absl::string_view> header =
          absl::StrSplit(lines[i], absl::MaxSplits(':', 1));
      absl::string_view name = absl::StripAsciiWhitespace(header.first);
      absl::string_view value = absl::StripAsciiWhitespace(header.second);
      if (absl::EqualsIgnoreCase(name, "Content-Length")) {
        if (!absl::SimpleAtoi(value, &content_length)) close = true;
      } else if (absl::EqualsIgnoreCase(name, "Connection") &&
                 absl::EqualsIgnoreCase(value, "close")) {
        close = true;
      }
    }
    size_t request_end = header_end + 4 + content_length;
    if (c.in.size() < request_end) return;
    std::string method, path;
    if (request_line.size() >= 2) {
      method = std::string(request_line[0]);
      path = std::string(request_line[1].substr(0, request_line[1].find('?')));
    }
    c.in.erase(0, request_end);
    c.close_after_write = close || request_line.size() < 3;
    c.head = method == "HEAD";
    c.state = State::kDelaying;  // any state but kReading: a request pending
    owner_->RecordRawRequest(path);
    Dispatch(c, path);
  }

  void Dispatch(Connection& c, absl::string_view path) {
    int number = 0;
    if (absl::ConsumePrefix(&path, "/status/") &&
        absl::SimpleAtoi(path, &number) && number >= 100 && number <= 999) {
      Answer(c, number);
    } else if (absl::ConsumePrefix(&path, "/delay/") &&
               absl::SimpleAtoi(path, &number) && number >= 0) {
      c.state = State::kDelaying;
      c.deadline = absl::Now() + absl::Milliseconds(number);
      c.delayed_status = 200;
    } else if (path == "/hang") {
      c.state = State::kHanging;
    } else if (path == "/reset") {
      Reset(c);
    } else if (absl::StartsWith(path, "/reset_first/") &&
               absl::SimpleAtoi(path.substr(13), &number) && number >= 0) {
      if (++requests_by_path_[std::string(path)] <= number) {
        Reset(c);
      } else {
        Answer(c, 200);
      }
    } else {
      Answer(c, 404);
    }
  }

  void Reset(Connection& c) {
    // A zero linger time makes close() send an RST instead of a FIN.
    linger lin{.l_onoff = 1, .l_linger = 0};
    ::setsockopt(c.fd.get(), SOL_SOCKET, SO_LINGER, &lin, sizeof(lin));
    Close(c, /*by_client=*/false);
  }

  void Answer(Connection& c, int status) {
    std::string body =
        StatusHasBody(status) ? absl::StrCat("status ", status, "\n") : "";
    c.out = absl::StrCat(
        "HTTP/1.1 ", status, " ", Reason(status),
        "\r\nContent-Type: text/plain\r\nContent-Length: ", body.size(), "\r\n",
        c.close_after_write ? "Connection: close\r\n" : "", "\r\n",
        c.head ? "" : body);
    c.out_sent = 0;
    c.state = State::kWriting;
    Flush(c);
  }

  void Flush(Connection& c) {
    while (c.out_sent < c.out.size()) {
      ssize_t n = ::send(c.fd.get(), c.out.data() + c.out_sent,
                         c.out.size() - c.out_sent, MSG_NOSIGNAL);
      if (n < 0 && errno == EINTR) continue;
      if (n < 0 && (errno == EAGAIN || errno == EWOULDBLOCK)) return;
      if (n < 0) {
        Close(c, /*by_client=*/true);
        return;
      }
      c.out_sent += static_cast<size_t>(n);
    }
    owner_->RecordRawAnswered();
    c.out.clear();
    c.state = State::kReading;
    if (c.close_after_write) {
      Close(c, /*by_client=*/false);
      return;
    }
    ParseRequest(c);  // a pipelined request may be waiting
  }

  void Close(Connection& c, bool by_client) {
    owner_->RecordRawClosed(by_client, c.request_pending());
    c.fd.reset();
    c.dead = true;
  }

  TargetServer* const owner_;
  // /reset_first/<n>: requests seen per path.  The listener's thread only.
  std::map<std::string, int> requests_by_path_;
  UniqueFd listen_fd_;
  UniqueFd wake_fd_;
  int port_ = 0;
  std::atomic<bool> stopping_{false};
  // Only the listener thread touches these (and the destructor, after it
  // joined that thread).
  std::list<Connection> connections_;
  std::thread thread_;
};

// ---------------------------------------------------------------------------

TargetServer::TargetServer() {
  ::signal(SIGPIPE, SIG_IGN);
  http_ = std::make_unique<HttpListener>(this);
  raw_ = std::make_unique<RawListener>(this);
  http_port_ = http_->port();
  raw_port_ = raw_->port();
}

TargetServer::~TargetServer() {
  raw_.reset();
  http_.reset();
}

std::string TargetServer::url(absl::string_view path) const {
  return LoopbackUrl(http_port_, path);
}

std::string TargetServer::raw_url(absl::string_view path) const {
  return LoopbackUrl(raw_port_, path);
}

TargetStats TargetServer::Stats() const {
  absl::MutexLock lock(&mu_);
  return stats_;
}

std::vector<RecordedRequest> TargetServer::Requests() const {
  absl::MutexLock lock(&mu_);
  return requests_;
}

bool TargetServer::WaitFor(
    const std::function<bool(const TargetStats&)>& condition,
    absl::Duration timeout) const {
  absl::MutexLock lock(&mu_);
  auto holds = [this, &condition]() {
    mu_.AssertReaderHeld();
    return condition(stats_);
  };
  return mu_.AwaitWithTimeout(absl::Condition(&holds), timeout);
}

namespace {

void StartRequest(ListenerStats& stats, const std::string& path) {
  ++stats.requests;
  ++stats.requests_by_path[path];
  stats.max_in_flight = std::max(stats.max_in_flight, ++stats.in_flight);
}

}  // namespace

void TargetServer::RecordHttpRequest(RecordedRequest request) {
  absl::MutexLock lock(&mu_);
  StartRequest(stats_.http, request.path);
  if (http_clients_.insert(request.client_port).second) {
    ++stats_.http.connections;
  }
  requests_.push_back(std::move(request));
}

void TargetServer::RecordHttpAnswered() {
  absl::MutexLock lock(&mu_);
  --stats_.http.in_flight;
}

void TargetServer::RecordRawAccepted() {
  absl::MutexLock lock(&mu_);
  ++stats_.raw.connections;
  stats_.raw.max_open_connections =
      std::max(stats_.raw.max_open_connections, ++stats_.raw.open_connections);
}

void TargetServer::RecordRawRequest(const std::string& path) {
  absl::MutexLock lock(&mu_);
  StartRequest(stats_.raw, path);
}

void TargetServer::RecordRawAnswered() {
  absl::MutexLock lock(&mu_);
  --stats_.raw.in_flight;
}

void TargetServer::RecordRawClosed(bool by_client, bool request_pending) {
  absl::MutexLock lock(&mu_);
  --stats_.raw.open_connections;
  if (by_client) ++stats_.raw.closed_by_client;
  if (request_pending) {
    --stats_.raw.in_flight;
    if (by_client) ++stats_.raw.abandoned;
  }
}

// ---------------------------------------------------------------------------

RefusedPort::RefusedPort() {
  UniqueFd fd = BindLoopback();
  port_ = LocalPort(fd.get());
  // Bound but never listening: the port stays ours, and a SYN to it is
  // answered with an RST.
  fd_ = fd.release();
}

RefusedPort::~RefusedPort() {
  if (fd_ >= 0) ::close(fd_);
}

std::string RefusedPort::url(absl::string_view path) const {
  return LoopbackUrl(port_, path);
}

// ---------------------------------------------------------------------------

UnresponsivePort::UnresponsivePort() {
  UniqueFd listener = BindLoopback();
  // A backlog of 0 still queues one connection.  Nobody accepts, so once
  // the queue is full the kernel drops further SYNs.
  if (::listen(listener.get(), 0) != 0) Die("listen");
  port_ = LocalPort(listener.get());
  listen_fd_ = listener.release();
  sockaddr_in addr{};
  addr.sin_family = AF_INET;
  addr.sin_addr.s_addr = htonl(INADDR_LOOPBACK);
  addr.sin_port = htons(static_cast<uint16_t>(port_));
  for (int i = 0; i < 16; ++i) {
    UniqueFd fd(
        ::socket(AF_INET, SOCK_STREAM | SOCK_NONBLOCK | SOCK_CLOEXEC, 0));
    if (fd.get() < 0) Die("socket");
    int rc =
        ::connect(fd.get(), reinterpret_cast<sockaddr*>(&addr), sizeof(addr));
    if (rc != 0 && errno != EINPROGRESS) Die("connect");
    pollfd p{fd.get(), POLLOUT, 0};
    // On loopback a connect the queue takes completes at once; one that
    // does not complete within 200 ms had its SYN dropped: the queue is
    // full.
    const bool connected = rc == 0 || ::poll(&p, 1, 200) == 1;
    fillers_.push_back(fd.release());
    if (!connected) return;
  }
  std::fprintf(stderr, "UnresponsivePort: the accept queue never filled\n");
  std::abort();
}

UnresponsivePort::~UnresponsivePort() {
  for (int fd : fillers_) ::close(fd);
  ::close(listen_fd_);
}

std::string UnresponsivePort::url(absl::string_view path) const {
  return LoopbackUrl(port_, path);
}

}  // namespace fanprobe::testing
