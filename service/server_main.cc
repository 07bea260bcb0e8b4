// fanprobe-server: serves fanprobe.v1.Prober, grpc.health.v1.Health and
// server reflection on --grpc_address until SIGTERM or SIGINT, then drains
// within --shutdown_grace and exits 0.  Logs are JSON lines on stderr: one
// when listening, one per batch, one when stopped.

#include <pthread.h>
#include <signal.h>

#include <cstdint>
#include <cstdio>
#include <memory>
#include <string>

#include "absl/flags/flag.h"
#include "absl/flags/parse.h"
#include "absl/flags/usage.h"
#include "absl/status/statusor.h"
#include "absl/strings/str_cat.h"
#include "absl/time/time.h"
#include "service/server.h"

ABSL_FLAG(std::string, grpc_address, "127.0.0.1:50051",
          "host:port to serve gRPC on (plaintext). Port 0 picks a free port.");
ABSL_FLAG(int, workers, 0,
          "Probe engine worker threads, each driving its own libcurl multi "
          "handle; 0 = one per CPU core.");
ABSL_FLAG(uint32_t, max_in_flight, 10000,
          "Probes running at once across all batches; also caps each "
          "batch's max_concurrency. Lowered automatically to the file "
          "descriptor budget.");
ABSL_FLAG(uint32_t, max_batch_targets, 100000,
          "Most targets one request may carry; more is INVALID_ARGUMENT.");
ABSL_FLAG(uint64_t, max_pending_probes, 1000000,
          "Most probes of all running batches together; a request beyond it "
          "is RESOURCE_EXHAUSTED.");
ABSL_FLAG(uint32_t, stream_queue, 256,
          "Results a StreamProbes stream queues for a slow reader before its "
          "batch stops starting new probes.");
ABSL_FLAG(absl::Duration, shutdown_grace, absl::Seconds(10),
          "On SIGTERM/SIGINT, how long running batches may take to finish "
          "before they end with UNAVAILABLE.");

namespace {

void LogLine(const std::string& json) {
  const std::string line = absl::StrCat(json, "\n");
  std::fwrite(line.data(), 1, line.size(), stderr);
}

}  // namespace

int main(int argc, char** argv) {
  absl::SetProgramUsageMessage(
      "Serves fanprobe.v1.Prober (plus gRPC health and reflection).\n"
      "Usage: fanprobe-server [--grpc_address=127.0.0.1:50051] [flags]");
  absl::ParseCommandLine(argc, argv);

  // Block the stop signals before any thread starts, so every thread
  // inherits the mask and only sigwait() below receives them.
  sigset_t stop_signals;
  sigemptyset(&stop_signals);
  sigaddset(&stop_signals, SIGTERM);
  sigaddset(&stop_signals, SIGINT);
  pthread_sigmask(SIG_BLOCK, &stop_signals, nullptr);

  fanprobe::service::ServerOptions options;
  options.grpc_address = absl::GetFlag(FLAGS_grpc_address);
  options.engine.workers = absl::GetFlag(FLAGS_workers);
  options.engine.max_in_flight = absl::GetFlag(FLAGS_max_in_flight);
  options.service.limits.max_batch_targets =
      absl::GetFlag(FLAGS_max_batch_targets);
  options.service.max_pending_probes = absl::GetFlag(FLAGS_max_pending_probes);
  options.service.stream_queue_limit = absl::GetFlag(FLAGS_stream_queue);
  options.shutdown_grace = absl::GetFlag(FLAGS_shutdown_grace);

  absl::StatusOr<std::unique_ptr<fanprobe::service::Server>> server =
      fanprobe::service::Server::Start(options);
  if (!server.ok()) {
    std::fprintf(stderr, "fanprobe-server: %s\n",
                 server.status().ToString().c_str());
    return 1;
  }
  LogLine(absl::StrCat(R"({"event":"listening","address":")",
                       (*server)->address(), R"(","version":")",
                       FANPROBE_VERSION, R"("})"));

  int signal_number = 0;
  sigwait(&stop_signals, &signal_number);
  LogLine(absl::StrCat(R"({"event":"draining","signal":")",
                       signal_number == SIGINT ? "SIGINT" : "SIGTERM",
                       R"(","grace_ms":)",
                       absl::ToInt64Milliseconds(options.shutdown_grace), "}"));
  (*server)->Shutdown();
  server->reset();
  LogLine(R"({"event":"stopped"})");
  return 0;
}
