// flags_test.cc: the command line's grammar (cli/flags.h) -- commands,
// flag spellings, repetition, "--", help and version -- and its messages,
// which name a flag the way the user typed it.

#include "cli/flags.h"

#include <cstdint>
#include <optional>
#include <string>
#include <utility>
#include <variant>
#include <vector>

#include "absl/status/status.h"
#include "absl/status/statusor.h"
#include "absl/time/time.h"
#include "gmock/gmock.h"
#include "gtest/gtest.h"

namespace fanprobe::cli {
namespace {

using ::testing::ElementsAre;
using ::testing::HasSubstr;
using ::testing::IsEmpty;
using ::testing::Not;
using ::testing::Optional;

ProbeFlags ParseProbe(std::vector<std::string> args) {
  args.insert(args.begin(), "probe");
  absl::StatusOr<Command> command = ParseCommandLine(args);
  EXPECT_TRUE(command.ok()) << command.status();
  if (!command.ok() || !std::holds_alternative<ProbeFlags>(*command)) {
    ADD_FAILURE() << "not a probe command";
    return {};
  }
  return std::get<ProbeFlags>(*std::move(command));
}

// The message of a command line that must be refused as a usage error.
std::string Refusal(std::vector<std::string> args) {
  absl::StatusOr<Command> command = ParseCommandLine(std::move(args));
  EXPECT_EQ(command.status().code(), absl::StatusCode::kInvalidArgument);
  return std::string(command.status().message());
}

TEST(ParseCommandLineTest, ProbeKeepsEveryFlagAsTyped) {
  const ProbeFlags flags = ParseProbe({"--server=a:1,b:2",
                                       "--server",
                                       "c:3",
                                       "--return_when=first",
                                       "--timeout",
                                       "5s",
                                       "--probe_timeout=2s",
                                       "--concurrency=7",
                                       "--per_host=2",
                                       "--method",
                                       "HEAD",
                                       "--header=X-One: a, b",
                                       "--header",
                                       "X-Two:c",
                                       "--expect=200-299",
                                       "--format=jsonl",
                                       "--file=urls.txt",
                                       "--file",
                                       "-",
                                       "--tls_ca=ca.pem",
                                       "--tls_cert=c.pem",
                                       "--tls_key=c.key",
                                       "--tls_server_name=localhost",
                                       "--auth_token_file=token",
                                       "http://a/",
                                       "http://b/"});
  EXPECT_THAT(flags.servers, ElementsAre("a:1,b:2", "c:3"));
  EXPECT_THAT(flags.return_when, Optional(std::string("first")));
  EXPECT_THAT(flags.timeout, Optional(std::string("5s")));
  EXPECT_THAT(flags.probe_timeout, Optional(std::string("2s")));
  EXPECT_THAT(flags.concurrency, Optional(std::string("7")));
  EXPECT_THAT(flags.per_host, Optional(std::string("2")));
  EXPECT_THAT(flags.method, Optional(std::string("HEAD")));
  EXPECT_THAT(flags.headers, ElementsAre("X-One: a, b", "X-Two:c"));
  EXPECT_THAT(flags.expect, Optional(std::string("200-299")));
  EXPECT_THAT(flags.format, Optional(std::string("jsonl")));
  EXPECT_THAT(flags.files, ElementsAre("urls.txt", "-"));
  EXPECT_EQ(flags.connection.tls_ca, "ca.pem");
  EXPECT_EQ(flags.connection.tls_cert, "c.pem");
  EXPECT_EQ(flags.connection.tls_key, "c.key");
  EXPECT_EQ(flags.connection.tls_server_name, "localhost");
  EXPECT_EQ(flags.connection.auth_token_file, "token");
  EXPECT_THAT(flags.urls, ElementsAre("http://a/", "http://b/"));
}

TEST(ParseCommandLineTest, UnsetFlagsStayUnset) {
  const ProbeFlags flags = ParseProbe({"http://a/"});
  EXPECT_THAT(flags.servers, IsEmpty());
  EXPECT_EQ(flags.return_when, std::nullopt);
  EXPECT_EQ(flags.timeout, std::nullopt);
  EXPECT_EQ(flags.format, std::nullopt);
  EXPECT_THAT(flags.headers, IsEmpty());
  EXPECT_EQ(flags.connection.tls_ca, "");
}

TEST(ParseCommandLineTest, TheLastValueOfASingleValuedFlagCounts) {
  const ProbeFlags flags =
      ParseProbe({"--timeout=1s", "--timeout=2s", "--method=GET",
                  "--method=HEAD", "--tls_ca=a", "--tls_ca=b", "http://a/"});
  EXPECT_THAT(flags.timeout, Optional(std::string("2s")));
  EXPECT_THAT(flags.method, Optional(std::string("HEAD")));
  EXPECT_EQ(flags.connection.tls_ca, "b");
}

TEST(ParseCommandLineTest, ARepeatedFlagTakesOneValueAndLeavesTheUrls) {
  const ProbeFlags flags =
      ParseProbe({"--header", "A: 1", "http://a/", "--server", "s:1", "b"});
  EXPECT_THAT(flags.headers, ElementsAre("A: 1"));
  EXPECT_THAT(flags.servers, ElementsAre("s:1"));
  EXPECT_THAT(flags.urls, ElementsAre("http://a/", "b"));
}

TEST(ParseCommandLineTest, AValueMayStartWithADash) {
  const ProbeFlags flags = ParseProbe({"--method", "-X", "http://a/"});
  EXPECT_THAT(flags.method, Optional(std::string("-X")));
}

TEST(ParseCommandLineTest, DashIsAnArgumentAndDoubleDashEndsTheFlags) {
  EXPECT_THAT(ParseProbe({"http://a/", "-"}).urls,
              ElementsAre("http://a/", "-"));
  EXPECT_THAT(ParseProbe({"http://a/", "--", "--timeout=1s", "-k"}).urls,
              ElementsAre("http://a/", "--timeout=1s", "-k"));
  EXPECT_THAT(ParseProbe({"--", "http://a/"}).urls, ElementsAre("http://a/"));
}

TEST(ParseCommandLineTest, AnotherCommandsNameIsAUrl) {
  EXPECT_THAT(ParseProbe({"health", "probe"}).urls,
              ElementsAre("health", "probe"));
}

TEST(ParseCommandLineTest, Health) {
  absl::StatusOr<Command> command =
      ParseCommandLine({"health", "--server=h:1", "--timeout", "2s",
                        "--tls_ca=ca.pem", "--auth_token_file=t"});
  ASSERT_TRUE(command.ok()) << command.status();
  const HealthFlags& flags = std::get<HealthFlags>(*command);
  EXPECT_EQ(flags.server, "h:1");
  EXPECT_THAT(flags.timeout, Optional(std::string("2s")));
  EXPECT_EQ(flags.connection.tls_ca, "ca.pem");
  EXPECT_EQ(flags.connection.auth_token_file, "t");

  command = ParseCommandLine({"health"});
  ASSERT_TRUE(command.ok()) << command.status();
  EXPECT_EQ(std::get<HealthFlags>(*command).server, kDefaultServer);
  EXPECT_EQ(std::get<HealthFlags>(*command).timeout, std::nullopt);
}

TEST(ParseCommandLineTest, HelpAndVersion) {
  for (const std::vector<std::string>& args :
       std::vector<std::vector<std::string>>{
           {"help"}, {"--help"}, {"-h"}, {"help", "probe"}}) {
    absl::StatusOr<Command> command = ParseCommandLine(args);
    ASSERT_TRUE(command.ok()) << args[0] << ": " << command.status();
    ASSERT_TRUE(std::holds_alternative<HelpRequest>(*command)) << args[0];
    EXPECT_EQ(std::get<HelpRequest>(*command).text, Usage()) << args[0];
  }
  // A command's --help is that command's.
  absl::StatusOr<Command> command =
      ParseCommandLine({"probe", "http://a/", "--help"});
  ASSERT_TRUE(command.ok()) << command.status();
  const std::string& text = std::get<HelpRequest>(*command).text;
  EXPECT_THAT(text, HasSubstr("Usage: fanprobe probe"));
  EXPECT_THAT(text, HasSubstr("--return_when"));
  EXPECT_THAT(text, Not(HasSubstr("fanprobe health")));

  for (const char* arg : {"version", "--version"}) {
    command = ParseCommandLine({arg});
    ASSERT_TRUE(command.ok()) << command.status();
    EXPECT_TRUE(std::holds_alternative<VersionRequest>(*command)) << arg;
  }
}

TEST(UsageTest, NamesEveryCommandAndFlag) {
  const std::string usage = Usage();
  for (const char* word : {"Usage:",
                           "probe",
                           "health",
                           "--server",
                           "--return_when",
                           "--timeout",
                           "--probe_timeout",
                           "--concurrency",
                           "--per_host",
                           "--method",
                           "--header",
                           "--expect",
                           "--format",
                           "--file",
                           "--tls_ca",
                           "--tls_cert",
                           "--tls_key",
                           "--tls_server_name",
                           "--auth_token_file",
                           "Exit status"}) {
    EXPECT_THAT(usage, HasSubstr(word));
  }
}

TEST(ParseCommandLineTest, UnknownFlagsAreNamedAsTyped) {
  EXPECT_EQ(Refusal({"probe", "-k", "http://a/"}), "unknown flag -k");
  EXPECT_EQ(Refusal({"probe", "--bogus=1", "http://a/"}),
            "unknown flag --bogus");
  EXPECT_EQ(Refusal({"probe", "http://a/", "-server=x"}),
            "unknown flag -server");
  EXPECT_EQ(Refusal({"health", "--format=jsonl"}), "unknown flag --format");
  EXPECT_EQ(Refusal({"--bogus"}), "unknown flag --bogus");
  EXPECT_THAT(Refusal({"--timeout=1s", "probe", "http://a/"}),
              HasSubstr("unknown flag --timeout before the command"));
}

TEST(ParseCommandLineTest, OtherUsageErrors) {
  EXPECT_EQ(Refusal({"probe", "http://a/", "--server"}),
            "--server needs a value");
  EXPECT_EQ(Refusal({"health", "--timeout"}), "--timeout needs a value");
  EXPECT_EQ(Refusal({"frobnicate"}),
            "unknown command 'frobnicate': want probe or health");
  EXPECT_EQ(Refusal({}), "no command: want probe or health");
  EXPECT_EQ(Refusal({"health", "extra"}), "unexpected argument 'extra'");
  EXPECT_EQ(Refusal({"health", "--", "extra"}), "unexpected argument 'extra'");
}

TEST(ParseDurationFlagTest, AcceptsFiniteNonNegativeDurations) {
  for (const auto& [text, want] : {std::pair{"250ms", absl::Milliseconds(250)},
                                   std::pair{"1m30s", absl::Seconds(90)},
                                   std::pair{"0", absl::ZeroDuration()}}) {
    const absl::StatusOr<absl::Duration> d = ParseDurationFlag("timeout", text);
    ASSERT_TRUE(d.ok()) << text << ": " << d.status();
    EXPECT_EQ(*d, want) << text;
  }
  for (const char* bad : {"soon", "", "-1s", "inf", "5"}) {
    const absl::StatusOr<absl::Duration> d = ParseDurationFlag("timeout", bad);
    EXPECT_EQ(d.status().code(), absl::StatusCode::kInvalidArgument) << bad;
    EXPECT_EQ(d.status().message(),
              std::string("--timeout=") + bad +
                  ": want a duration such as 5s or 250ms");
  }
}

TEST(ParseCountFlagTest, AcceptsNonNegative32BitIntegers) {
  for (const auto& [text, want] :
       {std::pair{"0", 0u}, std::pair{"4294967295", 4294967295u}}) {
    const absl::StatusOr<uint32_t> n = ParseCountFlag("concurrency", text);
    ASSERT_TRUE(n.ok()) << text << ": " << n.status();
    EXPECT_EQ(*n, want);
  }
  for (const char* bad : {"-1", "4294967296", "ten", ""}) {
    const absl::StatusOr<uint32_t> n = ParseCountFlag("per_host", bad);
    EXPECT_EQ(n.status().message(), std::string("--per_host=") + bad +
                                        ": want a non-negative integer")
        << bad;
  }
}

}  // namespace
}  // namespace fanprobe::cli
