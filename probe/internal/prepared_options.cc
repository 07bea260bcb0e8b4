#include "probe/internal/prepared_options.h"

#include <algorithm>
#include <utility>

#include "absl/strings/ascii.h"
#include "absl/strings/escaping.h"
#include "absl/strings/match.h"
#include "absl/strings/str_cat.h"

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
  for (size_t i = 0; i < o.valid_status.size(); ++i) {
    const StatusRange& r = o.valid_status[i];
    if (r.min < 100 || r.max > 999 || r.min > r.max) {
      return FieldError(absl::StrCat("valid_status[", i, "]"),
                        absl::StrCat(r.min, "-", r.max,
                                     " is not within 100-999 with min <= max"));
    }
  }
  return absl::OkStatus();
}

absl::Status AppendHeader(absl::string_view name, absl::string_view value,
                          CurlSlistPtr* list) {
  // "Name;" is how libcurl sends a header with an empty value.
  std::string line =
      value.empty() ? absl::StrCat(name, ";") : absl::StrCat(name, ": ", value);
  curl_slist* appended = curl_slist_append(list->get(), line.c_str());
  if (appended == nullptr) return absl::ResourceExhaustedError("out of memory");
  list->release();
  list->reset(appended);
  return absl::OkStatus();
}

// Credentials a redirect to another host must not carry.
bool IsCredential(absl::string_view name) {
  return absl::EqualsIgnoreCase(name, "Authorization") ||
         absl::EqualsIgnoreCase(name, "Cookie") ||
         absl::EqualsIgnoreCase(name, "Proxy-Authorization");
}

absl::Status BuildHeaders(const ProbeOptions& o, const ProbeLimits& limits,
                          PreparedOptions* prepared) {
  uint64_t bytes = o.method.size() + o.user_agent.size();
  for (size_t i = 0; i < o.headers.size(); ++i) {
    const auto& [name, value] = o.headers[i];
    if (!IsToken(name)) {
      return FieldError(absl::StrCat("headers[", i, "].name"),
                        absl::StrCat("\"", absl::CHexEscape(name),
                                     "\" is not a valid HTTP header name"));
    }
    if (!IsFieldValue(value)) {
      return FieldError(absl::StrCat("headers[", i, "].value"),
                        absl::StrCat("the value of \"", name,
                                     "\" holds CR, LF, NUL or another "
                                     "control character"));
    }
    // The engine frames the body itself; a caller's framing would make the
    // target read part of the body as another request.
    if (absl::EqualsIgnoreCase(name, "Content-Length") ||
        absl::EqualsIgnoreCase(name, "Transfer-Encoding")) {
      return FieldError(
          absl::StrCat("headers[", i, "].name"),
          absl::StrCat(name, " is set by the engine from the body"));
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
  return absl::OkStatus();
}

}  // namespace

absl::Status CheckOptions(const ProbeOptions& options,
                          const ProbeLimits& limits) {
  return PrepareOptions(std::make_shared<const ProbeOptions>(options), limits)
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
  prepared->keep_body =
      !prepared->must_match.empty() || !prepared->must_not_match.empty();
  if (!o.ca_pem.empty()) {
    absl::StatusOr<std::shared_ptr<const TrustStore>> trust =
        TrustStore::FromPem(o.ca_pem);
    if (!trust.ok()) return FieldError("ca_pem", trust.status().message());
    prepared->trust = *std::move(trust);
  }
  prepared->options = std::move(options);
  return std::shared_ptr<const PreparedOptions>(std::move(prepared));
}

}  // namespace fanprobe::internal
