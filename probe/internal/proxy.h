// proxy.h: which hosts bypass a probe's proxy (ProxyOptions::no_proxy), as
// Go's and curl's NO_PROXY decide it.  Internal to probe/.
//
// Example:
//   absl::StatusOr<NoProxyRule> rule = ParseNoProxyRule(".internal.test");
//   if (Bypasses(rules, url)) { ... connect directly ... }
//
// Thread-safety: pure functions of their arguments.

#ifndef FANPROBE_PROBE_INTERNAL_PROXY_H_
#define FANPROBE_PROBE_INTERNAL_PROXY_H_

#include <optional>
#include <string>
#include <vector>

#include "absl/status/statusor.h"
#include "absl/strings/string_view.h"
#include "probe/destination_policy.h"
#include "probe/internal/target_url.h"

namespace fanprobe::internal {

// One no_proxy entry.
struct NoProxyRule {
  bool everything = false;    // "*"
  std::optional<Cidr> block;  // an address or CIDR block
  // A domain, lower-case: "example.com" is it and its subdomains;
  // ".example.com" its subdomains only.
  std::string domain;
  int port = 0;  // 0: any
};

// "*", "10.0.0.0/8", "192.0.2.1", "[::1]:8080", "example.com",
// ".example.com:443", "*.example.com" (taken as ".example.com").  Fails
// (kInvalidArgument) on an empty entry or one that is none of these.
absl::StatusOr<NoProxyRule> ParseNoProxyRule(absl::string_view entry);

// Whether a request to `target` goes directly, not through the proxy: some
// rule matches its host (a block only a host named by address) and port.
bool Bypasses(const std::vector<NoProxyRule>& rules, const ParsedUrl& target);

}  // namespace fanprobe::internal

#endif  // FANPROBE_PROBE_INTERNAL_PROXY_H_
