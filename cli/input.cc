#include "cli/input.h"

#include <fstream>
#include <istream>
#include <string>
#include <utility>

#include "absl/algorithm/container.h"
#include "absl/status/status.h"
#include "absl/status/statusor.h"
#include "absl/strings/ascii.h"
#include "absl/strings/match.h"
#include "absl/strings/str_cat.h"
#include "absl/strings/string_view.h"
#include "absl/strings/strip.h"
#include "cli/flags.h"
#include "google/protobuf/util/json_util.h"
#include "service/convert.h"

namespace fanprobe::cli {
namespace {

absl::Status UsageError(absl::string_view message) {
  return absl::InvalidArgumentError(message);
}

// The checks the server makes of a target's options (a negative duration,
// an unknown enum value, a bad status range), made here by the same code,
// so a bad line fails before anything is sent, in-process or remote.
absl::Status CheckOptions(const v1::ProbeTarget& target) {
  v1::ProbeBatchRequest request;
  *request.add_targets() = target;
  const absl::StatusOr<service::BatchRequest> converted =
      service::BatchFromProto(request, service::RequestLimits());
  if (converted.ok()) return absl::OkStatus();
  // "targets[0].options.timeout: ..." -> "options.timeout: ...": the line
  // is the target.
  absl::string_view message = converted.status().message();
  absl::ConsumePrefix(&message, "targets[0].");
  return UsageError(message);
}

absl::StatusOr<v1::ProbeTarget> ParseJsonTarget(absl::string_view line) {
  v1::ProbeTarget target;
  google::protobuf::util::JsonParseOptions options;
  options.ignore_unknown_fields = false;
  if (const auto status = google::protobuf::util::JsonStringToMessage(
          std::string(line), &target, options);
      !status.ok()) {
    return UsageError(absl::StrCat("not a ProbeTarget in JSON: ",
                                   status.message().as_string()));
  }
  if (target.url().empty()) return UsageError("the ProbeTarget has no \"url\"");
  if (absl::Status status = CheckOptions(target); !status.ok()) return status;
  return target;
}

}  // namespace

absl::StatusOr<v1::ProbeTarget> ParseTargetLine(absl::string_view line) {
  if (absl::StartsWith(line, "{")) return ParseJsonTarget(line);
  if (absl::c_any_of(line, [](char c) {
        return absl::ascii_isspace(static_cast<unsigned char>(c));
      })) {
    return UsageError(
        "a URL holds no blanks; to give a target options of its own, write "
        "its line as a ProbeTarget in JSON: {\"url\": \"...\", \"options\": "
        "{...}}");
  }
  v1::ProbeTarget target;
  target.set_url(std::string(line));
  return target;
}

absl::Status ReadTargets(std::istream& lines, absl::string_view source,
                         v1::ProbeBatchRequest& request,
                         TargetOrigins* origins) {
  std::string line;
  for (int number = 1; std::getline(lines, line); ++number) {
    const absl::string_view text = absl::StripAsciiWhitespace(line);
    if (text.empty() || absl::StartsWith(text, "#")) continue;
    absl::StatusOr<v1::ProbeTarget> target = ParseTargetLine(text);
    if (!target.ok()) {
      return UsageError(
          absl::StrCat(source, ":", number, ": ", target.status().message()));
    }
    *request.add_targets() = *std::move(target);
    if (origins != nullptr)
      origins->push_back(absl::StrCat(source, ":", number));
  }
  if (lines.bad()) return UsageError(absl::StrCat("cannot read ", source));
  return absl::OkStatus();
}

absl::Status AddTargets(const ProbeFlags& flags, Stdin& in,
                        v1::ProbeBatchRequest& request,
                        TargetOrigins* origins) {
  bool stdin_read = false;
  // stdin is one stream: a second "-" finds it at its end.
  auto read_stdin = [&]() -> absl::Status {
    if (stdin_read) return absl::OkStatus();
    stdin_read = true;
    return ReadTargets(in.stream, "stdin", request, origins);
  };
  for (const std::string& url : flags.urls) {
    if (url.empty()) continue;
    if (url == "-") {
      if (absl::Status status = read_stdin(); !status.ok()) return status;
      continue;
    }
    request.add_targets()->set_url(url);
    if (origins != nullptr) origins->emplace_back();
  }
  for (const std::string& file : flags.files) {
    if (file == "-") {
      if (absl::Status status = read_stdin(); !status.ok()) return status;
      continue;
    }
    std::ifstream stream(file);
    if (!stream) return UsageError(absl::StrCat("cannot read --file=", file));
    if (absl::Status status = ReadTargets(stream, file, request, origins);
        !status.ok()) {
      return status;
    }
  }
  if (flags.urls.empty() && flags.files.empty() && !in.is_terminal) {
    if (absl::Status status = read_stdin(); !status.ok()) return status;
  }
  if (request.targets().empty()) {
    return UsageError(
        "no targets: give URLs, --file=FILE, or pipe them to stdin");
  }
  return absl::OkStatus();
}

}  // namespace fanprobe::cli
