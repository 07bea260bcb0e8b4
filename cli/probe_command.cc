#include "cli/probe_command.h"

#include <pthread.h>
#include <signal.h>
#include <unistd.h>

#include <functional>
#include <iostream>
#include <istream>
#include <memory>
#include <string>
#include <thread>
#include <utility>
#include <vector>

#include "absl/status/status.h"
#include "absl/status/statusor.h"
#include "absl/strings/ascii.h"
#include "absl/strings/str_split.h"
#include "absl/strings/string_view.h"
#include "cli/connection.h"
#include "cli/exit_code.h"
#include "cli/output.h"
#include "cli/progress.h"
#include "cli/remote_share.h"
#include "cli/request.h"
#include "cli/split.h"

namespace fanprobe::cli {
namespace {

// Waits for SIGINT or SIGTERM on its own thread and calls `on_signal`.  The
// constructor blocks both in the calling thread, so it must run before
// gRPC starts its threads, which then inherit the mask; Stop() (or the
// destructor) ends the thread, and the destructor restores the mask.
class InterruptWatcher {
 public:
  InterruptWatcher() {
    sigemptyset(&signals_);
    sigaddset(&signals_, SIGINT);
    sigaddset(&signals_, SIGTERM);
    sigaddset(&signals_, SIGUSR1);  // Stop()'s wake-up
    pthread_sigmask(SIG_BLOCK, &signals_, &previous_);
  }

  ~InterruptWatcher() {
    Stop();
    pthread_sigmask(SIG_SETMASK, &previous_, nullptr);
  }

  InterruptWatcher(const InterruptWatcher&) = delete;
  InterruptWatcher& operator=(const InterruptWatcher&) = delete;

  void Start(std::function<void()> on_signal) {
    thread_ = std::thread([this, on_signal = std::move(on_signal)] {
      int signal_number = 0;
      while (sigwait(&signals_, &signal_number) == 0) {
        if (signal_number == SIGUSR1) return;
        on_signal();
      }
    });
  }

  // After Stop returns, `on_signal` is not called again.
  void Stop() {
    if (!thread_.joinable()) return;
    pthread_kill(thread_.native_handle(), SIGUSR1);
    thread_.join();
  }

 private:
  sigset_t signals_;
  sigset_t previous_;
  std::thread thread_;
};

// "--server=a,b --server=c" -> a, b, c; the default when none is given.
absl::StatusOr<std::vector<std::string>> Servers(const ProbeFlags& flags) {
  if (flags.servers.empty()) return std::vector{std::string(kDefaultServer)};
  std::vector<std::string> servers;
  for (const std::string& value : flags.servers) {
    for (absl::string_view server :
         absl::StrSplit(value, ',', absl::SkipWhitespace())) {
      servers.emplace_back(absl::StripAsciiWhitespace(server));
    }
  }
  if (servers.empty()) {
    return absl::InvalidArgumentError("--server= is empty");
  }
  return servers;
}

}  // namespace

absl::StatusOr<ProbeCommand> ResolveProbeCommand(const ProbeFlags& flags,
                                                 std::istream& in) {
  ProbeCommand command;
  absl::StatusOr<std::vector<std::string>> servers = Servers(flags);
  if (!servers.ok()) return servers.status();
  command.servers = *std::move(servers);
  command.connection = flags.connection;
  absl::StatusOr<Format> format = ParseFormat(flags.format.value_or("table"));
  if (!format.ok()) return format.status();
  command.format = *format;
  absl::StatusOr<v1::ProbeBatchRequest> request = BuildRequest(flags, in);
  if (!request.ok()) return request.status();
  command.request = *std::move(request);
  return command;
}

int RunProbeCommand(const ProbeCommand& command) {
  // First: gRPC's threads, started from here on, must inherit the mask.
  InterruptWatcher watcher;
  absl::StatusOr<Connection> connection =
      Connection::Resolve(command.connection);
  if (!connection.ok()) {
    std::cerr << "fanprobe: " << connection.status().message() << "\n";
    return kExitUsage;
  }
  const int total = command.request.targets_size();
  Printer printer(command.format, std::cout);
  Progress progress(ShowProgress(isatty(STDERR_FILENO), total), total,
                    std::cerr);
  std::vector<std::unique_ptr<Share>> shares;
  for (const std::string& server : command.servers) {
    shares.push_back(std::make_unique<RemoteShare>(server, *connection));
  }
  SplitRun run(command.request, std::move(shares), printer, progress);
  watcher.Start([&run] { run.Interrupt(); });
  const SplitOutcome outcome = run.Run();
  watcher.Stop();
  if (outcome.share_failed || !outcome.summary.has_value()) return kExitUsage;
  return outcome.summary->succeeded() == outcome.summary->total()
             ? kExitOk
             : kExitProbeFailed;
}

}  // namespace fanprobe::cli
