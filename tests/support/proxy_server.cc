#include "tests/support/proxy_server.h"

#include <arpa/inet.h>
#include <netinet/in.h>
#include <poll.h>
#include <sys/socket.h>
#include <unistd.h>

#include <cstdio>
#include <cstdlib>
#include <cstring>

#include "absl/strings/ascii.h"
#include "absl/strings/match.h"
#include "absl/strings/numbers.h"
#include "absl/strings/str_cat.h"
#include "absl/strings/str_split.h"
#include "absl/strings/string_view.h"
#include "absl/strings/strip.h"

namespace fanprobe::testing {
namespace {

constexpr size_t kMaxHeadBytes = 64 * 1024;
constexpr int kIdleMillis = 10'000;

bool WriteAll(int fd, absl::string_view data) {
  while (!data.empty()) {
    const ssize_t n = send(fd, data.data(), data.size(), MSG_NOSIGNAL);
    if (n <= 0) return false;
    data.remove_prefix(static_cast<size_t>(n));
  }
  return true;
}

// "host:port" or "[v6]:port" into its parts; false when it is neither.
bool SplitAuthority(absl::string_view authority, std::string* host, int* port) {
  const size_t colon = authority.rfind(':');
  if (colon == absl::string_view::npos ||
      !absl::SimpleAtoi(authority.substr(colon + 1), port)) {
    return false;
  }
  absl::string_view h = authority.substr(0, colon);
  if (absl::ConsumePrefix(&h, "[") && !absl::ConsumeSuffix(&h, "]")) {
    return false;
  }
  *host = std::string(h);
  return !host->empty();
}

// Copies bytes both ways until either side closes or fails.
void Splice(int a, int b) {
  char buffer[16 * 1024];
  pollfd fds[2] = {{a, POLLIN, 0}, {b, POLLIN, 0}};
  while (poll(fds, 2, kIdleMillis) > 0) {
    for (int i = 0; i < 2; ++i) {
      if (fds[i].revents == 0) continue;
      const ssize_t n = recv(fds[i].fd, buffer, sizeof(buffer), 0);
      if (n <= 0 ||
          !WriteAll(fds[1 - i].fd,
                    absl::string_view(buffer, static_cast<size_t>(n)))) {
        return;
      }
    }
  }
}

}  // namespace

ProxyServer::ProxyServer(ProxyServerOptions options)
    : options_(std::move(options)) {
  listen_fd_ = socket(AF_INET, SOCK_STREAM | SOCK_CLOEXEC, 0);
  sockaddr_in address{};
  address.sin_family = AF_INET;
  address.sin_addr.s_addr = htonl(INADDR_LOOPBACK);
  socklen_t length = sizeof(address);
  if (listen_fd_ < 0 ||
      bind(listen_fd_, reinterpret_cast<sockaddr*>(&address), length) != 0 ||
      listen(listen_fd_, 128) != 0 ||
      getsockname(listen_fd_, reinterpret_cast<sockaddr*>(&address), &length) !=
          0) {
    std::perror("ProxyServer: cannot listen on 127.0.0.1");
    std::abort();
  }
  port_ = ntohs(address.sin_port);
  acceptor_ = std::thread([this] { AcceptLoop(); });
}

ProxyServer::~ProxyServer() {
  std::vector<std::thread> threads;
  {
    absl::MutexLock lock(&mu_);
    stopping_ = true;
    for (int fd : open_fds_) shutdown(fd, SHUT_RDWR);
    threads.swap(threads_);
  }
  shutdown(listen_fd_, SHUT_RDWR);
  acceptor_.join();
  // No thread starts once stopping_ is set.
  for (std::thread& thread : threads) thread.join();
  close(listen_fd_);
}

std::string ProxyServer::url() const {
  return absl::StrCat("http://127.0.0.1:", port_);
}

std::vector<ProxyRequest> ProxyServer::Requests() const {
  absl::MutexLock lock(&mu_);
  return requests_;
}

int ProxyServer::connections() const {
  absl::MutexLock lock(&mu_);
  return connections_;
}

void ProxyServer::AcceptLoop() {
  for (;;) {
    const int fd = accept4(listen_fd_, nullptr, nullptr, SOCK_CLOEXEC);
    absl::MutexLock lock(&mu_);
    if (stopping_) {
      if (fd >= 0) close(fd);
      return;
    }
    if (fd < 0) continue;
    ++connections_;
    open_fds_.insert(fd);
    threads_.emplace_back([this, fd] { Serve(fd); });
  }
}

int ProxyServer::ConnectUpstream(const std::string& host, int port) const {
  std::string ip = host;
  if (auto it = options_.hosts.find(absl::AsciiStrToLower(host));
      it != options_.hosts.end()) {
    ip = it->second;
  }
  sockaddr_storage storage{};
  socklen_t length = 0;
  auto* v4 = reinterpret_cast<sockaddr_in*>(&storage);
  auto* v6 = reinterpret_cast<sockaddr_in6*>(&storage);
  if (inet_pton(AF_INET, ip.c_str(), &v4->sin_addr) == 1 &&
      (ntohl(v4->sin_addr.s_addr) >> 24) == 127) {
    v4->sin_family = AF_INET;
    v4->sin_port = htons(static_cast<uint16_t>(port));
    length = sizeof(*v4);
  } else if (inet_pton(AF_INET6, ip.c_str(), &v6->sin6_addr) == 1 &&
             IN6_IS_ADDR_LOOPBACK(&v6->sin6_addr)) {
    v6->sin6_family = AF_INET6;
    v6->sin6_port = htons(static_cast<uint16_t>(port));
    length = sizeof(*v6);
  } else {
    return -1;  // not loopback, or a name the test did not map
  }
  const int fd = socket(storage.ss_family, SOCK_STREAM | SOCK_CLOEXEC, 0);
  if (fd < 0) return -1;
  if (connect(fd, reinterpret_cast<sockaddr*>(&storage), length) != 0) {
    close(fd);
    return -1;
  }
  return fd;
}

void ProxyServer::Record(ProxyRequest request) {
  absl::MutexLock lock(&mu_);
  requests_.push_back(std::move(request));
}

void ProxyServer::Serve(int fd) {
  int upstream = -1;
  auto finish = [&] {
    absl::MutexLock lock(&mu_);
    open_fds_.erase(fd);
    close(fd);
    if (upstream >= 0) {
      open_fds_.erase(upstream);
      close(upstream);
    }
  };
  // The request head, and whatever came after it.
  std::string buffer;
  size_t head_end = std::string::npos;
  char chunk[4096];
  pollfd pfd = {fd, POLLIN, 0};
  while ((head_end = buffer.find("\r\n\r\n")) == std::string::npos) {
    if (buffer.size() > kMaxHeadBytes || poll(&pfd, 1, kIdleMillis) <= 0) {
      return finish();
    }
    const ssize_t n = recv(fd, chunk, sizeof(chunk), 0);
    if (n <= 0) return finish();
    buffer.append(chunk, static_cast<size_t>(n));
  }
  const std::vector<absl::string_view> lines =
      absl::StrSplit(absl::string_view(buffer).substr(0, head_end), "\r\n");
  const std::vector<std::string> request_line =
      absl::StrSplit(lines[0], ' ', absl::SkipEmpty());
  if (request_line.size() != 3) {
    WriteAll(fd, "HTTP/1.1 400 Bad Request\r\nContent-Length: 0\r\n\r\n");
    return finish();
  }
  ProxyRequest request{.method = request_line[0], .target = request_line[1]};
  for (size_t i = 1; i < lines.size(); ++i) {
    const size_t colon = lines[i].find(':');
    if (colon == absl::string_view::npos) continue;
    request.headers.emplace_back(
        std::string(lines[i].substr(0, colon)),
        std::string(absl::StripAsciiWhitespace(lines[i].substr(colon + 1))));
  }
  const bool tunnel = request.method == "CONNECT";
  absl::string_view authority = request.target;
  absl::string_view path = "/";
  if (!tunnel) {
    if (!absl::ConsumePrefix(&authority, "http://")) {
      WriteAll(fd, "HTTP/1.1 400 Bad Request\r\nContent-Length: 0\r\n\r\n");
      request.status = 400;
      Record(std::move(request));
      return finish();
    }
    if (const size_t slash = authority.find('/');
        slash != absl::string_view::npos) {
      path = authority.substr(slash);
      authority = authority.substr(0, slash);
    }
  }
  std::string host;
  int port = 0;
  bool parsed = SplitAuthority(authority, &host, &port);
  if (!parsed && !tunnel) {  // no port: http's
    absl::string_view bare = authority;
    if (absl::ConsumePrefix(&bare, "[")) absl::ConsumeSuffix(&bare, "]");
    host = std::string(bare);
    port = 80;
    parsed = !host.empty();
  }
  if (!parsed || options_.refused.contains(std::string(authority))) {
    WriteAll(fd, "HTTP/1.1 403 Forbidden\r\nContent-Length: 0\r\n\r\n");
    request.status = 403;
    Record(std::move(request));
    return finish();
  }
  upstream = ConnectUpstream(host, port);
  if (upstream < 0) {
    WriteAll(fd, "HTTP/1.1 502 Bad Gateway\r\nContent-Length: 0\r\n\r\n");
    request.status = 502;
    Record(std::move(request));
    return finish();
  }
  {
    absl::MutexLock lock(&mu_);
    if (stopping_) shutdown(upstream, SHUT_RDWR);
    open_fds_.insert(upstream);
  }
  const absl::string_view rest = absl::string_view(buffer).substr(head_end + 4);
  bool sent = false;
  if (tunnel) {
    request.status = 200;
    sent = WriteAll(fd, "HTTP/1.1 200 Connection established\r\n\r\n") &&
           WriteAll(upstream, rest);
  } else {
    // On to the origin in origin form, without what was for the proxy.
    std::string head =
        absl::StrCat(request.method, " ", path, " ", request_line[2], "\r\n");
    for (const auto& [name, value] : request.headers) {
      if (absl::StartsWithIgnoreCase(name, "Proxy-")) continue;
      absl::StrAppend(&head, name, ": ", value, "\r\n");
    }
    absl::StrAppend(&head, "\r\n");
    sent = WriteAll(upstream, head) && WriteAll(upstream, rest);
  }
  Record(std::move(request));
  if (sent) Splice(fd, upstream);
  finish();
}

}  // namespace fanprobe::testing
