// server.h: a running fanprobe server -- the engine, the Prober service, the
// standard grpc.health.v1 health service and server reflection on one
// listening address -- and its draining shutdown.  fanprobe-server is this
// plus flags and signals; tests run it in-process the same way.
//
// Example:
//   fanprobe::service::ServerOptions options;
//   options.grpc_address = "127.0.0.1:0";  // any free port
//   auto server = fanprobe::service::Server::Start(options).value();
//   ... connect to server->address() ...
//   server->Shutdown();  // drains within options.shutdown_grace
//
// Shutdown: health turns NOT_SERVING (for every service name), new batch
// RPCs fail with UNAVAILABLE while health keeps answering, running batches
// get until the grace period ends to send their summaries, and those still
// running then end with UNAVAILABLE.  Then the listener closes.
//
// Thread-safety: Shutdown() and the accessors may be called from any thread.

#ifndef FANPROBE_SERVICE_SERVER_H_
#define FANPROBE_SERVICE_SERVER_H_

#include <memory>
#include <string>

#include "absl/status/statusor.h"
#include "absl/synchronization/mutex.h"
#include "absl/time/time.h"
#include "grpcpp/server.h"
#include "probe/engine.h"
#include "service/prober_service.h"

namespace fanprobe::service {

struct ServerOptions {
  // host:port to listen on, plaintext (--grpc_address).  Port 0 picks a
  // free port; address() tells which.
  std::string grpc_address = "127.0.0.1:50051";
  // Engine workers and the engine-wide cap on running probes (--workers,
  // --max_in_flight).  engine.max_in_flight also caps each batch's
  // concurrency: service.limits.max_in_flight is set from it.
  EngineOptions engine;
  // Request limits, queue bounds, the batch log (--max_batch_targets, ...).
  ServiceOptions service;
  // How long Shutdown() lets running batches finish (--shutdown_grace).
  absl::Duration shutdown_grace = absl::Seconds(10);
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

  ProberService& service() { return *service_; }
  Engine& engine() { return *engine_; }

  // Drains as described at the top of this file and blocks until the
  // server has stopped, at most about shutdown_grace.  Idempotent.
  void Shutdown();

 private:
  Server() = default;

  // Constant after Start().  Declared in the order they are built; the
  // destructor tears them down in reverse: the gRPC server, then the
  // service (which waits for its batches), then the engine.
  absl::Duration shutdown_grace_;
  std::unique_ptr<Engine> engine_;
  std::unique_ptr<ProberService> service_;
  std::unique_ptr<grpc::Server> server_;
  std::string address_;
  int port_ = 0;

  absl::Mutex shutdown_mu_;  // serializes Shutdown()
  bool shut_down_ ABSL_GUARDED_BY(shutdown_mu_) = false;
};

}  // namespace fanprobe::service

#endif  // FANPROBE_SERVICE_SERVER_H_
