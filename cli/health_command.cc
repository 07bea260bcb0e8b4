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
  std::unique_ptr<health::Health::Stub> stub =
      health::Health::NewStub(connection->NewChannel(command.server));
  grpc::ClientContext context;
  connection->Authorize(context);
  context.set_deadline(absl::ToChronoTime(absl::Now() + command.timeout));
  health::HealthCheckResponse response;
  const grpc::Status status =
      stub->Check(&context, health::HealthCheckRequest(), &response);
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
