// health_command_test.cc: `fanprobe health` (cli/health_command.h) against
// an in-process server: what it prints and returns when the server is
// serving, and when it cannot be asked.  NOT_SERVING during a drain is
// tested on the binary (cli_test.cc).

#include "cli/health_command.h"

#include <arpa/inet.h>
#include <netinet/in.h>
#include <sys/socket.h>
#include <unistd.h>

#include <memory>
#include <sstream>
#include <string>
#include <thread>
#include <utility>

#include "absl/status/status.h"
#include "absl/status/statusor.h"
#include "absl/strings/str_cat.h"
#include "absl/time/time.h"
#include "cli/exit_code.h"
#include "cli/flags.h"
#include "gmock/gmock.h"
#include "gtest/gtest.h"
#include "server/server.h"
#include "tests/support/target_server.h"
#include "tests/support/test_server.h"

namespace fanprobe::cli {
namespace {

using ::fanprobe::testing::RefusedPort;
using ::fanprobe::testing::TestServer;
using ::testing::StartsWith;

TEST(ResolveHealthCommandTest, TimeoutDefaultsToFiveSeconds) {
  absl::StatusOr<HealthCommand> command = ResolveHealthCommand({});
  ASSERT_TRUE(command.ok()) << command.status();
  EXPECT_EQ(command->server, kDefaultServer);
  EXPECT_EQ(command->timeout, absl::Seconds(5));

  HealthFlags flags;
  flags.timeout = "250ms";
  command = ResolveHealthCommand(flags);
  ASSERT_TRUE(command.ok()) << command.status();
  EXPECT_EQ(command->timeout, absl::Milliseconds(250));

  flags.timeout = "soon";
  EXPECT_EQ(ResolveHealthCommand(flags).status().message(),
            "--timeout=soon: want a duration such as 5s, 250ms or 2.5 "
            "(seconds)");
}

TEST(RunHealthCommandTest, ServingPrintsItAndExitsZero) {
  TestServer server;
  std::ostringstream out;
  std::ostringstream err;
  EXPECT_EQ(RunHealthCommand({.server = server.address()}, out, err), kExitOk);
  EXPECT_EQ(out.str(), "SERVING\n");
  EXPECT_EQ(err.str(), "");
}

// A port that takes one connection and closes it at once, as a server
// that is still starting or restarting may; then the server comes up on
// it.  The first call fails; the command waits for a connection and asks
// again, within its timeout.
TEST(RunHealthCommandTest, AConnectionThatFailsIsWaitedForWithinTheTimeout) {
  const int listener = socket(AF_INET, SOCK_STREAM | SOCK_CLOEXEC, 0);
  ASSERT_GE(listener, 0);
  const int one = 1;
  ASSERT_EQ(setsockopt(listener, SOL_SOCKET, SO_REUSEADDR, &one, sizeof(one)),
            0);
  sockaddr_in address = {};
  address.sin_family = AF_INET;
  address.sin_addr.s_addr = htonl(INADDR_LOOPBACK);
  socklen_t length = sizeof(address);
  ASSERT_EQ(bind(listener, reinterpret_cast<sockaddr*>(&address), length), 0);
  ASSERT_EQ(listen(listener, 8), 0);
  ASSERT_EQ(
      getsockname(listener, reinterpret_cast<sockaddr*>(&address), &length), 0);
  const std::string server_address =
      absl::StrCat("127.0.0.1:", ntohs(address.sin_port));

  std::ostringstream out;
  std::ostringstream err;
  int code = -1;
  std::thread health([&] {
    code = RunHealthCommand(
        {.server = server_address, .timeout = absl::Seconds(60)}, out, err);
  });
  // The command's first connection: taken and closed unanswered.
  const int first = accept(listener, nullptr, nullptr);
  EXPECT_GE(first, 0);
  close(first);
  close(listener);
  server::ServerOptions options;
  options.grpc_address = server_address;
  absl::StatusOr<std::unique_ptr<server::Server>> server =
      server::Server::Start(std::move(options));
  EXPECT_TRUE(server.ok()) << server.status();
  health.join();
  EXPECT_EQ(code, kExitOk) << err.str();
  EXPECT_EQ(out.str(), "SERVING\n");
  EXPECT_EQ(err.str(), "");
}

TEST(RunHealthCommandTest, UnreachableExitsTwoNamingTheServer) {
  RefusedPort refused;
  const std::string address = absl::StrCat("127.0.0.1:", refused.port());
  std::ostringstream out;
  std::ostringstream err;
  EXPECT_EQ(RunHealthCommand({.server = address, .timeout = absl::Seconds(2)},
                             out, err),
            kExitUsage);
  EXPECT_EQ(out.str(), "");
  EXPECT_THAT(err.str(),
              StartsWith(absl::StrCat("fanprobe: health check of ", address,
                                      " failed: UNAVAILABLE: ")));
}

TEST(RunHealthCommandTest, AnUnusableConnectionFlagExitsTwo) {
  std::ostringstream out;
  std::ostringstream err;
  EXPECT_EQ(RunHealthCommand(
                {.server = "127.0.0.1:1", .connection = {.tls_cert = "/x"}},
                out, err),
            kExitUsage);
  EXPECT_EQ(err.str(), "fanprobe: --tls_cert and --tls_key go together\n");
}

}  // namespace
}  // namespace fanprobe::cli
