#include "probe/internal/prepared_options.h"

#include <algorithm>
#include <utility>

#include "absl/strings/ascii.h"
#include "absl/strings/escaping.h"
#include "absl/strings/match.h"
#include "absl/strings/str_cat.h"
#include "absl/strings/str_join.h"
#include "absl/strings/str_split.h"
#include "probe/internal/target_url.h"

namespace fanprobe::internal {
namespace {

absl::Status FieldError(absl::string_view field, absl::string_view problem) {
  return absl::InvalidArgumentError(absl::StrCat(field, ": ", problem));
}

// A token (RFC 9110 5.6.2): methods and header names.
bool IsToken(absl::string_view s) {
  static constexpr absl::string_view kSeparators = "()<>@,;:\\\"/[]?={} \t";
  return !s.empty() && std::none_of(s.begin(), s.end(), [](char c) {
    return static_cast<unsigned char>(c) <= 0x20 ||
           static_cast<unsigned char>(c) >= 0x7f ||
           absl::StrContains(kSeparators, c);
  });
}

// A field value (RFC 9110 5.5) holds no control character but HTAB: no CR
// or LF to end the line early, no NUL to cut it.
bool IsFieldValue(absl::string_view s) {
  return std::none_of(s.begin(), s.end(), [](char c) {
    return c != '\t' && (static_cast<unsigned char>(c) < 0x20 || c == 0x7f);
  });
}

absl::Status CompilePatterns(const std::vector<std::string>& patterns,
                             absl::string_view field,
                             std::vector<std::unique_ptr<re2::RE2>>* out) {
  re2::RE2::Options re2_options;
  re2_options.set_log_errors(false);
  for (size_t i = 0; i < patterns.size(); ++i) {
    auto re = std::make_unique<re2::RE2>(patterns[i], re2_options);
    if (!re->ok()) {
      return FieldError(absl::StrCat(field, "[", i, "]"),
                        absl::StrCat("not a valid RE2 pattern: ", re->error()));
    }
    out->push_back(std::move(re));
  }
  return absl::OkStatus();
}

absl::Status CompileHeaderPatterns(const std::vector<HeaderPattern>& patterns,
                                   absl::string_view field,
                                   std::vector<HeaderRule>* out) {
  re2::RE2::Options re2_options;
  re2_options.set_log_errors(false);
  for (size_t i = 0; i < patterns.size(); ++i) {
    const HeaderPattern& p = patterns[i];
    if (!IsToken(p.name)) {
      return FieldError(absl::StrCat(field, "[", i, "].name"),
                        absl::StrCat("\"", absl::CHexEscape(p.name),
                                     "\" is not a valid HTTP header name"));
    }
    auto re = std::make_unique<re2::RE2>(p.pattern, re2_options);
    if (!re->ok()) {
      return FieldError(absl::StrCat(field, "[", i, "].pattern"),
                        absl::StrCat("not a valid RE2 pattern: ", re->error()));
    }
    out->push_back({.name = p.name,
                    .re = std::move(re),
                    .allow_missing = p.allow_missing});
  }
  return absl::OkStatus();
}

// accept_encoding: a list of codings the transport decodes.  q-values and
// "*" are not taken: the engine must know what it may receive.
absl::Status CheckAcceptEncoding(absl::string_view list) {
  const std::vector<std::string>& supported = SupportedEncodings();
  for (absl::string_view coding : absl::StrSplit(list, ',')) {
    coding = absl::StripAsciiWhitespace(coding);
    const bool known = std::any_of(supported.begin(), supported.end(),
                                   [coding](const std::string& s) {
                                     return absl::EqualsIgnoreCase(s, coding);
                                   });
    if (!known) {
      return FieldError(
          "accept_encoding",
          absl::StrCat("\"", absl::CHexEscape(coding),
                       "\" is not a content coding this server decodes (",
                       absl::StrJoin(supported, ", "), ")"));
    }
  }
  return absl::OkStatus();
}

absl::Status CheckRetry(const RetryPolicy& retry, const ProbeLimits& limits) {
  if (retry.max_attempts < 1) {
    return FieldError("retry.max_attempts", "must be at least 1");
  }
  if (retry.max_attempts > limits.max_attempts) {
    return FieldError(
        "retry.max_attempts",
        absl::StrCat(retry.max_attempts, " is above this server's limit of ",
                     limits.max_attempts));
  }
  if (retry.initial_backoff < absl::ZeroDuration()) {
    return FieldError("retry.initial_backoff", "must not be negative");
  }
  if (retry.max_backoff < absl::ZeroDuration()) {
    return FieldError("retry.max_backoff", "must not be negative");
  }
  // NaN fails this too.
  if (!(retry.backoff_multiplier >= 1.0 && retry.backoff_multiplier <= 1e6)) {
    return FieldError(
        "retry.backoff_multiplier",
        absl::StrCat(retry.backoff_multiplier, " is not within 1 to 1000000"));
  }
  for (size_t i = 0; i < retry.retry_on.size(); ++i) {
    const Outcome outcome = retry.retry_on[i];
    if (outcome == Outcome::kOk || outcome == Outcome::kInvalidTarget ||
        outcome == Outcome::kDenied) {
      return FieldError(
          absl::StrCat("retry.retry_on[", i, "]"),
          absl::StrCat(OutcomeName(outcome),
                       outcome == Outcome::kOk
                           ? " is a success, not a failure to retry"
                           : " would only come again: nothing was sent"));
    }
  }
  return absl::OkStatus();
}

absl::Status CheckScalars(const ProbeOptions& o, const ProbeLimits& limits) {
  if (!IsToken(o.method)) {
    return FieldError("method", absl::StrCat("\"", absl::CHexEscape(o.method),
                                             "\" is not an HTTP method token"));
  }
  if (!IsFieldValue(o.user_agent)) {
    return FieldError("user_agent",
                      "holds CR, LF, NUL or another control character");
  }
  if (o.timeout <= absl::ZeroDuration()) {
    return FieldError("timeout", "must be positive");
  }
  if (o.connect_timeout < absl::ZeroDuration()) {
    return FieldError("connect_timeout", "must not be negative");
  }
  if (o.max_redirects < 0) {
    return FieldError("max_redirects", "must not be negative");
  }
  if (o.max_redirects > limits.max_redirects) {
    return FieldError(
        "max_redirects",
        absl::StrCat(o.max_redirects, " is above this server's limit of ",
                     limits.max_redirects));
  }
  if (o.max_body_bytes > limits.max_body_bytes) {
    return FieldError(
        "max_body_bytes",
        absl::StrCat(o.max_body_bytes, " is above this server's limit of ",
                     limits.max_body_bytes));
  }
  if (o.body.size() > limits.max_request_body_bytes) {
    return FieldError("body", absl::StrCat(o.body.size(),
                                           " bytes is above this server's "
                                           "limit of ",
                                           limits.max_request_body_bytes));
  }
  if (o.max_response_headers <= 0) {
    return FieldError("max_response_headers", "must be positive");
  }
  if (o.max_response_headers > limits.max_response_headers) {
    return FieldError("max_response_headers",
                      absl::StrCat(o.max_response_headers,
                                   " is above this server's limit of ",
                                   limits.max_response_headers));
  }
  if (o.max_response_header_bytes == 0) {
    return FieldError("max_response_header_bytes", "must be positive");
  }
  if (o.max_response_header_bytes > limits.max_response_header_bytes) {
    return FieldError("max_response_header_bytes",
                      absl::StrCat(o.max_response_header_bytes,
                                   " is above this server's limit of ",
                                   limits.max_response_header_bytes));
  }
  if (!o.accept_encoding.empty()) {
    absl::Status status = CheckAcceptEncoding(o.accept_encoding);
    if (!status.ok()) return status;
  }
  for (size_t i = 0; i < o.valid_status.size(); ++i) {
    const StatusRange& r = o.valid_status[i];
    if (r.min < 100 || r.max > 999 || r.min > r.max) {
      return FieldError(absl::StrCat("valid_status[", i, "]"),
                        absl::StrCat(r.min, "-", r.max,
                                     " is not within 100-999 with min <= max"));
    }
  }
  return CheckRetry(o.retry, limits);
}

absl::Status AppendHeader(absl::string_view name, absl::string_view value,
                          CurlSlistPtr* list) {
  // "Name;" is how libcurl sends a header with an empty value.
  if (!AppendLine(value.empty() ? absl::StrCat(name, ";")
                                : absl::StrCat(name, ": ", value),
                  list)) {
    return absl::ResourceExhaustedError("out of memory");
  }
  return absl::OkStatus();
}

// Credentials a redirect to another host must not carry.
bool IsCredential(absl::string_view name) {
  return absl::EqualsIgnoreCase(name, "Authorization") ||
         absl::EqualsIgnoreCase(name, "Cookie") ||
         absl::EqualsIgnoreCase(name, "Proxy-Authorization");
}

// The Authorization header basic_auth or bearer_token make, or "" for
// none.  Errors name the field, never the value.
absl::StatusOr<std::string> AuthorizationValue(const ProbeOptions& o) {
  if (o.basic_auth.has_value() && !o.bearer_token.empty()) {
    return FieldError("bearer_token",
                      "not with basic_auth: both are an Authorization header");
  }
  if (o.basic_auth.has_value()) {
    const BasicAuth& auth = *o.basic_auth;
    if (absl::StrContains(auth.username, ':')) {
      // RFC 7617: the first colon ends the user-id.
      return FieldError("basic_auth.username", "holds ':'");
    }
    if (!IsFieldValue(auth.username)) {
      return FieldError("basic_auth.username",
                        "holds CR, LF, NUL or another control character");
    }
    if (!IsFieldValue(auth.password)) {
      return FieldError("basic_auth.password",
                        "holds CR, LF, NUL or another control character");
    }
    return absl::StrCat("Basic ", absl::Base64Escape(absl::StrCat(
                                      auth.username, ":", auth.password)));
  }
  if (!o.bearer_token.empty()) {
    if (!IsFieldValue(o.bearer_token)) {
      return FieldError("bearer_token",
                        "holds CR, LF, NUL or another control character");
    }
    return absl::StrCat("Bearer ", o.bearer_token);
  }
  return std::string();
}

// A header line a caller gave, `field` naming it ("headers[2]"): a token
// for a name, a value without CR, LF, NUL or another control character.
absl::Status CheckHeader(absl::string_view field, absl::string_view name,
                         absl::string_view value) {
  if (!IsToken(name)) {
    return FieldError(absl::StrCat(field, ".name"),
                      absl::StrCat("\"", absl::CHexEscape(name),
                                   "\" is not a valid HTTP header name"));
  }
  if (!IsFieldValue(value)) {
    return FieldError(absl::StrCat(field, ".value"),
                      absl::StrCat("the value of \"", name,
                                   "\" holds CR, LF, NUL or another "
                                   "control character"));
  }
  return absl::OkStatus();
}

absl::Status BuildHeaders(const ProbeOptions& o, const ProbeLimits& limits,
                          PreparedOptions* prepared) {
  absl::StatusOr<std::string> authorization = AuthorizationValue(o);
  if (!authorization.ok()) return authorization.status();
  uint64_t bytes = o.method.size() + o.user_agent.size() +
                   o.accept_encoding.size() + authorization->size();
  for (size_t i = 0; i < o.headers.size(); ++i) {
    const auto& [name, value] = o.headers[i];
    if (absl::Status status =
            CheckHeader(absl::StrCat("headers[", i, "]"), name, value);
        !status.ok()) {
      return status;
    }
    // The engine frames the body itself; a caller's framing would make the
    // target read part of the body as another request.
    if (absl::EqualsIgnoreCase(name, "Content-Length") ||
        absl::EqualsIgnoreCase(name, "Transfer-Encoding")) {
      return FieldError(
          absl::StrCat("headers[", i, "].name"),
          absl::StrCat(name, " is set by the engine from the body"));
    }
    if (!authorization->empty() &&
        absl::EqualsIgnoreCase(name, "Authorization")) {
      return FieldError(
          absl::StrCat("headers[", i, "].name"),
          o.basic_auth.has_value()
              ? "Authorization is set by the engine from basic_auth"
              : "Authorization is set by the engine from bearer_token");
    }
    if (!o.accept_encoding.empty() &&
        absl::EqualsIgnoreCase(name, "Accept-Encoding")) {
      return FieldError(
          absl::StrCat("headers[", i, "].name"),
          "Accept-Encoding is set by the engine from accept_encoding");
    }
    bytes += name.size() + value.size() + 4;
    if (bytes > limits.max_request_header_bytes) {
      return FieldError(
          "headers", absl::StrCat("more than this server's limit of ",
                                  limits.max_request_header_bytes, " bytes"));
    }
    absl::Status status = AppendHeader(name, value, &prepared->headers);
    if (status.ok() && !IsCredential(name)) {
      status = AppendHeader(name, value, &prepared->cross_host_headers);
    }
    if (!status.ok()) return status;
  }
  if (bytes > limits.max_request_header_bytes) {
    return FieldError("headers",
                      absl::StrCat("more than this server's limit of ",
                                   limits.max_request_header_bytes, " bytes"));
  }
  // Not in cross_host_headers: credentials stay with the host they are for.
  if (!authorization->empty()) {
    return AppendHeader("Authorization", *authorization, &prepared->headers);
  }
  return absl::OkStatus();
}

absl::Status PrepareProxy(const ProxyOptions& proxy,
                          PreparedOptions* prepared) {
  // Never quote the URL: it may hold a password.
  absl::StatusOr<ParsedUrl> url = ParseTargetUrl(proxy.url);
  if (!url.ok() || url->https ||
      !absl::StartsWithIgnoreCase(proxy.url, "http://")) {
    return FieldError("proxy.url",
                      "want http://[user:password@]host[:port] (an HTTP "
                      "proxy)");
  }
  prepared->proxy = *std::move(url);
  for (size_t i = 0; i < proxy.connect_headers.size(); ++i) {
    const auto& [name, value] = proxy.connect_headers[i];
    absl::Status status = CheckHeader(
        absl::StrCat("proxy.connect_headers[", i, "]"), name, value);
    if (status.ok()) {
      status = AppendHeader(name, value, &prepared->proxy_headers);
    }
    if (!status.ok()) return status;
  }
  for (size_t i = 0; i < proxy.no_proxy.size(); ++i) {
    absl::StatusOr<NoProxyRule> rule = ParseNoProxyRule(proxy.no_proxy[i]);
    if (!rule.ok()) {
      return FieldError(absl::StrCat("proxy.no_proxy[", i, "]"),
                        rule.status().message());
    }
    prepared->no_proxy.push_back(*std::move(rule));
  }
  return absl::OkStatus();
}

}  // namespace

bool AppendLine(absl::string_view line, CurlSlistPtr* list) {
  const std::string copy(line);
  curl_slist* appended = curl_slist_append(list->get(), copy.c_str());
  if (appended == nullptr) return false;
  list->release();
  list->reset(appended);
  return true;
}

absl::Status CheckOptions(const ProbeOptions& options,
                          const ProbeLimits& limits) {
  // Nothing prepared outlives this call, so `options` is not copied (its
  // body may be a megabyte): the shared_ptr points at it without owning it.
  return PrepareOptions(std::shared_ptr<const ProbeOptions>(
                            std::shared_ptr<const ProbeOptions>(), &options),
                        limits)
      .status();
}

absl::StatusOr<std::shared_ptr<const PreparedOptions>> PrepareOptions(
    std::shared_ptr<const ProbeOptions> options, const ProbeLimits& limits) {
  if (options == nullptr) options = std::make_shared<const ProbeOptions>();
  const ProbeOptions& o = *options;
  absl::Status status = CheckScalars(o, limits);
  if (!status.ok()) return status;
  auto prepared = std::make_shared<PreparedOptions>();
  status = BuildHeaders(o, limits, prepared.get());
  if (!status.ok()) return status;
  status = CompilePatterns(o.body_must_match, "body_must_match",
                           &prepared->must_match);
  if (!status.ok()) return status;
  status = CompilePatterns(o.body_must_not_match, "body_must_not_match",
                           &prepared->must_not_match);
  if (!status.ok()) return status;
  status = CompileHeaderPatterns(o.header_must_match, "header_must_match",
                                 &prepared->header_must_match);
  if (!status.ok()) return status;
  status =
      CompileHeaderPatterns(o.header_must_not_match, "header_must_not_match",
                            &prepared->header_must_not_match);
  if (!status.ok()) return status;
  prepared->has_host_header =
      std::any_of(o.headers.begin(), o.headers.end(), [](const auto& header) {
        return absl::EqualsIgnoreCase(header.first, "Host");
      });
  prepared->keep_body =
      !prepared->must_match.empty() || !prepared->must_not_match.empty();
  prepared->watch_headers = o.keep_response_headers ||
                            !prepared->header_must_match.empty() ||
                            !prepared->header_must_not_match.empty();
  if (!o.tls_server_name.empty()) {
    absl::StatusOr<ParsedUrl> parsed =
        ParseTargetUrl(absl::StrCat("https://", o.tls_server_name, "/"));
    if (!parsed.ok() ||
        parsed->host != absl::AsciiStrToLower(o.tls_server_name)) {
      return FieldError("tls_server_name",
                        absl::StrCat("\"", absl::CHexEscape(o.tls_server_name),
                                     "\" is not a host name or IP address"));
    }
  }
  if (o.proxy.has_value()) {
    status = PrepareProxy(*o.proxy, prepared.get());
    if (!status.ok()) return status;
  }
  prepared->family = o.ip_family;
  if (!o.source_address.empty()) {
    absl::StatusOr<IpAddress> source = IpAddress::Parse(o.source_address);
    if (!source.ok()) {
      return FieldError("source_address",
                        absl::StrCat("\"", absl::CHexEscape(o.source_address),
                                     "\" is not an IP address"));
    }
    const IpFamily family = source->is_v4 ? IpFamily::kIpv4 : IpFamily::kIpv6;
    if (o.ip_family != IpFamily::kAny && o.ip_family != family) {
      return FieldError(
          "source_address",
          absl::StrCat(source->ToString(), " is ",
                       source->is_v4 ? "IPv4" : "IPv6", " but ip_family is ",
                       o.ip_family == IpFamily::kIpv4 ? "IPv4" : "IPv6"));
    }
    prepared->source = *source;
    prepared->family = family;
  }
  if (o.tls_min_version > o.tls_max_version) {
    return FieldError("tls_min_version",
                      absl::StrCat(TlsVersionName(o.tls_min_version),
                                   " is above tls_max_version ",
                                   TlsVersionName(o.tls_max_version)));
  }
  if (!o.ca_pem.empty()) {
    absl::StatusOr<std::shared_ptr<const TrustStore>> trust =
        TrustStore::FromPem(o.ca_pem);
    if (!trust.ok()) return FieldError("ca_pem", trust.status().message());
    prepared->trust = *std::move(trust);
  }
  if (o.client_certificate.has_value()) {
    absl::StatusOr<std::shared_ptr<const ClientIdentity>> identity =
        ClientIdentity::FromPem(o.client_certificate->cert_pem,
                                o.client_certificate->key_pem);
    if (!identity.ok()) {
      // The message names the field ("key_pem: ..."), never the PEM.
      return absl::Status(
          identity.status().code(),
          absl::StrCat("client_certificate.", identity.status().message()));
    }
    prepared->identity = *std::move(identity);
  }
  prepared->ssl_setup = {.verify = o.tls_verify,
                         .trust = prepared->trust.get(),
                         .identity = prepared->identity.get()};
  prepared->options = std::move(options);
  return std::shared_ptr<const PreparedOptions>(std::move(prepared));
}

}  // namespace fanprobe::internal
