// http_server.h: fanprobe's HTTP side, on cpp-httplib, for monitoring
// pipelines that speak Prometheus:
//
//   /metrics   fanprobe's own metrics (metrics.h), Prometheus text format
//   /probe     ?target=URL&module=NAME, compatible with blackbox_exporter's
//              http prober (blackbox_modules.h, blackbox_report.h);
//              repeated target= parameters are probed concurrently and
//              every series gets a target label; debug=true explains the
//              probe instead
//   /healthz   200 while the process serves HTTP at all (liveness)
//   /readyz    200 when serving and not saturated, else 503 and why
//
// /probe runs its probes through the Engine it is given -- the server passes
// a MeteredEngine over the same engine the gRPC service uses -- so both APIs
// share one admission cap.  Its deadline is blackbox_exporter's: the
// X-Prometheus-Scrape-Timeout-Seconds header less `timeout_offset`, or the
// module's timeout when shorter.  Answers:
//   200  the metrics (probe_success 0 for a failed probe: a failed probe is
//        data, not an HTTP error)
//   400  no target, an unknown module, too many targets, a timeout header
//        that is not a finite positive number
//   503  shutting down, or more pending /probe probes than max_pending_probes
//
// Example (server/server.cc does this):
//   auto http = HttpServer::Start(options, metered_engine, metrics,
//                                 [] { return absl::OkStatus(); }).value();
//   ... GET http://<http->address()>/probe?target=example.com ...
//   http->BeginShutdown();  // /readyz and new /probe: 503
//   if (!http->WaitUntilIdle(deadline)) http->CancelAll();
//   http->Stop();
//
// Threading: cpp-httplib serves each connection on a thread of its pool
// (`threads`), and a /probe request holds its thread until its batch ends,
// so `threads` bounds the scrapes served at once; more wait for a thread.
// All methods may be called from any thread.  The engine and the metrics
// must outlive the server.

#ifndef FANPROBE_MONITORING_HTTP_SERVER_H_
#define FANPROBE_MONITORING_HTTP_SERVER_H_

#include <cstdint>
#include <functional>
#include <memory>
#include <string>
#include <thread>

#include "absl/base/thread_annotations.h"
#include "absl/container/flat_hash_set.h"
#include "absl/status/status.h"
#include "absl/status/statusor.h"
#include "absl/strings/string_view.h"
#include "absl/synchronization/mutex.h"
#include "absl/synchronization/notification.h"
#include "absl/time/time.h"
#include "monitoring/blackbox_modules.h"
#include "monitoring/metrics.h"
#include "probe/engine.h"

namespace httplib {
class Server;
struct Request;
struct Response;
}  // namespace httplib

namespace fanprobe::monitoring {

struct HttpServerOptions {
  // host:port to serve on (--http_address), plain HTTP.  Port 0 picks a
  // free port; address() tells which.  Empty: the server runs no HTTP side
  // (Server::Start skips it; HttpServer::Start refuses it).
  std::string address;
  // The /probe modules (--modules_file); by default http_2xx only.
  BlackboxModules modules = DefaultBlackboxModules();
  // Taken off the scrape's timeout so the answer reaches Prometheus in time
  // (--probe_timeout_offset; blackbox_exporter's --timeout-offset).
  absl::Duration timeout_offset = absl::Milliseconds(500);
  // The longest scrape timeout honoured (--http_max_scrape_timeout): a
  // larger X-Prometheus-Scrape-Timeout-Seconds, or a module's longer
  // timeout, is held to it, so no scrape holds its probes longer.
  absl::Duration max_scrape_timeout = kDefaultMaxScrapeTimeout;
  // Distinct target= values one /probe may carry; more is a 400.  (The
  // request line is at most 8 KiB anyway, cpp-httplib's limit: a longer
  // one is a 414.)
  uint32_t max_targets_per_request = 100;
  // Probes of all /probe requests in progress together; a request beyond
  // it is a 503, and /readyz reports saturation at it.
  uint64_t max_pending_probes = 100000;
  // Connections served at once (cpp-httplib's thread pool).
  int threads = 64;
  // An idle keep-alive connection is closed after this, which also bounds
  // how long Stop() waits for idle connections.
  absl::Duration keep_alive_timeout = absl::Seconds(2);
  // Checks the Authorization header's value (empty when absent) of every
  // request but /healthz and /readyz, which a kubelet calls without one;
  // not OK: 401 with the status's message.  Null: no check.  The server
  // wires a TokenAuthenticator here for --http_auth_token_file.
  std::function<absl::Status(absl::string_view authorization)> authorize;
};

// Live figures, for metrics and readiness.
struct HttpStats {
  uint64_t probe_requests_active = 0;  // /probe requests being served
  uint64_t pending_probes = 0;         // their probes
};

class HttpServer {
 public:
  // Why the server is not ready beyond its own reasons (engine or gRPC
  // side saturated): OK when ready, else a status whose message says why.
  using ReadinessCheck = std::function<absl::Status()>;

  // Binds options.address and starts serving.  kUnavailable when it cannot
  // listen there, kInvalidArgument for an empty or malformed address.
  static absl::StatusOr<std::unique_ptr<HttpServer>> Start(
      HttpServerOptions options, Engine& engine, ServerMetrics& metrics,
      ReadinessCheck readiness);

  HttpServer(const HttpServer&) = delete;
  HttpServer& operator=(const HttpServer&) = delete;
  // Cancels what still runs and stops.
  ~HttpServer();

  // host:port with the port actually bound.
  const std::string& address() const { return address_; }
  int port() const { return port_; }

  // /readyz answers 503 and new /probe requests get 503; /metrics and
  // /healthz go on, and so do /probe requests already running.
  void BeginShutdown();
  // Blocks until no /probe request is running or `deadline` passes; true
  // when idle.
  bool WaitUntilIdle(absl::Time deadline);
  // Cancels the batches of every running /probe request (they answer 503),
  // and of any that starts from now on.
  void CancelAll();
  // Cancels what still runs, closes the listener and joins its threads.
  // Idempotent.
  void Stop();

  HttpStats Stats() const;

 private:
  HttpServer(HttpServerOptions options, Engine& engine, ServerMetrics& metrics,
             ReadinessCheck readiness);

  void HandleProbe(const httplib::Request& request,
                   httplib::Response& response);
  void HandleReady(httplib::Response& response);
  void Reject(absl::StatusCode code, const std::string& message,
              httplib::Response& response);

  // Constant after Start().
  const HttpServerOptions options_;
  Engine& engine_;
  ServerMetrics& metrics_;
  const ReadinessCheck readiness_;
  std::unique_ptr<httplib::Server> http_;
  std::thread listener_;
  absl::Notification listener_done_;  // listen_after_bind() has returned
  std::string address_;
  int port_ = 0;

  // State below is protected by mu_.
  mutable absl::Mutex mu_;
  bool shutting_down_ ABSL_GUARDED_BY(mu_) = false;
  bool cancel_all_ ABSL_GUARDED_BY(mu_) = false;
  bool stopped_ ABSL_GUARDED_BY(mu_) = false;
  absl::flat_hash_set<std::shared_ptr<Batch>> batches_ ABSL_GUARDED_BY(mu_);
  uint64_t active_requests_ ABSL_GUARDED_BY(mu_) = 0;
  uint64_t pending_probes_ ABSL_GUARDED_BY(mu_) = 0;
};

}  // namespace fanprobe::monitoring

#endif  // FANPROBE_MONITORING_HTTP_SERVER_H_
