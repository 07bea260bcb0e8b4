#include "probe/probe.h"

#include <curl/curl.h>

#include <algorithm>

#include "absl/strings/string_view.h"

namespace fanprobe {

absl::string_view DefaultUserAgent() { return "fanprobe/" FANPROBE_VERSION; }

absl::string_view TransportVersion() {
  return curl_version_info(CURLVERSION_NOW)->version;
}

const std::vector<std::string>& SupportedEncodings() {
  static const std::vector<std::string>* encodings = [] {
    const curl_version_info_data* curl = curl_version_info(CURLVERSION_NOW);
    auto* list = new std::vector<std::string>{"identity"};
    if (curl->features & CURL_VERSION_LIBZ) {
      list->push_back("gzip");
      list->push_back("deflate");
    }
    if (curl->features & CURL_VERSION_BROTLI) list->push_back("br");
    if (curl->features & CURL_VERSION_ZSTD) list->push_back("zstd");
    return list;
  }();
  return *encodings;
}

absl::string_view TlsVersionName(TlsVersion version) {
  switch (version) {
    case TlsVersion::kTls1_2:
      return "TLSv1.2";
    case TlsVersion::kTls1_3:
      return "TLSv1.3";
  }
  return "";
}

absl::string_view ResponseVersionName(ResponseVersion version) {
  switch (version) {
    case ResponseVersion::kNone:
      return "";
    case ResponseVersion::kHttp1_0:
      return "HTTP/1.0";
    case ResponseVersion::kHttp1_1:
      return "HTTP/1.1";
    case ResponseVersion::kHttp2:
      return "HTTP/2";
    case ResponseVersion::kHttp3:
      return "HTTP/3";
  }
  return "";
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
    case Outcome::kHeaderMismatch:
      return "HEADER_MISMATCH";
  }
  return "UNKNOWN";
}

bool StatusIsValid(int status, const std::vector<StatusRange>& ranges) {
  if (ranges.empty()) {
    return status >= kDefaultValidStatus.min &&
           status <= kDefaultValidStatus.max;
  }
  return std::any_of(ranges.begin(), ranges.end(), [status](StatusRange r) {
    return status >= r.min && status <= r.max;
  });
}

absl::string_view DnsFailureName(DnsFailure failure) {
  switch (failure) {
    case DnsFailure::kNone:
      return "NONE";
    case DnsFailure::kNxDomain:
      return "NXDOMAIN";
    case DnsFailure::kNoData:
      return "NODATA";
    case DnsFailure::kServFail:
      return "SERVFAIL";
    case DnsFailure::kRefused:
      return "REFUSED";
    case DnsFailure::kTimeout:
      return "TIMEOUT";
    case DnsFailure::kOther:
      return "OTHER";
  }
  return "UNKNOWN";
}

}  // namespace fanprobe
