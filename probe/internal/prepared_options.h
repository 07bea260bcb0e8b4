// prepared_options.h: a probe's options, checked and pre-built once per
// distinct ProbeOptions object, so a batch of 100,000 targets sharing
// options compiles its patterns and builds its header list once.  Internal
// to probe/.
//
// Every string that reaches the request is checked here, before anything is
// sent: the method is an RFC 9110 token, header names are tokens, header
// values, the user agent and credentials hold no CR, LF, NUL or other
// control character (which would let a caller inject headers or a whole
// second request).  Errors name the field, never a credential's value.
//
// Example:
//   absl::StatusOr<std::shared_ptr<const PreparedOptions>> prepared =
//       PrepareOptions(target.options, limits);
//   if (!prepared.ok()) ... kInvalidTarget with prepared.status().message()
//
// Thread-safety: a PreparedOptions is immutable and shared across workers.

#ifndef FANPROBE_PROBE_INTERNAL_PREPARED_OPTIONS_H_
#define FANPROBE_PROBE_INTERNAL_PREPARED_OPTIONS_H_

#include <curl/curl.h>

#include <memory>
#include <optional>
#include <string>
#include <vector>

#include "absl/status/status.h"
#include "absl/status/statusor.h"
#include "probe/destination_policy.h"
#include "probe/internal/proxy.h"
#include "probe/internal/target_url.h"
#include "probe/internal/tls.h"
#include "probe/probe.h"
#include "re2/re2.h"

namespace fanprobe::internal {

struct CurlSlistDeleter {
  void operator()(curl_slist* list) const { curl_slist_free_all(list); }
};
using CurlSlistPtr = std::unique_ptr<curl_slist, CurlSlistDeleter>;

// Appends a copy of `line` to `list`; false when out of memory (the list is
// then as it was).
bool AppendLine(absl::string_view line, CurlSlistPtr* list);

// A HeaderPattern with its pattern compiled.
struct HeaderRule {
  std::string name;
  std::unique_ptr<re2::RE2> re;
  bool allow_missing = false;
};

struct PreparedOptions {
  std::shared_ptr<const ProbeOptions> options;
  std::vector<std::unique_ptr<re2::RE2>> must_match;
  std::vector<std::unique_ptr<re2::RE2>> must_not_match;
  std::vector<HeaderRule> header_must_match;
  std::vector<HeaderRule> header_must_not_match;
  // The response headers are read (kept, or matched against rules).
  bool watch_headers = false;
  // The request headers, read-only once built (curl never modifies them):
  // all of them, and those that may follow a redirect to another host
  // (without Authorization and Cookie, as browsers and Go's client do).
  // basic_auth and bearer_token become an Authorization header here, so the
  // one rule on credentials and redirects covers them too.
  CurlSlistPtr headers;
  CurlSlistPtr cross_host_headers;
  bool keep_body = false;        // a pattern needs the body's text
  bool has_host_header = false;  // `headers` names the Host
  // With options->proxy: the proxy's URL, its CONNECT headers (null when
  // none) and the hosts that bypass it.
  std::optional<ParsedUrl> proxy;
  CurlSlistPtr proxy_headers;
  std::vector<NoProxyRule> no_proxy;
  // What https probes verify against when ca_pem names CAs; null: the
  // system's (parsed on the first https connection, not here).
  std::shared_ptr<const TrustStore> trust;
  // The client certificate, parsed once; null when none.
  std::shared_ptr<const ClientIdentity> identity;
  // What each https connection's SSL_CTX gets (points into this object).
  SslContextSetup ssl_setup;
  // options->source_address, parsed; and the family probes resolve and
  // connect over: options->ip_family, or the source address's.
  std::optional<IpAddress> source;
  IpFamily family = IpFamily::kAny;
};

// OK, or kInvalidArgument whose message starts with the offending field
// ("max_body_bytes: ...", "headers[2].value: ..."): what a front end turns
// into its own error naming the field.
absl::Status CheckOptions(const ProbeOptions& options,
                          const ProbeLimits& limits);

// CheckOptions(), then builds the rest.  `options` null means the defaults.
absl::StatusOr<std::shared_ptr<const PreparedOptions>> PrepareOptions(
    std::shared_ptr<const ProbeOptions> options, const ProbeLimits& limits);

}  // namespace fanprobe::internal

#endif  // FANPROBE_PROBE_INTERNAL_PREPARED_OPTIONS_H_
