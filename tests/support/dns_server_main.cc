// fanprobe_test_dns: the tests' DNS server (tests/support/dns_server.h) as a
// program, for subprocess tests and for trying a resolver by hand.
//
//   fanprobe_test_dns --port=0 --zone=zone.txt [--address=127.0.0.1]
//
// Prints "listening ADDRESS:PORT" on stdout once it answers, serves until
// SIGTERM or SIGINT, then exits 0.  A bad flag or zone file exits 2 with the
// reason on stderr; a port it cannot bind exits 1.  The zone format is
// DnsServer::LoadZone's.

#include <signal.h>

#include <cstdio>
#include <fstream>
#include <memory>
#include <sstream>
#include <string>

#include "absl/flags/flag.h"
#include "absl/flags/parse.h"
#include "absl/flags/usage.h"
#include "absl/status/statusor.h"
#include "tests/support/dns_server.h"

ABSL_FLAG(std::string, address, "127.0.0.1",
          "Loopback address to listen on: 127.0.0.1 or ::1.");
ABSL_FLAG(int, port, 0, "UDP and TCP port; 0 picks a free one.");
ABSL_FLAG(std::string, zone, "", "Zone file to answer from (may be empty).");

int main(int argc, char** argv) {
  absl::SetProgramUsageMessage(
      "A loopback DNS server for tests: fanprobe_test_dns --port=0 "
      "--zone=FILE");
  absl::ParseCommandLine(argc, argv);

  std::string zone;
  if (const std::string path = absl::GetFlag(FLAGS_zone); !path.empty()) {
    std::ifstream file(path);
    if (!file) {
      std::fprintf(stderr, "fanprobe_test_dns: cannot read --zone=%s\n",
                   path.c_str());
      return 2;
    }
    std::ostringstream text;
    text << file.rdbuf();
    zone = text.str();
  }

  // Blocked before the serving thread starts, so that thread inherits the
  // mask and sigwait() below is the only place the signals land.
  sigset_t stop_signals;
  sigemptyset(&stop_signals);
  sigaddset(&stop_signals, SIGTERM);
  sigaddset(&stop_signals, SIGINT);
  pthread_sigmask(SIG_BLOCK, &stop_signals, nullptr);

  fanprobe::testing::DnsServer::Options options;
  options.address = absl::GetFlag(FLAGS_address);
  options.port = absl::GetFlag(FLAGS_port);
  absl::StatusOr<std::unique_ptr<fanprobe::testing::DnsServer>> server =
      fanprobe::testing::DnsServer::Start(options);
  if (!server.ok()) {
    std::fprintf(stderr, "fanprobe_test_dns: %s\n",
                 server.status().ToString().c_str());
    return server.status().code() == absl::StatusCode::kInvalidArgument ? 2 : 1;
  }
  if (absl::Status loaded = (*server)->LoadZone(zone); !loaded.ok()) {
    std::fprintf(stderr, "fanprobe_test_dns: --zone: %s\n",
                 loaded.ToString().c_str());
    return 2;
  }
  std::printf("listening %s\n", (*server)->address().c_str());
  std::fflush(stdout);

  int signal_number = 0;
  sigwait(&stop_signals, &signal_number);
  return 0;
}
