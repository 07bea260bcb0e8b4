#include "cli/request.h"

#include <cstdint>
#include <fstream>
#include <istream>
#include <string>
#include <utility>

#include "absl/status/status.h"
#include "absl/status/statusor.h"
#include "absl/strings/ascii.h"
#include "absl/strings/match.h"
#include "absl/strings/numbers.h"
#include "absl/strings/str_cat.h"
#include "absl/strings/str_split.h"
#include "absl/strings/string_view.h"
#include "absl/time/time.h"
#include "cli/flags.h"
#include "google/protobuf/util/time_util.h"

namespace fanprobe::cli {
namespace {

using ::google::protobuf::util::TimeUtil;

absl::Status UsageError(absl::string_view message) {
  return absl::InvalidArgumentError(message);
}

google::protobuf::Duration ToProto(absl::Duration d) {
  return TimeUtil::NanosecondsToDuration(absl::ToInt64Nanoseconds(d));
}

// The batch-wide options.
absl::Status ApplyBatchFlags(const ProbeFlags& flags,
                             v1::ProbeBatchRequest& request) {
  if (flags.return_when.has_value()) {
    absl::StatusOr<v1::ReturnWhen> rule = ParseReturnWhen(*flags.return_when);
    if (!rule.ok()) return rule.status();
    request.set_return_when(*rule);
  }
  if (flags.timeout.has_value()) {
    absl::StatusOr<absl::Duration> timeout =
        ParseDurationFlag("timeout", *flags.timeout);
    if (!timeout.ok()) return timeout.status();
    *request.mutable_timeout() = ToProto(*timeout);
  }
  if (flags.concurrency.has_value()) {
    absl::StatusOr<uint32_t> n =
        ParseCountFlag("concurrency", *flags.concurrency);
    if (!n.ok()) return n.status();
    request.set_max_concurrency(*n);
  }
  if (flags.per_host.has_value()) {
    absl::StatusOr<uint32_t> n = ParseCountFlag("per_host", *flags.per_host);
    if (!n.ok()) return n.status();
    request.set_max_per_host(*n);
  }
  return absl::OkStatus();
}

// The options every probe of the batch gets.
absl::Status ApplyProbeDefaults(const ProbeFlags& flags,
                                v1::ProbeOptions& defaults) {
  if (flags.probe_timeout.has_value()) {
    absl::StatusOr<absl::Duration> timeout =
        ParseDurationFlag("probe_timeout", *flags.probe_timeout);
    if (!timeout.ok()) return timeout.status();
    if (*timeout == absl::ZeroDuration()) {
      return UsageError("--probe_timeout must be positive");
    }
    *defaults.mutable_timeout() = ToProto(*timeout);
  }
  if (flags.method.has_value()) defaults.set_method(*flags.method);
  for (const std::string& value : flags.headers) {
    absl::StatusOr<v1::Header> header = ParseHeader(value);
    if (!header.ok()) return header.status();
    *defaults.mutable_headers()->add_headers() = *std::move(header);
  }
  if (flags.expect.has_value()) {
    absl::StatusOr<v1::StatusRanges> ranges = ParseExpect(*flags.expect);
    if (!ranges.ok()) return ranges.status();
    *defaults.mutable_valid_status() = *std::move(ranges);
  }
  return absl::OkStatus();
}

}  // namespace

absl::StatusOr<v1::ProbeBatchRequest> BuildRequest(const ProbeFlags& flags,
                                                   std::istream& in) {
  v1::ProbeBatchRequest request;
  if (absl::Status status = ApplyBatchFlags(flags, request); !status.ok()) {
    return status;
  }
  if (absl::Status status =
          ApplyProbeDefaults(flags, *request.mutable_defaults());
      !status.ok()) {
    return status;
  }
  for (const std::string& url : flags.urls) {
    if (!url.empty()) request.add_targets()->set_url(url);
  }
  for (const std::string& file : flags.files) {
    if (file == "-") {
      ReadTargets(in, request);
      continue;
    }
    std::ifstream stream(file);
    if (!stream) return UsageError(absl::StrCat("cannot read --file=", file));
    ReadTargets(stream, request);
  }
  if (request.targets().empty()) {
    return UsageError("no targets: give URLs or --file=FILE");
  }
  return request;
}

void ReadTargets(std::istream& lines, v1::ProbeBatchRequest& request) {
  std::string line;
  while (std::getline(lines, line)) {
    const absl::string_view url = absl::StripAsciiWhitespace(line);
    if (url.empty() || absl::StartsWith(url, "#")) continue;
    request.add_targets()->set_url(std::string(url));
  }
}

absl::StatusOr<v1::ReturnWhen> ParseReturnWhen(absl::string_view value) {
  if (value == "all") return v1::RETURN_WHEN_ALL_COMPLETED;
  if (value == "first") return v1::RETURN_WHEN_FIRST_COMPLETED;
  if (value == "first_exception") return v1::RETURN_WHEN_FIRST_EXCEPTION;
  return UsageError(absl::StrCat("--return_when=", value,
                                 ": want all, first or first_exception"));
}

absl::StatusOr<v1::StatusRanges> ParseExpect(absl::string_view value) {
  const absl::Status error = UsageError(absl::StrCat(
      "--expect=", value, ": want status ranges such as 200-299,301"));
  v1::StatusRanges ranges;
  for (absl::string_view part : absl::StrSplit(value, ',', absl::SkipEmpty())) {
    std::pair<absl::string_view, absl::string_view> bounds =
        absl::StrSplit(part, absl::MaxSplits('-', 1));
    if (bounds.second.empty()) bounds.second = bounds.first;
    uint32_t min = 0;
    uint32_t max = 0;
    if (!absl::SimpleAtoi(bounds.first, &min) ||
        !absl::SimpleAtoi(bounds.second, &max) || min < 100 || max > 999 ||
        min > max) {
      return error;
    }
    v1::StatusRange* range = ranges.add_ranges();
    range->set_min(min);
    range->set_max(max);
  }
  if (ranges.ranges().empty()) return error;
  return ranges;
}

absl::StatusOr<v1::Header> ParseHeader(absl::string_view value) {
  const size_t colon = value.find(':');
  if (colon == absl::string_view::npos || colon == 0) {
    return UsageError(absl::StrCat("--header=", value, ": want 'Name: value'"));
  }
  v1::Header header;
  header.set_name(
      std::string(absl::StripAsciiWhitespace(value.substr(0, colon))));
  header.set_value(
      std::string(absl::StripAsciiWhitespace(value.substr(colon + 1))));
  return header;
}

}  // namespace fanprobe::cli
