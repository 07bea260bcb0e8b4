#include "probe/probe.h"

#include <curl/curl.h>

#include "absl/strings/string_view.h"

namespace fanprobe {

absl::string_view DefaultUserAgent() { return "fanprobe/" FANPROBE_VERSION; }

absl::string_view TransportVersion() {
  return curl_version_info(CURLVERSION_NOW)->version;
}

absl::string_view OutcomeName(Outcome outcome) {
  switch (outcome) {
    case Outcome::kOk:
      return "OK";
    case Outcome::kUnexpectedStatus:
      return "UNEXPECTED_STATUS";
    case Outcome::kBodyMismatch:
      return "BODY_MISMATCH";
    case Outcome::kDnsError:
      return "DNS_ERROR";
    case Outcome::kConnectError:
      return "CONNECT_ERROR";
    case Outcome::kTlsError:
      return "TLS_ERROR";
    case Outcome::kTimeout:
      return "TIMEOUT";
    case Outcome::kIoError:
      return "IO_ERROR";
    case Outcome::kTooManyRedirects:
      return "TOO_MANY_REDIRECTS";
    case Outcome::kBodyTooLarge:
      return "BODY_TOO_LARGE";
    case Outcome::kDenied:
      return "DENIED";
    case Outcome::kInvalidTarget:
      return "INVALID_TARGET";
    case Outcome::kCancelled:
      return "CANCELLED";
  }
  return "UNKNOWN";
}

}  // namespace fanprobe
