// server_flags_test.cc: fanprobe-server's flags -- repeated list flags
// accumulate on the command line and in flag files, CIDRs and DNS servers
// parse or stop the server with exit 2, the policy reaches the engine (a
// probe to a denied address ends OUTCOME_DENIED without a packet sent),
// --dns_server and the request caps reach it too, and the descriptor
// budget is logged (with a warning under a low limit).

#include "server/server_flags.h"

#include <signal.h>

#include <cstdint>
#include <fstream>
#include <functional>
#include <map>
#include <memory>
#include <optional>
#include <string>
#include <utility>
#include <vector>

#include "absl/strings/match.h"
#include "absl/strings/str_cat.h"
#include "absl/strings/str_split.h"
#include "absl/time/time.h"
#include "fanprobe/v1/prober.grpc.pb.h"
#include "gmock/gmock.h"
#include "grpcpp/grpcpp.h"
#include "gtest/gtest.h"
#include "probe/address_flags.h"
#include "re2/re2.h"
#include "server/descriptors.h"
#include "tests/support/batches.h"
#include "tests/support/dns_server.h"
#include "tests/support/json_lines.h"
#include "tests/support/subprocess.h"
#include "tests/support/target_server.h"
#include "tests/support/temp_dir.h"
#include "tests/support/test_certs.h"
#include "tests/support/test_server.h"
#include "tests/support/wait.h"

namespace fanprobe::server {
namespace {

using ::fanprobe::testing::BatchRequest;
using ::fanprobe::testing::kPatience;
using ::fanprobe::testing::ParseJsonLines;
using ::fanprobe::testing::Subprocess;
using ::fanprobe::testing::TargetServer;
using ::fanprobe::testing::TempDir;
using ::fanprobe::testing::TestCa;
using ::fanprobe::testing::TestServer;
using ::fanprobe::testing::WriteFileAtomically;
using ::testing::ElementsAre;
using ::testing::HasSubstr;
using ::testing::IsEmpty;
using ::testing::Not;
using ::testing::StartsWith;

const std::vector<std::string> kListFlags = {"allow_cidr", "deny_cidr"};

TEST(ExpandCommandLineTest, RepeatedListFlagsAccumulateAtTheFirstPlace) {
  absl::StatusOr<std::vector<std::string>> args = ExpandCommandLine(
      {"server", "--deny_cidr=10.0.0.0/8", "--workers=1", "-deny_cidr",
       "192.168.0.0/16", "--allow_cidr=10.1.0.0/16,10.2.0.0/16",
       "--deny_cidr=1.2.3.4"},
      kListFlags);
  ASSERT_TRUE(args.ok()) << args.status();
  EXPECT_THAT(
      *args,
      ElementsAre("server", "--deny_cidr=10.0.0.0/8,192.168.0.0/16,1.2.3.4",
                  "--workers=1", "--allow_cidr=10.1.0.0/16,10.2.0.0/16"));
}

TEST(ExpandCommandLineTest, FlagFilesAreExpandedInPlaceAndMerged) {
  TempDir dir;
  WriteFileAtomically(dir.File("inner.flags"), "--deny_cidr=172.16.0.0/12\n");
  WriteFileAtomically(
      dir.File("outer.flags"),
      absl::StrCat("# the hardened profile\n\n  --deny_private  \n",
                   "--deny_cidr=169.254.169.254\n--flagfile=",
                   dir.File("inner.flags"), "\n"));
  absl::StatusOr<std::vector<std::string>> args =
      ExpandCommandLine({"server", "--flagfile", dir.File("outer.flags"),
                         "--deny_cidr=::1", "--", "--deny_cidr=positional"},
                        kListFlags);
  ASSERT_TRUE(args.ok()) << args.status();
  EXPECT_THAT(*args,
              ElementsAre("server", "--deny_private",
                          "--deny_cidr=169.254.169.254,172.16.0.0/12,::1", "--",
                          "--deny_cidr=positional"));
}

TEST(ExpandCommandLineTest, UnreadableOrSelfIncludingFlagFileIsAnError) {
  TempDir dir;
  absl::StatusOr<std::vector<std::string>> args = ExpandCommandLine(
      {"server", absl::StrCat("--flagfile=", dir.File("missing"))}, kListFlags);
  ASSERT_FALSE(args.ok());
  EXPECT_THAT(args.status().message(), HasSubstr("cannot read"));

  WriteFileAtomically(dir.File("loop.flags"),
                      absl::StrCat("--flagfile=", dir.File("loop.flags")));
  args = ExpandCommandLine(
      {"server", absl::StrCat("--flagfile=", dir.File("loop.flags"))},
      kListFlags);
  ASSERT_FALSE(args.ok());
  EXPECT_THAT(args.status().message(), HasSubstr("nest"));

  args = ExpandCommandLine({"server", "--deny_cidr"}, kListFlags);
  ASSERT_FALSE(args.ok());
  EXPECT_THAT(args.status().message(), HasSubstr("needs a value"));
}

TEST(PolicyJsonTest, DescribesThePolicy) {
  // probe/address_flags_test.cc tests the parse.
  DestinationPolicy policy;
  policy.deny_private = true;
  policy.allow = {*Cidr::Parse("10.1.0.0/16"), *Cidr::Parse("fd00:1::/32")};
  policy.deny = {*Cidr::Parse("169.254.169.254"),
                 *Cidr::Parse("2001:db8::/32")};
  EXPECT_EQ(PolicyJson(policy),
            R"({"deny_private":true,"deny_loopback":false,)"
            R"("allow":["10.1.0.0/16","fd00:1::/32"],)"
            R"("deny":["169.254.169.254/32","2001:db8::/32"]})");
  EXPECT_THAT(PolicyWarnings(policy), IsEmpty());
}

TEST(PolicyWarningsTest, WarnsWhenAnAllowReopensTheMetadataAddress) {
  absl::StatusOr<DestinationPolicy> policy =
      DestinationPolicyFromFlags({.allow_cidr = {"169.254.0.0/16"}});
  ASSERT_TRUE(policy.ok());
  EXPECT_THAT(PolicyWarnings(*policy),
              ElementsAre(HasSubstr("169.254.169.254")));
  // Unless a deny keeps it closed.
  policy = DestinationPolicyFromFlags(
      {.allow_cidr = {"169.254.0.0/16"}, .deny_cidr = {"169.254.169.254"}});
  ASSERT_TRUE(policy.ok());
  EXPECT_THAT(PolicyWarnings(*policy), IsEmpty());
}

TEST(ServerPolicyTest, ProbesToDeniedAddressesEndDeniedWithoutAConnection) {
  TargetServer target;
  ServerOptions options;
  // Loopback is denied but for the target's own address.
  options.engine.destination_policy = *DestinationPolicyFromFlags(
      {.deny_loopback = true, .allow_cidr = {"127.0.0.1"}});
  TestServer server(options);
  const std::string port = absl::StrCat(target.port());
  v1::ProbeBatchRequest request = BatchRequest(
      {target.url("/status/200"),
       absl::StrCat("http://127.0.0.2:", port, "/status/200"),
       absl::StrCat("http://[::1]:", port, "/"),
       absl::StrCat("http://0x7f000002:", port, "/"),
       "http://169.254.169.254/latest/meta-data/",
       // The first hop is allowed; the redirect to 127.0.0.2 is not.
       target.url(absl::StrCat("/redirect_to?url=http://127.0.0.2:", port,
                               "/status/200"))});
  grpc::ClientContext context;
  v1::ProbeBatchResponse response;
  ASSERT_TRUE(server.stub().ProbeBatch(&context, request, &response).ok());
  ASSERT_EQ(response.done_size(), 6);
  EXPECT_EQ(response.done(0).outcome(), v1::OUTCOME_OK);
  for (int i = 1; i < 6; ++i) {
    EXPECT_EQ(response.done(i).outcome(), v1::OUTCOME_DENIED)
        << request.targets(i).url() << ": " << response.done(i).error();
  }
  EXPECT_THAT(response.done(1).error(), HasSubstr("127.0.0.2"));
  EXPECT_THAT(response.done(4).error(), HasSubstr("169.254.169.254"));
  EXPECT_EQ(response.done(5).redirects(), 1);
  // Only the allowed probe and the first hop of the redirect got through.
  EXPECT_EQ(target.Stats().http.requests, 2);
}

TEST(DescriptorBudgetTest, SaysWhatTheBudgetAllowsAndWarnsBelowTheFlag) {
  EngineStats stats;
  stats.fd_limit = 400;
  stats.fd_open_at_start = 14;
  stats.fd_reserve = 256;
  stats.max_in_flight = 130;
  const FdLimits limits{.soft_before = 300, .soft = 400, .hard = 400};
  std::vector<log::Line> lines = DescriptorBudgetLines(limits, stats, 100);
  ASSERT_EQ(lines.size(), 1u);
  EXPECT_THAT(lines[0].text(),
              HasSubstr(R"("event":"descriptor_budget","fd_limit":400,)"
                        R"("fd_limit_at_start":300,"fd_hard_limit":400,)"
                        R"("fd_open_at_start":14,"fd_reserve":256,)"
                        R"("max_in_flight":130,"max_in_flight_flag":100})"));
  lines = DescriptorBudgetLines(limits, stats, 10000);
  ASSERT_EQ(lines.size(), 2u);
  EXPECT_THAT(lines[1].text(), HasSubstr(R"("event":"warning")"));
  EXPECT_THAT(lines[1].text(),
              HasSubstr(R"("fd_limit":400,"fd_reserve":256,)"
                        R"("max_in_flight":130,"max_in_flight_flag":10000})"));
  EXPECT_TRUE(ParseJsonLines({lines[0].text(), lines[1].text()}).ok());
  // The shares of the reserve kept for gRPC and HTTP connections.
  lines = DescriptorBudgetLines(limits, stats, 100, 32, 64);
  EXPECT_THAT(lines[0].text(),
              HasSubstr(R"("fd_reserve":256,"fd_reserve_grpc_connections":32,)"
                        R"("fd_reserve_http_connections":64,)"
                        R"("max_in_flight":130,)"));
}

// fanprobe-server itself: a bad flag value stops it at start with exit 2.
TEST(ServerBinaryFlagsTest, BadConfigurationExitsTwoWithAClearMessage) {
  TempDir dir;
  WriteFileAtomically(dir.File("empty_tokens"), "# no tokens yet\n");
  for (const auto& [flag, message] :
       std::vector<std::pair<std::string, std::string>>{
           {"--deny_cidr=10.0.0.0/33", "--deny_cidr=10.0.0.0/33:"},
           {"--allow_cidr=not-an-address", "--allow_cidr=not-an-address:"},
           {"--tls_cert=/nonexistent/cert.pem", "--tls_cert"},
           {"--client_ca=/nonexistent/ca.pem", "--client_ca needs"},
           {absl::StrCat("--auth_token_file=", dir.File("empty_tokens")),
            "no token"},
           {absl::StrCat("--http_auth_token_file=", dir.File("empty_tokens")),
            "--http_auth_token_file="},
           {absl::StrCat("--flagfile=", dir.File("missing.flags")),
            "cannot read"},
           {"--dns_server=dns.local", "--dns_server=dns.local: "},
           {"--dns_server=127.0.0.1:70000", "--dns_server=127.0.0.1:70000: "},
           {"--dns_timeout=0s", "--dns_timeout must be positive"},
           {"--allow_source_cidr=eth0", "--allow_source_cidr=eth0: "}}) {
    Subprocess server({FANPROBE_SERVER_BINARY, "--grpc_address=127.0.0.1:0",
                       "--workers=1", flag});
    const Subprocess::Exit exit = server.Wait(kPatience);
    EXPECT_EQ(exit.code, 2) << flag << "\n" << server.Stderr();
    EXPECT_THAT(server.Stderr(), HasSubstr(message)) << flag;
  }
}

TEST(ServerBinaryFlagsTest, ABadModulesFileStopsTheStartListingEveryProblem) {
  // What the modules-file parser refuses (tests/monitoring/ checks what it
  // refuses and why) stops the server before anything listens; a module of
  // another prober does not (tests/server/modules_reload_test.cc).
  TempDir dir;
  const std::string modules = dir.Write(
      "bad.yml",
      "modules:\n  ping:\n    prober: icmp\n  web:\n    prober: http\n"
      "    retries: 3\n    http: {method: [GET]}\n");
  const testing::ProcessRun server = testing::RunToExit(
      {FANPROBE_SERVER_BINARY, "--grpc_address=127.0.0.1:0",
       "--http_address=127.0.0.1:0", "--modules_file=" + modules},
      absl::Seconds(30));
  EXPECT_EQ(server.code, 2);
  EXPECT_THAT(server.err, HasSubstr("fanprobe-server: --modules_file: " +
                                    modules + ": 2 problems:"));
  EXPECT_THAT(server.err, HasSubstr("modules.web.retries: unknown key"));
  EXPECT_THAT(server.err,
              HasSubstr("modules.web.http.method: want a single value"));
  EXPECT_THAT(server.out + server.err, Not(HasSubstr("listening")));
}

TEST(ServerBinaryFlagsTest, AModuleTheEngineRefusesStopsTheStart) {
  // A header that would inject a second header line: every /probe of the
  // module would fail, so the server does not start with it.
  TempDir dir;
  const std::string modules = dir.Write(
      "inject.yml",
      "modules:\n  inject:\n    prober: http\n    http:\n      headers:\n"
      "        X-A: \"a\\r\\nX-Injected: yes\"\n");
  const testing::ProcessRun server = testing::RunToExit(
      {FANPROBE_SERVER_BINARY, "--grpc_address=127.0.0.1:0",
       "--http_address=127.0.0.1:0", "--modules_file=" + modules},
      absl::Seconds(30));
  EXPECT_EQ(server.code, 2) << server.err;
  EXPECT_THAT(server.err,
              HasSubstr("fanprobe-server: --modules_file: module \"inject\": "
                        "headers[0].value: the value of \"X-A\" holds CR, LF, "
                        "NUL or another control character"));
  EXPECT_THAT(server.out + server.err, Not(HasSubstr("listening")));
}

TEST(ServerBinaryFlagsTest, LogsThePolicyAndWarnsAboutTheMetadataAddress) {
  TempDir dir;
  WriteFileAtomically(dir.File("policy.flags"),
                      "--deny_private\n--deny_cidr=192.0.2.0/24\n");
  Subprocess server({FANPROBE_SERVER_BINARY, "--grpc_address=127.0.0.1:0",
                     "--http_address=127.0.0.1:0", "--workers=1",
                     absl::StrCat("--flagfile=", dir.File("policy.flags")),
                     "--deny_cidr", "198.51.100.0/24",
                     "--allow_cidr=169.254.0.0/16"});
  const std::optional<std::string> warning = server.WaitForStderrLine(
      [](absl::string_view line) {
        return absl::StrContains(line, R"("event":"warning")");
      },
      kPatience);
  ASSERT_TRUE(warning.has_value()) << server.Stderr();
  EXPECT_THAT(*warning, HasSubstr("169.254.169.254"));
  const std::string policy = R"("event":"destination_policy","policy":{)"
                             R"("deny_private":true,"deny_loopback":false,)"
                             R"("allow":["169.254.0.0/16"],)"
                             R"("deny":["192.0.2.0/24","198.51.100.0/24"]}})";
  EXPECT_THAT(server.Stderr(), HasSubstr(policy + "\n"));
  // Both lines are JSON, whatever the flags hold.
  const size_t start =
      server.Stderr().rfind('\n', server.Stderr().find(policy));
  const std::string policy_line = server.Stderr().substr(
      start + 1, server.Stderr().find('\n', start + 1) - start - 1);
  EXPECT_TRUE(ParseJsonLines({*warning, policy_line}).ok()) << *warning << "\n"
                                                            << policy_line;
  server.Signal(SIGTERM);
  EXPECT_EQ(server.Wait(kPatience).code, 0);
}

// The hardened profile in deploy/README.md is a working flags file: with
// its file paths pointed at real certificates and tokens, the server
// starts and runs the policy it documents.
TEST(ServerBinaryFlagsTest, HardenedProfileFromTheDeployReadmeStarts) {
  std::ifstream readme(FANPROBE_SOURCE_DIR "/deploy/README.md");
  ASSERT_TRUE(readme) << "cannot read deploy/README.md";
  std::string line;
  bool in_section = false;
  bool in_block = false;
  std::vector<std::string> flags;
  while (std::getline(readme, line)) {
    if (absl::StartsWith(line, "## ")) {
      in_section = line == "## Hardened production profile";
    } else if (in_section && absl::StartsWith(line, "```")) {
      if (in_block) break;  // the first block is the profile
      in_block = true;
    } else if (in_block && !line.empty() && line[0] != '#') {
      flags.push_back(line);
    }
  }
  ASSERT_GT(flags.size(), 10u);

  TempDir dir;
  TestCa ca("profile CA");
  const testing::KeyAndCert server = ca.Issue("localhost", {.server = true});
  WriteFileAtomically(dir.File("tls.crt"), server.cert_pem);
  WriteFileAtomically(dir.File("tls.key"), server.key_pem);
  WriteFileAtomically(dir.File("ca.crt"), ca.cert_pem());
  WriteFileAtomically(dir.File("tokens"), "a-token\n");
  std::string flagfile;
  for (std::string flag : flags) {
    // Real files, and free loopback ports.
    for (const char* name : {"tls.crt", "tls.key", "ca.crt", "tokens"}) {
      RE2::Replace(&flag, absl::StrCat("=/etc/fanprobe/.*/", name, "$"),
                   absl::StrCat("=", dir.File(name)));
    }
    RE2::Replace(&flag, "_address=0\\.0\\.0\\.0:\\d+$", "_address=127.0.0.1:0");
    absl::StrAppend(&flagfile, flag, "\n");
  }
  WriteFileAtomically(dir.File("server.flags"), flagfile);
  Subprocess process({FANPROBE_SERVER_BINARY, "--grpc_address=127.0.0.1:0",
                      "--http_address=127.0.0.1:0", "--workers=1",
                      absl::StrCat("--flagfile=", dir.File("server.flags"))});
  const std::optional<std::string> policy = process.WaitForStderrLine(
      [](absl::string_view line) {
        return absl::StrContains(line, R"("event":"destination_policy")");
      },
      kPatience);
  ASSERT_TRUE(policy.has_value()) << flagfile << process.Stderr();
  EXPECT_THAT(*policy,
              HasSubstr(R"("deny_private":true,"deny_loopback":true)"));
  EXPECT_THAT(*policy, HasSubstr("fd00:ec2::254/128"));
  EXPECT_THAT(process.Stderr(), HasSubstr(R"("event":"health_listening")"));
  EXPECT_THAT(process.Stderr(), Not(HasSubstr(R"("event":"warning")")));
  process.Signal(SIGTERM);
  EXPECT_EQ(process.Wait(kPatience).code, 0) << process.Stderr();
}

// --help lists every flag the server defines (absl's default lists only
// those of a file named after the program, so none), and --helpfull adds
// only absl's own (--flagfile and the like).
TEST(ServerBinaryFlagsTest, HelpListsEveryFlagOfTheServer) {
  Subprocess helpfull({FANPROBE_SERVER_BINARY, "--helpfull"});
  helpfull.Wait(kPatience);
  // "  Flags from <file>:" heads each file's flags, "    --<name> (...)".
  std::vector<std::string> ours;
  bool in_absl = false;
  const std::vector<std::string> lines =
      absl::StrSplit(helpfull.Stdout(), '\n');
  for (const std::string& line : lines) {
    std::string file;
    std::string flag;
    if (RE2::FullMatch(line, R"(\s*Flags from (\S+):)", &file)) {
      in_absl = RE2::PartialMatch(file, R"(^(\./)?absl/)");
    } else if (RE2::PartialMatch(line, R"(^\s+--(\w+) \()", &flag) &&
               !in_absl) {
      ours.push_back(flag);
    }
  }
  ASSERT_GT(ours.size(), 20u) << helpfull.Stdout();
  EXPECT_THAT(ours, ::testing::Contains("grpc_address"));
  EXPECT_THAT(ours, ::testing::Contains("http_auth_token_file"));

  Subprocess help({FANPROBE_SERVER_BINARY, "--help"});
  const Subprocess::Exit exit = help.Wait(kPatience);
  EXPECT_FALSE(exit.timed_out);
  EXPECT_THAT(help.Stdout(), Not(HasSubstr("No flags matched")));
  for (const std::string& flag : ours) {
    EXPECT_THAT(help.Stdout(), HasSubstr(absl::StrCat("--", flag, " (")))
        << "--help leaves out --" << flag;
  }
  EXPECT_THAT(help.Stdout(), Not(HasSubstr("--flagfile")));
}

// A fanprobe-server as a child process, with its gRPC address from its
// "listening" line.
class ServerProcess {
 public:
  explicit ServerProcess(std::vector<std::string> argv)
      : process_(std::move(argv)) {
    const std::optional<std::string> listening = process_.WaitForStderrLine(
        [](absl::string_view line) {
          return absl::StrContains(line, R"("event":"listening")");
        },
        kPatience);
    if (listening.has_value()) {
      RE2::PartialMatch(*listening, R"re("address":"([^"]+)")re", &address_);
    }
  }
  ~ServerProcess() {
    process_.Signal(SIGTERM);
    process_.Wait(kPatience);
  }

  const std::string& address() const { return address_; }
  Subprocess& process() { return process_; }
  std::unique_ptr<v1::Prober::Stub> Stub() const {
    return v1::Prober::NewStub(
        grpc::CreateChannel(address_, grpc::InsecureChannelCredentials()));
  }

 private:
  Subprocess process_;
  std::string address_;
};

// --dns_server: names resolve through the given server only (the test's,
// on loopback; never the machine's resolver), and how a lookup failed is
// in the result.  --max_body_bytes and --max_redirects cap what a request
// may ask.
TEST(ServerBinaryFlagsTest, ResolvesThroughDnsServerAndCapsRequests) {
  absl::StatusOr<std::unique_ptr<testing::DnsServer>> dns =
      testing::DnsServer::Start();
  ASSERT_TRUE(dns.ok()) << dns.status();
  (*dns)->AddA("web.test", "127.0.0.1");
  (*dns)->SetRcode("failing.test", testing::DnsServer::kServFail);
  TargetServer target;
  ServerProcess server({FANPROBE_SERVER_BINARY, "--grpc_address=127.0.0.1:0",
                        "--http_address=", "--workers=1",
                        absl::StrCat("--dns_server=", (*dns)->address()),
                        "--dns_timeout=3s", "--max_body_bytes=1000",
                        "--max_redirects=2"});
  ASSERT_FALSE(server.address().empty()) << server.process().Stderr();
  std::unique_ptr<v1::Prober::Stub> stub = server.Stub();

  const std::string port = absl::StrCat(":", target.port());
  v1::ProbeBatchRequest request =
      BatchRequest({absl::StrCat("http://web.test", port, "/status/200"),
                    absl::StrCat("http://nowhere.test", port, "/"),
                    absl::StrCat("http://failing.test", port, "/")});
  request.mutable_defaults()->set_max_body_bytes(1000);
  request.mutable_defaults()->set_max_redirects(2);
  {
    grpc::ClientContext context;
    v1::ProbeBatchResponse response;
    const grpc::Status status = stub->ProbeBatch(&context, request, &response);
    ASSERT_TRUE(status.ok()) << status.error_message();
    ASSERT_EQ(response.done_size(), 3);
    EXPECT_EQ(response.done(0).outcome(), v1::OUTCOME_OK)
        << response.done(0).error();
    EXPECT_EQ(response.done(1).outcome(), v1::OUTCOME_DNS_ERROR);
    EXPECT_EQ(response.done(1).dns_failure(), v1::DNS_FAILURE_NXDOMAIN);
    EXPECT_EQ(response.done(2).outcome(), v1::OUTCOME_DNS_ERROR);
    EXPECT_EQ(response.done(2).dns_failure(), v1::DNS_FAILURE_SERVFAIL);
  }
  EXPECT_GE((*dns)->QueryCount("web.test"), 1u);
  EXPECT_GE((*dns)->QueryCount("nowhere.test"), 1u);
  EXPECT_EQ(target.Stats().http.requests, 1);

  for (const auto& [set, message] : std::vector<
           std::pair<std::function<void(v1::ProbeBatchRequest&)>, std::string>>{
           {[](v1::ProbeBatchRequest& r) {
              r.mutable_targets(1)->mutable_options()->set_max_body_bytes(1001);
            },
            "targets[1].options.max_body_bytes: 1001 is above this server's "
            "limit of 1000"},
           {[](v1::ProbeBatchRequest& r) {
              r.mutable_defaults()->set_max_redirects(3);
            },
            "defaults.max_redirects: 3 is above this server's limit of 2"}}) {
    v1::ProbeBatchRequest bad = request;
    set(bad);
    grpc::ClientContext context;
    v1::ProbeBatchResponse response;
    const grpc::Status status = stub->ProbeBatch(&context, bad, &response);
    EXPECT_EQ(status.error_code(), grpc::StatusCode::INVALID_ARGUMENT);
    EXPECT_EQ(status.error_message(), message);
  }
  EXPECT_EQ(target.Stats().http.requests, 1);
}

// --allow_source_cidr: a probe connects from the address it names when the
// flag allows it (the target sees it), and is OUTCOME_INVALID_TARGET
// naming the address when not.
TEST(ServerBinaryFlagsTest, ProbesConnectFromAllowedSourceAddressesOnly) {
  TargetServer target;
  ServerProcess server({FANPROBE_SERVER_BINARY, "--grpc_address=127.0.0.1:0",
                        "--http_address=", "--workers=1",
                        "--allow_source_cidr=127.0.0.2",
                        "--allow_source_cidr=127.0.0.3/32"});
  ASSERT_FALSE(server.address().empty()) << server.process().Stderr();
  v1::ProbeBatchRequest request =
      BatchRequest({target.url("/body/two"), target.url("/body/three"),
                    target.url("/body/four")});
  request.mutable_targets(0)->mutable_options()->set_source_address(
      "127.0.0.2");
  request.mutable_targets(1)->mutable_options()->set_source_address(
      "127.0.0.3");
  request.mutable_targets(2)->mutable_options()->set_source_address(
      "127.0.0.4");
  grpc::ClientContext context;
  v1::ProbeBatchResponse response;
  const grpc::Status status =
      server.Stub()->ProbeBatch(&context, request, &response);
  ASSERT_TRUE(status.ok()) << status.error_message();
  ASSERT_EQ(response.done_size(), 3);
  EXPECT_EQ(response.done(0).outcome(), v1::OUTCOME_OK)
      << response.done(0).error();
  EXPECT_EQ(response.done(1).outcome(), v1::OUTCOME_OK)
      << response.done(1).error();
  EXPECT_EQ(response.done(2).outcome(), v1::OUTCOME_INVALID_TARGET);
  EXPECT_THAT(response.done(2).error(), HasSubstr("source address 127.0.0.4"));
  std::map<std::string, std::string> sources;
  for (const testing::RecordedRequest& seen : target.Requests()) {
    sources[seen.path] = seen.client_address;
  }
  EXPECT_THAT(sources, ElementsAre(std::pair("/body/three", "127.0.0.3"),
                                   std::pair("/body/two", "127.0.0.2")));
}

// Under a low descriptor limit the server raises its soft limit to the
// hard one, says what that leaves for probes -- keeping 256 descriptors
// back for gRPC connections and its own files plus one per HTTP connection
// allowed -- and warns that it is less than --max_in_flight.
TEST(ServerBinaryFlagsTest, LogsTheDescriptorBudgetAndWarnsWhenItIsLow) {
  const std::optional<std::string> prlimit = testing::FindTool("prlimit");
  if (!prlimit.has_value()) GTEST_SKIP() << "needs prlimit (util-linux)";
  ServerProcess server({*prlimit, "--nofile=300:400", "--",
                        FANPROBE_SERVER_BINARY, "--grpc_address=127.0.0.1:0",
                        "--http_address=127.0.0.1:0", "--workers=1",
                        "--http_max_connections=16",
                        "--max_grpc_connections=32", "--max_in_flight=5000"});
  ASSERT_FALSE(server.address().empty()) << server.process().Stderr();
  const std::optional<std::string> warning = server.process().WaitForStderrLine(
      [](absl::string_view line) {
        return absl::StrContains(line, R"("event":"warning")");
      },
      kPatience);
  ASSERT_TRUE(warning.has_value()) << server.process().Stderr();
  int64_t open_at_start = 0;
  int64_t max_in_flight = 0;
  ASSERT_TRUE(RE2::PartialMatch(
      server.process().Stderr(),
      R"re("event":"descriptor_budget","fd_limit":400,"fd_limit_at_start":300,)re"
      R"re("fd_hard_limit":400,"fd_open_at_start":(\d+),"fd_reserve":304,)re"
      R"re("fd_reserve_grpc_connections":32,"fd_reserve_http_connections":16,)re"
      R"re("max_in_flight":(\d+),"max_in_flight_flag":5000})re",
      &open_at_start, &max_in_flight))
      << server.process().Stderr();
  EXPECT_GT(open_at_start, 2);
  EXPECT_EQ(max_in_flight, 400 - open_at_start - 304);
  EXPECT_THAT(*warning,
              HasSubstr(absl::StrCat(R"("fd_limit":400,"fd_reserve":304,)",
                                     R"("max_in_flight":)", max_in_flight,
                                     R"(,"max_in_flight_flag":5000})")));
  EXPECT_THAT(*warning, HasSubstr("--max_in_flight=5000"));
  EXPECT_TRUE(ParseJsonLines({*warning}).ok()) << *warning;
}

TEST(ServerBinaryFlagsTest, NoDescriptorWarningWhenTheBudgetSuffices) {
  const std::optional<std::string> prlimit = testing::FindTool("prlimit");
  if (!prlimit.has_value()) GTEST_SKIP() << "needs prlimit (util-linux)";
  ServerProcess server({*prlimit, "--nofile=300:400", "--",
                        FANPROBE_SERVER_BINARY, "--grpc_address=127.0.0.1:0",
                        "--http_address=127.0.0.1:0", "--workers=1",
                        "--http_max_connections=16",
                        "--max_grpc_connections=32", "--max_in_flight=20"});
  ASSERT_FALSE(server.address().empty()) << server.process().Stderr();
  // The policy line comes after the budget and its warning, if any.
  ASSERT_TRUE(server.process()
                  .WaitForStderrLine(
                      [](absl::string_view line) {
                        return absl::StrContains(
                            line, R"("event":"destination_policy")");
                      },
                      kPatience)
                  .has_value())
      << server.process().Stderr();
  EXPECT_THAT(server.process().Stderr(),
              HasSubstr(R"("max_in_flight":20,"max_in_flight_flag":20})"));
  EXPECT_THAT(server.process().Stderr(),
              Not(HasSubstr(R"("event":"warning")")));
}

}  // namespace
}  // namespace fanprobe::server
