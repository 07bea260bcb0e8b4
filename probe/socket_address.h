// socket_address.h: the listening side's address handling, shared by the
// server's gRPC listener (server/listener.cc) and the HTTP side
// (monitoring/http_server.cc): "host:port" as a flag gives it, the listening
// sockets for it, and the port a socket was bound to (port 0: the kernel
// picks one).
//
// Example:
//   std::string host;
//   int port = 0;
//   if (absl::Status s = SplitHostPort("[::1]:0", &host, &port); !s.ok()) ...
//   absl::StatusOr<Listening> listening = ListenOn(host, port, true);
//   ... accept(listening->fds[0].get(), ...) on listening->port ...
//
// Thread-safety: plain functions, no state.

#ifndef FANPROBE_PROBE_SOCKET_ADDRESS_H_
#define FANPROBE_PROBE_SOCKET_ADDRESS_H_

#include <string>
#include <vector>

#include "absl/status/status.h"
#include "absl/status/statusor.h"
#include "probe/unique_fd.h"

namespace fanprobe {

// "host:port", "[v6]:port" or ":port" (an empty host: every address; a
// caller that wants a host checks for it).  The host comes back without
// brackets; the port is 0 to 65535.  InvalidArgument, naming the address,
// otherwise.
absl::Status SplitHostPort(const std::string& address, std::string* host,
                           int* port);

// The local port socket `fd` is bound to; 0 if it cannot be read.
int BoundPort(int fd);

// Listening sockets, and the port they are bound to.
struct Listening {
  std::vector<UniqueFd> fds;
  int port = 0;
};

// Listens on `host` (as SplitHostPort gives it) and `port`; port 0 takes a
// free one, the same on every socket.  An empty host or "::" is every
// address: one socket, IPv6 and IPv4 both.  A name may resolve to several
// addresses: with `every_address`, one socket each (those that cannot be
// bound are skipped), else only the first that can be.  Sockets are
// non-blocking and close-on-exec, with SO_REUSEADDR (a restart does not wait
// for old connections) and TCP_NODELAY (accepted sockets inherit it), and
// without SO_REUSEPORT: a second server on the same port fails, it does not
// silently share it.  Unavailable, with the reason, if none can be bound.
absl::StatusOr<Listening> ListenOn(const std::string& host, int port,
                                   bool every_address);

}  // namespace fanprobe

#endif  // FANPROBE_PROBE_SOCKET_ADDRESS_H_
