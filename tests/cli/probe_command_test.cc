// probe_command_test.cc: what `fanprobe probe`'s flags resolve to
// (cli/probe_command.h): the servers, one share each, the output format and
// the request.  Running it is tested on the binary (cli_test.cc,
// cli_split_test.cc) and piecewise in split_test.cc and
// remote_share_test.cc.

#include "cli/probe_command.h"

#include <sstream>
#include <string>

#include "absl/status/status.h"
#include "absl/status/statusor.h"
#include "cli/flags.h"
#include "cli/output.h"
#include "gmock/gmock.h"
#include "gtest/gtest.h"

namespace fanprobe::cli {
namespace {

using ::testing::ElementsAre;

absl::StatusOr<ProbeCommand> Resolve(const ProbeFlags& flags,
                                     const std::string& stdin_text = "") {
  std::istringstream in(stdin_text);
  return ResolveProbeCommand(flags, in);
}

TEST(ResolveProbeCommandTest, Defaults) {
  ProbeFlags flags;
  flags.urls = {"http://a/"};
  absl::StatusOr<ProbeCommand> command = Resolve(flags);
  ASSERT_TRUE(command.ok()) << command.status();
  EXPECT_THAT(command->servers, ElementsAre(kDefaultServer));
  EXPECT_EQ(command->format, Format::kTable);
  ASSERT_EQ(command->request.targets_size(), 1);
  EXPECT_EQ(command->request.targets(0).url(), "http://a/");
}

TEST(ResolveProbeCommandTest, ServerListsAreSplitAtCommas) {
  ProbeFlags flags;
  flags.urls = {"http://a/"};
  flags.servers = {"a:1, b:2,", "c:3"};
  flags.format = "jsonl";
  flags.connection.tls_ca = "ca.pem";
  absl::StatusOr<ProbeCommand> command = Resolve(flags);
  ASSERT_TRUE(command.ok()) << command.status();
  EXPECT_THAT(command->servers, ElementsAre("a:1", "b:2", "c:3"));
  EXPECT_EQ(command->format, Format::kJsonl);
  EXPECT_EQ(command->connection.tls_ca, "ca.pem");
}

TEST(ResolveProbeCommandTest, TargetsFromStdin) {
  ProbeFlags flags;
  flags.files = {"-"};
  absl::StatusOr<ProbeCommand> command =
      Resolve(flags, "http://a/\n# no\nhttp://b/\n");
  ASSERT_TRUE(command.ok()) << command.status();
  ASSERT_EQ(command->request.targets_size(), 2);
  EXPECT_EQ(command->request.targets(1).url(), "http://b/");
}

TEST(ResolveProbeCommandTest, UsageErrors) {
  ProbeFlags flags;
  flags.urls = {"http://a/"};
  flags.servers = {" , "};
  EXPECT_EQ(Resolve(flags).status().message(), "--server= is empty");
  flags.servers.clear();
  flags.format = "xml";
  EXPECT_EQ(Resolve(flags).status().message(),
            "--format=xml: want table or jsonl");
  flags.format.reset();
  flags.urls.clear();
  EXPECT_EQ(Resolve(flags).status().code(), absl::StatusCode::kInvalidArgument);
}

}  // namespace
}  // namespace fanprobe::cli
