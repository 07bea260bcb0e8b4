// flags_test.cc: the command line's grammar (cli/flags.h) -- commands,
// flag spellings (curl's and fanprobe's own), repetition, flags that
// contradict each other, flags before the command, "--", help and
// version -- and its messages, which name a flag the way the user typed it.

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
  EXPECT_THAT(flags.max_time, Optional(std::string("2s")));
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

TEST(ParseCommandLineTest, CurlsSpellingsOfEveryProbeOption) {
  const ProbeFlags flags = ParseProbe({"-X",
                                       "PUT",
                                       "-H",
                                       "A: 1",
                                       "--header",
                                       "B: 2",
                                       "-d",
                                       "a=1",
                                       "--data-binary",
                                       "@body.bin",
                                       "--data=b=2",
                                       "--data-raw",
                                       "@literal",
                                       "-m",
                                       "2.5",
                                       "--connect-timeout",
                                       "1",
                                       "--no-location",
                                       "--max-redirs",
                                       "3",
                                       "-k",
                                       "--cacert",
                                       "ca.pem",
                                       "--http1.1",
                                       "--tlsv1.3",
                                       "--tlsv1.2",
                                       "--tls-max",
                                       "1.2",
                                       "-x",
                                       "http://proxy.test:3128",
                                       "--proxy-header",
                                       "X-A: 1",
                                       "--proxy-header=X-B: 2",
                                       "--noproxy",
                                       "web.test",
                                       "--proxy-resolves",
                                       "-6",
                                       "-A",
                                       "probe/1",
                                       "--max-filesize",
                                       "1M",
                                       "--expect=200",
                                       "--body_must_match",
                                       "ok",
                                       "--body_must_match=fine",
                                       "--body_must_not_match",
                                       "error",
                                       "--reuse_connections",
                                       "--format=csv",
                                       "-o",
                                       "out.csv",
                                       "--deny_private",
                                       "--deny_loopback",
                                       "--allow_cidr=10.0.0.0/8",
                                       "--deny_cidr",
                                       "10.9.0.0/16",
                                       "--dns-servers",
                                       "127.0.0.1:53",
                                       "--dns-servers=[::1]:53,127.0.0.2",
                                       "http://a/"});
  EXPECT_THAT(flags.method, Optional(std::string("PUT")));
  EXPECT_THAT(flags.headers, ElementsAre("A: 1", "B: 2"));
  EXPECT_THAT(flags.data,
              ElementsAre(DataFlag{DataFlag::Kind::kData, "a=1"},
                          DataFlag{DataFlag::Kind::kBinary, "@body.bin"},
                          DataFlag{DataFlag::Kind::kData, "b=2"},
                          DataFlag{DataFlag::Kind::kRaw, "@literal"}));
  EXPECT_THAT(flags.max_time, Optional(std::string("2.5")));
  EXPECT_THAT(flags.connect_timeout, Optional(std::string("1")));
  EXPECT_THAT(flags.follow_redirects, Optional(false));
  EXPECT_THAT(flags.max_redirs, Optional(std::string("3")));
  EXPECT_TRUE(flags.insecure);
  EXPECT_THAT(flags.cacert, Optional(std::string("ca.pem")));
  EXPECT_THAT(flags.http_version, Optional(std::string("1.1")));
  EXPECT_THAT(flags.tls_min, Optional(std::string("1.2")));  // the last
  EXPECT_THAT(flags.tls_max, Optional(std::string("1.2")));
  EXPECT_THAT(flags.proxy, Optional(std::string("http://proxy.test:3128")));
  EXPECT_THAT(flags.proxy_headers, ElementsAre("X-A: 1", "X-B: 2"));
  EXPECT_THAT(flags.noproxy, Optional(std::string("web.test")));
  EXPECT_TRUE(flags.proxy_resolves);
  EXPECT_THAT(flags.ip_family, Optional(std::string("6")));
  EXPECT_THAT(flags.user_agent, Optional(std::string("probe/1")));
  EXPECT_THAT(flags.max_filesize, Optional(std::string("1M")));
  EXPECT_THAT(flags.expect, Optional(std::string("200")));
  EXPECT_THAT(flags.body_must_match, ElementsAre("ok", "fine"));
  EXPECT_THAT(flags.body_must_not_match, ElementsAre("error"));
  EXPECT_TRUE(flags.reuse_connections);
  EXPECT_THAT(flags.format, Optional(std::string("csv")));
  EXPECT_THAT(flags.output, Optional(std::string("out.csv")));
  EXPECT_TRUE(flags.deny_private);
  EXPECT_TRUE(flags.deny_loopback);
  EXPECT_THAT(flags.allow_cidrs, ElementsAre("10.0.0.0/8"));
  EXPECT_THAT(flags.deny_cidrs, ElementsAre("10.9.0.0/16"));
  EXPECT_THAT(flags.dns_servers,
              ElementsAre("127.0.0.1:53", "[::1]:53,127.0.0.2"));
  EXPECT_THAT(flags.urls, ElementsAre("http://a/"));
}

TEST(ParseCommandLineTest, LongAliasesOfCurlsShortFlags) {
  const ProbeFlags flags = ParseProbe(
      {"--request=HEAD", "--max-time", "3", "--location", "--insecure",
       "--http2", "--ipv4", "--user-agent=u", "--output", "o", "http://a/"});
  EXPECT_THAT(flags.method, Optional(std::string("HEAD")));
  EXPECT_THAT(flags.max_time, Optional(std::string("3")));
  EXPECT_THAT(flags.follow_redirects, Optional(true));
  EXPECT_TRUE(flags.insecure);
  EXPECT_THAT(flags.http_version, Optional(std::string("2")));
  EXPECT_THAT(flags.ip_family, Optional(std::string("4")));
  EXPECT_THAT(flags.user_agent, Optional(std::string("u")));
  EXPECT_THAT(flags.output, Optional(std::string("o")));
  // fanprobe's earlier names still work.
  const ProbeFlags old =
      ParseProbe({"--method=GET", "--probe_timeout=2s", "--no-follow",
                  "--max_body_bytes=9", "http://a/"});
  EXPECT_THAT(old.method, Optional(std::string("GET")));
  EXPECT_THAT(old.max_time, Optional(std::string("2s")));
  EXPECT_THAT(old.follow_redirects, Optional(false));
  EXPECT_THAT(old.max_filesize, Optional(std::string("9")));
}

TEST(ParseCommandLineTest, OfFlagsThatContradictEachOtherTheLastCounts) {
  ProbeFlags flags = ParseProbe(
      {"-L", "--no-location", "--http2", "--http1.1", "-6", "-4", "http://a/"});
  EXPECT_THAT(flags.follow_redirects, Optional(false));
  EXPECT_THAT(flags.http_version, Optional(std::string("1.1")));
  EXPECT_THAT(flags.ip_family, Optional(std::string("4")));
  flags = ParseProbe(
      {"--no-follow", "-L", "--http1.1", "--http2", "-4", "-6", "http://a/"});
  EXPECT_THAT(flags.follow_redirects, Optional(true));
  EXPECT_THAT(flags.http_version, Optional(std::string("2")));
  EXPECT_THAT(flags.ip_family, Optional(std::string("6")));
}

TEST(ParseCommandLineTest, HeadIsDashIAndDashXWinsOverIt) {
  EXPECT_THAT(ParseProbe({"-I", "http://a/"}).method,
              Optional(std::string("HEAD")));
  EXPECT_THAT(ParseProbe({"--head", "-k", "http://a/"}).method,
              Optional(std::string("HEAD")));
  // As curl: -X names the method whichever comes first.
  EXPECT_THAT(ParseProbe({"-I", "-X", "GET", "http://a/"}).method,
              Optional(std::string("GET")));
  EXPECT_THAT(ParseProbe({"-X", "GET", "-kI", "http://a/"}).method,
              Optional(std::string("GET")));
}

TEST(ParseCommandLineTest, ShortFlagsGroupAndTakeAttachedValues) {
  const ProbeFlags flags =
      ParseProbe({"-k4L", "-XPOST", "-HX-A: 1", "-m5", "-dx=1", "http://a/"});
  EXPECT_TRUE(flags.insecure);
  EXPECT_THAT(flags.ip_family, Optional(std::string("4")));
  EXPECT_THAT(flags.follow_redirects, Optional(true));
  EXPECT_THAT(flags.method, Optional(std::string("POST")));
  EXPECT_THAT(flags.headers, ElementsAre("X-A: 1"));
  EXPECT_THAT(flags.max_time, Optional(std::string("5")));
  EXPECT_THAT(flags.data, ElementsAre(DataFlag{DataFlag::Kind::kData, "x=1"}));
}

TEST(ParseCommandLineTest, FlagsMayComeBeforeTheCommand) {
  absl::StatusOr<Command> command =
      ParseCommandLine({"-k", "--server", "s:1", "-XHEAD", "--timeout=1s", "-m",
                        "2", "probe", "-H", "A: 1", "http://a/"});
  ASSERT_TRUE(command.ok()) << command.status();
  const ProbeFlags& flags = std::get<ProbeFlags>(*command);
  EXPECT_TRUE(flags.insecure);
  EXPECT_THAT(flags.servers, ElementsAre("s:1"));
  EXPECT_THAT(flags.method, Optional(std::string("HEAD")));
  EXPECT_THAT(flags.timeout, Optional(std::string("1s")));
  EXPECT_THAT(flags.max_time, Optional(std::string("2")));
  EXPECT_THAT(flags.headers, ElementsAre("A: 1"));
  EXPECT_THAT(flags.urls, ElementsAre("http://a/"));

  // A flag's value that is a command's name stays its value.
  command = ParseCommandLine({"--server", "health", "probe", "http://a/"});
  ASSERT_TRUE(command.ok()) << command.status();
  EXPECT_THAT(std::get<ProbeFlags>(*command).servers, ElementsAre("health"));

  command = ParseCommandLine({"--server=h:1", "--timeout", "2s", "health"});
  ASSERT_TRUE(command.ok()) << command.status();
  EXPECT_EQ(std::get<HealthFlags>(*command).server, "h:1");
  EXPECT_THAT(std::get<HealthFlags>(*command).timeout,
              Optional(std::string("2s")));

  // Before the command, a flag must still be one of that command's.
  EXPECT_EQ(Refusal({"--format=csv", "health"}), "unknown flag --format");
  EXPECT_EQ(Refusal({"--bogus", "probe", "http://a/"}), "unknown flag --bogus");
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
  EXPECT_THAT(ParseProbe({"-d", "-x", "http://a/"}).data,
              ElementsAre(DataFlag{DataFlag::Kind::kData, "-x"}));
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
                           "-X,--request,--method",
                           "-H,--header",
                           "-d,--data",
                           "--data-binary",
                           "--data-raw",
                           "-m,--max-time,--probe_timeout",
                           "--connect-timeout",
                           "-L,--location",
                           "--no-location,--no-follow",
                           "--max-redirs",
                           "-k,--insecure",
                           "--cacert",
                           "--http1.1",
                           "--http2",
                           "-4,--ipv4",
                           "-6,--ipv6",
                           "-A,--user-agent",
                           "--max-filesize,--max_body_bytes",
                           "--body_must_match",
                           "--body_must_not_match",
                           "--reuse_connections",
                           "-o,--output",
                           "--deny_private",
                           "--deny_loopback",
                           "--allow_cidr",
                           "--deny_cidr",
                           "csv",
                           "durations are",
                           "Exit status",
                           "124 the batch",
                           "130 cancelled"}) {
    EXPECT_THAT(usage, HasSubstr(word));
  }
}

TEST(ParseCommandLineTest, UnknownFlagsAreNamedAsTyped) {
  EXPECT_EQ(Refusal({"probe", "-j", "http://a/"}), "unknown flag -j");
  EXPECT_EQ(Refusal({"probe", "-kj", "http://a/"}), "unknown flag -j");
  EXPECT_EQ(Refusal({"probe", "--bogus=1", "http://a/"}),
            "unknown flag --bogus");
  EXPECT_EQ(Refusal({"probe", "http://a/", "-server=x"}),
            "unknown flag -server");
  EXPECT_EQ(Refusal({"health", "--format=jsonl"}), "unknown flag --format");
  EXPECT_EQ(Refusal({"--bogus"}), "unknown flag --bogus");
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

TEST(ParseDurationFlagTest, AcceptsFiniteNonNegativeDurationsAndSeconds) {
  for (const auto& [text, want] :
       {std::pair{"250ms", absl::Milliseconds(250)},
        std::pair{"1m30s", absl::Seconds(90)},
        std::pair{"0", absl::ZeroDuration()},
        std::pair{"5", absl::Seconds(5)},  // curl's -m: seconds
        std::pair{"2.5", absl::Milliseconds(2500)},
        std::pair{".5", absl::Milliseconds(500)}}) {
    const absl::StatusOr<absl::Duration> d = ParseDurationFlag("timeout", text);
    ASSERT_TRUE(d.ok()) << text << ": " << d.status();
    EXPECT_EQ(*d, want) << text;
  }
  for (const char* bad : {"soon", "", "-1s", "-1", "inf", "nan", "1e300"}) {
    const absl::StatusOr<absl::Duration> d = ParseDurationFlag("timeout", bad);
    EXPECT_EQ(d.status().code(), absl::StatusCode::kInvalidArgument) << bad;
    EXPECT_EQ(d.status().message(),
              std::string("--timeout=") + bad +
                  ": want a duration such as 5s, 250ms or 2.5 (seconds)");
  }
}

TEST(ParseBytesFlagTest, NumbersWithCurlsSuffixes) {
  for (const auto& [text, want] :
       {std::pair{"0", uint64_t{0}}, std::pair{"65536", uint64_t{65536}},
        std::pair{"64k", uint64_t{65536}}, std::pair{"2K", uint64_t{2048}},
        std::pair{"1M", uint64_t{1} << 20},
        std::pair{"3G", uint64_t{3} << 30}}) {
    const absl::StatusOr<uint64_t> n = ParseBytesFlag("max-filesize", text);
    ASSERT_TRUE(n.ok()) << text << ": " << n.status();
    EXPECT_EQ(*n, want) << text;
  }
  for (const char* bad : {"", "k", "-1", "1T", "1.5M", "x", "+1",
                          "99999999999999999999", "17179869184G"}) {
    EXPECT_EQ(ParseBytesFlag("max-filesize", bad).status().message(),
              std::string("--max-filesize=") + bad +
                  ": want a byte count such as 65536 or 64k")
        << bad;
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
