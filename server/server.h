// server.h: a running fanprobe server -- the engine, the Prober service, the
// standard grpc.health.v1 health service and server reflection on one
// listening address (secured as SecurityOptions says, see auth.h), health
// alone on a second address if asked -- and its draining shutdown.
// fanprobe-server is this plus flags and signals; tests run it in-process
// the same way.
//
// Example:
//   fanprobe::server::ServerOptions options;
//   options.grpc_address = "127.0.0.1:0";  // any free port
//   auto server = fanprobe::server::Server::Start(options).value();
//   ... connect to server->address() ...
//   server->Shutdown();  // drains within options.shutdown_grace
//
// Shutdown: health turns NOT_SERVING (for every service name), new batch
// RPCs fail with UNAVAILABLE while health keeps answering, running batches
// get until the grace period ends to send their summaries, and those still
// running shortly before it ends (min(grace/5, 1 s)) are cancelled: they end
// END_REASON_CANCELLED with their summary, as the contract says; only calls
// that cannot be written to by the end of the grace end UNAVAILABLE.  Then
// the listener closes.
//
// Descriptors: the server accepts connections on its own sockets
// (listener.h) and hands them to gRPC, because gRPC 1.51's own listener
// stops for good after one accept() fails with EMFILE.  While a listener
// cannot accept (the process is out of descriptors), health says
// NOT_SERVING (every service name, both gRPC ports) and /readyz answers 503
// saying why; both come back by themselves once descriptors are free.  The
// engine keeps descriptors back for incoming connections: its fd_reserve
// (the server's own files, the health port's kHealthConnections) plus the
// gRPC and HTTP sides' max_connections, which their listeners enforce.
//
// Thread-safety: Shutdown() and the accessors may be called from any thread.

#ifndef FANPROBE_SERVER_SERVER_H_
#define FANPROBE_SERVER_SERVER_H_

#include <memory>
#include <string>

#include "absl/base/thread_annotations.h"
#include "absl/status/status.h"
#include "absl/status/statusor.h"
#include "absl/synchronization/mutex.h"
#include "absl/time/time.h"
#include "grpcpp/server.h"
#include "grpcpp/server_builder.h"
#include "log/logger.h"
#include "monitoring/http_server.h"
#include "monitoring/metered_engine.h"
#include "monitoring/metrics.h"
#include "probe/engine.h"
#include "server/auth.h"
#include "server/file_watcher.h"
#include "server/listener.h"
#include "server/reflection.h"
#include "service/prober_service.h"

namespace fanprobe::server {

// The connection rules every client meets (gRPC channel arguments).
struct ConnectionOptions {
  // The largest request message accepted (--max_request_bytes); a larger
  // one fails with RESOURCE_EXHAUSTED before it is parsed.  16 MiB holds a
  // 100,000-target batch of ordinary URLs.
  int max_request_bytes = 16 << 20;
  // The server pings a connection with calls running after this long
  // without reading from it, and closes it if the ping is not answered
  // within keepalive_timeout: a client that vanished without a word (a
  // partition, a killed VM) has its batches cancelled instead of running
  // to the end (--keepalive_time, --keepalive_timeout).
  absl::Duration keepalive_time = absl::Seconds(30);
  absl::Duration keepalive_timeout = absl::Seconds(10);
  // Clients may ping at most this often; a client pinging faster, or
  // pinging without calls, gets a strike, and after max_ping_strikes the
  // connection is closed with GOAWAY "too_many_pings"
  // (--min_client_ping_interval).
  absl::Duration min_client_ping_interval = absl::Seconds(10);
  int max_ping_strikes = 2;
  // After this long a connection is asked to go away (GOAWAY): the client
  // reconnects for its next RPC, which re-resolves and spreads long-lived
  // clients over new replicas.  Calls running then get
  // max_connection_age_grace to finish before the connection is closed.
  // InfiniteDuration() = never (--max_connection_age,
  // --max_connection_age_grace).
  absl::Duration max_connection_age = absl::InfiniteDuration();
  absl::Duration max_connection_age_grace = absl::Minutes(5);
  // Connections the gRPC port holds at once; one more is closed at once and
  // logged (listener.h), so no crowd of clients runs the process out of
  // descriptors (--max_grpc_connections).  The engine keeps one descriptor
  // back for each.  The health port holds at most kHealthConnections.
  uint32_t max_connections = 256;
};

// Connections the health-only port holds at once: kubelets and load
// balancers, a few each.  Within the engine's own reserve.
inline constexpr uint32_t kHealthConnections = 32;

struct ServerOptions {
  // host:port to listen on (--grpc_address).  Port 0 picks a free port;
  // address() tells which.
  std::string grpc_address = "127.0.0.1:50051";
  // Also serve grpc.health.v1.Health alone on this host:port, plaintext and
  // without credentials, for health checkers that cannot present a client
  // certificate or token (--health_address).  Empty: none.  It mirrors the
  // main port's serving status, draining included.
  std::string health_address;
  // TLS, mutual TLS and bearer tokens on grpc_address (--tls_cert, ...).
  // The default is plaintext and no token.
  SecurityOptions security;
  // Message size, keepalive and connection-age rules.
  ConnectionOptions connection;
  // Engine workers and the engine-wide cap on running probes (--workers,
  // --max_in_flight).  engine.max_in_flight also caps each batch's
  // concurrency: service.limits.max_in_flight is set from it.
  EngineOptions engine;
  // Request limits, queue bounds, the batch log (--max_batch_targets, ...).
  service::ServiceOptions service;
  // How long Shutdown() lets running batches finish (--shutdown_grace).
  absl::Duration shutdown_grace = absl::Seconds(10);
  // The HTTP side -- /metrics, /probe, /healthz, /readyz, see
  // http_server.h -- on http.address (--http_address, --modules_file).
  // An empty address, the default here, runs none; fanprobe-server's
  // flag defaults to 127.0.0.1:9116.  /probe shares the engine.
  monitoring::HttpServerOptions http;
  // Where the server's log lines go (log/logger.h): the batch log (unless
  // service.log is set) and credentials reloads.  Null: stderr.
  log::Sink log;
};

class Server {
 public:
  // Starts the engine and listens.  kUnavailable when the address cannot be
  // bound; the engine's error when it cannot start.
  static absl::StatusOr<std::unique_ptr<Server>> Start(ServerOptions options);

  Server(const Server&) = delete;
  Server& operator=(const Server&) = delete;
  // Shuts down (see Shutdown) if not done yet.
  ~Server();

  // The address clients connect to, with the port actually bound.
  const std::string& address() const { return address_; }
  int port() const { return port_; }
  // The health-only address (options.health_address with its port); empty
  // when there is none.
  const std::string& health_address() const { return health_address_; }

  service::ProberService& service() { return *service_; }
  Engine& engine() { return *engine_; }
  // What /metrics serves.
  monitoring::ServerMetrics& metrics() { return *metrics_; }
  // The HTTP side's address with the port actually bound; empty when
  // there is none.
  const std::string& http_address() const { return http_address_; }

  // OK while every gRPC listener accepts connections; else kUnavailable
  // saying which cannot, and why.
  absl::Status Accepting() const;

  // Drains as described at the top of this file and blocks until the
  // server has stopped, at most about shutdown_grace.  Idempotent.
  void Shutdown();

 private:
  Server() = default;

  // Health SERVING while not draining and every listener accepts, else
  // NOT_SERVING; called when either changes.
  void UpdateServingStatus() ABSL_LOCKS_EXCLUDED(serving_mu_);

  // Constant after Start().  Declared in the order they are built; the
  // destructor tears them down in reverse: the gRPC server, then the
  // service (which waits for its batches), then the engine.
  absl::Duration shutdown_grace_;
  // Built first and torn down last: engine callbacks record into it
  // until the engine has ended its last batch.
  std::shared_ptr<monitoring::ServerMetrics> metrics_;
  std::unique_ptr<Engine> engine_;
  // The engine as each API sees it: the same engine, counted per API.
  std::unique_ptr<monitoring::MeteredEngine> grpc_engine_;
  std::unique_ptr<monitoring::MeteredEngine> http_engine_;
  std::unique_ptr<service::ProberService> service_;
  // Reflection v1 (v1alpha is gRPC's plugin), on server_ and on
  // health_server_.
  std::unique_ptr<ReflectionService> reflection_;
  std::unique_ptr<ReflectionService> health_reflection_;
  std::unique_ptr<grpc::Server> server_;
  std::string address_;
  int port_ = 0;
  // The HTTP side, if any; stopped after the gRPC server, so /metrics
  // answers for as long as the drain lasts.
  std::unique_ptr<monitoring::HttpServer> http_;
  std::string http_address_;
  // Renews http_'s certificate, key and client CA when their files change;
  // destroyed before http_.
  std::unique_ptr<FileWatcher> http_tls_watcher_;
  // The health-only server, if any; stopped after server_, so health
  // answers (NOT_SERVING) for as long as the drain lasts.
  std::unique_ptr<grpc::Server> health_server_;
  std::string health_address_;
  // The sockets both gRPC servers are served on, and where their
  // connections go.  Declared after the servers so they are destroyed
  // first; Shutdown() stops each before its server.
  std::unique_ptr<grpc::experimental::ExternalConnectionAcceptor> acceptor_;
  std::unique_ptr<Listener> listener_;
  std::unique_ptr<grpc::experimental::ExternalConnectionAcceptor>
      health_acceptor_;
  std::unique_ptr<Listener> health_listener_;

  absl::Mutex serving_mu_;  // orders the health status's updates
  bool draining_ ABSL_GUARDED_BY(serving_mu_) = false;

  absl::Mutex shutdown_mu_;  // serializes Shutdown()
  bool shut_down_ ABSL_GUARDED_BY(shutdown_mu_) = false;
};

}  // namespace fanprobe::server

#endif  // FANPROBE_SERVER_SERVER_H_
