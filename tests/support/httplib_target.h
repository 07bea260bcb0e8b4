// httplib_target.h: the cpp-httplib half that TargetServer's HTTP listener
// and TlsTargetServer share, so the two answer alike: the routes (see
// target_server.h for the list) and the way a listener is bound and run.
// Internal to tests/support: tests include target_server.h or
// tls_target_server.h instead.
//
// Example:
//   httplib::Server server;
//   absl::Notification stopping;  // notified before the runner stops
//   AddTargetRoutes(server, stopping,
//                   [](const auto& req, auto& res, const auto& handler) {
//                     handler(req, res);  // bookkeeping goes around this
//                   });
//   HttplibRunner runner(server);  // serving on 127.0.0.1:runner.port()
//
// Thread-safety: handlers run on the server's pool threads; `around` must be
// safe to call from several at once.  An HttplibRunner is constructed and
// destroyed on one thread.

#ifndef FANPROBE_TESTS_SUPPORT_HTTPLIB_TARGET_H_
#define FANPROBE_TESTS_SUPPORT_HTTPLIB_TARGET_H_

#include <functional>
#include <string>
#include <thread>
#include <utility>
#include <vector>

#include "absl/synchronization/notification.h"
#include "httplib.h"

namespace fanprobe::testing {

using RouteHandler =
    std::function<void(const httplib::Request&, httplib::Response&)>;
// Runs `handler` for one request, with the listener's bookkeeping around it.
using RouteAround = std::function<void(
    const httplib::Request&, httplib::Response&, const RouteHandler& handler)>;

// Registers every target route on `server`, for every method.  /delay waits
// at most until `stopping` is notified, so a server stops promptly.
void AddTargetRoutes(httplib::Server& server,
                     const absl::Notification& stopping,
                     const RouteAround& around);

// Whether a response with `status` carries a body (not 1xx, 204 or 304).
bool StatusHasBody(int status);

// The request's headers without the ones cpp-httplib adds itself
// (REMOTE_ADDR and the like).
std::vector<std::pair<std::string, std::string>> SentHeaders(
    const httplib::Request& req);

// Binds `server` to 127.0.0.1 on an ephemeral port, with a full-size listen
// backlog, and serves it on a thread of its own until destroyed.  Set the
// server up (routes, timeouts, task queue) before constructing this.
class HttplibRunner {
 public:
  // Aborts the test binary if the loopback interface refuses a socket.
  explicit HttplibRunner(httplib::Server& server);
  // Stops the server: its pool finishes the connections it holds (each
  // within the server's read timeout) and the thread is joined.
  ~HttplibRunner();

  HttplibRunner(const HttplibRunner&) = delete;
  HttplibRunner& operator=(const HttplibRunner&) = delete;

  int port() const { return port_; }

 private:
  httplib::Server& server_;
  int listen_fd_ = -1;  // owned by server_
  int port_ = 0;
  std::thread thread_;
};

}  // namespace fanprobe::testing

#endif  // FANPROBE_TESTS_SUPPORT_HTTPLIB_TARGET_H_
