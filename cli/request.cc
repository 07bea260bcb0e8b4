#include "cli/request.h"

#include <algorithm>
#include <cstdint>
#include <fstream>
#include <sstream>
#include <string>
#include <utility>
#include <vector>

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
#include "cli/input.h"
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

// Results per StreamProbes message the CLI asks for: enough that a
// large batch costs few messages, few enough that one stays far below
// gRPC's 4 MiB message limit.
constexpr uint32_t kResultsPerEvent = 256;

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
  // A server sends what completes together in one message (RemoteShare
  // hands them on one by one); the in-process engine ignores it.
  request.set_max_results_per_event(kResultsPerEvent);
  return absl::OkStatus();
}

// The whole file; `flag` ("--cacert=") names it in the error.
absl::StatusOr<std::string> ReadFile(absl::string_view flag,
                                     const std::string& path) {
  std::ifstream in(path, std::ios::binary);
  std::ostringstream content;
  if (in) content << in.rdbuf();
  if (!in || in.bad()) {
    return UsageError(absl::StrCat("cannot read ", flag, path));
  }
  return content.str();
}

// --retry, --retry-delay and --retry-all-errors, as curl's.
absl::Status ApplyRetryFlags(const ProbeFlags& flags,
                             v1::ProbeOptions& defaults) {
  if (!flags.retry.has_value()) {
    if (flags.retry_delay.has_value() || flags.retry_all_errors) {
      return UsageError("--retry-delay and --retry-all-errors need --retry N");
    }
    return absl::OkStatus();
  }
  absl::StatusOr<uint32_t> retries = ParseCountFlag("retry", *flags.retry);
  if (!retries.ok()) return retries.status();
  v1::RetryPolicy& retry = *defaults.mutable_retry();
  // Past any server's limit, which then names it.
  retry.set_max_attempts(std::min<uint32_t>(*retries, 1000000) + 1);
  if (flags.retry_delay.has_value()) {
    absl::StatusOr<absl::Duration> delay =
        ParseDurationFlag("retry-delay", *flags.retry_delay);
    if (!delay.ok()) return delay.status();
    // A fixed wait, as curl's --retry-delay.
    *retry.mutable_initial_backoff() = ToProto(*delay);
    retry.set_backoff_multiplier(1);
  }
  if (flags.retry_all_errors) {
    for (int i = v1::Outcome_MIN; i <= v1::Outcome_MAX; ++i) {
      const auto outcome = static_cast<v1::Outcome>(i);
      if (!v1::Outcome_IsValid(i) || outcome == v1::OUTCOME_UNSPECIFIED ||
          outcome == v1::OUTCOME_OK || outcome == v1::OUTCOME_CANCELLED ||
          outcome == v1::OUTCOME_INVALID_TARGET ||
          outcome == v1::OUTCOME_DENIED) {
        continue;
      }
      retry.add_retry_on(outcome);
    }
  }
  return absl::OkStatus();
}

absl::StatusOr<absl::Duration> PositiveDuration(absl::string_view flag,
                                                absl::string_view value) {
  absl::StatusOr<absl::Duration> duration = ParseDurationFlag(flag, value);
  if (!duration.ok()) return duration.status();
  if (*duration == absl::ZeroDuration()) {
    return UsageError(absl::StrCat("--", flag, " must be positive"));
  }
  return duration;
}

}  // namespace

absl::StatusOr<std::string> JoinData(const std::vector<DataFlag>& data) {
  std::string body;
  for (size_t i = 0; i < data.size(); ++i) {
    const DataFlag& flag = data[i];
    const absl::string_view name =
        flag.kind == DataFlag::Kind::kData     ? "--data="
        : flag.kind == DataFlag::Kind::kBinary ? "--data-binary="
                                               : "--data-raw=";
    std::string part = flag.value;
    if (flag.kind != DataFlag::Kind::kRaw && absl::StartsWith(part, "@")) {
      const std::string path = part.substr(1);
      if (path == "-") {
        return UsageError(absl::StrCat(
            name, part, ": stdin holds the targets; give the body in a file"));
      }
      absl::StatusOr<std::string> content = ReadFile(name, path);
      if (!content.ok()) return content.status();
      part = *std::move(content);
      // curl's -d @file drops carriage returns and newlines.
      if (flag.kind == DataFlag::Kind::kData) {
        part.erase(
            std::remove_if(part.begin(), part.end(),
                           [](char c) { return c == '\r' || c == '\n'; }),
            part.end());
      }
    }
    if (i > 0) body += '&';
    body += part;
  }
  return body;
}

absl::StatusOr<v1::ProbeOptions> BuildDefaults(const ProbeFlags& flags) {
  v1::ProbeOptions defaults;
  if (flags.method.has_value()) defaults.set_method(*flags.method);
  for (const std::string& value : flags.headers) {
    absl::StatusOr<v1::Header> header = ParseHeader(value);
    if (!header.ok()) return header.status();
    *defaults.mutable_headers()->add_headers() = *std::move(header);
  }
  if (!flags.data.empty()) {
    absl::StatusOr<std::string> body = JoinData(flags.data);
    if (!body.ok()) return body.status();
    defaults.set_body(*std::move(body));
    if (!flags.method.has_value()) defaults.set_method("POST");
  }
  if (flags.max_time.has_value()) {
    absl::StatusOr<absl::Duration> timeout =
        PositiveDuration("max-time", *flags.max_time);
    if (!timeout.ok()) return timeout.status();
    *defaults.mutable_timeout() = ToProto(*timeout);
  }
  if (flags.connect_timeout.has_value()) {
    absl::StatusOr<absl::Duration> timeout =
        PositiveDuration("connect-timeout", *flags.connect_timeout);
    if (!timeout.ok()) return timeout.status();
    *defaults.mutable_connect_timeout() = ToProto(*timeout);
  }
  if (flags.follow_redirects.has_value()) {
    defaults.set_follow_redirects(*flags.follow_redirects);
  }
  if (flags.max_redirs.has_value()) {
    absl::StatusOr<uint32_t> n =
        ParseCountFlag("max-redirs", *flags.max_redirs);
    if (!n.ok()) return n.status();
    defaults.set_max_redirects(*n);
  }
  if (absl::Status status = ApplyRetryFlags(flags, defaults); !status.ok()) {
    return status;
  }
  if (flags.insecure) defaults.set_tls_verify(false);
  if (flags.cacert.has_value()) {
    absl::StatusOr<std::string> pem = ReadFile("--cacert=", *flags.cacert);
    if (!pem.ok()) return pem.status();
    defaults.set_ca_pem(*std::move(pem));
  }
  if (flags.interface.has_value()) {
    defaults.set_source_address(*flags.interface);
  }
  if (flags.proxy.has_value()) {
    v1::Proxy& proxy = *defaults.mutable_proxy();
    proxy.set_url(*flags.proxy);
    for (const std::string& value : flags.proxy_headers) {
      absl::StatusOr<v1::Header> header = ParseHeader(value, "--proxy-header");
      if (!header.ok()) return header.status();
      *proxy.add_connect_headers() = *std::move(header);
    }
    if (flags.noproxy.has_value()) {
      for (absl::string_view entry :
           absl::StrSplit(*flags.noproxy, ',', absl::SkipWhitespace())) {
        proxy.add_no_proxy(std::string(absl::StripAsciiWhitespace(entry)));
      }
    }
    proxy.set_proxy_resolves(flags.proxy_resolves);
  } else if (!flags.proxy_headers.empty() || flags.noproxy.has_value() ||
             flags.proxy_resolves) {
    return UsageError(
        "--proxy-header, --noproxy and --proxy-resolves need -x/--proxy");
  }
  if (flags.tls_min.has_value()) {
    defaults.set_tls_min_version(*flags.tls_min == "1.3" ? v1::TLS_VERSION_1_3
                                                         : v1::TLS_VERSION_1_2);
  }
  if (flags.tls_max.has_value()) {
    if (*flags.tls_max == "1.2") {
      defaults.set_tls_max_version(v1::TLS_VERSION_1_2);
    } else if (*flags.tls_max == "1.3" || *flags.tls_max == "default") {
      defaults.set_tls_max_version(v1::TLS_VERSION_1_3);
    } else {
      return absl::InvalidArgumentError(
          absl::StrCat("--tls-max=", *flags.tls_max,
                       ": want 1.2, 1.3 or default (nothing older than TLS "
                       "1.2 is offered)"));
    }
  }
  if (flags.http_version.has_value()) {
    defaults.set_http_version(
        *flags.http_version == "2" ? v1::HTTP_VERSION_2 : v1::HTTP_VERSION_1_1);
  }
  if (flags.ip_family.has_value()) {
    defaults.set_ip_family(*flags.ip_family == "6" ? v1::IP_FAMILY_IPV6
                                                   : v1::IP_FAMILY_IPV4);
  }
  if (flags.user_agent.has_value()) defaults.set_user_agent(*flags.user_agent);
  if (flags.max_filesize.has_value()) {
    absl::StatusOr<uint64_t> bytes =
        ParseBytesFlag("max-filesize", *flags.max_filesize);
    if (!bytes.ok()) return bytes.status();
    defaults.set_max_body_bytes(*bytes);
  }
  if (flags.expect.has_value()) {
    absl::StatusOr<v1::StatusRanges> ranges = ParseExpect(*flags.expect);
    if (!ranges.ok()) return ranges.status();
    *defaults.mutable_valid_status() = *std::move(ranges);
  }
  for (const std::string& pattern : flags.body_must_match) {
    defaults.mutable_body_must_match()->add_patterns(pattern);
  }
  for (const std::string& pattern : flags.body_must_not_match) {
    defaults.mutable_body_must_not_match()->add_patterns(pattern);
  }
  if (flags.reuse_connections) defaults.set_reuse_connections(true);
  return defaults;
}

absl::StatusOr<v1::ProbeBatchRequest> BuildRequest(const ProbeFlags& flags,
                                                   Stdin& in,
                                                   TargetOrigins* origins) {
  v1::ProbeBatchRequest request;
  if (absl::Status status = ApplyBatchFlags(flags, request); !status.ok()) {
    return status;
  }
  absl::StatusOr<v1::ProbeOptions> defaults = BuildDefaults(flags);
  if (!defaults.ok()) return defaults.status();
  *request.mutable_defaults() = *std::move(defaults);
  if (absl::Status status = AddTargets(flags, in, request, origins);
      !status.ok()) {
    return status;
  }
  return request;
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

absl::StatusOr<v1::Header> ParseHeader(absl::string_view value,
                                       absl::string_view flag) {
  const size_t colon = value.find(':');
  if (colon == absl::string_view::npos || colon == 0) {
    return UsageError(absl::StrCat(flag, "=", value, ": want 'Name: value'"));
  }
  v1::Header header;
  header.set_name(
      std::string(absl::StripAsciiWhitespace(value.substr(0, colon))));
  header.set_value(
      std::string(absl::StripAsciiWhitespace(value.substr(colon + 1))));
  return header;
}

}  // namespace fanprobe::cli
