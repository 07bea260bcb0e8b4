#include "service/server.h"

#include <algorithm>
#include <memory>
#include <string>
#include <utility>

#include "absl/status/status.h"
#include "absl/status/statusor.h"
#include "absl/strings/str_cat.h"
#include "absl/time/clock.h"
#include "absl/time/time.h"
#include "grpcpp/ext/proto_server_reflection_plugin.h"
#include "grpcpp/grpcpp.h"
#include "grpcpp/health_check_service_interface.h"

namespace fanprobe::service {

absl::StatusOr<std::unique_ptr<Server>> Server::Start(ServerOptions options) {
  absl::StatusOr<std::unique_ptr<Engine>> engine =
      Engine::Create(options.engine);
  if (!engine.ok()) return engine.status();

  std::unique_ptr<Server> server(new Server());
  server->shutdown_grace_ = options.shutdown_grace;
  server->engine_ = *std::move(engine);
  // A batch may not ask for more concurrency than the engine can give,
  // which the file descriptor budget may have lowered below the flag.
  options.service.limits.max_in_flight = static_cast<uint32_t>(
      std::min<uint64_t>(options.engine.max_in_flight,
                         server->engine_->Stats().max_in_flight));
  server->service_ =
      std::make_unique<ProberService>(*server->engine_, options.service);

  // Both are process-wide switches that take effect in the next builder.
  grpc::EnableDefaultHealthCheckService(true);
  grpc::reflection::InitProtoReflectionServerBuilderPlugin();
  grpc::ServerBuilder builder;
  builder.AddListeningPort(options.grpc_address,
                           grpc::InsecureServerCredentials(), &server->port_);
  builder.RegisterService(server->service_.get());
  server->server_ = builder.BuildAndStart();
  if (server->server_ == nullptr || server->port_ == 0) {
    return absl::UnavailableError(
        absl::StrCat("cannot listen on ", options.grpc_address,
                     " (address in use or not local?)"));
  }
  const std::string& address = options.grpc_address;
  server->address_ =
      absl::StrCat(address.substr(0, address.rfind(':')), ":", server->port_);
  grpc::HealthCheckServiceInterface* health =
      server->server_->GetHealthCheckService();
  health->SetServingStatus(v1::Prober::service_full_name(), true);
  return server;
}

Server::~Server() { Shutdown(); }

void Server::Shutdown() {
  absl::MutexLock lock(&shutdown_mu_);
  if (shut_down_ || server_ == nullptr) return;
  shut_down_ = true;
  const absl::Time deadline = absl::Now() + shutdown_grace_;
  // Refuse new batches first, so a client that sees NOT_SERVING is refused
  // from then on.
  service_->BeginShutdown();
  server_->GetHealthCheckService()->SetServingStatus(false);
  // The tail of the grace period is for ending what still runs then: its
  // UNAVAILABLE status must reach the client before the listener closes.
  const absl::Duration tail = std::min(shutdown_grace_ / 5, absl::Seconds(1));
  const bool drained = service_->WaitUntilIdle(deadline - tail);
  if (!drained) {
    service_->AbortAll(grpc::Status(grpc::StatusCode::UNAVAILABLE,
                                    "the server is shutting down"));
  }
  // Waits for RPCs to complete until the given time, then cancels them.
  // Once every batch is over, what remains never ends by itself (health
  // Watch streams) and is cancelled at once; aborted batches get the rest
  // of the grace period to deliver their status.
  server_->Shutdown(absl::ToChronoTime(drained ? absl::Now() : deadline));
  server_->Wait();
}

}  // namespace fanprobe::service
