#include "cli/probe_command.h"

#include <pthread.h>
#include <signal.h>
#include <unistd.h>

#include <cerrno>
#include <cstring>
#include <fstream>
#include <functional>
#include <iostream>
#include <istream>
#include <memory>
#include <optional>
#include <string>
#include <thread>
#include <utility>
#include <vector>

#include "absl/status/status.h"
#include "absl/status/statusor.h"
#include "absl/strings/ascii.h"
#include "absl/strings/str_cat.h"
#include "absl/strings/str_split.h"
#include "absl/strings/string_view.h"
#include "cli/connection.h"
#include "cli/engine_share.h"
#include "cli/exit_code.h"
#include "cli/input.h"
#include "cli/output.h"
#include "cli/progress.h"
#include "cli/remote_share.h"
#include "cli/request.h"
#include "cli/split.h"
#include "probe/engine.h"

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

// "--server=a,b --server=c" -> a, b, c; none: the in-process engine.
absl::StatusOr<std::vector<std::string>> Servers(const ProbeFlags& flags) {
  std::vector<std::string> servers;
  for (const std::string& value : flags.servers) {
    for (absl::string_view server :
         absl::StrSplit(value, ',', absl::SkipWhitespace())) {
      servers.emplace_back(absl::StripAsciiWhitespace(server));
    }
  }
  if (servers.empty() && !flags.servers.empty()) {
    return absl::InvalidArgumentError("--server= is empty");
  }
  return servers;
}

// The first connection flag given, or empty.
std::string ConnectionFlagGiven(const ConnectionFlags& flags) {
  if (!flags.tls_ca.empty()) return "--tls_ca";
  if (!flags.tls_cert.empty()) return "--tls_cert";
  if (!flags.tls_key.empty()) return "--tls_key";
  if (!flags.tls_server_name.empty()) return "--tls_server_name";
  if (!flags.auth_token_file.empty()) return "--auth_token_file";
  return "";
}

// The shares that run the batch: the in-process engine, or one per server.
struct Shares {
  std::unique_ptr<Engine> engine;  // outlives the shares below
  std::vector<std::unique_ptr<Share>> shares;
};

absl::StatusOr<Shares> MakeShares(const ProbeCommand& command,
                                  const Connection* connection) {
  Shares made;
  if (command.servers.empty()) {
    absl::StatusOr<std::unique_ptr<Engine>> engine =
        Engine::Create(command.engine);
    if (!engine.ok()) return engine.status();
    made.engine = *std::move(engine);
    made.shares.push_back(std::make_unique<EngineShare>(*made.engine));
    return made;
  }
  for (const std::string& server : command.servers) {
    made.shares.push_back(std::make_unique<RemoteShare>(server, *connection));
  }
  return made;
}

}  // namespace

absl::StatusOr<ProbeCommand> ResolveProbeCommand(const ProbeFlags& flags,
                                                 Stdin& in) {
  ProbeCommand command;
  absl::StatusOr<std::vector<std::string>> servers = Servers(flags);
  if (!servers.ok()) return servers.status();
  command.servers = *std::move(servers);
  command.connection = flags.connection;
  if (command.servers.empty()) {
    if (const std::string flag = ConnectionFlagGiven(flags.connection);
        !flag.empty()) {
      return absl::InvalidArgumentError(absl::StrCat(
          flag,
          " is for the connection to a --server; without one the probes "
          "run in-process (the targets' CA is --cacert)"));
    }
    absl::StatusOr<EngineOptions> engine = EngineOptionsFromFlags(flags);
    if (!engine.ok()) return engine.status();
    command.engine = *std::move(engine);
  } else if (const std::string flag = EngineOnlyFlagGiven(flags);
             !flag.empty()) {
    return absl::InvalidArgumentError(absl::StrCat(
        flag,
        " is for probes run in-process; with --server the server's own "
        "destination policy and DNS servers hold"));
  }
  absl::StatusOr<Format> format = ParseFormat(flags.format.value_or("table"));
  if (!format.ok()) return format.status();
  command.format = *format;
  if (flags.output.has_value()) {
    if (flags.output->empty()) {
      return absl::InvalidArgumentError("--output= is empty");
    }
    // "-o -" is stdout, as in curl.
    if (*flags.output != "-") command.output = *flags.output;
  }
  absl::StatusOr<v1::ProbeBatchRequest> request =
      BuildRequest(flags, in, &command.origins);
  if (!request.ok()) return request.status();
  command.request = *std::move(request);
  return command;
}

std::string OptionsProblemMessage(const OptionsProblem& problem,
                                  const TargetOrigins& origins) {
  const absl::string_view message = problem.status.message();
  if (problem.target >= 0) {
    const std::string& origin =
        static_cast<size_t>(problem.target) < origins.size()
            ? origins[problem.target]
            : "";
    return absl::StrCat(
        origin.empty() ? absl::StrCat("target ", problem.target) : origin,
        ": options.", message);
  }
  // The field the message starts with ("headers[0].value: ..."), without
  // its index, and the flag that sets it.
  static constexpr std::pair<absl::string_view, absl::string_view> kFlags[] = {
      {"method", "-X"},
      {"headers", "-H"},
      {"body", "-d"},
      {"timeout", "-m"},
      {"connect_timeout", "--connect-timeout"},
      {"max_redirects", "--max-redirs"},
      {"retry", "--retry"},
      {"valid_status", "--expect"},
      {"body_must_match", "--body_must_match"},
      {"body_must_not_match", "--body_must_not_match"},
      {"max_body_bytes", "--max-filesize"},
      {"ca_pem", "--cacert"},
      {"user_agent", "-A"},
      {"tls_min_version", "--tlsv1.3"},
      {"source_address", "--interface"},
  };
  const absl::string_view field =
      message.substr(0, message.find_first_of(":[."));
  for (const auto& [name, flag] : kFlags) {
    if (field == name) return absl::StrCat(flag, ": ", message);
  }
  return std::string(message);
}

int ProbeExitStatus(const SplitOutcome& outcome) {
  if (outcome.share_failed || !outcome.summary.has_value()) return kExitUsage;
  const v1::BatchSummary& summary = *outcome.summary;
  if (summary.reason() == v1::END_REASON_CANCELLED) return kExitCancelled;
  if (summary.reason() == v1::END_REASON_TIMEOUT && summary.cancelled() > 0) {
    return kExitTimedOut;
  }
  return summary.failed() > 0 ? kExitProbeFailed : kExitOk;
}

int RunProbeCommand(const ProbeCommand& command) {
  // First: the threads gRPC and the engine start from here on must
  // inherit the mask.
  InterruptWatcher watcher;
  std::optional<Connection> connection;
  if (!command.servers.empty()) {
    absl::StatusOr<Connection> resolved =
        Connection::Resolve(command.connection);
    if (!resolved.ok()) {
      std::cerr << "fanprobe: " << resolved.status().message() << "\n";
      return kExitUsage;
    }
    connection = *std::move(resolved);
  }
  absl::StatusOr<Shares> shares =
      MakeShares(command, connection.has_value() ? &*connection : nullptr);
  if (!shares.ok()) {
    std::cerr << "fanprobe: cannot start the probe engine: "
              << shares.status().message() << "\n";
    return kExitUsage;
  }
  if (shares->engine != nullptr) {
    if (std::optional<OptionsProblem> problem =
            CheckProbeOptions(*shares->engine, command.request);
        problem.has_value()) {
      std::cerr << "fanprobe: "
                << OptionsProblemMessage(*problem, command.origins) << "\n";
      return kExitUsage;
    }
  }
  // Opened only now: a refused run leaves an existing file as it was.
  std::ofstream file;
  if (!command.output.empty()) {
    file.open(command.output, std::ios::out | std::ios::trunc);
    if (!file) {
      std::cerr << "fanprobe: cannot write --output=" << command.output << ": "
                << std::strerror(errno) << "\n";
      return kExitUsage;
    }
  }
  std::ostream& out = command.output.empty() ? std::cout : file;
  const int total = command.request.targets_size();
  Printer printer(command.format, out, std::cerr);
  Progress progress(ShowProgress(isatty(STDERR_FILENO), total), total,
                    std::cerr);
  SplitRun run(command.request, std::move(shares->shares), printer, progress);
  watcher.Start([&run] { run.Interrupt(); });
  const SplitOutcome outcome = run.Run();
  watcher.Stop();
  if (file.is_open()) {
    file.close();
    if (!file) {
      std::cerr << "fanprobe: cannot write --output=" << command.output << "\n";
      return kExitUsage;
    }
  }
  return ProbeExitStatus(outcome);
}

}  // namespace fanprobe::cli
