#include "probe/internal/target_url.h"

#include <curl/curl.h>

#include <algorithm>
#include <cstdlib>
#include <memory>

#include "absl/status/status.h"
#include "absl/strings/ascii.h"
#include "absl/strings/match.h"
#include "absl/strings/numbers.h"
#include "absl/strings/str_cat.h"

namespace fanprobe::internal {
namespace {

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

}  // namespace

absl::StatusOr<ParsedUrl> ParseTargetUrl(absl::string_view url) {
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
  out.https = scheme_lower == "https";
  // Punycode: what the resolver is asked and what libcurl looks up, so the
  // addresses the engine hands libcurl are found under the same name.
  CurlString host = GetUrlPart(handle.get(), CURLUPART_HOST, CURLU_PUNYCODE);
  if (host == nullptr || *host == '\0') {
    return absl::InvalidArgumentError(
        "the URL has no host, or a host that is not a valid name");
  }
  absl::string_view host_view = host.get();
  if (absl::StartsWith(host_view, "[") && absl::EndsWith(host_view, "]")) {
    host_view = host_view.substr(1, host_view.size() - 2);
    // A zone ("fe80::1%eth0") is not an address a probe may name.
    if (absl::StrContains(host_view, '%')) {
      return absl::InvalidArgumentError(
          "an IPv6 address with a zone is not a probe target");
    }
  }
  out.host = absl::AsciiStrToLower(host_view);
  if (absl::StatusOr<IpAddress> address = IpAddress::Parse(out.host);
      address.ok()) {
    out.address = *address;
  }
  CurlString port =
      GetUrlPart(handle.get(), CURLUPART_PORT, CURLU_DEFAULT_PORT);
  if (port == nullptr || !absl::SimpleAtoi(port.get(), &out.port) ||
      out.port <= 0 || out.port > 65535) {
    return absl::InvalidArgumentError("the URL's port is not 1-65535");
  }
  out.host_key = absl::StrCat(scheme_lower, "://", host.get(), ":", out.port);
  absl::AsciiStrToLower(&out.host_key);
  return out;
}

std::string HostHeaderValue(const ParsedUrl& url) {
  std::string host = url.address.has_value() && !url.address->is_v4
                         ? absl::StrCat("[", url.host, "]")
                         : url.host;
  if (url.port != (url.https ? 443 : 80)) absl::StrAppend(&host, ":", url.port);
  return host;
}

absl::StatusOr<std::string> UrlWithHost(const ParsedUrl& url,
                                        absl::string_view host) {
  std::unique_ptr<CURLU, CurlUrlDeleter> handle(curl_url());
  if (handle == nullptr) return absl::ResourceExhaustedError("out of memory");
  const std::string host_string(host);
  const std::string port = absl::StrCat(url.port);
  if (curl_url_set(handle.get(), CURLUPART_URL, url.url.c_str(), 0) !=
          CURLUE_OK ||
      curl_url_set(handle.get(), CURLUPART_HOST, host_string.c_str(), 0) !=
          CURLUE_OK ||
      curl_url_set(handle.get(), CURLUPART_PORT, port.c_str(), 0) !=
          CURLUE_OK) {
    return absl::InvalidArgumentError(
        absl::StrCat("\"", host, "\" is not a host name"));
  }
  CurlString out = GetUrlPart(handle.get(), CURLUPART_URL);
  if (out == nullptr) return absl::ResourceExhaustedError("out of memory");
  return std::string(out.get());
}

absl::StatusOr<std::string> ResolveReference(absl::string_view base,
                                             absl::string_view reference) {
  std::unique_ptr<CURLU, CurlUrlDeleter> handle(curl_url());
  if (handle == nullptr) return absl::ResourceExhaustedError("out of memory");
  const std::string base_string(base);
  const std::string reference_string(reference);
  if (curl_url_set(handle.get(), CURLUPART_URL, base_string.c_str(), 0) !=
      CURLUE_OK) {
    return absl::InvalidArgumentError("the base URL does not parse");
  }
  // As libcurl follows a Location: spaces and other bytes a URL may not
  // hold are percent-encoded, not refused.
  const CURLUcode rc =
      curl_url_set(handle.get(), CURLUPART_URL, reference_string.c_str(),
                   CURLU_URLENCODE | CURLU_ALLOW_SPACE);
  if (rc != CURLUE_OK) {
    return absl::InvalidArgumentError(
        absl::StrCat("the reference does not parse: ", curl_url_strerror(rc)));
  }
  CurlString out = GetUrlPart(handle.get(), CURLUPART_URL);
  if (out == nullptr) return absl::ResourceExhaustedError("out of memory");
  return std::string(out.get());
}

}  // namespace fanprobe::internal
