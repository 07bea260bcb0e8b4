// socket_address.h: the listening side's address handling, shared by the
// server's gRPC listener (server/listener.cc) and the HTTP side
// (monitoring/http_server.cc): "host:port" as a flag gives it, and the port
// a socket was bound to (port 0: the kernel picks one).
//
// Example:
//   std::string host;
//   int port = 0;
//   if (absl::Status s = SplitHostPort("[::1]:0", &host, &port); !s.ok()) ...
//   ... bind(fd, ...) ...
//   const int bound = BoundPort(fd);
//
// Thread-safety: plain functions, no state.

#ifndef FANPROBE_PROBE_SOCKET_ADDRESS_H_
#define FANPROBE_PROBE_SOCKET_ADDRESS_H_

#include <string>

#include "absl/status/status.h"

namespace fanprobe {

// "host:port", "[v6]:port" or ":port" (an empty host: every address; a
// caller that wants a host checks for it).  The host comes back without
// brackets; the port is 0 to 65535.  InvalidArgument, naming the address,
// otherwise.
absl::Status SplitHostPort(const std::string& address, std::string* host,
                           int* port);

// The local port socket `fd` is bound to; 0 if it cannot be read.
int BoundPort(int fd);

}  // namespace fanprobe

#endif  // FANPROBE_PROBE_SOCKET_ADDRESS_H_
