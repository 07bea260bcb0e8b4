#include "probe/internal/curl_probe.h"

#include <sys/socket.h>
#include <time.h>

#include <algorithm>
#include <cstring>

#include "absl/status/status.h"
#include "absl/strings/ascii.h"
#include "absl/strings/escaping.h"
#include "absl/strings/match.h"
#include "absl/strings/str_cat.h"
#include "absl/time/time.h"

namespace fanprobe::internal {
namespace {

constexpr long kReceiveBufferBytes = 1024;

struct CurlUrlDeleter {
  void operator()(CURLU* url) const { curl_url_cleanup(url); }
};

// Owns a string libcurl allocated.
struct CurlFreeDeleter {
  void operator()(char* p) const { curl_free(p); }
};
using CurlString = std::unique_ptr<char, CurlFreeDeleter>;

CurlString GetUrlPart(CURLU* url, CURLUPart part, unsigned flags = 0) {
  char* out = nullptr;
  if (curl_url_get(url, part, &out, flags) != CURLUE_OK) return nullptr;
  return CurlString(out);
}

bool HasControlChar(absl::string_view s) {
  return std::any_of(s.begin(), s.end(), [](char c) {
    return static_cast<unsigned char>(c) < 0x20 || c == 0x7f;
  });
}

// An HTTP method is a token (RFC 9110 5.6.2).
bool IsToken(absl::string_view s) {
  static constexpr absl::string_view kSeparators = "()<>@,;:\\\"/[]?={} \t";
  return !s.empty() && std::none_of(s.begin(), s.end(), [](char c) {
    return static_cast<unsigned char>(c) <= 0x20 ||
           static_cast<unsigned char>(c) >= 0x7f ||
           absl::StrContains(kSeparators, c);
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
      return absl::InvalidArgumentError(absl::StrCat(
          field, "[", i, "] is not a valid RE2 pattern: ", re->error()));
    }
    out->push_back(std::move(re));
  }
  return absl::OkStatus();
}

absl::Duration CurlMicros(CURL* easy, CURLINFO info) {
  curl_off_t us = 0;
  curl_easy_getinfo(easy, info, &us);
  return absl::Microseconds(us);
}

absl::string_view HttpVersionName(long version) {
  switch (version) {
    case CURL_HTTP_VERSION_1_0:
      return "HTTP/1.0";
    case CURL_HTTP_VERSION_1_1:
      return "HTTP/1.1";
    case CURL_HTTP_VERSION_2_0:
      return "HTTP/2";
    case CURL_HTTP_VERSION_3:
      return "HTTP/3";
    default:
      return "";
  }
}

// The one place a CURLcode becomes an Outcome.
Outcome OutcomeForCurlCode(CURLcode code) {
  switch (code) {
    case CURLE_OK:
      return Outcome::kOk;
    case CURLE_COULDNT_RESOLVE_HOST:
      return Outcome::kDnsError;
    case CURLE_COULDNT_CONNECT:
      return Outcome::kConnectError;
    case CURLE_OPERATION_TIMEDOUT:
      return Outcome::kTimeout;
    case CURLE_TOO_MANY_REDIRECTS:
      return Outcome::kTooManyRedirects;
    case CURLE_FILESIZE_EXCEEDED:
      return Outcome::kBodyTooLarge;
    case CURLE_URL_MALFORMAT:
    case CURLE_UNSUPPORTED_PROTOCOL:
      return Outcome::kInvalidTarget;
    case CURLE_SSL_CONNECT_ERROR:
    case CURLE_PEER_FAILED_VERIFICATION:
    case CURLE_SSL_CERTPROBLEM:
    case CURLE_SSL_CIPHER:
    case CURLE_SSL_CACERT_BADFILE:
    case CURLE_SSL_ENGINE_NOTFOUND:
    case CURLE_SSL_ENGINE_SETFAILED:
    case CURLE_SSL_ENGINE_INITFAILED:
    case CURLE_SSL_SHUTDOWN_FAILED:
    case CURLE_SSL_CRL_BADFILE:
    case CURLE_SSL_ISSUER_ERROR:
    case CURLE_SSL_PINNEDPUBKEYNOTMATCH:
    case CURLE_SSL_INVALIDCERTSTATUS:
    case CURLE_SSL_CLIENTCERT:
    case CURLE_USE_SSL_FAILED:
      return Outcome::kTlsError;
    default:
      // Broken connections, replies that are not HTTP, partial bodies, ...
      return Outcome::kIoError;
  }
}

bool StatusIsValid(int status, const std::vector<StatusRange>& ranges) {
  if (ranges.empty()) return status >= 200 && status <= 399;
  return std::any_of(ranges.begin(), ranges.end(), [status](StatusRange r) {
    return status >= r.min && status <= r.max;
  });
}

}  // namespace

absl::StatusOr<ParsedUrl> ParseTargetUrl(absl::string_view url,
                                         bool with_host_key) {
  if (url.empty()) return absl::InvalidArgumentError("the URL is empty");
  if (HasControlChar(url)) {
    return absl::InvalidArgumentError("the URL holds a control character");
  }
  ParsedUrl out;
  out.url = absl::StrContains(url, "://") ? std::string(url)
                                          : absl::StrCat("http://", url);
  std::unique_ptr<CURLU, CurlUrlDeleter> handle(curl_url());
  if (handle == nullptr) return absl::ResourceExhaustedError("out of memory");
  CURLUcode rc = curl_url_set(handle.get(), CURLUPART_URL, out.url.c_str(),
                              CURLU_NON_SUPPORT_SCHEME);
  if (rc != CURLUE_OK) {
    return absl::InvalidArgumentError(
        absl::StrCat("the URL does not parse: ", curl_url_strerror(rc)));
  }
  CurlString scheme = GetUrlPart(handle.get(), CURLUPART_SCHEME);
  std::string scheme_lower = absl::AsciiStrToLower(scheme ? scheme.get() : "");
  if (scheme_lower != "http" && scheme_lower != "https") {
    return absl::InvalidArgumentError(
        absl::StrCat("the scheme \"", scheme_lower, "\" is not http or https"));
  }
  CurlString host = GetUrlPart(handle.get(), CURLUPART_HOST);
  if (host == nullptr || *host == '\0') {
    return absl::InvalidArgumentError("the URL has no host");
  }
  if (with_host_key) {
    CurlString port =
        GetUrlPart(handle.get(), CURLUPART_PORT, CURLU_DEFAULT_PORT);
    out.host_key =
        absl::StrCat(scheme_lower, "://", absl::AsciiStrToLower(host.get()),
                     ":", port ? port.get() : "");
  }
  return out;
}

absl::StatusOr<std::shared_ptr<const PreparedOptions>> PrepareOptions(
    std::shared_ptr<const ProbeOptions> options) {
  if (options == nullptr) options = std::make_shared<const ProbeOptions>();
  const ProbeOptions& o = *options;
  if (!IsToken(o.method)) {
    return absl::InvalidArgumentError(
        absl::StrCat("method \"", absl::CHexEscape(o.method),
                     "\" is not an HTTP method token"));
  }
  if (o.timeout <= absl::ZeroDuration()) {
    return absl::InvalidArgumentError("timeout must be positive");
  }
  if (o.connect_timeout < absl::ZeroDuration()) {
    return absl::InvalidArgumentError("connect_timeout must not be negative");
  }
  if (o.max_redirects < 0) {
    return absl::InvalidArgumentError("max_redirects must not be negative");
  }
  for (const StatusRange& r : o.valid_status) {
    if (r.min < 100 || r.max > 999 || r.min > r.max) {
      return absl::InvalidArgumentError(
          absl::StrCat("valid status range ", r.min, "-", r.max,
                       " is not within 100-999 with min <= max"));
    }
  }
  auto prepared = std::make_shared<PreparedOptions>();
  for (const auto& [name, value] : o.headers) {
    // CR or LF would let a caller inject headers or a whole request.
    if (!IsToken(name)) {
      return absl::InvalidArgumentError(
          absl::StrCat("header name \"", absl::CHexEscape(name),
                       "\" is not a valid HTTP header name"));
    }
    if (std::any_of(value.begin(), value.end(), [](char c) {
          return c != '\t' &&
                 (static_cast<unsigned char>(c) < 0x20 || c == 0x7f);
        })) {
      return absl::InvalidArgumentError(
          absl::StrCat("the value of header \"", name,
                       "\" holds CR, LF or a control character"));
    }
    // "Name;" is how libcurl sends a header with an empty value.
    std::string line = value.empty() ? absl::StrCat(name, ";")
                                     : absl::StrCat(name, ": ", value);
    curl_slist* appended =
        curl_slist_append(prepared->headers.get(), line.c_str());
    if (appended == nullptr)
      return absl::ResourceExhaustedError("out of memory");
    prepared->headers.release();
    prepared->headers.reset(appended);
  }
  absl::Status status = CompilePatterns(o.body_must_match, "body_must_match",
                                        &prepared->must_match);
  if (status.ok()) {
    status = CompilePatterns(o.body_must_not_match, "body_must_not_match",
                             &prepared->must_not_match);
  }
  if (!status.ok()) return status;
  prepared->keep_body =
      !prepared->must_match.empty() || !prepared->must_not_match.empty();
  prepared->options = std::move(options);
  return std::shared_ptr<const PreparedOptions>(std::move(prepared));
}

CurlProbe::CurlProbe() : easy_(curl_easy_init()) { error_[0] = '\0'; }

size_t CurlProbe::WriteCallback(char* data, size_t size, size_t count,
                                void* self_ptr) {
  auto* self = static_cast<CurlProbe*>(self_ptr);
  const size_t n = size * count;
  self->body_bytes_ += n;
  if (self->body_bytes_ > self->max_body_bytes_) {
    self->body_too_large_ = true;
    return 0;  // makes libcurl stop with CURLE_WRITE_ERROR
  }
  if (self->keep_body_) self->body_.append(data, n);
  return n;
}

curl_socket_t CurlProbe::OpenSocketCallback(void* self_ptr,
                                            curlsocktype purpose,
                                            curl_sockaddr* address) {
  auto* self = static_cast<CurlProbe*>(self_ptr);
  IpAddress ip;
  if (self->policy_ != nullptr &&
      IpAddress::FromSockaddr(&address->addr, &ip)) {
    absl::Status allowed = self->policy_->Check(ip);
    if (!allowed.ok()) {
      // No socket, so not a single packet goes to the address.
      self->denied_ = std::string(allowed.message());
      return CURL_SOCKET_BAD;
    }
  }
  return socket(address->family, address->socktype | SOCK_CLOEXEC,
                address->protocol);
}

absl::Status CurlProbe::Setup(
    const ParsedUrl& url,
    const std::shared_ptr<const PreparedOptions>& prepared_ptr,
    const DestinationPolicy* policy, void* owner) {
  CURL* e = easy_.get();
  if (e == nullptr) {
    return absl::ResourceExhaustedError("curl_easy_init failed");
  }
  const PreparedOptions& prepared = *prepared_ptr;
  const ProbeOptions& o = *prepared.options;
  const bool https = absl::StartsWith(url.url, "https:");
  body_bytes_ = 0;
  body_too_large_ = false;
  body_.clear();
  keep_body_ = prepared.keep_body;
  max_body_bytes_ = o.max_body_bytes;
  error_[0] = '\0';
  denied_.clear();

  CURLcode rc = CURLE_OK;
  auto set = [&rc, e](CURLoption option, auto value) {
    if (rc == CURLE_OK) rc = curl_easy_setopt(e, option, value);
  };
  if (configured_for_ == prepared_ptr && policy_ == policy) {
    set(CURLOPT_URL, url.url.c_str());
    set(CURLOPT_CERTINFO, https ? 1L : 0L);
    if (rc == CURLE_OK) return absl::OkStatus();
  }
  configured_for_ = nullptr;
  policy_ = policy;
  curl_easy_reset(e);
  set(CURLOPT_URL, url.url.c_str());
  set(CURLOPT_PRIVATE, owner);
  set(CURLOPT_NOSIGNAL, 1L);
  set(CURLOPT_ERRORBUFFER, error_);
  // Only http and https, on every redirect hop too; and never a proxy from
  // the environment.
  set(CURLOPT_PROTOCOLS_STR, "http,https");
  set(CURLOPT_REDIR_PROTOCOLS_STR, "http,https");
  set(CURLOPT_PROXY, "");
  set(CURLOPT_OPENSOCKETFUNCTION, &CurlProbe::OpenSocketCallback);
  set(CURLOPT_OPENSOCKETDATA, static_cast<void*>(this));
  // libcurl's receive buffer is allocated per handle (16 KiB by default);
  // with 10,000 probes in flight it dominates memory, and probe bodies are
  // small and capped anyway.
  set(CURLOPT_BUFFERSIZE, kReceiveBufferBytes);
  set(CURLOPT_WRITEFUNCTION, &CurlProbe::WriteCallback);
  set(CURLOPT_WRITEDATA, static_cast<void*>(this));
  set(CURLOPT_TIMEOUT_MS, static_cast<long>(std::max<int64_t>(
                              1, absl::ToInt64Milliseconds(o.timeout))));
  if (o.connect_timeout > absl::ZeroDuration()) {
    set(CURLOPT_CONNECTTIMEOUT_MS,
        static_cast<long>(std::max<int64_t>(
            1, absl::ToInt64Milliseconds(o.connect_timeout))));
  }
  set(CURLOPT_FOLLOWLOCATION, o.follow_redirects ? 1L : 0L);
  set(CURLOPT_MAXREDIRS, static_cast<long>(o.max_redirects));
  // A declared Content-Length over the cap fails before any body is read.
  set(CURLOPT_MAXFILESIZE_LARGE, static_cast<curl_off_t>(o.max_body_bytes));
  set(CURLOPT_USERAGENT,
      o.user_agent.empty() ? DefaultUserAgent().data() : o.user_agent.c_str());
  if (prepared.headers) set(CURLOPT_HTTPHEADER, prepared.headers.get());
  if (o.method == "HEAD") {
    set(CURLOPT_NOBODY, 1L);
  } else if (!o.body.empty() || o.method == "POST" || o.method == "PUT" ||
             o.method == "PATCH") {
    // Methods that carry a body send "Content-Length: 0" when it is empty,
    // else some servers wait for one.
    set(CURLOPT_POSTFIELDS, o.body.data());
    set(CURLOPT_POSTFIELDSIZE_LARGE, static_cast<curl_off_t>(o.body.size()));
    if (o.method != "POST") set(CURLOPT_CUSTOMREQUEST, o.method.c_str());
  } else if (o.method != "GET") {
    set(CURLOPT_CUSTOMREQUEST, o.method.c_str());
  }
  set(CURLOPT_SSL_VERIFYPEER, o.tls_verify ? 1L : 0L);
  set(CURLOPT_SSL_VERIFYHOST, o.tls_verify ? 2L : 0L);
  if (!o.ca_pem.empty()) {
    curl_blob blob{const_cast<char*>(o.ca_pem.data()), o.ca_pem.size(),
                   CURL_BLOB_NOCOPY};
    set(CURLOPT_CAINFO_BLOB, &blob);
  }
  switch (o.http_version) {
    case HttpVersion::kHttp1_1:
      set(CURLOPT_HTTP_VERSION, static_cast<long>(CURL_HTTP_VERSION_1_1));
      break;
    case HttpVersion::kDefault:
    case HttpVersion::kHttp2:
      set(CURLOPT_HTTP_VERSION, static_cast<long>(CURL_HTTP_VERSION_2TLS));
      break;
  }
  switch (o.ip_family) {
    case IpFamily::kAny:
      break;
    case IpFamily::kIpv4:
      set(CURLOPT_IPRESOLVE, static_cast<long>(CURL_IPRESOLVE_V4));
      break;
    case IpFamily::kIpv6:
      set(CURLOPT_IPRESOLVE, static_cast<long>(CURL_IPRESOLVE_V6));
      break;
  }
  if (!o.reuse_connections) {
    set(CURLOPT_FRESH_CONNECT, 1L);
    set(CURLOPT_FORBID_REUSE, 1L);
  }
  set(CURLOPT_CERTINFO, https ? 1L : 0L);
  if (rc != CURLE_OK) {
    return absl::InvalidArgumentError(
        absl::StrCat("libcurl refused an option: ", curl_easy_strerror(rc)));
  }
  configured_for_ = prepared_ptr;
  return absl::OkStatus();
}

void CurlProbe::Finish(CURLcode code, const PreparedOptions& prepared,
                       ProbeResult* r) {
  CURL* e = easy_.get();
  long status = 0;
  curl_easy_getinfo(e, CURLINFO_RESPONSE_CODE, &status);
  r->status_code = static_cast<int>(status);
  long version = 0;
  curl_easy_getinfo(e, CURLINFO_HTTP_VERSION, &version);
  r->http_version = std::string(HttpVersionName(version));
  char* text = nullptr;
  if (curl_easy_getinfo(e, CURLINFO_EFFECTIVE_URL, &text) == CURLE_OK && text) {
    r->final_url = text;
  }
  text = nullptr;
  if (curl_easy_getinfo(e, CURLINFO_PRIMARY_IP, &text) == CURLE_OK && text) {
    r->remote_ip = text;
  }
  long port = 0;
  curl_easy_getinfo(e, CURLINFO_PRIMARY_PORT, &port);
  r->remote_port = static_cast<int>(port);
  long redirects = 0;
  curl_easy_getinfo(e, CURLINFO_REDIRECT_COUNT, &redirects);
  r->redirects = static_cast<int>(redirects);
  r->body_bytes = body_bytes_;
  r->timings.dns = CurlMicros(e, CURLINFO_NAMELOOKUP_TIME_T);
  r->timings.connect = CurlMicros(e, CURLINFO_CONNECT_TIME_T);
  r->timings.tls = CurlMicros(e, CURLINFO_APPCONNECT_TIME_T);
  r->timings.first_byte = CurlMicros(e, CURLINFO_STARTTRANSFER_TIME_T);
  r->timings.total = CurlMicros(e, CURLINFO_TOTAL_TIME_T);
  r->timings.redirect = CurlMicros(e, CURLINFO_REDIRECT_TIME_T);
  curl_certinfo* certs = nullptr;
  if (curl_easy_getinfo(e, CURLINFO_CERTINFO, &certs) == CURLE_OK && certs) {
    absl::Time expiry;
    if (EarliestCertExpiry(certs, &expiry)) r->cert_expiry = expiry;
  }

  const ProbeOptions& o = *prepared.options;
  if (code == CURLE_WRITE_ERROR && body_too_large_) {
    r->outcome = Outcome::kBodyTooLarge;
    r->error = absl::StrCat("the body exceeds max_body_bytes (",
                            o.max_body_bytes, " bytes)");
    return;
  }
  if (code != CURLE_OK && !denied_.empty()) {
    r->outcome = Outcome::kDenied;
    r->error = denied_;
    return;
  }
  if (code != CURLE_OK) {
    r->outcome = OutcomeForCurlCode(code);
    r->error = error_[0] != '\0' ? std::string(error_)
                                 : std::string(curl_easy_strerror(code));
    // The URL was checked to be http(s) before the probe started, so this
    // code means a redirect to another scheme, or libcurl refusing a reply
    // that is not HTTP ("Received HTTP/0.9 when not allowed"): a broken
    // server, not a bad target.
    if (code == CURLE_UNSUPPORTED_PROTOCOL &&
        absl::StrContains(r->error, "HTTP/0.9")) {
      r->outcome = Outcome::kIoError;
    }
    if (code == CURLE_FILESIZE_EXCEEDED) {
      r->error = absl::StrCat("the declared body exceeds max_body_bytes (",
                              o.max_body_bytes, " bytes)");
    }
    return;
  }
  if (!StatusIsValid(r->status_code, o.valid_status)) {
    r->outcome = Outcome::kUnexpectedStatus;
    r->error =
        absl::StrCat("status ", r->status_code, " is not a valid status");
    return;
  }
  for (const auto& re : prepared.must_match) {
    if (!re2::RE2::PartialMatch(body_, *re)) {
      r->outcome = Outcome::kBodyMismatch;
      r->error =
          absl::StrCat("the body does not match \"", re->pattern(), "\"");
      return;
    }
  }
  for (const auto& re : prepared.must_not_match) {
    if (re2::RE2::PartialMatch(body_, *re)) {
      r->outcome = Outcome::kBodyMismatch;
      r->error = absl::StrCat("the body matches \"", re->pattern(), "\"");
      return;
    }
  }
  r->outcome = Outcome::kOk;
}

bool EarliestCertExpiry(const curl_certinfo* info, absl::Time* expiry) {
  static constexpr absl::string_view kExpire = "Expire date:";
  bool found = false;
  for (int i = 0; i < info->num_of_certs; ++i) {
    for (const curl_slist* item = info->certinfo[i]; item; item = item->next) {
      absl::string_view line(item->data);
      if (!absl::StartsWith(line, kExpire)) continue;
      std::string value(line.substr(kExpire.size()));
      // OpenSSL's form: "Jan  2 03:04:05 2030 GMT".
      struct tm tm = {};
      const char* end = strptime(value.c_str(), "%b %d %H:%M:%S %Y", &tm);
      if (end == nullptr) continue;
      absl::Time t = absl::FromTimeT(timegm(&tm));
      if (!found || t < *expiry) *expiry = t;
      found = true;
    }
  }
  return found;
}

}  // namespace fanprobe::internal
