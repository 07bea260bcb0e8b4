// health_command_test.cc: `fanprobe health` (cli/health_command.h) against
// an in-process server: what it prints and returns when the server is
// serving, and when it cannot be asked.  NOT_SERVING during a drain is
// tested on the binary (cli_test.cc).

#include "cli/health_command.h"

#include <sstream>
#include <string>

#include "absl/status/status.h"
#include "absl/status/statusor.h"
#include "absl/strings/str_cat.h"
#include "absl/time/time.h"
#include "cli/exit_code.h"
#include "cli/flags.h"
#include "gmock/gmock.h"
#include "gtest/gtest.h"
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
