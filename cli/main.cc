// fanprobe: probes HTTP targets in-process, or through fanprobe-server.
// The commands live in the fanprobe_cli library (flags.h lists them and
// their flags); this file only dispatches and prints usage errors.

#include <unistd.h>

#include <iostream>
#include <string>
#include <variant>
#include <vector>

#include "absl/status/status.h"
#include "absl/status/statusor.h"
#include "cli/exit_code.h"
#include "cli/flags.h"
#include "cli/health_command.h"
#include "cli/input.h"
#include "cli/probe_command.h"

namespace fanprobe::cli {
namespace {

int UsageFailed(const absl::Status& status) {
  std::cerr << "fanprobe: " << status.message()
            << "\nRun 'fanprobe help' for usage.\n";
  return kExitUsage;
}

int Main(std::vector<std::string> args) {
  if (args.empty()) {
    std::cerr << Usage();
    return kExitUsage;
  }
  absl::StatusOr<Command> command = ParseCommandLine(std::move(args));
  if (!command.ok()) return UsageFailed(command.status());
  if (const auto* flags = std::get_if<ProbeFlags>(&*command)) {
    Stdin in{std::cin, isatty(STDIN_FILENO) == 1};
    absl::StatusOr<ProbeCommand> probe = ResolveProbeCommand(*flags, in);
    if (!probe.ok()) return UsageFailed(probe.status());
    return RunProbeCommand(*probe);
  }
  if (const auto* flags = std::get_if<HealthFlags>(&*command)) {
    absl::StatusOr<HealthCommand> health = ResolveHealthCommand(*flags);
    if (!health.ok()) return UsageFailed(health.status());
    return RunHealthCommand(*health, std::cout, std::cerr);
  }
  if (const auto* help = std::get_if<HelpRequest>(&*command)) {
    std::cout << help->text;
    return kExitOk;
  }
  std::cout << "fanprobe " << FANPROBE_VERSION << "\n";
  return kExitOk;
}

}  // namespace
}  // namespace fanprobe::cli

int main(int argc, char** argv) {
  return fanprobe::cli::Main(std::vector<std::string>(argv + 1, argv + argc));
}
