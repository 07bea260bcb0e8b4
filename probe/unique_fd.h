// unique_fd.h: ownership of a file descriptor (epoll, eventfd, timerfd,
// socket), closed by the destructor.  The engine's, and the servers'
// listening sockets' (server/listener.cc, monitoring/http_server.cc).
//
// Example:
//   UniqueFd epoll(epoll_create1(EPOLL_CLOEXEC));
//   if (!epoll.valid()) return ErrnoStatus("epoll_create1");
//   epoll_ctl(epoll.get(), ...);
//
// Thread-safety: a value type; one owner at a time.

#ifndef FANPROBE_PROBE_UNIQUE_FD_H_
#define FANPROBE_PROBE_UNIQUE_FD_H_

#include <unistd.h>

#include <utility>

namespace fanprobe {

class UniqueFd {
 public:
  UniqueFd() = default;
  explicit UniqueFd(int fd) : fd_(fd) {}
  UniqueFd(UniqueFd&& other) noexcept : fd_(std::exchange(other.fd_, -1)) {}
  UniqueFd& operator=(UniqueFd&& other) noexcept {
    if (this != &other) reset(std::exchange(other.fd_, -1));
    return *this;
  }
  UniqueFd(const UniqueFd&) = delete;
  UniqueFd& operator=(const UniqueFd&) = delete;
  ~UniqueFd() { reset(); }

  int get() const { return fd_; }
  bool valid() const { return fd_ >= 0; }
  // Gives the descriptor up: the caller closes it.
  int release() { return std::exchange(fd_, -1); }
  void reset(int fd = -1) {
    if (fd_ >= 0) close(fd_);
    fd_ = fd;
  }

 private:
  int fd_ = -1;
};

}  // namespace fanprobe

#endif  // FANPROBE_PROBE_UNIQUE_FD_H_
