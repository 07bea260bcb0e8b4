// input_test.cc: where targets come from and how a line becomes one
// (cli/input.h): plain URL lines, ProbeTarget JSON lines with options of
// their own, bad lines named by source and line number, and when stdin is
// read (a pipe without other targets, "-") and when not (a terminal).

#include "cli/input.h"

#include <sstream>
#include <string>
#include <vector>

#include "absl/status/status.h"
#include "absl/status/statusor.h"
#include "cli/flags.h"
#include "fanprobe/v1/prober.pb.h"
#include "gmock/gmock.h"
#include "google/protobuf/text_format.h"
#include "google/protobuf/util/message_differencer.h"
#include "gtest/gtest.h"
#include "tests/support/temp_dir.h"
#include "tests/support/test_certs.h"

namespace fanprobe::cli {
namespace {

using ::fanprobe::testing::TempDir;
using ::fanprobe::testing::WriteFileAtomically;
using ::google::protobuf::util::MessageDifferencer;
using ::testing::ElementsAre;
using ::testing::HasSubstr;
using ::testing::IsEmpty;
using ::testing::StartsWith;

std::vector<std::string> Urls(const v1::ProbeBatchRequest& request) {
  std::vector<std::string> urls;
  for (const v1::ProbeTarget& target : request.targets()) {
    urls.push_back(target.url());
  }
  return urls;
}

v1::ProbeTarget Target(const std::string& text) {
  v1::ProbeTarget target;
  EXPECT_TRUE(google::protobuf::TextFormat::ParseFromString(text, &target))
      << text;
  return target;
}

// The targets read from `text`, or the error.
absl::StatusOr<v1::ProbeBatchRequest> Read(const std::string& text) {
  std::istringstream lines(text);
  v1::ProbeBatchRequest request;
  if (absl::Status status = ReadTargets(lines, "urls.jsonl", request);
      !status.ok()) {
    return status;
  }
  return request;
}

TEST(ParseTargetLineTest, APlainLineIsAUrl) {
  absl::StatusOr<v1::ProbeTarget> target =
      ParseTargetLine("https://example.test/a?b=c#d");
  ASSERT_TRUE(target.ok()) << target.status();
  EXPECT_TRUE(MessageDifferencer::Equals(
      *target, Target(R"pb(url: "https://example.test/a?b=c#d")pb")));
  // Not checked here: the engine reports a URL it cannot use as that
  // target's INVALID_TARGET, as the server does.
  EXPECT_TRUE(ParseTargetLine("ftp://a/").ok());
}

TEST(ParseTargetLineTest, AJsonLineIsAProbeTargetWithOptionsOfItsOwn) {
  absl::StatusOr<v1::ProbeTarget> target = ParseTargetLine(
      R"({"url": "http://a/", "id": "web", "labels": {"env": "prod"},)"
      R"( "options": {"method": "HEAD", "timeout": "2.5s",)"
      R"( "follow_redirects": false, "maxBodyBytes": "1024",)"
      R"( "headers": {"headers": [{"name": "A", "value": "1"}]},)"
      R"( "valid_status": {"ranges": [{"min": 200, "max": 204}]},)"
      R"( "http_version": "HTTP_VERSION_1_1", "ip_family": "IP_FAMILY_IPV4"}})");
  ASSERT_TRUE(target.ok()) << target.status();
  EXPECT_TRUE(MessageDifferencer::Equals(*target, Target(R"pb(
    url: "http://a/"
    id: "web"
    labels { key: "env" value: "prod" }
    options {
      method: "HEAD"
      timeout { seconds: 2 nanos: 500000000 }
      follow_redirects: false
      max_body_bytes: 1024
      headers { headers { name: "A" value: "1" } }
      valid_status { ranges { min: 200 max: 204 } }
      http_version: HTTP_VERSION_1_1
      ip_family: IP_FAMILY_IPV4
    }
  )pb")))
      << target->DebugString();
}

TEST(ParseTargetLineTest, BadLinesSayWhatIsWrong) {
  struct Case {
    const char* line;
    const char* message;
  };
  for (const Case& c : std::vector<Case>{
           {"http://a/ id=web method=HEAD",
            "a URL holds no blanks; to give a target options of its own, "
            "write its line as a ProbeTarget in JSON: {\"url\": \"...\", "
            "\"options\": {...}}"},
           {R"({"url": "http://a/")", "not a ProbeTarget in JSON: "},
           {R"({"url": "http://a/", "bogus": 1})",
            "not a ProbeTarget in JSON: "},
           {R"({"url": 3})", "not a ProbeTarget in JSON: "},
           {R"({"id": "x"})", "the ProbeTarget has no \"url\""},
           {R"({"url": "http://a/", "options": {"timeout": "-1s"}})",
            "options.timeout: must not be negative"},
           {R"({"url": "http://a/", "options": {"timeout": "0s"}})",
            "options.timeout: must be positive"},
           {R"({"url": "http://a/", "options": {"http_version": 7}})",
            "options.http_version: unknown HttpVersion value 7"},
           {R"({"url": "http://a/", "options": {"valid_status": )"
            R"({"ranges": [{"min": 300, "max": 200}]}}})",
            "options.valid_status.ranges[0]: want 100 <= min <= max <= 999, "
            "got 300-200"},
       }) {
    const absl::StatusOr<v1::ProbeTarget> target = ParseTargetLine(c.line);
    EXPECT_EQ(target.status().code(), absl::StatusCode::kInvalidArgument)
        << c.line;
    EXPECT_THAT(std::string(target.status().message()), StartsWith(c.message))
        << c.line;
  }
}

TEST(ReadTargetsTest, PlainAndJsonLinesMixBlanksAndCommentsAreSkipped) {
  absl::StatusOr<v1::ProbeBatchRequest> request = Read(
      "# header\n"
      "\n"
      "  http://a/  \r\n"
      "\t{\"url\": \"http://b/\", \"id\": \"b\"}\n"
      "  # indented comment\n"
      "http://c/");  // no final newline
  ASSERT_TRUE(request.ok()) << request.status();
  EXPECT_THAT(Urls(*request),
              ElementsAre("http://a/", "http://b/", "http://c/"));
  EXPECT_EQ(request->targets(1).id(), "b");
  EXPECT_FALSE(request->targets(0).has_options());
}

TEST(ReadTargetsTest, ABadLineIsNamedByItsNumberAndNothingIsKept) {
  absl::StatusOr<v1::ProbeBatchRequest> request = Read(
      "http://a/\n"
      "# comment\n"
      "\n"
      R"({"url": "http://b/", "options": {"timeout": "-2s"}})"
      "\n"
      "http://c/\n");
  EXPECT_EQ(request.status().code(), absl::StatusCode::kInvalidArgument);
  EXPECT_THAT(std::string(request.status().message()),
              StartsWith("urls.jsonl:4: options.timeout: must not be "
                         "negative"));
}

struct AddTargetsRun {
  absl::Status status;
  v1::ProbeBatchRequest request;
  bool stdin_consumed = false;
};

AddTargetsRun Add(const ProbeFlags& flags, const std::string& stdin_text,
                  bool stdin_is_terminal) {
  std::istringstream stream(stdin_text);
  Stdin in{stream, stdin_is_terminal};
  AddTargetsRun run;
  run.status = AddTargets(flags, in, run.request);
  run.stdin_consumed = stream.tellg() != 0;
  return run;
}

TEST(AddTargetsTest, StdinIsReadWhenItIsNotATerminalAndNothingElseIsGiven) {
  const AddTargetsRun run = Add(ProbeFlags{}, "http://piped/\n", false);
  ASSERT_TRUE(run.status.ok()) << run.status;
  EXPECT_THAT(Urls(run.request), ElementsAre("http://piped/"));
}

TEST(AddTargetsTest, ATerminalIsNotReadUnlessDashAsksForIt) {
  AddTargetsRun run = Add(ProbeFlags{}, "http://typed/\n", true);
  EXPECT_EQ(run.status.message(),
            "no targets: give URLs, --file=FILE, or pipe them to stdin");
  EXPECT_FALSE(run.stdin_consumed);

  ProbeFlags flags;
  flags.urls = {"-"};
  run = Add(flags, "http://typed/\n", true);
  ASSERT_TRUE(run.status.ok()) << run.status;
  EXPECT_THAT(Urls(run.request), ElementsAre("http://typed/"));
}

TEST(AddTargetsTest, OtherTargetsLeaveAPipedStdinAlone) {
  ProbeFlags flags;
  flags.urls = {"http://arg/"};
  AddTargetsRun run = Add(flags, "http://piped/\n", false);
  ASSERT_TRUE(run.status.ok()) << run.status;
  EXPECT_THAT(Urls(run.request), ElementsAre("http://arg/"));
  EXPECT_FALSE(run.stdin_consumed);

  TempDir dir;
  WriteFileAtomically(dir.File("urls"), "http://file/\n");
  flags.urls.clear();
  flags.files = {dir.File("urls")};
  run = Add(flags, "http://piped/\n", false);
  ASSERT_TRUE(run.status.ok()) << run.status;
  EXPECT_THAT(Urls(run.request), ElementsAre("http://file/"));
}

TEST(AddTargetsTest, DashReadsStdinWhereItStandsAndOnlyOnce) {
  ProbeFlags flags;
  flags.urls = {"http://1/", "-", "http://2/", "-"};
  flags.files = {"-"};
  const AddTargetsRun run = Add(flags, "http://stdin/\n", false);
  ASSERT_TRUE(run.status.ok()) << run.status;
  EXPECT_THAT(Urls(run.request),
              ElementsAre("http://1/", "http://stdin/", "http://2/"));
}

TEST(AddTargetsTest, EachTargetsOriginIsItsLineOrNoneForAnArgument) {
  TempDir dir;
  WriteFileAtomically(dir.File("urls"), "# first\n\nhttp://file/\n");
  ProbeFlags flags;
  flags.urls = {"http://arg/", "-"};
  flags.files = {dir.File("urls")};
  std::istringstream stream("http://stdin/1\n  \nhttp://stdin/2\n");
  Stdin in{stream, false};
  v1::ProbeBatchRequest request;
  TargetOrigins origins;
  const absl::Status status = AddTargets(flags, in, request, &origins);
  ASSERT_TRUE(status.ok()) << status;
  ASSERT_EQ(request.targets_size(), 4);
  EXPECT_THAT(origins,
              ElementsAre("", "stdin:1", "stdin:3", dir.File("urls") + ":3"));
}

TEST(AddTargetsTest, ErrorsNameTheSource) {
  ProbeFlags flags;
  flags.files = {"-"};
  AddTargetsRun run = Add(flags, "http://a/\nnot a url\n", false);
  EXPECT_THAT(std::string(run.status.message()),
              StartsWith("stdin:2: a URL holds no"));

  TempDir dir;
  WriteFileAtomically(dir.File("t.jsonl"), "{\"url\": \"http://a/\"\n");
  flags.files = {dir.File("t.jsonl")};
  run = Add(flags, "", true);
  EXPECT_THAT(
      std::string(run.status.message()),
      StartsWith(dir.File("t.jsonl") + ":1: not a ProbeTarget in JSON: "));
  flags.files = {dir.File("missing")};
  run = Add(flags, "", true);
  EXPECT_EQ(run.status.message(), "cannot read --file=" + dir.File("missing"));
}

TEST(AddTargetsTest, EmptyInputHasNoTargets) {
  const AddTargetsRun run = Add(ProbeFlags{}, "# only a comment\n\n", false);
  EXPECT_EQ(run.status.code(), absl::StatusCode::kInvalidArgument);
  EXPECT_THAT(std::string(run.status.message()), HasSubstr("no targets"));
  EXPECT_THAT(run.request.targets(), IsEmpty());
}

}  // namespace
}  // namespace fanprobe::cli
