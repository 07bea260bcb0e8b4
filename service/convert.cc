#include "service/convert.h"

#include <algorithm>
#include <climits>
#include <cstdint>
#include <memory>
#include <string>
#include <utility>
#include <vector>

#include "absl/status/status.h"
#include "absl/status/statusor.h"
#include "absl/strings/ascii.h"
#include "absl/strings/str_cat.h"
#include "absl/strings/string_view.h"
#include "absl/time/time.h"
#include "google/protobuf/any.pb.h"
#include "google/protobuf/duration.pb.h"
#include "google/protobuf/io/coded_stream.h"
#include "google/protobuf/io/zero_copy_stream_impl_lite.h"
#include "google/protobuf/wire_format_lite.h"
#include "proto/duration.h"

namespace fanprobe::service {
namespace {

// Where a ProbeOptions message sits in the request, for error messages:
// "defaults" or "targets[<index>].options".  Formatted only on error, so a
// 100,000-target batch builds no strings when it is valid.
struct OptionsPath {
  int64_t target_index = -1;  // -1: the request's defaults

  std::string Prefix() const {
    if (target_index < 0) return "defaults";
    return absl::StrCat("targets[", target_index, "].options");
  }
  std::string Field(absl::string_view field) const {
    return absl::StrCat(Prefix(), ".", field);
  }
};

absl::Status FieldError(absl::string_view field, absl::string_view problem) {
  return absl::InvalidArgumentError(absl::StrCat(field, ": ", problem));
}

// A Duration the caller sent: valid for its type (proto/duration.h) and
// not negative.
absl::StatusOr<absl::Duration> RequestDuration(
    const google::protobuf::Duration& proto, absl::string_view field) {
  absl::StatusOr<absl::Duration> duration = DurationFromProto(proto);
  if (!duration.ok()) return FieldError(field, duration.status().message());
  if (*duration < absl::ZeroDuration()) {
    return FieldError(
        field, absl::StrCat("must not be negative, got ", proto.seconds(), "s ",
                            proto.nanos(), "ns"));
  }
  return *duration;
}

absl::StatusOr<ReturnWhen> ReturnWhenFromProto(v1::ReturnWhen proto) {
  switch (proto) {
    case v1::RETURN_WHEN_UNSPECIFIED:
    case v1::RETURN_WHEN_ALL_COMPLETED:
      return ReturnWhen::kAllCompleted;
    case v1::RETURN_WHEN_FIRST_COMPLETED:
      return ReturnWhen::kFirstCompleted;
    case v1::RETURN_WHEN_FIRST_EXCEPTION:
      return ReturnWhen::kFirstException;
    default:
      return FieldError("return_when", absl::StrCat("unknown ReturnWhen value ",
                                                    static_cast<int>(proto)));
  }
}

absl::StatusOr<HttpVersion> HttpVersionFromProto(v1::HttpVersion proto,
                                                 absl::string_view field) {
  switch (proto) {
    case v1::HTTP_VERSION_UNSPECIFIED:
      return HttpVersion::kDefault;
    case v1::HTTP_VERSION_1_1:
      return HttpVersion::kHttp1_1;
    case v1::HTTP_VERSION_2:
      return HttpVersion::kHttp2;
    default:
      return FieldError(field, absl::StrCat("unknown HttpVersion value ",
                                            static_cast<int>(proto)));
  }
}

// The engine's defaults, made once: what an unspecified enum value means.
const ProbeOptions& EngineDefaults() {
  static const auto* const defaults = new ProbeOptions();
  return *defaults;
}

// TLS_VERSION_UNSPECIFIED is the field's own default, `unspecified`.
absl::StatusOr<TlsVersion> TlsVersionFromProto(v1::TlsVersion proto,
                                               TlsVersion unspecified,
                                               absl::string_view field) {
  switch (proto) {
    case v1::TLS_VERSION_UNSPECIFIED:
      return unspecified;
    case v1::TLS_VERSION_1_2:
      return TlsVersion::kTls1_2;
    case v1::TLS_VERSION_1_3:
      return TlsVersion::kTls1_3;
    default:
      return FieldError(field, absl::StrCat("unknown TlsVersion value ",
                                            static_cast<int>(proto)));
  }
}

absl::StatusOr<IpFamily> IpFamilyFromProto(v1::IpFamily proto,
                                           absl::string_view field) {
  switch (proto) {
    case v1::IP_FAMILY_UNSPECIFIED:
      return IpFamily::kAny;
    case v1::IP_FAMILY_IPV4:
      return IpFamily::kIpv4;
    case v1::IP_FAMILY_IPV6:
      return IpFamily::kIpv6;
    default:
      return FieldError(field, absl::StrCat("unknown IpFamily value ",
                                            static_cast<int>(proto)));
  }
}

std::vector<HeaderPattern> HeaderPatternsFromProto(
    const google::protobuf::RepeatedPtrField<v1::HeaderPattern>& protos) {
  std::vector<HeaderPattern> patterns;
  patterns.reserve(protos.size());
  for (const v1::HeaderPattern& proto : protos) {
    patterns.push_back({.name = proto.name(),
                        .pattern = proto.pattern(),
                        .allow_missing = proto.allow_missing()});
  }
  return patterns;
}

// The engine's outcome of an attempt's `proto` outcome; what no attempt
// ends with (UNSPECIFIED, CANCELLED, an unknown value) is an error at
// `field`.
absl::StatusOr<Outcome> AttemptOutcomeFromProto(v1::Outcome proto,
                                                absl::string_view field) {
  for (int i = 0; i < kNumOutcomes; ++i) {
    const Outcome outcome = static_cast<Outcome>(i);
    if (OutcomeToProto(outcome) == proto) return outcome;
  }
  return FieldError(field,
                    absl::StrCat(v1::Outcome_IsValid(proto)
                                     ? v1::Outcome_Name(proto)
                                     : absl::StrCat(static_cast<int>(proto)),
                                 " is not an outcome a probe ends with"));
}

// The whole policy `proto` sets; its unset fields take the engine's
// defaults.
absl::StatusOr<RetryPolicy> RetryFromProto(const v1::RetryPolicy& proto,
                                           const OptionsPath& path) {
  RetryPolicy retry;
  if (proto.max_attempts() > 0) {
    retry.max_attempts =
        static_cast<int>(std::min<uint32_t>(proto.max_attempts(), INT_MAX));
  }
  if (proto.has_initial_backoff()) {
    absl::StatusOr<absl::Duration> backoff = RequestDuration(
        proto.initial_backoff(), path.Field("retry.initial_backoff"));
    if (!backoff.ok()) return backoff.status();
    retry.initial_backoff = *backoff;
  }
  if (proto.has_max_backoff()) {
    absl::StatusOr<absl::Duration> backoff =
        RequestDuration(proto.max_backoff(), path.Field("retry.max_backoff"));
    if (!backoff.ok()) return backoff.status();
    retry.max_backoff = *backoff;
  }
  if (proto.has_backoff_multiplier()) {
    retry.backoff_multiplier = proto.backoff_multiplier();
  }
  if (!proto.retry_on().empty()) {
    retry.retry_on.clear();
    for (int i = 0; i < proto.retry_on_size(); ++i) {
      absl::StatusOr<Outcome> outcome = AttemptOutcomeFromProto(
          proto.retry_on(i),
          path.Field(absl::StrCat("retry.retry_on[", i, "]")));
      if (!outcome.ok()) return outcome.status();
      retry.retry_on.push_back(*outcome);
    }
  }
  return retry;
}

// Overrides the fields of `options` that `proto` sets.
absl::Status ApplyOptions(const v1::ProbeOptions& proto,
                          const OptionsPath& path, ProbeOptions& options) {
  if (proto.has_method()) options.method = proto.method();
  if (proto.has_headers()) {
    options.headers.clear();
    for (const v1::Header& header : proto.headers().headers()) {
      options.headers.emplace_back(header.name(), header.value());
    }
  }
  if (proto.has_body()) options.body = proto.body();
  if (proto.has_timeout()) {
    absl::StatusOr<absl::Duration> timeout =
        RequestDuration(proto.timeout(), path.Field("timeout"));
    if (!timeout.ok()) return timeout.status();
    if (*timeout == absl::ZeroDuration()) {
      return FieldError(path.Field("timeout"), "must be positive");
    }
    options.timeout = *timeout;
  }
  if (proto.has_connect_timeout()) {
    absl::StatusOr<absl::Duration> connect_timeout =
        RequestDuration(proto.connect_timeout(), path.Field("connect_timeout"));
    if (!connect_timeout.ok()) return connect_timeout.status();
    options.connect_timeout = *connect_timeout;
  }
  if (proto.has_follow_redirects()) {
    options.follow_redirects = proto.follow_redirects();
  }
  if (proto.has_max_redirects()) {
    options.max_redirects =
        static_cast<int>(std::min<uint32_t>(proto.max_redirects(), INT_MAX));
  }
  if (proto.has_valid_status()) {
    options.valid_status.clear();
    const auto& ranges = proto.valid_status().ranges();
    for (int i = 0; i < ranges.size(); ++i) {
      const v1::StatusRange& range = ranges[i];
      if (range.min() < 100 || range.max() > 999 || range.min() > range.max()) {
        return FieldError(
            path.Field(absl::StrCat("valid_status.ranges[", i, "]")),
            absl::StrCat("want 100 <= min <= max <= 999, got ", range.min(),
                         "-", range.max()));
      }
      options.valid_status.push_back(
          {static_cast<int>(range.min()), static_cast<int>(range.max())});
    }
    // No range means the engine's default.
    if (options.valid_status.empty()) {
      options.valid_status = ProbeOptions().valid_status;
    }
  }
  if (proto.has_body_must_match()) {
    const auto& patterns = proto.body_must_match().patterns();
    options.body_must_match.assign(patterns.begin(), patterns.end());
  }
  if (proto.has_body_must_not_match()) {
    const auto& patterns = proto.body_must_not_match().patterns();
    options.body_must_not_match.assign(patterns.begin(), patterns.end());
  }
  if (proto.has_max_body_bytes()) {
    options.max_body_bytes = proto.max_body_bytes();
  }
  if (proto.has_tls_verify()) options.tls_verify = proto.tls_verify();
  if (proto.has_ca_pem()) options.ca_pem = proto.ca_pem();
  if (proto.has_proxy()) {
    options.proxy.reset();
    if (!proto.proxy().url().empty()) {
      ProxyOptions& proxy = options.proxy.emplace();
      proxy.url = proto.proxy().url();
      for (const v1::Header& header : proto.proxy().connect_headers()) {
        proxy.connect_headers.emplace_back(header.name(), header.value());
      }
      proxy.no_proxy.assign(proto.proxy().no_proxy().begin(),
                            proto.proxy().no_proxy().end());
      proxy.proxy_resolves = proto.proxy().proxy_resolves();
    }
  }
  if (proto.has_tls_server_name()) {
    options.tls_server_name = proto.tls_server_name();
  }
  if (proto.has_source_address()) {
    options.source_address = proto.source_address();
  }
  if (proto.has_retry()) {
    absl::StatusOr<RetryPolicy> retry = RetryFromProto(proto.retry(), path);
    if (!retry.ok()) return retry.status();
    options.retry = *std::move(retry);
  }
  if (proto.has_http_version()) {
    absl::StatusOr<HttpVersion> version =
        HttpVersionFromProto(proto.http_version(), path.Field("http_version"));
    if (!version.ok()) return version.status();
    options.http_version = *version;
  }
  if (proto.has_tls_min_version()) {
    absl::StatusOr<TlsVersion> version = TlsVersionFromProto(
        proto.tls_min_version(), EngineDefaults().tls_min_version,
        path.Field("tls_min_version"));
    if (!version.ok()) return version.status();
    options.tls_min_version = *version;
  }
  if (proto.has_tls_max_version()) {
    absl::StatusOr<TlsVersion> version = TlsVersionFromProto(
        proto.tls_max_version(), EngineDefaults().tls_max_version,
        path.Field("tls_max_version"));
    if (!version.ok()) return version.status();
    options.tls_max_version = *version;
  }
  if (proto.has_ip_family()) {
    absl::StatusOr<IpFamily> family =
        IpFamilyFromProto(proto.ip_family(), path.Field("ip_family"));
    if (!family.ok()) return family.status();
    options.ip_family = *family;
  }
  if (proto.has_reuse_connections()) {
    options.reuse_connections = proto.reuse_connections();
  }
  if (proto.has_user_agent()) options.user_agent = proto.user_agent();
  if (proto.has_header_must_match()) {
    options.header_must_match =
        HeaderPatternsFromProto(proto.header_must_match().patterns());
  }
  if (proto.has_header_must_not_match()) {
    options.header_must_not_match =
        HeaderPatternsFromProto(proto.header_must_not_match().patterns());
  }
  if (proto.has_keep_response_headers()) {
    options.keep_response_headers = proto.keep_response_headers();
  }
  if (proto.has_max_response_headers()) {
    options.max_response_headers = static_cast<int>(
        std::min<uint32_t>(proto.max_response_headers(), INT_MAX));
  }
  if (proto.has_max_response_header_bytes()) {
    options.max_response_header_bytes = proto.max_response_header_bytes();
  }
  // An empty message means none, so that a target can drop what it
  // inherits.
  if (proto.has_basic_auth()) {
    options.basic_auth.reset();
    if (!proto.basic_auth().username().empty() ||
        !proto.basic_auth().password().empty()) {
      options.basic_auth = BasicAuth{.username = proto.basic_auth().username(),
                                     .password = proto.basic_auth().password()};
    }
  }
  if (proto.has_bearer_token()) options.bearer_token = proto.bearer_token();
  if (proto.has_accept_encoding()) {
    options.accept_encoding = proto.accept_encoding();
  }
  if (proto.has_client_certificate()) {
    options.client_certificate.reset();
    if (!proto.client_certificate().cert_pem().empty() ||
        !proto.client_certificate().key_pem().empty()) {
      options.client_certificate =
          ClientCertificate{.cert_pem = proto.client_certificate().cert_pem(),
                            .key_pem = proto.client_certificate().key_pem()};
    }
  }
  return absl::OkStatus();
}

void TimingsToProto(const Timings& timings, v1::Timings* proto) {
  DurationToProto(timings.dns, proto->mutable_dns());
  DurationToProto(timings.connect, proto->mutable_connect());
  DurationToProto(timings.tls, proto->mutable_tls());
  DurationToProto(timings.first_byte, proto->mutable_first_byte());
  DurationToProto(timings.total, proto->mutable_total());
  DurationToProto(timings.redirect, proto->mutable_redirect());
}

// The request's path of an engine field: the proto wraps list fields in a
// message, so the engine's "headers[2].value" is the request's
// "headers.headers[2].value", "valid_status[0]" is "valid_status.ranges[0]"
// and "body_must_match[1]" is "body_must_match.patterns[1]".
std::string ProtoFieldPath(absl::string_view engine_field) {
  const size_t bracket = engine_field.find('[');
  if (bracket == absl::string_view::npos) return std::string(engine_field);
  const absl::string_view list = engine_field.substr(0, bracket);
  absl::string_view element;
  if (list == "headers") {
    element = "headers";
  } else if (list == "valid_status") {
    element = "ranges";
  } else if (list == "body_must_match" || list == "body_must_not_match" ||
             list == "header_must_match" || list == "header_must_not_match") {
    element = "patterns";
  } else {
    return std::string(engine_field);
  }
  return absl::StrCat(list, ".", element, engine_field.substr(bracket));
}

// The engine's verdict on one ProbeOptions, with its field placed at `path`.
absl::Status CheckWithEngine(const ProbeOptions& options,
                             const OptionsPath& path, const Engine& engine) {
  absl::Status status = engine.CheckOptions(options);
  if (status.ok()) return status;
  const absl::string_view message = status.message();
  const size_t colon = message.find(": ");
  if (colon == absl::string_view::npos) {
    return absl::Status(status.code(),
                        absl::StrCat(path.Prefix(), ": ", message));
  }
  return absl::Status(
      status.code(),
      absl::StrCat(path.Field(ProtoFieldPath(message.substr(0, colon))),
                   message.substr(colon)));
}

}  // namespace

namespace {

// The request's settings: everything but its targets.  Checked against the
// engine when `engine` is set.
absl::StatusOr<BatchRequest> Settings(const v1::ProbeBatchRequest& request,
                                      const RequestLimits& limits,
                                      const Engine* engine) {
  BatchRequest batch;
  absl::StatusOr<ReturnWhen> return_when =
      ReturnWhenFromProto(request.return_when());
  if (!return_when.ok()) return return_when.status();
  batch.options.return_when = *return_when;
  if (request.has_timeout()) {
    absl::StatusOr<absl::Duration> timeout =
        RequestDuration(request.timeout(), "timeout");
    if (!timeout.ok()) return timeout.status();
    batch.options.timeout = *timeout;
  }
  const uint32_t concurrency = request.max_concurrency() == 0
                                   ? limits.default_concurrency
                                   : request.max_concurrency();
  batch.options.max_concurrency = std::min(concurrency, limits.max_in_flight);
  batch.options.max_per_host = request.max_per_host();

  auto defaults = std::make_shared<ProbeOptions>();
  // A server may cap below the engine's defaults; what nobody asked for
  // then takes the cap.
  if (engine != nullptr) {
    const ProbeLimits& caps = engine->Limits();
    defaults->max_body_bytes =
        std::min(defaults->max_body_bytes, caps.max_body_bytes);
    defaults->max_redirects =
        std::min(defaults->max_redirects, caps.max_redirects);
    defaults->max_response_headers =
        std::min(defaults->max_response_headers, caps.max_response_headers);
    defaults->max_response_header_bytes = std::min(
        defaults->max_response_header_bytes, caps.max_response_header_bytes);
  }
  if (absl::Status status = ApplyOptions(request.defaults(), {}, *defaults);
      !status.ok()) {
    return status;
  }
  if (engine != nullptr) {
    if (absl::Status status = CheckWithEngine(*defaults, {}, *engine);
        !status.ok()) {
      return status;
    }
  }
  batch.defaults = std::move(defaults);
  return batch;
}

// Appends `targets` to `batch`, the first with index `first_index` (in
// error paths), with the batch's defaults.
absl::Status AppendTargets(
    const google::protobuf::RepeatedPtrField<v1::ProbeTarget>& targets,
    int64_t first_index, const Engine* engine, BatchRequest& batch) {
  batch.targets.reserve(batch.targets.size() + targets.size());
  for (int i = 0; i < targets.size(); ++i) {
    const v1::ProbeTarget& proto = targets[i];
    const int64_t index = first_index + i;
    ProbeTarget& target = batch.targets.emplace_back();
    target.url = proto.url();
    target.id = proto.id();
    target.labels.insert(proto.labels().begin(), proto.labels().end());
    if (proto.has_options()) {
      auto options = std::make_shared<ProbeOptions>(*batch.defaults);
      if (absl::Status status =
              ApplyOptions(proto.options(), {.target_index = index}, *options);
          !status.ok()) {
        return status;
      }
      if (engine != nullptr) {
        if (absl::Status status =
                CheckWithEngine(*options, {.target_index = index}, *engine);
            !status.ok()) {
          return status;
        }
      }
      target.options = std::move(options);
    } else {
      target.options = batch.defaults;
    }
  }
  return absl::OkStatus();
}

absl::Status CheckTargetCount(uint64_t count, const RequestLimits& limits) {
  if (count > limits.max_batch_targets) {
    return FieldError(
        "targets",
        absl::StrCat(count, " targets, more than the server's limit of ",
                     limits.max_batch_targets));
  }
  return absl::OkStatus();
}

// BatchFromProto with (`engine` set) or without the engine's checks.
absl::StatusOr<BatchRequest> Convert(const v1::ProbeBatchRequest& request,
                                     const RequestLimits& limits,
                                     const Engine* engine) {
  const auto& targets = request.targets();
  if (targets.empty()) {
    return FieldError("targets", "at least one target is required");
  }
  if (absl::Status status = CheckTargetCount(targets.size(), limits);
      !status.ok()) {
    return status;
  }
  absl::StatusOr<BatchRequest> batch = Settings(request, limits, engine);
  if (!batch.ok()) return batch.status();
  if (absl::Status status = AppendTargets(targets, 0, engine, *batch);
      !status.ok()) {
    return status;
  }
  return batch;
}

}  // namespace

absl::StatusOr<BatchRequest> BatchFromProto(
    const v1::ProbeBatchRequest& request, const RequestLimits& limits,
    const Engine& engine) {
  return Convert(request, limits, &engine);
}

absl::StatusOr<BatchRequest> BatchFromProto(
    const v1::ProbeBatchRequest& request, const RequestLimits& limits) {
  return Convert(request, limits, nullptr);
}

absl::StatusOr<BatchRequest> StreamFromProto(
    const v1::ProbeStreamRequest& first, const RequestLimits& limits,
    const Engine& engine) {
  if (!first.has_batch()) {
    return FieldError("batch",
                      "the first message must hold the batch's settings");
  }
  if (absl::Status status =
          CheckTargetCount(static_cast<uint64_t>(first.batch().targets_size()) +
                               first.targets_size(),
                           limits);
      !status.ok()) {
    return status;
  }
  absl::StatusOr<BatchRequest> batch = Settings(first.batch(), limits, &engine);
  if (!batch.ok()) {
    // Its fields sit in `batch` here.
    return absl::InvalidArgumentError(
        absl::StrCat("batch.", batch.status().message()));
  }
  if (absl::Status status =
          AppendTargets(first.batch().targets(), 0, &engine, *batch);
      !status.ok()) {
    return status;
  }
  if (absl::Status status = AppendTargets(
          first.targets(), first.batch().targets_size(), &engine, *batch);
      !status.ok()) {
    return status;
  }
  return batch;
}

absl::StatusOr<std::vector<ProbeTarget>> StreamTargetsFromProto(
    const v1::ProbeStreamRequest& message, uint64_t first_index,
    const BatchRequest& stream, const RequestLimits& limits,
    const Engine& engine) {
  if (message.has_batch()) {
    return FieldError("batch", "only the first message may hold it");
  }
  if (absl::Status status = CheckTargetCount(message.targets_size(), limits);
      !status.ok()) {
    return status;
  }
  if (first_index + static_cast<uint64_t>(message.targets_size()) >
      UINT32_MAX) {
    return FieldError("targets", absl::StrCat("a stream holds at most ",
                                              UINT32_MAX, " targets"));
  }
  BatchRequest batch;
  batch.defaults = stream.defaults;
  if (absl::Status status = AppendTargets(
          message.targets(), static_cast<int64_t>(first_index), &engine, batch);
      !status.ok()) {
    return status;
  }
  return std::move(batch.targets);
}

absl::Duration EffectiveTimeout(absl::Duration requested, absl::Time deadline,
                                absl::Time now, absl::Duration max_margin) {
  if (deadline == absl::InfiniteFuture()) {
    return std::max(requested, absl::ZeroDuration());
  }
  const absl::Duration left = deadline - now;
  const absl::Duration margin = std::min(max_margin, left / 5);
  return std::max(std::min(requested, left - margin), absl::ZeroDuration());
}

// The proto has every engine outcome, plus UNSPECIFIED and CANCELLED (which
// the engine never reports): an outcome added on one side only fails here.
static_assert(v1::Outcome_ARRAYSIZE == kNumOutcomes + 2,
              "fanprobe.v1.Outcome and fanprobe::Outcome disagree");

v1::Outcome OutcomeToProto(Outcome outcome) {
  switch (outcome) {
    case Outcome::kOk:
      return v1::OUTCOME_OK;
    case Outcome::kUnexpectedStatus:
      return v1::OUTCOME_UNEXPECTED_STATUS;
    case Outcome::kBodyMismatch:
      return v1::OUTCOME_BODY_MISMATCH;
    case Outcome::kDnsError:
      return v1::OUTCOME_DNS_ERROR;
    case Outcome::kConnectError:
      return v1::OUTCOME_CONNECT_ERROR;
    case Outcome::kTlsError:
      return v1::OUTCOME_TLS_ERROR;
    case Outcome::kTimeout:
      return v1::OUTCOME_TIMEOUT;
    case Outcome::kIoError:
      return v1::OUTCOME_IO_ERROR;
    case Outcome::kTooManyRedirects:
      return v1::OUTCOME_TOO_MANY_REDIRECTS;
    case Outcome::kBodyTooLarge:
      return v1::OUTCOME_BODY_TOO_LARGE;
    case Outcome::kDenied:
      return v1::OUTCOME_DENIED;
    case Outcome::kInvalidTarget:
      return v1::OUTCOME_INVALID_TARGET;
    case Outcome::kHeaderMismatch:
      return v1::OUTCOME_HEADER_MISMATCH;
  }
  return v1::OUTCOME_UNSPECIFIED;
}

v1::EndReason EndReasonToProto(EndReason reason) {
  switch (reason) {
    case EndReason::kAllCompleted:
      return v1::END_REASON_ALL_COMPLETED;
    case EndReason::kFirstCompleted:
      return v1::END_REASON_FIRST_COMPLETED;
    case EndReason::kFirstException:
      return v1::END_REASON_FIRST_EXCEPTION;
    case EndReason::kTimeout:
      return v1::END_REASON_TIMEOUT;
    case EndReason::kCancelled:
      return v1::END_REASON_CANCELLED;
  }
  return v1::END_REASON_UNSPECIFIED;
}

v1::DnsFailure DnsFailureToProto(DnsFailure failure) {
  switch (failure) {
    case DnsFailure::kNone:
      return v1::DNS_FAILURE_UNSPECIFIED;
    case DnsFailure::kNxDomain:
      return v1::DNS_FAILURE_NXDOMAIN;
    case DnsFailure::kNoData:
      return v1::DNS_FAILURE_NODATA;
    case DnsFailure::kServFail:
      return v1::DNS_FAILURE_SERVFAIL;
    case DnsFailure::kRefused:
      return v1::DNS_FAILURE_REFUSED;
    case DnsFailure::kTimeout:
      return v1::DNS_FAILURE_TIMEOUT;
    case DnsFailure::kOther:
      return v1::DNS_FAILURE_OTHER;
  }
  return v1::DNS_FAILURE_OTHER;
}

v1::ProbeResult ResultToProto(ProbeResult result) {
  v1::ProbeResult proto;
  proto.set_index(result.index);
  proto.set_id(std::move(result.id));
  proto.mutable_labels()->insert(result.labels.begin(), result.labels.end());
  proto.set_url(std::move(result.url));
  proto.set_outcome(OutcomeToProto(result.outcome));
  proto.set_status_code(static_cast<uint32_t>(std::max(result.status_code, 0)));
  proto.set_error(std::move(result.error));
  TimingsToProto(result.timings, proto.mutable_timings());
  proto.set_final_url(std::move(result.final_url));
  proto.set_http_version(std::string(ResponseVersionName(result.http_version)));
  proto.set_remote_ip(std::move(result.remote_ip));
  proto.set_remote_port(static_cast<uint32_t>(std::max(result.remote_port, 0)));
  proto.set_body_bytes(result.body_bytes);
  proto.set_redirects(static_cast<uint32_t>(std::max(result.redirects, 0)));
  if (result.cert_expiry.has_value()) {
    TimeToProto(*result.cert_expiry, proto.mutable_cert_expiry());
  }
  proto.set_dns_failure(DnsFailureToProto(result.dns_failure));
  proto.mutable_hops()->Reserve(static_cast<int>(result.hops.size()));
  for (Hop& hop : result.hops) {
    v1::Hop* out = proto.add_hops();
    out->set_url(std::move(hop.url));
    out->set_status_code(static_cast<uint32_t>(std::max(hop.status_code, 0)));
    out->set_location(std::move(hop.location));
    out->set_remote_ip(std::move(hop.remote_ip));
    out->set_remote_port(static_cast<uint32_t>(std::max(hop.remote_port, 0)));
    for (std::string& address : hop.addresses) {
      out->add_addresses(std::move(address));
    }
    TimingsToProto(hop.timings, out->mutable_timings());
  }
  if (result.tls.has_value()) {
    v1::TlsInfo* tls = proto.mutable_tls();
    tls->set_version(std::move(result.tls->version));
    tls->set_cipher(std::move(result.tls->cipher));
    tls->set_resumed(result.tls->resumed);
    for (CertificateInfo& certificate : result.tls->chain) {
      v1::CertificateInfo* out = tls->add_chain();
      out->set_subject(std::move(certificate.subject));
      out->set_issuer(std::move(certificate.issuer));
      out->set_serial(std::move(certificate.serial));
      out->set_sha256_fingerprint(std::move(certificate.sha256_fingerprint));
      TimeToProto(certificate.not_before, out->mutable_not_before());
      TimeToProto(certificate.not_after, out->mutable_not_after());
      for (std::string& name : certificate.dns_names) {
        out->add_dns_names(std::move(name));
      }
    }
  }
  if (result.prober_lag > absl::ZeroDuration()) {
    DurationToProto(result.prober_lag, proto.mutable_prober_lag());
  }
  proto.mutable_response_headers()->Reserve(
      static_cast<int>(result.response_headers.size()));
  for (auto& [name, value] : result.response_headers) {
    v1::Header* out = proto.add_response_headers();
    out->set_name(std::move(name));
    out->set_value(std::move(value));
  }
  proto.set_decoded_body_bytes(result.decoded_body_bytes);
  if (result.content_length.has_value()) {
    proto.set_content_length(*result.content_length);
  }
  if (result.last_modified.has_value()) {
    TimeToProto(*result.last_modified, proto.mutable_last_modified());
  }
  proto.mutable_attempts()->Reserve(static_cast<int>(result.attempts.size()));
  for (Attempt& attempt : result.attempts) {
    v1::Attempt* out = proto.add_attempts();
    out->set_outcome(OutcomeToProto(attempt.outcome));
    out->set_status_code(
        static_cast<uint32_t>(std::max(attempt.status_code, 0)));
    out->set_error(std::move(attempt.error));
    out->set_dns_failure(DnsFailureToProto(attempt.dns_failure));
    out->set_remote_ip(std::move(attempt.remote_ip));
    out->set_remote_port(
        static_cast<uint32_t>(std::max(attempt.remote_port, 0)));
    DurationToProto(attempt.start, out->mutable_start());
    TimingsToProto(attempt.timings, out->mutable_timings());
  }
  return proto;
}

v1::BatchSummary SummaryToProto(const BatchSummary& summary) {
  v1::BatchSummary proto;
  proto.set_reason(EndReasonToProto(summary.reason));
  proto.set_total(summary.total);
  proto.set_completed(summary.completed);
  proto.set_succeeded(summary.succeeded);
  proto.set_failed(summary.failed);
  proto.set_cancelled(summary.cancelled);
  proto.mutable_pending_indices()->Add(summary.pending_indices.begin(),
                                       summary.pending_indices.end());
  DurationToProto(summary.elapsed, proto.mutable_elapsed());
  return proto;
}

namespace {

// A request field's path as the errors spell it: names and [index]es
// joined by dots ("targets[3].options.headers.headers[1].value").
bool IsFieldPath(absl::string_view path) {
  bool name_expected = true;  // at the start, and after a dot
  for (size_t i = 0; i < path.size(); ++i) {
    const char c = path[i];
    if (absl::ascii_islower(c) || c == '_' ||
        (!name_expected && absl::ascii_isdigit(c))) {
      name_expected = false;
    } else if (c == '.' && !name_expected) {
      name_expected = true;
    } else if (c == '[' && !name_expected) {
      const size_t close = path.find(']', i);
      if (close == absl::string_view::npos || close == i + 1) return false;
      for (size_t j = i + 1; j < close; ++j) {
        if (!absl::ascii_isdigit(path[j])) return false;
      }
      i = close;
    } else {
      return false;
    }
  }
  return !path.empty() && !name_expected;
}

// google.rpc.Status {code = 1, message = 2, repeated Any details = 3}, the
// richer error model every gRPC library reads from grpc-status-details-bin;
// written by hand, as no Debian package ships its .proto.
std::string RpcStatusBytes(int code, absl::string_view message,
                           const google::protobuf::Any& detail) {
  using google::protobuf::internal::WireFormatLite;
  std::string bytes;
  {
    google::protobuf::io::StringOutputStream stream(&bytes);
    google::protobuf::io::CodedOutputStream out(&stream);
    WireFormatLite::WriteInt32(1, code, &out);
    WireFormatLite::WriteString(2, std::string(message), &out);
    WireFormatLite::WriteBytes(3, detail.SerializeAsString(), &out);
  }
  return bytes;
}

}  // namespace

grpc::Status ToGrpcStatus(const absl::Status& status) {
  if (status.ok()) return grpc::Status::OK;
  const auto code = static_cast<grpc::StatusCode>(status.code());
  std::string message(status.message());
  const size_t colon = message.find(": ");
  if (status.code() != absl::StatusCode::kInvalidArgument ||
      colon == std::string::npos ||
      !IsFieldPath(absl::string_view(message).substr(0, colon))) {
    return grpc::Status(code, std::move(message));
  }
  v1::FieldViolation violation;
  violation.set_field(message.substr(0, colon));
  violation.set_description(message.substr(colon + 2));
  google::protobuf::Any detail;
  detail.PackFrom(violation);
  std::string details = RpcStatusBytes(code, message, detail);
  return grpc::Status(code, std::move(message), std::move(details));
}

}  // namespace fanprobe::service
