#include "probe/destination_policy.h"

#include <netinet/in.h>
#include <sys/socket.h>
#include <unistd.h>

#include <cerrno>
#include <string>
#include <vector>

#include "absl/status/statusor.h"
#include "absl/synchronization/notification.h"
#include "gtest/gtest.h"
#include "probe/engine.h"

namespace fanprobe {
namespace {

struct Case {
  const char* address;
  AddressClass expected_class;
  bool allowed_by_default;
};

// Every spelling the issue names, and the edges of each range.
const Case kCases[] = {
    // IPv4 link-local: the cloud metadata endpoints.
    {"169.254.169.254", AddressClass::kLinkLocal, false},
    {"169.254.0.0", AddressClass::kLinkLocal, false},
    {"169.254.255.255", AddressClass::kLinkLocal, false},
    {"169.253.255.255", AddressClass::kPublic, true},
    {"169.255.0.0", AddressClass::kPublic, true},
    // Unspecified.
    {"0.0.0.0", AddressClass::kUnspecified, false},
    {"0.255.255.255", AddressClass::kUnspecified, false},
    {"1.0.0.0", AddressClass::kPublic, true},
    {"::", AddressClass::kUnspecified, false},
    // Multicast, broadcast, reserved.
    {"224.0.0.1", AddressClass::kMulticast, false},
    {"239.255.255.255", AddressClass::kMulticast, false},
    {"223.255.255.255", AddressClass::kPublic, true},
    {"ff02::1", AddressClass::kMulticast, false},
    {"255.255.255.255", AddressClass::kBroadcast, false},
    {"240.0.0.1", AddressClass::kReserved, false},
    // IPv6 link-local fe80::/10 and its edges.
    {"fe80::1", AddressClass::kLinkLocal, false},
    {"febf:ffff:ffff:ffff:ffff:ffff:ffff:ffff", AddressClass::kLinkLocal,
     false},
    {"fe7f:ffff:ffff:ffff:ffff:ffff:ffff:ffff", AddressClass::kPublic, true},
    {"fec0::1", AddressClass::kPrivate, true},
    // Loopback and private: allowed by default.
    {"127.0.0.1", AddressClass::kLoopback, true},
    {"127.255.255.255", AddressClass::kLoopback, true},
    {"::1", AddressClass::kLoopback, true},
    {"10.0.0.1", AddressClass::kPrivate, true},
    {"172.16.0.0", AddressClass::kPrivate, true},
    {"172.31.255.255", AddressClass::kPrivate, true},
    {"172.32.0.0", AddressClass::kPublic, true},
    {"172.15.255.255", AddressClass::kPublic, true},
    {"192.168.1.1", AddressClass::kPrivate, true},
    {"100.64.0.1", AddressClass::kPrivate, true},
    {"100.128.0.0", AddressClass::kPublic, true},
    {"fd00::1", AddressClass::kPrivate, true},
    {"8.8.8.8", AddressClass::kPublic, true},
    {"2606:4700::1111", AddressClass::kPublic, true},
    // Cloud metadata endpoints outside link-local, and their neighbours.
    {"fd00:ec2::254", AddressClass::kCloudMetadata, false},
    {"fd00:ec2::253", AddressClass::kPrivate, true},
    {"100.100.100.200", AddressClass::kCloudMetadata, false},
    {"100.100.100.201", AddressClass::kPrivate, true},
    {"::ffff:100.100.100.200", AddressClass::kCloudMetadata, false},
    // IPv4 embedded in IPv6.
    {"::ffff:169.254.169.254", AddressClass::kLinkLocal, false},
    {"::ffff:127.0.0.1", AddressClass::kLoopback, true},
    {"::a9fe:a9fe", AddressClass::kLinkLocal, false},         // compatible
    {"64:ff9b::a9fe:a9fe", AddressClass::kLinkLocal, false},  // NAT64 /96
    {"64:ff9b::808:808", AddressClass::kPublic, true},        // NAT64 8.8.8.8
    {"64:ff9b:1:a9fe:a9:fe00::", AddressClass::kLinkLocal, false},  // /48
    {"64:ff9b:1::a9fe:a9fe", AddressClass::kLinkLocal, false},      // /96
    {"2002:a9fe:a9fe::1", AddressClass::kLinkLocal, false},         // 6to4
    {"2002:808:808::1", AddressClass::kPublic, true},
    {"2002:e000:1::1", AddressClass::kMulticast, false},
    // Teredo: client 169.254.169.254 obfuscated (XOR 0xff) in the last 32 bits.
    {"2001:0:4136:e378:8000:63bf:5601:5601", AddressClass::kLinkLocal, false},
    {"2001:0:a9fe:a9fe::1", AddressClass::kLinkLocal, false},  // server
};

IpAddress Ip(const char* text) {
  absl::StatusOr<IpAddress> address = IpAddress::Parse(text);
  EXPECT_TRUE(address.ok()) << text << ": " << address.status();
  return *address;
}

TEST(DestinationPolicyTest, ClassifiesEverySpellingAndEdge) {
  const DestinationPolicy policy;
  for (const Case& c : kCases) {
    const IpAddress address = Ip(c.address);
    EXPECT_EQ(Classify(address), c.expected_class) << c.address;
    absl::Status status = policy.Check(address);
    if (c.allowed_by_default) {
      EXPECT_TRUE(status.ok()) << c.address << ": " << status;
    } else {
      EXPECT_EQ(status.code(), absl::StatusCode::kPermissionDenied)
          << c.address;
      EXPECT_NE(status.message().find(AddressClassName(c.expected_class)),
                std::string::npos)
          << status;
    }
  }
}

TEST(DestinationPolicyTest, DenyLoopbackAndPrivateTighten) {
  DestinationPolicy policy;
  policy.deny_loopback = true;
  policy.deny_private = true;
  for (const char* denied : {"127.0.0.1", "::1", "::ffff:127.0.0.1", "10.1.2.3",
                             "192.168.0.1", "fd12::1"}) {
    EXPECT_EQ(policy.Check(Ip(denied)).code(),
              absl::StatusCode::kPermissionDenied)
        << denied;
  }
  EXPECT_TRUE(policy.Check(Ip("8.8.8.8")).ok());
}

TEST(DestinationPolicyTest, AllowCidrLiftsClassRulesButNotDenyCidr) {
  DestinationPolicy policy;
  policy.deny_private = true;
  policy.allow.push_back(*Cidr::Parse("10.1.0.0/16"));
  policy.deny.push_back(*Cidr::Parse("10.1.9.0/24"));
  policy.deny.push_back(*Cidr::Parse("8.8.8.0/24"));
  EXPECT_TRUE(policy.Check(Ip("10.1.2.3")).ok());
  EXPECT_EQ(policy.Check(Ip("10.2.0.1")).code(),
            absl::StatusCode::kPermissionDenied);
  absl::Status denied = policy.Check(Ip("10.1.9.1"));
  EXPECT_EQ(denied.code(), absl::StatusCode::kPermissionDenied);
  EXPECT_NE(denied.message().find("deny_cidr 10.1.9.0/24"), std::string::npos)
      << denied;
  // A deny CIDR also catches its addresses embedded in IPv6.
  EXPECT_EQ(policy.Check(Ip("64:ff9b::808:808")).code(),
            absl::StatusCode::kPermissionDenied);
  EXPECT_EQ(policy.Check(Ip("::ffff:8.8.8.8")).code(),
            absl::StatusCode::kPermissionDenied);
}

TEST(DestinationPolicyTest, CidrParsing) {
  EXPECT_EQ(Cidr::Parse("10.0.0.0/8")->ToString(), "10.0.0.0/8");
  EXPECT_EQ(Cidr::Parse("10.9.8.7/8")->ToString(), "10.0.0.0/8");
  EXPECT_EQ(Cidr::Parse("fe80::1/10")->ToString(), "fe80::/10");
  EXPECT_EQ(Cidr::Parse("1.2.3.4")->ToString(), "1.2.3.4/32");
  EXPECT_TRUE(Cidr::Parse("0.0.0.0/0")->Contains(Ip("200.1.1.1")));
  for (const char* bad :
       {"10.0.0.0/33", "::/129", "foo", "10.0.0.0/", "/8", "10.0.0.0/x"}) {
    EXPECT_EQ(Cidr::Parse(bad).status().code(),
              absl::StatusCode::kInvalidArgument)
        << bad;
  }
}

// A listening socket nobody accepts on: a connection attempt would show up
// in its accept queue.
class Listener {
 public:
  Listener() {
    fd_ = socket(AF_INET6, SOCK_STREAM | SOCK_NONBLOCK, 0);
    int off = 0;
    setsockopt(fd_, IPPROTO_IPV6, IPV6_V6ONLY, &off, sizeof(off));
    sockaddr_in6 address{};
    address.sin6_family = AF_INET6;
    address.sin6_addr = in6addr_any;
    bind(fd_, reinterpret_cast<sockaddr*>(&address), sizeof(address));
    listen(fd_, 64);
    socklen_t length = sizeof(address);
    getsockname(fd_, reinterpret_cast<sockaddr*>(&address), &length);
    port_ = ntohs(address.sin6_port);
  }
  ~Listener() { close(fd_); }
  int port() const { return port_; }
  bool SawConnection() const {
    int client = accept(fd_, nullptr, nullptr);
    if (client >= 0) close(client);
    return client >= 0 || errno != EAGAIN;
  }

 private:
  int fd_ = -1;
  int port_ = 0;
};

TEST(DestinationPolicyEngineTest, DeniedAtConnectTimeWhateverTheSpelling) {
  Listener listener;
  EngineOptions options;
  options.workers = 1;
  options.destination_policy.deny_loopback = true;
  std::unique_ptr<Engine> engine = *Engine::Create(options);
  const std::string port = std::to_string(listener.port());
  const std::vector<std::string> urls = {
      "http://127.0.0.1:" + port + "/",
      "http://127.1:" + port + "/",
      "http://0x7f000001:" + port + "/",
      "http://2130706433:" + port + "/",
      "http://[::1]:" + port + "/",
      "http://[::ffff:127.0.0.1]:" + port + "/",
      "http://localhost:" + port + "/",
  };
  std::vector<ProbeTarget> targets;
  for (const std::string& url : urls) targets.push_back({.url = url});
  std::vector<ProbeResult> results;
  absl::Notification done;
  engine->Submit(std::move(targets), {},
                 {.on_result = [&](ProbeResult r) { results.push_back(r); },
                  .on_done = [&](BatchSummary) { done.Notify(); }});
  ASSERT_TRUE(done.WaitForNotificationWithTimeout(absl::Seconds(20)));
  ASSERT_EQ(results.size(), urls.size());
  for (const ProbeResult& r : results) {
    EXPECT_EQ(r.outcome, Outcome::kDenied) << r.url << ": " << r.error;
    EXPECT_NE(r.error.find("is denied by policy (loopback)"), std::string::npos)
        << r.url << ": " << r.error;
  }
  EXPECT_FALSE(listener.SawConnection());
}

}  // namespace
}  // namespace fanprobe
