// The listening side's address handling: "host:port" flags and the sockets
// they give, on loopback only.

#include "probe/socket_address.h"

#include <arpa/inet.h>
#include <netinet/in.h>
#include <sys/socket.h>

#include <cstring>
#include <string>

#include "gtest/gtest.h"
#include "probe/unique_fd.h"

namespace fanprobe {
namespace {

// Whether a TCP connection to `ip`:`port` (numeric, v4 or v6) is accepted
// into the listen queue.
bool Connects(const std::string& ip, int port) {
  sockaddr_storage address{};
  socklen_t length = 0;
  auto* v4 = reinterpret_cast<sockaddr_in*>(&address);
  auto* v6 = reinterpret_cast<sockaddr_in6*>(&address);
  if (inet_pton(AF_INET, ip.c_str(), &v4->sin_addr) == 1) {
    v4->sin_family = AF_INET;
    v4->sin_port = htons(port);
    length = sizeof(*v4);
  } else if (inet_pton(AF_INET6, ip.c_str(), &v6->sin6_addr) == 1) {
    v6->sin6_family = AF_INET6;
    v6->sin6_port = htons(port);
    length = sizeof(*v6);
  } else {
    return false;
  }
  UniqueFd fd(socket(address.ss_family, SOCK_STREAM | SOCK_CLOEXEC, 0));
  return fd.get() >= 0 &&
         connect(fd.get(), reinterpret_cast<sockaddr*>(&address), length) == 0;
}

TEST(SplitHostPortTest, TakesHostsPortsAndBrackets) {
  std::string host;
  int port = -1;
  ASSERT_TRUE(SplitHostPort("127.0.0.1:9116", &host, &port).ok());
  EXPECT_EQ(host, "127.0.0.1");
  EXPECT_EQ(port, 9116);
  ASSERT_TRUE(SplitHostPort("[::1]:0", &host, &port).ok());
  EXPECT_EQ(host, "::1");
  EXPECT_EQ(port, 0);
  ASSERT_TRUE(SplitHostPort(":50051", &host, &port).ok());
  EXPECT_EQ(host, "");
  EXPECT_EQ(port, 50051);
  for (const char* bad :
       {"127.0.0.1", "127.0.0.1:", "h:65536", "h:-1", "h:x"}) {
    const absl::Status status = SplitHostPort(bad, &host, &port);
    EXPECT_EQ(status.code(), absl::StatusCode::kInvalidArgument) << bad;
    EXPECT_EQ(status.message(),
              std::string("address \"") + bad + "\": want host:port");
  }
}

TEST(ListenOnTest, PortZeroTakesAFreePortThatBoundPortReports) {
  absl::StatusOr<Listening> listening = ListenOn("127.0.0.1", 0, true);
  ASSERT_TRUE(listening.ok()) << listening.status();
  ASSERT_EQ(listening->fds.size(), 1u);
  EXPECT_GT(listening->port, 0);
  EXPECT_EQ(BoundPort(listening->fds[0].get()), listening->port);
  EXPECT_TRUE(Connects("127.0.0.1", listening->port));
}

// "[::]:port" and ":port": one socket that IPv4 and IPv6 clients both reach.
TEST(ListenOnTest, TheWildcardIsOneSocketForBothFamilies) {
  for (const char* host : {"", "::"}) {
    absl::StatusOr<Listening> listening = ListenOn(host, 0, true);
    ASSERT_TRUE(listening.ok()) << listening.status();
    ASSERT_EQ(listening->fds.size(), 1u) << host;
    EXPECT_TRUE(Connects("127.0.0.1", listening->port)) << host;
    EXPECT_TRUE(Connects("::1", listening->port)) << host;
  }
}

// A second server on a port in use fails; it does not share the port.
TEST(ListenOnTest, APortInUseIsUnavailableWithTheReason) {
  absl::StatusOr<Listening> first = ListenOn("127.0.0.1", 0, false);
  ASSERT_TRUE(first.ok()) << first.status();
  absl::StatusOr<Listening> second = ListenOn("127.0.0.1", first->port, false);
  EXPECT_EQ(second.status().code(), absl::StatusCode::kUnavailable);
  EXPECT_EQ(second.status().message(), std::strerror(EADDRINUSE));
}

TEST(ListenOnTest, AnAddressThatIsNotLocalIsUnavailable) {
  // TEST-NET-1 (RFC 5737): never this machine's; bind() fails, no packet
  // is sent.
  absl::StatusOr<Listening> listening = ListenOn("192.0.2.1", 0, true);
  EXPECT_EQ(listening.status().code(), absl::StatusCode::kUnavailable);
  EXPECT_EQ(listening.status().message(), std::strerror(EADDRNOTAVAIL));
}

}  // namespace
}  // namespace fanprobe
