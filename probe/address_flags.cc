#include "probe/address_flags.h"

#include <algorithm>
#include <utility>

#include "absl/status/status.h"
#include "absl/strings/ascii.h"
#include "absl/strings/match.h"
#include "absl/strings/numbers.h"
#include "absl/strings/str_cat.h"
#include "absl/strings/str_split.h"
#include "absl/strings/strip.h"

namespace fanprobe {
namespace {

// The trimmed, non-empty entries of a list flag's values.
std::vector<absl::string_view> Entries(const std::vector<std::string>& values) {
  std::vector<absl::string_view> entries;
  for (const std::string& value : values) {
    for (absl::string_view part : absl::StrSplit(value, ',')) {
      part = absl::StripAsciiWhitespace(part);
      if (!part.empty()) entries.push_back(part);
    }
  }
  return entries;
}

absl::Status BadEntry(absl::string_view flag, absl::string_view entry,
                      absl::string_view why, absl::string_view want) {
  return absl::InvalidArgumentError(
      absl::StrCat("--", flag, "=", entry, ": ", why, " (want ", want, ")"));
}

constexpr absl::string_view kWantCidr =
    "a CIDR such as 10.0.0.0/8 or fd00::/8, or a single address";
constexpr absl::string_view kWantDnsServer =
    "an IP address with an optional port: 10.0.0.2, 10.0.0.2:5353, fd00::53 "
    "or [fd00::53]:5353";

// One DNS server, as EngineOptions::dns_servers takes it.
absl::StatusOr<std::string> ParseDnsServer(absl::string_view flag,
                                           absl::string_view entry) {
  const auto bad = [flag, entry](absl::string_view why) {
    return BadEntry(flag, entry, why, kWantDnsServer);
  };
  absl::string_view host = entry;
  absl::string_view port;
  if (absl::ConsumePrefix(&host, "[")) {
    const size_t close = host.find(']');
    if (close == absl::string_view::npos) return bad("no closing ']'");
    port = host.substr(close + 1);
    host = host.substr(0, close);
    if (!port.empty() && !absl::ConsumePrefix(&port, ":")) {
      return bad("want ':port' after ']'");
    }
    if (port.empty() && entry.back() == ':') return bad("empty port");
  } else if (std::count(host.begin(), host.end(), ':') == 1) {
    // One colon: IPv4 with a port.  More: a bare IPv6 address.
    const size_t colon = host.find(':');
    port = host.substr(colon + 1);
    host = host.substr(0, colon);
    if (port.empty()) return bad("empty port");
  }
  if (!IpAddress::Parse(host).ok()) return bad("not an IP address");
  int port_number = 53;
  if (!port.empty() && (!absl::SimpleAtoi(port, &port_number) ||
                        port_number < 1 || port_number > 65535)) {
    return bad("the port is not a number in 1-65535");
  }
  return absl::StrContains(host, ':')
             ? absl::StrCat("[", host, "]:", port_number)
             : absl::StrCat(host, ":", port_number);
}

}  // namespace

absl::StatusOr<std::vector<Cidr>> ParseCidrList(
    absl::string_view flag, const std::vector<std::string>& entries) {
  std::vector<Cidr> cidrs;
  for (absl::string_view entry : Entries(entries)) {
    absl::StatusOr<Cidr> cidr = Cidr::Parse(entry);
    if (!cidr.ok()) {
      return BadEntry(flag, entry, cidr.status().message(), kWantCidr);
    }
    cidrs.push_back(*cidr);
  }
  return cidrs;
}

absl::StatusOr<DestinationPolicy> DestinationPolicyFromFlags(
    const DestinationPolicyFlags& flags) {
  DestinationPolicy policy;
  policy.deny_private = flags.deny_private;
  policy.deny_loopback = flags.deny_loopback;
  absl::StatusOr<std::vector<Cidr>> allow =
      ParseCidrList("allow_cidr", flags.allow_cidr);
  if (!allow.ok()) return allow.status();
  policy.allow = *std::move(allow);
  absl::StatusOr<std::vector<Cidr>> deny =
      ParseCidrList("deny_cidr", flags.deny_cidr);
  if (!deny.ok()) return deny.status();
  policy.deny = *std::move(deny);
  return policy;
}

absl::StatusOr<std::vector<std::string>> ParseDnsServerList(
    absl::string_view flag, const std::vector<std::string>& entries) {
  std::vector<std::string> servers;
  for (absl::string_view entry : Entries(entries)) {
    absl::StatusOr<std::string> server = ParseDnsServer(flag, entry);
    if (!server.ok()) return server.status();
    servers.push_back(*std::move(server));
  }
  return servers;
}

}  // namespace fanprobe
