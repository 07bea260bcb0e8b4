// destination_policy.h: which addresses a probe may connect to.  A service
// that fetches URLs its callers choose is an SSRF tool unless every address
// is checked where it cannot be bypassed: the engine asks this policy about
// each address libcurl is about to open a socket to
// (CURLOPT_OPENSOCKETFUNCTION), on every redirect hop, after name resolution.
// URLs are never parsed for this: libcurl accepts 127.1, 0x7f000001,
// [::ffff:127.0.0.1] and more.
//
// Example:
//   fanprobe::DestinationPolicy policy;       // the default rules
//   policy.deny_private = true;
//   policy.allow.push_back(*fanprobe::Cidr::Parse("10.1.0.0/16"));
//   absl::Status s = policy.Check(address);   // kPermissionDenied + why
//
// The default denies link-local (169.254.0.0/16, fe80::/10: the cloud
// metadata endpoints), the metadata endpoints outside those (fd00:ec2::254,
// 100.100.100.200), unspecified, multicast, broadcast and reserved
// addresses, and the same addresses embedded in IPv6 (IPv4-mapped and
// -compatible, NAT64 64:ff9b::/96 and 64:ff9b:1::/48, 6to4 2002::/16,
// Teredo 2001::/32).  Loopback and private ranges are allowed unless
// deny_loopback / deny_private say otherwise.  Order: `deny` CIDRs, then
// `allow` CIDRs (which lift any class rule), then the class rules.
//
// Thread-safety: immutable after construction; Check() may be called from
// any thread.

#ifndef FANPROBE_PROBE_DESTINATION_POLICY_H_
#define FANPROBE_PROBE_DESTINATION_POLICY_H_

#include <netinet/in.h>
#include <sys/socket.h>

#include <array>
#include <cstdint>
#include <string>
#include <vector>

#include "absl/status/status.h"
#include "absl/status/statusor.h"
#include "absl/strings/string_view.h"

namespace fanprobe {

// An IPv4 or IPv6 address, IPv4 held as an IPv4-mapped IPv6 address
// (::ffff:a.b.c.d) so one type covers both.
struct IpAddress {
  std::array<uint8_t, 16> bytes{};
  bool is_v4 = false;

  static absl::StatusOr<IpAddress> Parse(absl::string_view text);
  // From a socket address (AF_INET or AF_INET6); false for other families.
  static bool FromSockaddr(const sockaddr* address, IpAddress* out);
  std::string ToString() const;
};

// A network in CIDR notation: "10.0.0.0/8", "fd00::/8", or a bare address.
struct Cidr {
  IpAddress network;
  int prefix_length = 0;  // over the 128-bit form for IPv4 too (96 + n)

  static absl::StatusOr<Cidr> Parse(absl::string_view text);
  bool Contains(const IpAddress& address) const;
  std::string ToString() const;
};

// The kinds of address the class rules know.
enum class AddressClass {
  kPublic,
  kLoopback,     // 127.0.0.0/8, ::1
  kPrivate,      // 10/8, 172.16/12, 192.168/16, 100.64/10 (CGNAT), fc00::/7
  kLinkLocal,    // 169.254/16, fe80::/10
  kUnspecified,  // 0.0.0.0/8, ::
  kMulticast,    // 224/4, ff00::/8
  kBroadcast,    // 255.255.255.255
  kReserved,     // 240/4 (but broadcast)
  // Well-known cloud metadata endpoints outside link-local: AWS's IPv6
  // fd00:ec2::254 and Alibaba's 100.100.100.200 (inside 100.64/10).
  kCloudMetadata,
};
absl::string_view AddressClassName(AddressClass address_class);

// Classifies an address, looking through the IPv6 forms that embed an IPv4
// address (mapped, compatible, NAT64, 6to4, Teredo) at that IPv4 address.
AddressClass Classify(const IpAddress& address);

struct DestinationPolicy {
  bool deny_loopback = false;
  bool deny_private = false;
  std::vector<Cidr> allow;  // allowed even if a class rule denies them
  std::vector<Cidr> deny;   // always denied

  // OK, or kPermissionDenied saying which address and which rule.
  absl::Status Check(const IpAddress& address) const;
};

}  // namespace fanprobe

#endif  // FANPROBE_PROBE_DESTINATION_POLICY_H_
