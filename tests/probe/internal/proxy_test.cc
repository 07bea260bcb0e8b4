// proxy_test.cc: no_proxy entries as Go's and curl's NO_PROXY read them,
// and which targets each one sends directly.

#include "probe/internal/proxy.h"

#include <string>
#include <vector>

#include "gmock/gmock.h"
#include "gtest/gtest.h"

namespace fanprobe::internal {
namespace {

ParsedUrl Url(const std::string& url) { return *ParseTargetUrl(url); }

bool Direct(const std::vector<std::string>& entries, const std::string& url) {
  std::vector<NoProxyRule> rules;
  for (const std::string& entry : entries) {
    absl::StatusOr<NoProxyRule> rule = ParseNoProxyRule(entry);
    EXPECT_TRUE(rule.ok()) << entry << ": " << rule.status();
    if (rule.ok()) rules.push_back(*rule);
  }
  return Bypasses(rules, Url(url));
}

TEST(NoProxyTest, ADomainIsItselfAndItsSubdomains) {
  EXPECT_TRUE(Direct({"example.com"}, "http://example.com/"));
  EXPECT_TRUE(Direct({"example.com"}, "https://www.example.com/"));
  EXPECT_TRUE(Direct({"Example.COM"}, "http://a.b.example.com/"));
  EXPECT_FALSE(Direct({"example.com"}, "http://badexample.com/"));
  EXPECT_FALSE(Direct({"example.com"}, "http://example.com.evil.test/"));
}

TEST(NoProxyTest, ALeadingDotOrStarIsSubdomainsOnly) {
  for (const std::string entry : {".example.com", "*.example.com"}) {
    SCOPED_TRACE(entry);
    EXPECT_FALSE(Direct({entry}, "http://example.com/"));
    EXPECT_TRUE(Direct({entry}, "http://www.example.com/"));
  }
}

TEST(NoProxyTest, APortNarrowsTheRule) {
  EXPECT_TRUE(Direct({"example.com:8080"}, "http://example.com:8080/"));
  EXPECT_FALSE(Direct({"example.com:8080"}, "http://example.com/"));
  EXPECT_TRUE(Direct({"example.com:443"}, "https://example.com/"));
  EXPECT_TRUE(Direct({"[::1]:80"}, "http://[::1]/"));
  EXPECT_FALSE(Direct({"[::1]:81"}, "http://[::1]/"));
}

TEST(NoProxyTest, AddressesAndBlocksMatchTargetsNamedByAddress) {
  EXPECT_TRUE(Direct({"10.0.0.0/8"}, "http://10.1.2.3/"));
  EXPECT_FALSE(Direct({"10.0.0.0/8"}, "http://11.1.2.3/"));
  EXPECT_TRUE(Direct({"192.0.2.1"}, "http://192.0.2.1:8080/"));
  EXPECT_TRUE(Direct({"::1"}, "http://[::1]/"));
  EXPECT_TRUE(Direct({"fd00::/8"}, "http://[fd12::1]/"));
  // Not a name that resolves to one: the proxy decides before any lookup.
  EXPECT_FALSE(Direct({"127.0.0.0/8"}, "http://localhost/"));
}

TEST(NoProxyTest, StarIsEverything) {
  EXPECT_TRUE(Direct({"*"}, "http://anything.test/"));
  EXPECT_TRUE(Direct({"*"}, "http://192.0.2.1/"));
  EXPECT_FALSE(Direct({}, "http://anything.test/"));
}

TEST(NoProxyTest, WhatIsNoEntryIsRefused) {
  for (const std::string entry :
       {"", "a b", "example.com:http", "10.0.0.0/99", "[::1", "-x-:99999"}) {
    SCOPED_TRACE(entry);
    EXPECT_EQ(ParseNoProxyRule(entry).status().code(),
              absl::StatusCode::kInvalidArgument);
  }
}

}  // namespace
}  // namespace fanprobe::internal
