// cli_embedded_test.cc: `fanprobe probe` without --server -- the engine in
// the fanprobe process -- run as a child process against loopback targets,
// next to the same command with --server: every return-when rule, the
// timeout and an interrupt both ways, comparing what they print and how
// they exit; stdin (a pipe is read, a terminal is not); target lines with
// options of their own; the progress line on a terminal; the output file
// and formats.

#include <signal.h>

#include <fstream>
#include <map>
#include <memory>
#include <sstream>
#include <string>
#include <vector>

#include "absl/status/statusor.h"
#include "absl/strings/ascii.h"
#include "absl/strings/numbers.h"
#include "absl/strings/str_cat.h"
#include "absl/strings/str_split.h"
#include "absl/time/clock.h"
#include "absl/time/time.h"
#include "fanprobe/v1/prober.pb.h"
#include "gmock/gmock.h"
#include "google/protobuf/util/message_differencer.h"
#include "gtest/gtest.h"
#include "server/server.h"
#include "tests/cli/run_cli.h"
#include "tests/support/dns_server.h"
#include "tests/support/target_server.h"
#include "tests/support/temp_dir.h"
#include "tests/support/test_certs.h"
#include "tests/support/test_server.h"
#include "tests/support/wait.h"

namespace fanprobe {
namespace {

using ::fanprobe::testing::CliBinary;
using ::fanprobe::testing::CliRun;
using ::fanprobe::testing::DnsServer;
using ::fanprobe::testing::JsonlEvents;
using ::fanprobe::testing::kPatience;
using ::fanprobe::testing::Lines;
using ::fanprobe::testing::ParseJsonl;
using ::fanprobe::testing::RecordedRequest;
using ::fanprobe::testing::RefusedPort;
using ::fanprobe::testing::RunCli;
using ::fanprobe::testing::Subprocess;
using ::fanprobe::testing::TargetServer;
using ::fanprobe::testing::TargetStats;
using ::fanprobe::testing::TempDir;
using ::fanprobe::testing::TestServer;
using ::fanprobe::testing::WriteFileAtomically;
using ::google::protobuf::util::MessageDifferencer;
using ::testing::AllOf;
using ::testing::ElementsAre;
using ::testing::ElementsAreArray;
using ::testing::HasSubstr;
using ::testing::IsEmpty;
using ::testing::Not;
using ::testing::StartsWith;

enum class Mode { kInProcess, kRemote };

// A target of the fixture's servers.
enum class Kind {
  kHttp,     // the HTTP listener: /status/<code>, /delay/<ms>?status=<code>
  kRaw,      // the raw listener: /hang
  kRefused,  // nothing listens
};
struct Target {
  Kind kind;
  std::string path;
};

// Result fields that depend on when and how fast, not on what happened:
// cleared before results are compared.
v1::ProbeResult Comparable(v1::ProbeResult result) {
  result.clear_timings();
  result.clear_prober_lag();
  for (v1::Hop& hop : *result.mutable_hops()) hop.clear_timings();
  // curl's connect error says how long the attempt took ("after 0 ms").
  std::string error = result.error();
  std::string digits_as_n;
  for (size_t i = 0; i < error.size(); ++i) {
    if (absl::ascii_isdigit(static_cast<unsigned char>(error[i]))) {
      if (i == 0 ||
          !absl::ascii_isdigit(static_cast<unsigned char>(error[i - 1]))) {
        digits_as_n += 'N';
      }
    } else {
      digits_as_n += error[i];
    }
  }
  result.set_error(digits_as_n);
  return result;
}

// The results by index, comparable.
std::map<uint32_t, v1::ProbeResult> ByIndex(const JsonlEvents& events) {
  std::map<uint32_t, v1::ProbeResult> results;
  for (const v1::ProbeResult& result : events.results) {
    EXPECT_TRUE(results.emplace(result.index(), Comparable(result)).second)
        << "index " << result.index() << " twice";
  }
  return results;
}

std::vector<uint32_t> Keys(const std::map<uint32_t, v1::ProbeResult>& map) {
  std::vector<uint32_t> keys;
  for (const auto& [key, value] : map) keys.push_back(key);
  return keys;
}

class CliEmbeddedTest : public ::testing::Test {
 protected:
  std::string Url(const Target& target) const {
    switch (target.kind) {
      case Kind::kHttp:
        return target_.url(target.path);
      case Kind::kRaw:
        return target_.raw_url(target.path);
      case Kind::kRefused:
        return refused_.url(target.path);
    }
    return "";
  }

  // `fanprobe probe --format=jsonl <args> <targets>`, in `mode`.
  CliRun Probe(Mode mode, std::vector<std::string> args,
               const std::vector<Target>& targets) {
    args.insert(args.begin(), {"probe", "--format=jsonl"});
    if (mode == Mode::kRemote) {
      args.push_back(absl::StrCat("--server=", server_.address()));
    }
    for (const Target& target : targets) args.push_back(Url(target));
    return RunCli(args);
  }

  TargetServer target_;
  RefusedPort refused_;
  TestServer server_;
};

// One return-when rule's case: what to run, and what both ways must print.
struct RuleCase {
  const char* name;
  std::vector<std::string> args;
  std::vector<Target> targets;
  int exit_code;
  v1::EndReason reason;
  std::vector<uint32_t> completed;
  std::vector<uint32_t> pending;
};

void PrintTo(const RuleCase& c, std::ostream* os) { *os << c.name; }

class CliBothWaysTest : public CliEmbeddedTest,
                        public ::testing::WithParamInterface<RuleCase> {};

TEST_P(CliBothWaysTest, InProcessAndRemoteRunsAgree) {
  const RuleCase& c = GetParam();
  const CliRun local = Probe(Mode::kInProcess, c.args, c.targets);
  const CliRun remote = Probe(Mode::kRemote, c.args, c.targets);
  for (const CliRun* run : {&local, &remote}) {
    const char* how = run == &local ? "in-process" : "remote";
    EXPECT_EQ(run->code, c.exit_code) << how << ": " << run->err;
    EXPECT_THAT(run->err, IsEmpty()) << how;
    const JsonlEvents events = ParseJsonl(run->out);
    EXPECT_THAT(Keys(ByIndex(events)), ElementsAreArray(c.completed)) << how;
    EXPECT_EQ(events.summary.reason(), c.reason) << how;
    EXPECT_THAT(events.summary.pending_indices(), ElementsAreArray(c.pending))
        << how;
    EXPECT_EQ(events.summary.total(), c.targets.size()) << how;
  }
  // Everything but the timings is the same, result by result.
  const JsonlEvents local_events = ParseJsonl(local.out);
  const JsonlEvents remote_events = ParseJsonl(remote.out);
  const std::map<uint32_t, v1::ProbeResult> local_results =
      ByIndex(local_events);
  const std::map<uint32_t, v1::ProbeResult> remote_results =
      ByIndex(remote_events);
  for (const auto& [index, result] : local_results) {
    auto other = remote_results.find(index);
    ASSERT_NE(other, remote_results.end()) << index;
    EXPECT_TRUE(MessageDifferencer::Equals(result, other->second))
        << "in-process:\n"
        << result.DebugString() << "remote:\n"
        << other->second.DebugString();
  }
  v1::BatchSummary local_summary = local_events.summary;
  v1::BatchSummary remote_summary = remote_events.summary;
  local_summary.clear_elapsed();
  remote_summary.clear_elapsed();
  EXPECT_TRUE(MessageDifferencer::Equals(local_summary, remote_summary))
      << local_summary.DebugString() << remote_summary.DebugString();
}

INSTANTIATE_TEST_SUITE_P(
    Rules, CliBothWaysTest,
    ::testing::Values(
        RuleCase{"AllCompletedWithFailures",
                 {},
                 {{Kind::kHttp, "/status/200"},
                  {Kind::kHttp, "/status/503"},
                  {Kind::kRefused, "/"},
                  {Kind::kHttp, "/redirect/2"}},
                 1,
                 v1::END_REASON_ALL_COMPLETED,
                 {0, 1, 2, 3},
                 {}},
        RuleCase{"AllCompletedAllOk",
                 {"--return_when=all"},
                 {{Kind::kHttp, "/status/200"}, {Kind::kHttp, "/status/204"}},
                 0,
                 v1::END_REASON_ALL_COMPLETED,
                 {0, 1},
                 {}},
        RuleCase{"FirstCompletedOk",
                 {"--return_when=first"},
                 {{Kind::kRaw, "/hang"},
                  {Kind::kHttp, "/status/200"},
                  {Kind::kRaw, "/hang"}},
                 0,
                 v1::END_REASON_FIRST_COMPLETED,
                 {1},
                 {0, 2}},
        RuleCase{"FirstCompletedFailed",
                 {"--return_when=first"},
                 {{Kind::kRaw, "/hang"}, {Kind::kHttp, "/status/503"}},
                 1,
                 v1::END_REASON_FIRST_COMPLETED,
                 {1},
                 {0}},
        RuleCase{"FirstException",
                 {"--return_when=first_exception"},
                 {{Kind::kHttp, "/status/200"},
                  {Kind::kRaw, "/hang"},
                  // Long after the first probe has answered, even on a
                  // loaded machine.
                  {Kind::kHttp, "/delay/1000?status=503"}},
                 1,
                 v1::END_REASON_FIRST_EXCEPTION,
                 {0, 2},
                 {1}},
        RuleCase{"FirstExceptionNoneFails",
                 {"--return_when=first_exception"},
                 {{Kind::kHttp, "/status/200"}, {Kind::kHttp, "/status/204"}},
                 0,
                 v1::END_REASON_ALL_COMPLETED,
                 {0, 1},
                 {}},
        RuleCase{"Timeout",
                 {"--timeout=1s"},
                 {{Kind::kHttp, "/status/200"}, {Kind::kRaw, "/hang"}},
                 124,
                 v1::END_REASON_TIMEOUT,
                 {0},
                 {1}}),
    [](const ::testing::TestParamInfo<RuleCase>& info) {
      return info.param.name;
    });

TEST_F(CliEmbeddedTest, AnInterruptCancelsTheBatchBothWays) {
  for (Mode mode : {Mode::kInProcess, Mode::kRemote}) {
    const char* how = mode == Mode::kInProcess ? "in-process" : "remote";
    std::vector<std::string> args = {CliBinary(), "probe", "--format=jsonl",
                                     target_.raw_url("/hang"),
                                     target_.raw_url("/hang")};
    if (mode == Mode::kRemote) {
      args.push_back(absl::StrCat("--server=", server_.address()));
    }
    const int abandoned = target_.Stats().raw.abandoned;
    Subprocess cli(args);
    ASSERT_TRUE(target_.WaitFor(
        [](const TargetStats& s) { return s.raw.in_flight == 2; }, kPatience))
        << how;
    cli.Signal(SIGINT);
    const Subprocess::Exit exit = cli.Wait(kPatience);
    EXPECT_EQ(exit.code, 130) << how << ": " << cli.Stderr();
    const JsonlEvents events = ParseJsonl(cli.Stdout());
    EXPECT_THAT(events.results, IsEmpty()) << how;
    EXPECT_EQ(events.summary.reason(), v1::END_REASON_CANCELLED) << how;
    EXPECT_THAT(events.summary.pending_indices(), ElementsAre(0, 1)) << how;
    // The probes' connections are closed.
    EXPECT_TRUE(target_.WaitFor(
        [&](const TargetStats& s) {
          return s.raw.in_flight == 0 && s.raw.abandoned == abandoned + 2;
        },
        kPatience))
        << how;
  }
}

TEST_F(CliEmbeddedTest, TableIsTheDefaultAndNeedsNoServer) {
  const CliRun run =
      RunCli({"probe", target_.url("/status/200"), target_.url("/status/503")});
  EXPECT_EQ(run.code, 1) << run.err;
  EXPECT_THAT(run.err, IsEmpty());
  const std::vector<std::string> lines = Lines(run.out);
  ASSERT_EQ(lines.size(), 4u) << run.out;
  EXPECT_THAT(lines[0], StartsWith("INDEX  OUTCOME"));
  EXPECT_THAT(run.out, HasSubstr("(status 503 is not a valid status)"));
  EXPECT_THAT(lines[3],
              AllOf(StartsWith("ALL_COMPLETED in "),
                    HasSubstr("2 probes, 2 completed (1 ok, 1 failed), 0 "
                              "cancelled")));
}

TEST_F(CliEmbeddedTest, FlagsMayComeBeforeTheCommand) {
  const CliRun run = RunCli(
      {"--format=jsonl", "-X", "HEAD", "probe", target_.url("/status/200")});
  EXPECT_EQ(run.code, 0) << run.err;
  EXPECT_EQ(ParseJsonl(run.out).results.size(), 1u);
  ASSERT_EQ(target_.Requests().size(), 1u);
  EXPECT_EQ(target_.Requests()[0].method, "HEAD");
}

TEST_F(CliEmbeddedTest, ShowsProgressOnATerminalForALargeBatch) {
  std::vector<std::string> args = {"probe"};
  for (int i = 0; i < 25; ++i) args.push_back(target_.url("/status/200"));
  const CliRun run = RunCli(args, {.stderr_is_terminal = true});
  EXPECT_EQ(run.code, 0) << run.err;
  EXPECT_THAT(run.err, HasSubstr("/25 done, 0 failed"));
  EXPECT_THAT(run.err, HasSubstr("\r\033[K"));  // erased before each row
  // stdout (a pipe) gets only the rows and the summary.
  EXPECT_EQ(Lines(run.out).size(), 27u);
  EXPECT_THAT(run.out, Not(HasSubstr("done,")));
}

TEST_F(CliEmbeddedTest, ShowsNoProgressOffATerminal) {
  std::vector<std::string> args = {"probe"};
  for (int i = 0; i < 25; ++i) args.push_back(target_.url("/status/200"));
  const CliRun run = RunCli(args);
  EXPECT_EQ(run.code, 0) << run.err;
  EXPECT_THAT(run.err, IsEmpty());
}

TEST_F(CliEmbeddedTest, APipedStdinIsReadWithoutBeingAskedFor) {
  const CliRun run =
      RunCli({"probe", "--format=jsonl"},
             {.stdin_data = absl::StrCat(target_.url("/status/200"), "\n",
                                         target_.url("/status/201"), "\n")});
  EXPECT_EQ(run.code, 0) << run.err;
  EXPECT_EQ(ParseJsonl(run.out).results.size(), 2u);
  EXPECT_EQ(target_.Stats().http.requests, 2);
}

TEST_F(CliEmbeddedTest, ATerminalOnStdinIsNotWaitedOn) {
  // Nothing is ever typed on this terminal: reading it would hang until
  // RunCli's patience ran out.
  const absl::Time start = absl::Now();
  const CliRun run = RunCli({"probe"}, {.stdin_is_terminal = true});
  EXPECT_EQ(run.code, 2);
  EXPECT_THAT(run.err, HasSubstr("no targets: give URLs, --file=FILE, or "
                                 "pipe them to stdin"));
  EXPECT_LT(absl::Now() - start, kPatience);
  // "-" does read it (and waits): not tested, it would hang by design.
}

TEST_F(CliEmbeddedTest, JsonLinesCarryOptionsOfTheirOwnOverTheFlags) {
  TempDir dir;
  const std::string file = dir.File("targets.jsonl");
  WriteFileAtomically(
      file,
      absl::StrCat(
          "# a plain line takes the flags\n", target_.url("/echo_headers"),
          "\n", R"({"url": ")", target_.url("/echo_headers"),
          R"(", "id": "own", "labels": {"team": "web"}, "options": )",
          R"({"method": "HEAD", "headers": {"headers": []},)",
          R"( "valid_status": {"ranges": [{"min": 404, "max": 404}]}}})",
          "\n"));
  for (Mode mode : {Mode::kInProcess, Mode::kRemote}) {
    const char* how = mode == Mode::kInProcess ? "in-process" : "remote";
    const size_t before = target_.Requests().size();
    // --concurrency=1: the two requests arrive in order.
    const CliRun run = Probe(
        mode,
        {"-X", "PUT", "-H", "X-Flag: yes", "--concurrency=1", "--file", file},
        {});
    EXPECT_EQ(run.code, 1) << how << ": " << run.err;  // 200 is not 404
    const JsonlEvents events = ParseJsonl(run.out);
    ASSERT_EQ(events.results.size(), 2u) << how;
    for (const v1::ProbeResult& result : events.results) {
      if (result.index() == 1) {
        EXPECT_EQ(result.id(), "own") << how;
        EXPECT_EQ(result.labels().at("team"), "web") << how;
        EXPECT_EQ(result.outcome(), v1::OUTCOME_UNEXPECTED_STATUS) << how;
      } else {
        EXPECT_EQ(result.outcome(), v1::OUTCOME_OK) << how;
      }
    }
    const std::vector<RecordedRequest> seen = target_.Requests();
    ASSERT_EQ(seen.size(), before + 2) << how;
    EXPECT_EQ(seen[before].method, "PUT") << how;
    EXPECT_THAT(seen[before].headers,
                ::testing::Contains(::testing::Pair("X-Flag", "yes")))
        << how;
    EXPECT_EQ(seen[before + 1].method, "HEAD") << how;
    EXPECT_THAT(seen[before + 1].headers,
                Not(::testing::Contains(::testing::Pair("X-Flag", "yes"))))
        << how;
  }
}

TEST_F(CliEmbeddedTest, ABadLineIsNamedAndNothingIsSent) {
  TempDir dir;
  const std::string file = dir.File("targets.jsonl");
  WriteFileAtomically(
      file, absl::StrCat(target_.url("/status/200"), "\n\n", R"({"url": ")",
                         target_.url("/status/200"),
                         R"(", "options": {"timeout": "-5s"}})", "\n"));
  for (Mode mode : {Mode::kInProcess, Mode::kRemote}) {
    const CliRun run = Probe(mode, {"--file", file}, {});
    EXPECT_EQ(run.code, 2);
    EXPECT_THAT(run.err,
                HasSubstr(absl::StrCat(
                    file, ":3: options.timeout: must not be negative")));
    EXPECT_THAT(run.out, IsEmpty());
  }
  EXPECT_EQ(target_.Stats().http.requests, 0);
  EXPECT_EQ(server_.server().service().Stats().batches_started, 0u);
}

TEST_F(CliEmbeddedTest, OptionsTheEngineRefusesAreNamedAndNothingIsSent) {
  TempDir dir;
  WriteFileAtomically(dir.File("not.pem"), "not a certificate\n");
  const std::string output = dir.File("out.jsonl");
  WriteFileAtomically(output, "kept\n");
  // The flags: every probe would be INVALID_TARGET; the flag is named.
  CliRun run = RunCli({"probe", "-o", output, "--body_must_match=(",
                       target_.url("/status/200")});
  EXPECT_EQ(run.code, 2);
  EXPECT_THAT(run.err,
              StartsWith("fanprobe: --body_must_match: body_must_match[0]: "))
      << run.err;
  run = RunCli(
      {"probe", "--cacert", dir.File("not.pem"), target_.url("/status/200")});
  EXPECT_EQ(run.code, 2);
  EXPECT_THAT(run.err, StartsWith("fanprobe: --cacert: ca_pem: ")) << run.err;

  // A line's own options: the line is named.
  const std::string file = dir.File("targets.jsonl");
  WriteFileAtomically(
      file, absl::StrCat(
                target_.url("/status/200"), "\n", R"({"url": ")",
                target_.url("/status/200"),
                R"(", "options": {"max_body_bytes": "1099511627776"}})", "\n"));
  run = RunCli({"probe", "--file", file});
  EXPECT_EQ(run.code, 2);
  EXPECT_THAT(run.err, StartsWith(absl::StrCat("fanprobe: ", file,
                                               ":2: options.max_body_bytes: ")))
      << run.err;
  EXPECT_EQ(target_.Stats().http.requests, 0);
  std::ifstream in(output);
  std::stringstream content;
  content << in.rdbuf();
  EXPECT_EQ(content.str(), "kept\n");  // a refused run writes nothing
}

TEST_F(CliEmbeddedTest, OutputGoesToTheFileGiven) {
  TempDir dir;
  const std::string file = dir.File("out.jsonl");
  const CliRun run = RunCli(
      {"probe", "--format=jsonl", "-o", file, target_.url("/status/200")});
  EXPECT_EQ(run.code, 0) << run.err;
  EXPECT_THAT(run.out, IsEmpty());
  std::ifstream in(file);
  std::stringstream content;
  content << in.rdbuf();
  const JsonlEvents events = ParseJsonl(content.str());
  EXPECT_EQ(events.results.size(), 1u);
  EXPECT_EQ(events.summary.succeeded(), 1u);

  const CliRun unwritable = RunCli(
      {"probe", "-o", dir.File("no/such/dir"), target_.url("/status/200")});
  EXPECT_EQ(unwritable.code, 2);
  EXPECT_THAT(unwritable.err, HasSubstr("cannot write --output="));
}

TEST_F(CliEmbeddedTest, CsvHasRowsOnStdoutAndTheSummaryOnStderr) {
  const CliRun run =
      RunCli({"probe", "--format=csv", "--max-filesize=1k",
              target_.url("/bytes/100"), target_.url("/status/503")});
  EXPECT_EQ(run.code, 1) << run.err;
  const std::vector<std::string> lines = Lines(run.out);
  ASSERT_EQ(lines.size(), 3u) << run.out;
  const std::vector<std::string> header = absl::StrSplit(lines[0], ',');
  ASSERT_EQ(header.size(), 21u);
  EXPECT_EQ(header[6], "total_seconds");
  for (size_t i = 1; i < lines.size(); ++i) {
    // No field here holds a comma, so a plain split finds the columns.
    const std::vector<std::string> row = absl::StrSplit(lines[i], ',');
    ASSERT_EQ(row.size(), header.size()) << lines[i];
    double seconds = -1;
    EXPECT_TRUE(absl::SimpleAtod(row[6], &seconds)) << row[6];
    EXPECT_GT(seconds, 0);
    EXPECT_LT(seconds, absl::ToDoubleSeconds(kPatience));
    if (row[0] == "0") {
      EXPECT_EQ(row[3], "OK");
      EXPECT_EQ(row[16], "100");  // body_bytes
    } else {
      EXPECT_EQ(row[3], "UNEXPECTED_STATUS");
      EXPECT_EQ(row[4], "503");
    }
  }
  EXPECT_THAT(run.err, HasSubstr("ALL_COMPLETED in "));
  EXPECT_THAT(run.err, HasSubstr("2 probes, 2 completed (1 ok, 1 failed)"));
}

TEST(CliDnsTest, NamesResolveThroughTheTestsDnsServerBothWays) {
  absl::StatusOr<std::unique_ptr<DnsServer>> started = DnsServer::Start();
  ASSERT_TRUE(started.ok()) << started.status();
  DnsServer& dns = **started;
  dns.AddA("web.test", "127.0.0.1");
  dns.SetRcode("gone.test", DnsServer::kNxDomain);
  TargetServer target;
  server::ServerOptions options;
  options.engine.dns_servers = {dns.address()};
  TestServer server(options);
  const std::string port = absl::StrCat(target.port());
  const std::vector<std::string> urls = {
      absl::StrCat("http://web.test:", port, "/status/200"),
      absl::StrCat("http://gone.test:", port, "/status/200")};

  std::vector<std::string> local_args = {
      "probe", "--format=jsonl", absl::StrCat("--dns-servers=", dns.address())};
  std::vector<std::string> remote_args = {
      "probe", "--format=jsonl", absl::StrCat("--server=", server.address())};
  local_args.insert(local_args.end(), urls.begin(), urls.end());
  remote_args.insert(remote_args.end(), urls.begin(), urls.end());
  const CliRun local = RunCli(local_args);
  const CliRun remote = RunCli(remote_args);
  for (const CliRun* run : {&local, &remote}) {
    const char* how = run == &local ? "in-process" : "remote";
    EXPECT_EQ(run->code, 1) << how << ": " << run->err;
    const std::map<uint32_t, v1::ProbeResult> results =
        ByIndex(ParseJsonl(run->out));
    ASSERT_THAT(Keys(results), ElementsAre(0, 1)) << how;
    EXPECT_EQ(results.at(0).outcome(), v1::OUTCOME_OK)
        << how << ": " << results.at(0).error();
    EXPECT_EQ(results.at(0).remote_ip(), "127.0.0.1") << how;
    EXPECT_EQ(results.at(1).outcome(), v1::OUTCOME_DNS_ERROR) << how;
    EXPECT_THAT(results.at(1).error(), HasSubstr("gone.test")) << how;
  }
  const std::map<uint32_t, v1::ProbeResult> local_results =
      ByIndex(ParseJsonl(local.out));
  const std::map<uint32_t, v1::ProbeResult> remote_results =
      ByIndex(ParseJsonl(remote.out));
  for (const auto& [index, result] : local_results) {
    auto other = remote_results.find(index);
    ASSERT_NE(other, remote_results.end()) << index;
    EXPECT_TRUE(MessageDifferencer::Equals(result, other->second))
        << "in-process:\n"
        << result.DebugString() << "remote:\n"
        << other->second.DebugString();
  }
  EXPECT_EQ(target.Stats().http.requests, 2);  // web.test, once each way
  EXPECT_GE(dns.QueryCount("web.test", DnsServer::kTypeA), 2u);
  EXPECT_GE(dns.QueryCount("gone.test"), 2u);

  // With --server, the server's resolver holds: the flag is a usage error.
  remote_args.push_back(absl::StrCat("--dns-servers=", dns.address()));
  const CliRun both = RunCli(remote_args);
  EXPECT_EQ(both.code, 2);
  EXPECT_THAT(both.err, HasSubstr("--dns-servers is for probes run "
                                  "in-process; with --server the server's "
                                  "own destination policy and DNS servers "
                                  "hold"));
}

}  // namespace
}  // namespace fanprobe
