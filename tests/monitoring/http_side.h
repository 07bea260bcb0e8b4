// http_side.h: the HTTP/monitoring adapter alone -- an HttpServer on a free
// loopback port over its own engine, metered into its own ServerMetrics as
// the server meters /probe (api="http").  No gRPC: what the server wires
// around it (the gRPC side's metrics, tokens, readiness, shutdown) is
// tests/server/'s.
//
// Example:
//   HttpSide side;
//   HttpReply reply = HttpGet(side.address(), "/probe?target=...");
//
// Thread-safety: its methods may be called from any thread.

#ifndef FANPROBE_TESTS_MONITORING_HTTP_SIDE_H_
#define FANPROBE_TESTS_MONITORING_HTTP_SIDE_H_

#include <memory>
#include <string>

#include "monitoring/http_server.h"
#include "monitoring/metered_engine.h"
#include "monitoring/metrics.h"
#include "probe/engine.h"

namespace fanprobe::testing {

class HttpSide {
 public:
  // Starts the engine and the HTTP side with `options`; an empty address
  // means 127.0.0.1:0.  Throws (failing the test) if either cannot start.
  explicit HttpSide(monitoring::HttpServerOptions options = {},
                    EngineOptions engine = {});
  // Stops the HTTP side, then the engine.
  ~HttpSide();

  // host:port with the port bound.
  const std::string& address() const { return http_->address(); }
  monitoring::HttpServer& http() { return *http_; }
  monitoring::ServerMetrics& metrics() { return metrics_; }
  Engine& engine() { return *engine_; }

 private:
  std::unique_ptr<Engine> engine_;
  monitoring::ServerMetrics metrics_;
  std::unique_ptr<monitoring::MeteredEngine> metered_;
  std::unique_ptr<monitoring::HttpServer> http_;
};

}  // namespace fanprobe::testing

#endif  // FANPROBE_TESTS_MONITORING_HTTP_SIDE_H_
