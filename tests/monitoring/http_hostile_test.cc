// monitoring/http_server.h against hostile clients (issue 13), loopback
// only and bounded in count and time: clients that send their headers a
// byte a second (slowloris), scrapers that hang up while their probe runs,
// more connections than one client address may hold.  Through all of it a
// normal client must get /healthz, /metrics and a fast /probe within 2 s.
//
// The attackers connect from other loopback addresses (127.0.0.2 and up;
// all of 127/8 is loopback on Linux), so the per-client bound does not
// count the normal client, who comes from 127.0.0.1.

#include <arpa/inet.h>
#include <netinet/in.h>
#include <poll.h>
#include <sys/socket.h>
#include <unistd.h>

#include <atomic>
#include <cstdio>
#include <memory>
#include <string>
#include <thread>
#include <vector>

#include "absl/strings/str_cat.h"
#include "absl/synchronization/notification.h"
#include "absl/time/clock.h"
#include "absl/time/time.h"
#include "gmock/gmock.h"
#include "gtest/gtest.h"
#include "monitoring/http_server.h"
#include "probe/unique_fd.h"
#include "tests/monitoring/http_side.h"
#include "tests/support/http_client.h"
#include "tests/support/target_server.h"
#include "tests/support/wait.h"

namespace fanprobe::testing {
namespace {

using ::fanprobe::UniqueFd;

// A blocking TCP connection to 127.0.0.1:`port` from `source` (a loopback
// address), or an invalid fd when the connect fails.
UniqueFd ConnectFrom(const std::string& source, int port) {
  UniqueFd fd(socket(AF_INET, SOCK_STREAM | SOCK_CLOEXEC, 0));
  if (fd.get() < 0) return fd;
  sockaddr_in from{};
  from.sin_family = AF_INET;
  inet_pton(AF_INET, source.c_str(), &from.sin_addr);
  if (bind(fd.get(), reinterpret_cast<const sockaddr*>(&from), sizeof(from)) !=
      0) {
    return UniqueFd();
  }
  sockaddr_in to{};
  to.sin_family = AF_INET;
  to.sin_port = htons(static_cast<uint16_t>(port));
  to.sin_addr.s_addr = htonl(INADDR_LOOPBACK);
  if (connect(fd.get(), reinterpret_cast<const sockaddr*>(&to), sizeof(to)) !=
      0) {
    return UniqueFd();
  }
  return fd;
}

bool SendAll(int fd, const std::string& data) {
  size_t sent = 0;
  while (sent < data.size()) {
    const ssize_t n = send(fd, data.data() + sent, data.size() - sent,
                           MSG_NOSIGNAL | MSG_DONTWAIT);
    if (n <= 0) return false;
    sent += static_cast<size_t>(n);
  }
  return true;
}

// Whether the server has closed `fd` (EOF or reset), waiting up to
// `timeout` for it; data the server sent first is read and dropped.
bool ClosedByServer(int fd, absl::Duration timeout) {
  const absl::Time deadline = absl::Now() + timeout;
  while (true) {
    pollfd p{.fd = fd, .events = POLLIN, .revents = 0};
    const int left = static_cast<int>(std::max<int64_t>(
        0, absl::ToInt64Milliseconds(deadline - absl::Now())));
    if (poll(&p, 1, left) <= 0) return false;
    char buf[4096];
    const ssize_t n = recv(fd, buf, sizeof(buf), MSG_DONTWAIT);
    if (n == 0 || (n < 0 && errno != EAGAIN && errno != EINTR)) return true;
  }
}

// "127.0.0.<2 + i / per_address>": `per_address` connections per source.
std::string AttackerAddress(int base, int i, int per_address) {
  return absl::StrCat("127.0.", base, ".", 2 + i / per_address);
}

// Connections that send a request line and then one header byte a second,
// never finishing their headers, from a thread of their own.
class SlowHeaderClients {
 public:
  SlowHeaderClients(int port, int count, int per_address) {
    for (int i = 0; i < count; ++i) {
      UniqueFd fd = ConnectFrom(AttackerAddress(0, i, per_address), port);
      if (fd.get() >= 0 &&
          SendAll(fd.get(), "GET /metrics HTTP/1.1\r\nHost: x\r\nX-Drip: ")) {
        fds_.push_back(std::move(fd));
      }
    }
    connected_ = static_cast<int>(fds_.size());
    open_ = connected_;
    dripper_ = std::thread([this] {
      while (!stop_.WaitForNotificationWithTimeout(absl::Seconds(1))) {
        int open = 0;
        for (UniqueFd& fd : fds_) {
          if (fd.get() < 0) continue;
          if (SendAll(fd.get(), "a")) {
            ++open;
          } else {
            fd.reset();
          }
        }
        open_ = open;
      }
    });
  }
  ~SlowHeaderClients() {
    stop_.Notify();
    dripper_.join();
  }

  int connected() const { return connected_; }
  // Connections a drip could still be sent on at the last drip.
  int open() const { return open_; }

 private:
  std::vector<UniqueFd> fds_;
  int connected_ = 0;
  std::atomic<int> open_{0};
  absl::Notification stop_;
  std::thread dripper_;
};

// What a normal client saw while the attack ran.
struct NormalClientFigures {
  int requests = 0;
  int failed = 0;  // not 200, or no answer within 2 s
  absl::Duration slowest;
};

// Until `stop`, a normal client from 127.0.0.1 asks for /healthz, /metrics
// and a /probe of a fast target in turn, each with a 2 s timeout.
NormalClientFigures RunNormalClient(const std::string& http,
                                    const std::string& fast_target,
                                    absl::Notification& stop) {
  NormalClientFigures figures;
  const std::vector<std::string> paths = {"/healthz", "/metrics",
                                          ProbePath({fast_target})};
  while (!stop.HasBeenNotified()) {
    for (const std::string& path : paths) {
      const absl::Time start = absl::Now();
      HttpReply reply = HttpGet(http, path, {}, absl::Seconds(2));
      const absl::Duration took = absl::Now() - start;
      ++figures.requests;
      figures.slowest = std::max(figures.slowest, took);
      if (reply.status != 200 || took > absl::Seconds(2)) {
        ++figures.failed;
        std::fprintf(stderr, "normal client: %s -> %d after %s\n",
                     path.substr(0, 40).c_str(), reply.status,
                     absl::FormatDuration(took).c_str());
      }
    }
    absl::SleepFor(absl::Milliseconds(100));
  }
  return figures;
}

// Issue 13's measurement: 200 slow-header connections and 200 abandoned
// scrapes open at once; a normal client is served within 2 s throughout,
// and the abandoned scrapes' probes are cancelled within 1 s of their
// scrapers leaving.
TEST(HttpHostileTest, SlowHeadersAndAbandonedScrapesDoNotStarveANormalClient) {
  TargetServer target;
  HttpSide side;
  const int port = side.http().port();

  absl::Notification stop_normal;
  NormalClientFigures normal;
  std::thread normal_client([&] {
    normal =
        RunNormalClient(side.address(), target.url("/status/200"), stop_normal);
  });

  SlowHeaderClients slow(port, 200, 20);
  EXPECT_EQ(slow.connected(), 200);

  // 200 scrapes of a target that never answers, with a 30 s scrape timeout,
  // from 127.0.1.2..11.
  constexpr int kScrapes = 200;
  const std::string request =
      absl::StrCat("GET ", ProbePath({target.raw_url("/hang")}),
                   " HTTP/1.1\r\nHost: x\r\n"
                   "X-Prometheus-Scrape-Timeout-Seconds: 30\r\n\r\n");
  std::vector<UniqueFd> scrapers;
  for (int i = 0; i < kScrapes; ++i) {
    UniqueFd fd = ConnectFrom(AttackerAddress(1, i, 20), port);
    if (fd.get() >= 0 && SendAll(fd.get(), request)) {
      scrapers.push_back(std::move(fd));
    }
  }
  EXPECT_EQ(scrapers.size(), static_cast<size_t>(kScrapes));
  const bool all_probing = target.WaitFor(
      [](const TargetStats& s) { return s.raw.in_flight == kScrapes; },
      kPatience);
  const int probing = target.Stats().raw.in_flight;
  std::fprintf(stderr, "abandoned scrapes probing at the target: %d of %d\n",
               probing, kScrapes);
  EXPECT_TRUE(all_probing);

  // The scrapers hang up; their probes must follow within 1 s.
  const int abandoned_before = target.Stats().raw.abandoned;
  const absl::Time hung_up = absl::Now();
  scrapers.clear();
  const bool cancelled = target.WaitFor(
      [&](const TargetStats& s) {
        return s.raw.abandoned - abandoned_before >= probing &&
               s.raw.in_flight == 0;
      },
      kPatience);
  const absl::Duration cancel_took = absl::Now() - hung_up;
  std::fprintf(
      stderr,
      "abandoned scrapes' probes cancelled: %s after the scrapers "
      "left (%d still at the target)\n",
      cancelled ? absl::FormatDuration(cancel_took).c_str() : "not within 10s",
      target.Stats().raw.in_flight);
  EXPECT_TRUE(cancelled);
  EXPECT_LT(cancel_took, absl::Seconds(1));

  // The slow-header clients drip on until the header deadline (5 s by
  // default) cuts them off, the normal client asking all along.
  const bool slow_cut_off = WaitUntil([&] { return slow.open() == 0; },
                                      kPatience, absl::Milliseconds(100));
  stop_normal.Notify();
  normal_client.join();
  std::fprintf(stderr,
               "normal client: %d requests, %d failed, slowest %s; slow-header "
               "connections still open: %d of %d\n",
               normal.requests, normal.failed,
               absl::FormatDuration(normal.slowest).c_str(), slow.open(),
               slow.connected());
  EXPECT_GT(normal.requests, 6);
  EXPECT_EQ(normal.failed, 0);
  EXPECT_LE(normal.slowest, absl::Seconds(2));
  EXPECT_TRUE(slow_cut_off);
  EXPECT_EQ(side.http().Stats().header_timeouts, 200u);
  EXPECT_EQ(side.http().Stats().scrapes_abandoned,
            static_cast<uint64_t>(kScrapes));
}

// A client that never finishes its headers is cut off at the header
// deadline, however steadily it drips.
TEST(HttpHostileTest, HeadersMustArriveWithinTheHeaderTimeout) {
  HttpSide side({.header_timeout = absl::Seconds(1)});
  UniqueFd slow = ConnectFrom("127.0.0.2", side.http().port());
  ASSERT_GE(slow.get(), 0);
  const absl::Time start = absl::Now();
  ASSERT_TRUE(SendAll(slow.get(), "GET /healthz HTTP/1.1\r\nX-Drip: "));
  bool closed = false;
  while (!closed && absl::Now() - start < absl::Seconds(5)) {
    // A byte every 200 ms: well inside the 2 s inactivity timeout.
    closed = ClosedByServer(slow.get(), absl::Milliseconds(200)) ||
             !SendAll(slow.get(), "a");
  }
  const absl::Duration took = absl::Now() - start;
  std::fprintf(stderr, "slow-header connection closed after %s\n",
               absl::FormatDuration(took).c_str());
  EXPECT_TRUE(closed);
  EXPECT_GE(took, absl::Milliseconds(900));
  EXPECT_LT(took, absl::Seconds(3));
  EXPECT_EQ(side.http().Stats().header_timeouts, 1u);

  // A client that sends its headers at once is not touched.
  HttpReply reply = HttpGet(side.address(), "/healthz");
  EXPECT_EQ(reply.status, 200);
  EXPECT_EQ(side.http().Stats().header_timeouts, 1u);
}

// More connections from one client address than allowed: the extra ones
// are closed at once; other clients are still served.
TEST(HttpHostileTest, ConnectionsPerClientAddressAreBounded) {
  HttpSide side({.max_connections_per_client = 4});
  const int port = side.http().port();
  std::vector<UniqueFd> held;
  for (int i = 0; i < 4; ++i) {
    held.push_back(ConnectFrom("127.0.0.2", port));
    ASSERT_GE(held.back().get(), 0);
  }
  ASSERT_TRUE(WaitUntil([&] { return side.http().Stats().connections == 4; }));
  UniqueFd extra = ConnectFrom("127.0.0.2", port);
  ASSERT_GE(extra.get(), 0);  // the kernel accepts; the server closes it
  EXPECT_TRUE(ClosedByServer(extra.get(), kPatience));
  // Another address is served, and so is each held connection.
  EXPECT_EQ(HttpGet(side.address(), "/healthz").status, 200);
  for (UniqueFd& fd : held) {
    ASSERT_TRUE(SendAll(fd.get(),
                        "GET /healthz HTTP/1.1\r\nHost: x\r\n"
                        "Connection: close\r\n\r\n"));
    std::string answer;
    char buf[512];
    ssize_t n;
    while ((n = recv(fd.get(), buf, sizeof(buf), 0)) > 0) answer.append(buf, n);
    EXPECT_THAT(answer, ::testing::StartsWith("HTTP/1.1 200"));
  }
}

// More connections in total than allowed: the one beyond waits in the
// accept queue, unserved, until a connection leaves.
TEST(HttpHostileTest, ConnectionsInTotalAreBounded) {
  // One event loop (with more, each gets its share of the limit), and
  // deadlines that leave the held connections alone while the test runs.
  HttpSide side({.threads = 1,
                 .max_connections = 6,
                 .header_timeout = absl::Seconds(60),
                 .keep_alive_timeout = absl::Seconds(60)});
  const int port = side.http().port();
  std::vector<UniqueFd> held;
  for (int i = 0; i < 6; ++i) {
    held.push_back(ConnectFrom(AttackerAddress(0, i, 1), port));
    ASSERT_GE(held.back().get(), 0);
  }
  ASSERT_TRUE(WaitUntil([&] { return side.http().Stats().connections == 6; }));
  UniqueFd extra = ConnectFrom("127.0.0.1", port);
  ASSERT_GE(extra.get(), 0);  // in the kernel's accept queue
  ASSERT_TRUE(SendAll(extra.get(),
                      "GET /healthz HTTP/1.1\r\nHost: x\r\n"
                      "Connection: close\r\n\r\n"));
  pollfd p{.fd = extra.get(), .events = POLLIN, .revents = 0};
  EXPECT_EQ(poll(&p, 1, 300), 0) << "served beyond the limit";
  EXPECT_EQ(side.http().Stats().connections, 6u);

  held.pop_back();  // one leaves: the waiting one is served
  p.revents = 0;
  ASSERT_EQ(poll(&p, 1, static_cast<int>(absl::ToInt64Milliseconds(kPatience))),
            1);
  char buf[64] = {};
  ASSERT_GT(recv(extra.get(), buf, sizeof(buf) - 1, 0), 0);
  EXPECT_THAT(std::string(buf), ::testing::StartsWith("HTTP/1.1 200"));
}

// One abandoned scrape: its probe is cancelled within 1 s of the scraper
// closing its connection, not when the probe's timeout (29.5 s) runs out.
TEST(HttpHostileTest, AnAbandonedScrapeCancelsItsProbe) {
  TargetServer target;
  HttpSide side;
  UniqueFd scraper = ConnectFrom("127.0.0.1", side.http().port());
  ASSERT_GE(scraper.get(), 0);
  ASSERT_TRUE(
      SendAll(scraper.get(),
              absl::StrCat("GET ", ProbePath({target.raw_url("/hang")}),
                           " HTTP/1.1\r\nHost: x\r\n"
                           "X-Prometheus-Scrape-Timeout-Seconds: 30\r\n\r\n")));
  ASSERT_TRUE(target.WaitFor(
      [](const TargetStats& s) { return s.raw.in_flight == 1; }, kPatience));
  EXPECT_EQ(side.http().Stats().probe_requests_active, 1u);

  const absl::Time hung_up = absl::Now();
  scraper.reset();
  ASSERT_TRUE(target.WaitFor(
      [](const TargetStats& s) { return s.raw.abandoned == 1; }, kPatience));
  const absl::Duration took = absl::Now() - hung_up;
  std::fprintf(stderr, "abandoned scrape's probe cancelled after %s\n",
               absl::FormatDuration(took).c_str());
  EXPECT_LT(took, absl::Seconds(1));
  EXPECT_TRUE(WaitUntil(
      [&] { return side.http().Stats().probe_requests_active == 0; }));
  EXPECT_EQ(side.http().Stats().scrapes_abandoned, 1u);
  // The HTTP side goes on serving.
  EXPECT_EQ(HttpGet(side.address(), "/healthz").status, 200);
}

// A scrape that stays is answered as before: the hang-up watch does not
// mistake a quiet client for a gone one, and a probe longer than the
// inactivity timeout is not cut off by it (the connection is suspended).
TEST(HttpHostileTest, AScrapeThatStaysIsAnswered) {
  TargetServer target;
  HttpSide side({.keep_alive_timeout = absl::Seconds(1)});
  HttpReply reply =
      HttpGet(side.address(), ProbePath({target.url("/delay/2500")}));
  ASSERT_EQ(reply.status, 200);
  EXPECT_THAT(reply.body, ::testing::HasSubstr("probe_success 1"));
  EXPECT_EQ(side.http().Stats().scrapes_abandoned, 0u);
}

}  // namespace
}  // namespace fanprobe::testing
