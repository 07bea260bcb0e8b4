// address_flags.h: the address lists that the server's and the CLI's flags
// give, parsed once for both: CIDR lists, the destination policy, and DNS
// servers.  Each list flag may be repeated and each entry may itself be a
// comma list; entries are trimmed and empty ones skipped.  A bad entry is
// kInvalidArgument naming the flag, as its caller spells it, and the entry,
// with what would be right:
//   "--deny_cidr=10.0.0.0/33: ... (want a CIDR such as 10.0.0.0/8 ...)"
//   "--dns-servers=dns.local: not an IP address (want an IP address ...)"
//
// Example:
//   absl::StatusOr<DestinationPolicy> policy = DestinationPolicyFromFlags(
//       {.deny_private = true, .allow_cidr = {"10.1.0.0/16"}});
//   absl::StatusOr<std::vector<std::string>> servers =
//       ParseDnsServerList("dns_server", {"10.0.0.2, [fd00::53]:5353"});
//   // {"10.0.0.2:53", "[fd00::53]:5353"}: as EngineOptions::dns_servers
//
// Thread-safety: plain functions of their arguments.

#ifndef FANPROBE_PROBE_ADDRESS_FLAGS_H_
#define FANPROBE_PROBE_ADDRESS_FLAGS_H_

#include <string>
#include <vector>

#include "absl/status/statusor.h"
#include "absl/strings/string_view.h"
#include "probe/destination_policy.h"

namespace fanprobe {

// The CIDRs a list flag names: what --allow_cidr, --deny_cidr and
// --allow_source_cidr take.
absl::StatusOr<std::vector<Cidr>> ParseCidrList(
    absl::string_view flag, const std::vector<std::string>& entries);

// The destination policy flags as given: --deny_private, --deny_loopback,
// --allow_cidr and --deny_cidr.
struct DestinationPolicyFlags {
  bool deny_private = false;
  bool deny_loopback = false;
  std::vector<std::string> allow_cidr;
  std::vector<std::string> deny_cidr;
};

// The destination policy the flags describe.
absl::StatusOr<DestinationPolicy> DestinationPolicyFromFlags(
    const DestinationPolicyFlags& flags);

// The DNS servers a list flag names: "ip", "ip:port" or "[ipv6]:port", port
// 1-65535 (53 when absent), in the form EngineOptions::dns_servers takes
// ("10.0.0.2:53", "[fd00::53]:53").  A host name is refused too: the
// resolver cannot resolve its own server.
absl::StatusOr<std::vector<std::string>> ParseDnsServerList(
    absl::string_view flag, const std::vector<std::string>& entries);

}  // namespace fanprobe

#endif  // FANPROBE_PROBE_ADDRESS_FLAGS_H_
