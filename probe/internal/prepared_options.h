// prepared_options.h: a probe's options, checked and pre-built once per
// distinct ProbeOptions object, so a batch of 100,000 targets sharing
// options compiles its patterns and builds its header list once.  Internal
// to probe/.
//
// Every string that reaches the request is checked here, before anything is
// sent: the method is an RFC 9110 token, header names are tokens, header
// values and the user agent hold no CR, LF, NUL or other control character
// (which would let a caller inject headers or a whole second request).
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
#include <string>
#include <vector>

#include "absl/status/status.h"
#include "absl/status/statusor.h"
#include "probe/internal/tls.h"
#include "probe/probe.h"
#include "re2/re2.h"

namespace fanprobe::internal {

struct CurlSlistDeleter {
  void operator()(curl_slist* list) const { curl_slist_free_all(list); }
};
using CurlSlistPtr = std::unique_ptr<curl_slist, CurlSlistDeleter>;

struct PreparedOptions {
  std::shared_ptr<const ProbeOptions> options;
  std::vector<std::unique_ptr<re2::RE2>> must_match;
  std::vector<std::unique_ptr<re2::RE2>> must_not_match;
  // The request headers, read-only once built (curl never modifies them):
  // all of them, and those that may follow a redirect to another host
  // (without Authorization and Cookie, as browsers and Go's client do).
  CurlSlistPtr headers;
  CurlSlistPtr cross_host_headers;
  bool keep_body = false;  // a pattern needs the body's text
  // What https probes verify against when ca_pem names CAs; null: the
  // system's (parsed on the first https connection, not here).
  std::shared_ptr<const TrustStore> trust;
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
