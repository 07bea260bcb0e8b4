#include "cli/health_command.h"

#include <memory>
#include <ostream>
#include <string>

#include "absl/status/statusor.h"
#include "absl/time/clock.h"
#include "absl/time/time.h"
#include "cli/exit_code.h"
#include "grpc/health/v1/health.grpc.pb.h"
#include "grpc/health/v1/health.pb.h"
#include "grpcpp/grpcpp.h"

namespace fanprobe::cli {

namespace health = ::grpc::health::v1;

absl::StatusOr<HealthCommand> ResolveHealthCommand(const HealthFlags& flags) {
  HealthCommand command;
  command.server = flags.server;
  command.connection = flags.connection;
  if (flags.timeout.has_value()) {
    absl::StatusOr<absl::Duration> timeout =
        ParseDurationFlag("timeout", *flags.timeout);
    if (!timeout.ok()) return timeout.status();
    command.timeout = *timeout;
  }
  return command;
}

int RunHealthCommand(const HealthCommand& command, std::ostream& out,
                     std::ostream& err) {
  absl::StatusOr<Connection> connection =
      Connection::Resolve(command.connection);
  if (!connection.ok()) {
    err << "fanprobe: " << connection.status().message() << "\n";
    return kExitUsage;
  }
  const std::shared_ptr<grpc::Channel> channel =
      connection->NewChannel(command.server);
  std::unique_ptr<health::Health::Stub> stub = health::Health::NewStub(channel);
  const absl::Time deadline = absl::Now() + command.timeout;
  health::HealthCheckResponse response;
  auto check = [&] {
    grpc::ClientContext context;
    connection->Authorize(context);
    context.set_deadline(absl::ToChronoTime(deadline));
    return stub->Check(&context, health::HealthCheckRequest(), &response);
  };
  grpc::Status status = check();
  // A connection that failed (a server still starting, a connection reset
  // while it was set up) fails the first call at once.  As
  // grpc_health_probe and Kubernetes' gRPC probe, wait for a connection
  // until the timeout and ask again; if none comes, the first error says
  // why.
  if (status.error_code() == grpc::StatusCode::UNAVAILABLE &&
      channel->WaitForConnected(absl::ToChronoTime(deadline))) {
    status = check();
  }
  if (!status.ok()) {
    err << "fanprobe: health check of " << command.server
        << " failed: " << Describe(status) << "\n";
    return kExitUsage;
  }
  out << health::HealthCheckResponse::ServingStatus_Name(response.status())
      << "\n";
  out.flush();
  return response.status() == health::HealthCheckResponse::SERVING
             ? kExitOk
             : kExitProbeFailed;
}

}  // namespace fanprobe::cli
