// target_url.h: a probe's URL, parsed once into what the engine needs to
// resolve, limit per host and connect.  Internal to probe/.
//
// Example:
//   absl::StatusOr<ParsedUrl> url = ParseTargetUrl("web.test:8080/healthz");
//   // url->url == "http://web.test:8080/healthz", url->host == "web.test",
//   // url->port == 8080, url->host_key == "http://web.test:8080"
//
// Thread-safety: ParseTargetUrl is a pure function; a ParsedUrl is a value.

#ifndef FANPROBE_PROBE_INTERNAL_TARGET_URL_H_
#define FANPROBE_PROBE_INTERNAL_TARGET_URL_H_

#include <optional>
#include <string>

#include "absl/status/statusor.h"
#include "absl/strings/string_view.h"
#include "probe/destination_policy.h"

namespace fanprobe::internal {

struct ParsedUrl {
  std::string url;  // as given, with "http://" prepended if it had none
  bool https = false;
  // The host as it goes on the wire and to the resolver: lower-case ASCII
  // (an internationalised name in punycode), an IPv6 literal without its
  // brackets.
  std::string host;
  int port = 0;  // explicit or the scheme's default
  // Set when the host is an address literal (libcurl normalises IPv4
  // spellings such as 127.1 and 0x7f000001 to dotted quads first).
  std::optional<IpAddress> address;
  std::string host_key;  // "scheme://host:port", the per-host limit's key
};

// Fails with kInvalidArgument, in words a user can act on, when the URL does
// not parse, has no host, or its scheme is not http or https.  A URL without
// "://" is taken as http://, as blackbox_exporter and curl do.
absl::StatusOr<ParsedUrl> ParseTargetUrl(absl::string_view url);

// What a Host header says for `url`: its host (an IPv6 literal in
// brackets), and ":port" unless the port is the scheme's default.
std::string HostHeaderValue(const ParsedUrl& url);

// `url` with its host replaced by `host` and its port written out, the rest
// as it was: what libcurl is given when a TLS server name other than the
// URL's host is sent.  Fails (kInvalidArgument) when `host` is not a host.
absl::StatusOr<std::string> UrlWithHost(const ParsedUrl& url,
                                        absl::string_view host);

// `reference` (a Location header's value) resolved against `base`, as RFC
// 3986 section 5 does: an absolute URL as it is, "/path" or "../x" against
// the base.
absl::StatusOr<std::string> ResolveReference(absl::string_view base,
                                             absl::string_view reference);

}  // namespace fanprobe::internal

#endif  // FANPROBE_PROBE_INTERNAL_TARGET_URL_H_
