// proxy_server.h: a loopback HTTP proxy for the engine's proxy tests, as a
// forward proxy (squid, tinyproxy) behaves: CONNECT host:port opens a
// tunnel, and an absolute-form request ("GET http://host:port/path") is
// sent on to the origin in origin form.  It records every request it is
// asked, with its headers, so a test can assert what reached the proxy and
// what did not.
//
// It connects only to 127.0.0.0/8 and ::1: an IP literal in that range, or
// a name the test maps with `hosts` (it never asks a resolver).  Anything
// else, and every authority in `refused`, is answered 403 without
// connecting.  One thread per connection: for small, bounded tests.
//
// Example:
//   ProxyServer proxy({.hosts = {{"web.test", "127.0.0.1"}}});
//   ... probe with proxy url proxy.url() ...
//   EXPECT_EQ(proxy.Requests()[0].method, "CONNECT");
//
// Thread-safety: all methods may be called from any thread.

#ifndef FANPROBE_TESTS_SUPPORT_PROXY_SERVER_H_
#define FANPROBE_TESTS_SUPPORT_PROXY_SERVER_H_

#include <map>
#include <set>
#include <string>
#include <thread>
#include <utility>
#include <vector>

#include "absl/base/thread_annotations.h"
#include "absl/synchronization/mutex.h"

namespace fanprobe::testing {

struct ProxyServerOptions {
  // Names the proxy may connect to, and the loopback address of each.
  std::map<std::string, std::string> hosts;
  // Authorities ("host:port", as the request names them) answered 403.
  std::set<std::string> refused;
};

// One request the proxy was asked.
struct ProxyRequest {
  std::string method;  // "CONNECT", "GET", ...
  std::string target;  // "host:port" for CONNECT, else the absolute URL
  std::vector<std::pair<std::string, std::string>> headers;  // as sent
  int status = 0;  // what the proxy answered itself (200 for a tunnel,
                   // 403, 502); 0 when it forwarded the request
};

class ProxyServer {
 public:
  // Listens on 127.0.0.1 (an ephemeral port); aborts the test binary if the
  // loopback interface refuses.
  explicit ProxyServer(ProxyServerOptions options = {});
  // Closes every connection and the listener, and joins the threads.
  ~ProxyServer();

  ProxyServer(const ProxyServer&) = delete;
  ProxyServer& operator=(const ProxyServer&) = delete;

  int port() const { return port_; }
  // "http://127.0.0.1:<port>".
  std::string url() const;

  // Every request so far, in arrival order.
  std::vector<ProxyRequest> Requests() const;
  // Connections accepted so far.
  int connections() const;

 private:
  void AcceptLoop();
  void Serve(int fd);
  // A socket connected to `host`:`port` per the rules above, or -1.
  int ConnectUpstream(const std::string& host, int port) const;
  void Record(ProxyRequest request);

  const ProxyServerOptions options_;
  int listen_fd_ = -1;
  int port_ = 0;
  std::thread acceptor_;
  mutable absl::Mutex mu_;
  bool stopping_ ABSL_GUARDED_BY(mu_) = false;
  std::vector<std::thread> threads_ ABSL_GUARDED_BY(mu_);
  std::set<int> open_fds_ ABSL_GUARDED_BY(mu_);
  std::vector<ProxyRequest> requests_ ABSL_GUARDED_BY(mu_);
  int connections_ ABSL_GUARDED_BY(mu_) = 0;
};

}  // namespace fanprobe::testing

#endif  // FANPROBE_TESTS_SUPPORT_PROXY_SERVER_H_
