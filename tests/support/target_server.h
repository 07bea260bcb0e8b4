// target_server.h: loopback HTTP target servers that the engine tests probe,
// and the counters they keep so a test can assert what the target saw.
//
// A TargetServer runs two listeners on 127.0.0.1, both on ephemeral ports,
// started by the constructor and stopped by the destructor:
//
// - the HTTP listener (cpp-httplib, a 256-thread pool), url(path):
//     /status/<code>     answers <code> (no body for 1xx, 204 and 304)
//     /delay/<ms>        answers 200 after <ms>; "?status=<code>" answers
//                        <code> instead
//     /bytes/<n>         200 with an n-byte body of 'x' (Content-Length)
//     /chunked/<n>       the same body, chunked: no length announced
//     /redirect/<n>      a chain of n 302s (relative Location) ending at
//                        /status/200; /redirect/0 answers 200 directly
//     /loop              302 to itself, forever
//     /redirect_to?url=<url>  302 to <url>, whatever its scheme or host
//     /body/<text>       200 with <text> (URL-decoded) as the body
//     /match             200 with kMatchBody as the body
//     /headers?<name>=<value>&...  200 with each query parameter as a
//                        response header (a name given twice: two lines)
//     /many_headers/<n>  200 with n headers X-Many-0 .. X-Many-<n-1>
//     /gzip/<n>, /deflate/<n>, /br/<n>  200 whose body, n bytes of
//                        "fanprobe fanprobe ...", is sent compressed with
//                        that Content-Encoding, whatever the request asked
//                        (/br/ only where HasBrotliTarget())
//     /basic_auth/<user>/<password>  200 when the request carries that
//                        basic authentication, else 401
//     /bearer/<token>    200 when the request carries "Authorization:
//                        Bearer <token>", else 401
//     /last_modified     200 with "Last-Modified: " kLastModified
//     /echo_headers      200; the body is "<METHOD> <path>\n", one
//                        "<Name>: <value>\n" line per request header, a
//                        blank line and the request body
//   Every route answers every method (HEAD as GET without a body).  The
//   listener cannot see a connection's socket, so it does not observe when a
//   client closes one; endpoints whose connection lifetime a test observes
//   are on the raw listener.
//
// - the raw listener (its own thread, poll(), minimal HTTP/1.1 with
//   keep-alive), raw_url(path), which sees every accept, EOF and reset:
//     /status/<code>     answers <code>
//     /delay/<ms>        answers 200 after <ms>, unless the client closes
//                        the connection first (counted as abandoned)
//     /hang              never answers; the connection stays open until the
//                        client closes it (counted as abandoned) or the
//                        server stops
//     /reset             after reading the request, resets the connection
//                        (SO_LINGER 0 + close, so the client gets an RST)
//     /reset_first/<n>   resets the first <n> requests to this path as
//                        /reset does, then answers 200: a target that fails
//                        and recovers
//   Unknown paths answer 404 on both listeners.
//
// Example:
//   fanprobe::testing::TargetServer server;
//   ... probe server.raw_url("/hang") and cancel the batch ...
//   EXPECT_TRUE(server.WaitFor(
//       [](const TargetStats& s) { return s.raw.abandoned == 1; },
//       absl::Seconds(2)));
//
// Thread-safety: all methods may be called from any thread.  Constructing a
// TargetServer sets SIGPIPE to SIG_IGN for the process: cpp-httplib writes
// without MSG_NOSIGNAL, and a test that cancels probes makes it write to
// closed sockets.

#ifndef FANPROBE_TESTS_SUPPORT_TARGET_SERVER_H_
#define FANPROBE_TESTS_SUPPORT_TARGET_SERVER_H_

#include <cstdint>
#include <functional>
#include <map>
#include <memory>
#include <set>
#include <string>
#include <utility>
#include <vector>

#include "absl/base/thread_annotations.h"
#include "absl/strings/string_view.h"
#include "absl/synchronization/mutex.h"
#include "absl/time/time.h"

namespace fanprobe::testing {

// The body /match serves.
inline constexpr absl::string_view kMatchBody =
    "fanprobe target server: the quick brown fox jumps over the lazy dog\n";

// What /last_modified sends as Last-Modified, and the same as a Unix time.
inline constexpr absl::string_view kLastModified =
    "Wed, 21 Oct 2015 07:28:00 GMT";
inline constexpr int64_t kLastModifiedUnix = 1445412480;

// Whether /br/<n> is served (the test support was built with brotli's
// encoder).
constexpr bool HasBrotliTarget() {
#ifdef FANPROBE_TEST_BROTLI
  return true;
#else
  return false;
#endif
}

// One request as the HTTP listener received it.
struct RecordedRequest {
  std::string method;
  std::string path;  // decoded, without the query
  std::vector<std::pair<std::string, std::string>> headers;
  std::string body;
  std::string client_address;  // the address it came from ("127.0.0.2")
  int client_port = 0;         // identifies the connection it came on
};

// What one listener has seen since the server started.
struct ListenerStats {
  int requests = 0;  // requests received (request line and headers read)
  std::map<std::string, int> requests_by_path;  // path without the query
  int in_flight = 0;      // received and not yet answered (or abandoned)
  int max_in_flight = 0;  // the most ever in flight at once
  // HTTP listener: distinct client (address, port) pairs that sent a
  // request.  Raw listener: connections accepted.
  int connections = 0;
  // Raw listener only (always 0 on the HTTP listener):
  int open_connections = 0;      // accepted and not yet closed
  int max_open_connections = 0;  // the most ever open at once
  int closed_by_client = 0;      // connections that ended with EOF or reset
  int abandoned = 0;  // requests whose connection the client closed before
                      // the answer was sent (/delay, /hang)
};

struct TargetStats {
  ListenerStats http;
  ListenerStats raw;
};

class TargetServer {
 public:
  // Binds both listeners and starts serving; CHECK-fails (aborts the test
  // binary) if the loopback interface refuses a socket.
  TargetServer();
  // Stops both listeners: pending /delay and /hang requests end at once,
  // their connections are closed.
  ~TargetServer();

  TargetServer(const TargetServer&) = delete;
  TargetServer& operator=(const TargetServer&) = delete;

  // The HTTP listener: port() and "http://127.0.0.1:<port><path>".
  int port() const { return http_port_; }
  std::string url(absl::string_view path) const;

  // The raw listener.
  int raw_port() const { return raw_port_; }
  std::string raw_url(absl::string_view path) const;

  TargetStats Stats() const;
  // Every request the HTTP listener received, in arrival order.
  std::vector<RecordedRequest> Requests() const;
  // Blocks until `condition` holds on the stats or `timeout` passes; returns
  // whether it holds.  `condition` runs under the server's lock: it must
  // only read its argument.
  bool WaitFor(const std::function<bool(const TargetStats&)>& condition,
               absl::Duration timeout) const;

 private:
  class HttpListener;
  class RawListener;

  // Called by the listeners.
  void RecordHttpRequest(RecordedRequest request) ABSL_LOCKS_EXCLUDED(mu_);
  void RecordHttpAnswered() ABSL_LOCKS_EXCLUDED(mu_);
  void RecordRawAccepted() ABSL_LOCKS_EXCLUDED(mu_);
  void RecordRawRequest(const std::string& path) ABSL_LOCKS_EXCLUDED(mu_);
  void RecordRawAnswered() ABSL_LOCKS_EXCLUDED(mu_);
  // The connection ended; `by_client` when the client closed or reset it,
  // `request_pending` when it still had an unanswered request.
  void RecordRawClosed(bool by_client, bool request_pending)
      ABSL_LOCKS_EXCLUDED(mu_);

  mutable absl::Mutex mu_;
  TargetStats stats_ ABSL_GUARDED_BY(mu_);
  std::vector<RecordedRequest> requests_ ABSL_GUARDED_BY(mu_);
  std::set<int> http_clients_ ABSL_GUARDED_BY(mu_);  // client ports

  // Constant after construction.  The listeners are declared after the
  // state they record into, so they stop before it is destroyed.
  std::unique_ptr<HttpListener> http_;
  std::unique_ptr<RawListener> raw_;
  int http_port_ = 0;
  int raw_port_ = 0;
};

// A loopback port on which nothing listens, held for the object's lifetime
// (a bound socket without listen()): connecting to it is refused at once.
class RefusedPort {
 public:
  RefusedPort();
  ~RefusedPort();
  RefusedPort(const RefusedPort&) = delete;
  RefusedPort& operator=(const RefusedPort&) = delete;

  int port() const { return port_; }
  std::string url(absl::string_view path) const;

 private:
  int fd_ = -1;
  int port_ = 0;
};

// A loopback port whose accept queue is full: a SYN to it gets no answer,
// so a connect attempt hangs until the client gives up (connect timeouts).
class UnresponsivePort {
 public:
  UnresponsivePort();
  ~UnresponsivePort();
  UnresponsivePort(const UnresponsivePort&) = delete;
  UnresponsivePort& operator=(const UnresponsivePort&) = delete;

  int port() const { return port_; }
  std::string url(absl::string_view path) const;

 private:
  int listen_fd_ = -1;
  std::vector<int> fillers_;  // our own connections filling the queue
  int port_ = 0;
};

}  // namespace fanprobe::testing

#endif  // FANPROBE_TESTS_SUPPORT_TARGET_SERVER_H_
