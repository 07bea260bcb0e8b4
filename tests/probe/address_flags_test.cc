// address_flags_test.cc: the address lists the server's and the CLI's flags
// give -- CIDR lists, the destination policy and DNS servers -- take comma
// lists and repeated flags, and a bad entry is refused naming the flag, as
// its caller spells it, and the entry.

#include "probe/address_flags.h"

#include <string>
#include <vector>

#include "absl/status/statusor.h"
#include "absl/strings/str_cat.h"
#include "gmock/gmock.h"
#include "gtest/gtest.h"

namespace fanprobe {
namespace {

using ::testing::ElementsAre;
using ::testing::IsEmpty;
using ::testing::StartsWith;

TEST(ParseCidrListTest, TakesCommaListsAndNamesABadEntry) {
  absl::StatusOr<std::vector<Cidr>> cidrs =
      ParseCidrList("allow_source_cidr", {"127.0.0.2, 10.1.0.0/16", "", "::1"});
  ASSERT_TRUE(cidrs.ok()) << cidrs.status();
  ASSERT_EQ(cidrs->size(), 3u);
  EXPECT_EQ((*cidrs)[0].ToString(), "127.0.0.2/32");
  EXPECT_EQ((*cidrs)[1].ToString(), "10.1.0.0/16");
  EXPECT_EQ((*cidrs)[2].ToString(), "::1/128");
  absl::StatusOr<std::vector<Cidr>> bad =
      ParseCidrList("allow_source_cidr", {"10.0.0.0/8, 127.0.0.2,eth0"});
  ASSERT_FALSE(bad.ok());
  EXPECT_EQ(bad.status().code(), absl::StatusCode::kInvalidArgument);
  EXPECT_EQ(std::string(bad.status().message()),
            "--allow_source_cidr=eth0: \"eth0\" is not a CIDR: \"eth0\" is not "
            "an IPv4 or IPv6 address (want a CIDR such as 10.0.0.0/8 or "
            "fd00::/8, or a single address)");
}

TEST(DestinationPolicyFromFlagsTest, BuildsThePolicy) {
  absl::StatusOr<DestinationPolicy> policy = DestinationPolicyFromFlags(
      {.deny_private = true,
       .deny_loopback = false,
       .allow_cidr = {" 10.1.0.0/16 , fd00:1::/32", ""},
       .deny_cidr = {"169.254.169.254", "2001:db8::/32"}});
  ASSERT_TRUE(policy.ok()) << policy.status();
  EXPECT_TRUE(policy->deny_private);
  EXPECT_FALSE(policy->deny_loopback);
  ASSERT_EQ(policy->allow.size(), 2u);
  EXPECT_EQ(policy->allow[0].ToString(), "10.1.0.0/16");
  EXPECT_EQ(policy->allow[1].ToString(), "fd00:1::/32");
  ASSERT_EQ(policy->deny.size(), 2u);
  EXPECT_EQ(policy->deny[0].ToString(), "169.254.169.254/32");
  EXPECT_EQ(policy->deny[1].ToString(), "2001:db8::/32");
  EXPECT_TRUE(policy->Check(*IpAddress::Parse("10.1.2.3")).ok());
  EXPECT_EQ(policy->Check(*IpAddress::Parse("10.2.0.1")).code(),
            absl::StatusCode::kPermissionDenied);
}

TEST(DestinationPolicyFromFlagsTest, ABadCidrNamesTheFlagAndTheEntry) {
  struct Case {
    bool allow;
    std::string entry;
  };
  const std::vector<Case> cases = {
      {true, "10.0.0.0/33"}, {true, "10.0.0.0/"},     {false, "fd00::/129"},
      {false, "dns.test"},   {false, "10.0.0.0/8/8"}, {false, "300.1.1.1"}};
  for (const Case& c : cases) {
    DestinationPolicyFlags flags;
    const std::string list = absl::StrCat("10.0.0.0/8,", c.entry);
    if (c.allow) {
      flags.allow_cidr = {list};
    } else {
      flags.deny_cidr = {list};
    }
    const absl::StatusOr<DestinationPolicy> policy =
        DestinationPolicyFromFlags(flags);
    ASSERT_FALSE(policy.ok()) << c.entry;
    EXPECT_EQ(policy.status().code(), absl::StatusCode::kInvalidArgument);
    EXPECT_THAT(
        std::string(policy.status().message()),
        StartsWith(absl::StrCat(
            c.allow ? "--allow_cidr=" : "--deny_cidr=", c.entry, ": ")));
  }
}

TEST(ParseDnsServerListTest, TakesAddressesWithOrWithoutAPort) {
  absl::StatusOr<std::vector<std::string>> servers = ParseDnsServerList(
      "dns_server",
      {"10.0.0.2, 127.0.0.1:5353", "", "fd00::53,[::1]:5300", "[fd00::54]"});
  ASSERT_TRUE(servers.ok()) << servers.status();
  EXPECT_THAT(*servers,
              ElementsAre("10.0.0.2:53", "127.0.0.1:5353", "[fd00::53]:53",
                          "[::1]:5300", "[fd00::54]:53"));
  EXPECT_THAT(*ParseDnsServerList("dns_server", {}), IsEmpty());
  EXPECT_THAT(*ParseDnsServerList("dns_server", {" , "}), IsEmpty());
}

TEST(ParseDnsServerListTest, AnythingElseNamesTheFlagTheEntryAndWhy) {
  const std::pair<const char*, const char*> cases[] = {
      {"dns.test", "not an IP address"},
      {"300.0.0.1", "not an IP address"},
      {"[dns.test]:53", "not an IP address"},
      {"127.0.0.1:", "empty port"},
      {"[::1]:", "empty port"},
      {"127.0.0.1:0", "the port is not a number in 1-65535"},
      {"127.0.0.1:65536", "the port is not a number in 1-65535"},
      {"127.0.0.1:53x", "the port is not a number in 1-65535"},
      {"[::1", "no closing ']'"},
      {"[::1]53", "want ':port' after ']'"},
  };
  for (const auto& [entry, why] : cases) {
    // The flag is named as the caller spells it: the server's
    // --dns_server, the CLI's --dns-servers.
    for (const char* flag : {"dns_server", "dns-servers"}) {
      const absl::StatusOr<std::vector<std::string>> servers =
          ParseDnsServerList(flag, {absl::StrCat("10.0.0.2,", entry)});
      ASSERT_FALSE(servers.ok()) << entry;
      EXPECT_EQ(servers.status().code(), absl::StatusCode::kInvalidArgument);
      EXPECT_EQ(std::string(servers.status().message()),
                absl::StrCat("--", flag, "=", entry, ": ", why,
                             " (want an IP address with an optional port: "
                             "10.0.0.2, 10.0.0.2:5353, fd00::53 or "
                             "[fd00::53]:5353)"));
    }
  }
}

}  // namespace
}  // namespace fanprobe
