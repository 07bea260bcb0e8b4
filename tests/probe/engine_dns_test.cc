// engine_dns_test.cc: the engine resolving names itself, against a DNS
// server the test runs (tests/support/dns_server.h) -- never the machine's
// resolver.  Each failure class, a burst of 10,000 distinct names, answers
// that change between lookups (rebinding), names with allowed and denied
// addresses, and the redirect chain each result reports.

#include <arpa/inet.h>
#include <netinet/in.h>
#include <sys/socket.h>
#include <unistd.h>

#include <atomic>
#include <iostream>
#include <memory>
#include <string>
#include <thread>
#include <vector>

#include "absl/strings/match.h"
#include "absl/strings/str_cat.h"
#include "absl/strings/str_format.h"
#include "gmock/gmock.h"
#include "gtest/gtest.h"
#include "probe/engine.h"
#include "tests/probe/engine_test_util.h"
#include "tests/support/dns_server.h"
#include "tests/support/target_server.h"

namespace fanprobe {
namespace {

using ::fanprobe::testing::BatchRun;
using ::fanprobe::testing::DnsServer;
using ::fanprobe::testing::ExpectConsistent;
using ::fanprobe::testing::kPatience;
using ::fanprobe::testing::Options;
using ::fanprobe::testing::Target;
using ::fanprobe::testing::TargetServer;
using ::fanprobe::testing::TargetStats;
using ::testing::ElementsAre;
using ::testing::HasSubstr;

// A TCP listener on a loopback address of the test's choosing that counts
// the connections it accepts: the proof that a denied address was never
// contacted.
class CountingListener {
 public:
  explicit CountingListener(const char* address) {
    fd_ = socket(AF_INET, SOCK_STREAM | SOCK_CLOEXEC, 0);
    sockaddr_in sin{};
    sin.sin_family = AF_INET;
    inet_pton(AF_INET, address, &sin.sin_addr);
    sin.sin_port = 0;
    EXPECT_EQ(bind(fd_, reinterpret_cast<sockaddr*>(&sin), sizeof(sin)), 0);
    EXPECT_EQ(listen(fd_, 64), 0);
    socklen_t length = sizeof(sin);
    getsockname(fd_, reinterpret_cast<sockaddr*>(&sin), &length);
    port_ = ntohs(sin.sin_port);
    thread_ = std::thread([this] {
      while (true) {
        int client = accept4(fd_, nullptr, nullptr, SOCK_CLOEXEC);
        if (client < 0) return;  // shut down
        ++accepted_;
        close(client);
      }
    });
  }
  ~CountingListener() {
    shutdown(fd_, SHUT_RDWR);
    thread_.join();
    close(fd_);
  }
  int port() const { return port_; }
  int accepted() const { return accepted_.load(); }

 private:
  int fd_ = -1;
  int port_ = 0;
  std::atomic<int> accepted_{0};
  std::thread thread_;
};

class EngineDnsTest : public ::testing::Test {
 protected:
  void SetUp() override {
    absl::StatusOr<std::unique_ptr<DnsServer>> dns = DnsServer::Start();
    ASSERT_TRUE(dns.ok()) << dns.status();
    dns_ = *std::move(dns);
    engine_ = MakeEngine({});
  }

  // An engine that resolves through the test's DNS server only.
  std::unique_ptr<Engine> MakeEngine(EngineOptions options) {
    testing::ResolveOnlyThrough(dns_->address(), &options);
    if (options.workers == 0) options.workers = 2;
    return testing::MakeEngine(std::move(options));
  }

  BatchRun Run(std::vector<ProbeTarget> targets,
               const BatchOptions& options = {}, Engine* engine = nullptr) {
    return testing::RunBatch(engine ? *engine : *engine_, std::move(targets),
                             options);
  }

  ProbeResult RunOne(const std::string& url, Engine* engine = nullptr) {
    BatchRun run = Run({Target(url)}, {}, engine);
    EXPECT_EQ(run.results.size(), 1u);
    return run.results.empty() ? ProbeResult{} : run.results[0];
  }

  // "http://<name>:<port><path>" on the target server.
  std::string NameUrl(absl::string_view name, absl::string_view path) const {
    return absl::StrCat("http://", name, ":", server_.port(), path);
  }

  TargetServer server_;
  std::unique_ptr<DnsServer> dns_;
  std::unique_ptr<Engine> engine_;
};

TEST_F(EngineDnsTest, NameResolvesThroughTheEnginesResolver) {
  dns_->AddA("web.test", "127.0.0.1");
  ProbeResult r = RunOne(NameUrl("web.test", "/status/200"));
  EXPECT_EQ(r.outcome, Outcome::kOk) << r.error;
  EXPECT_EQ(r.remote_ip, "127.0.0.1");
  EXPECT_EQ(r.dns_failure, DnsFailure::kNone);
  EXPECT_GT(r.timings.dns, absl::ZeroDuration());
  EXPECT_LE(r.timings.dns, r.timings.connect);
  ASSERT_EQ(r.hops.size(), 1u);
  EXPECT_THAT(r.hops[0].addresses, ElementsAre("127.0.0.1"));
  EXPECT_EQ(dns_->QueryCount("web.test"), 2u);  // A and AAAA
  // The Host header is the name, not the address.
  std::vector<testing::RecordedRequest> requests = server_.Requests();
  ASSERT_EQ(requests.size(), 1u);
  bool host_seen = false;
  for (const auto& [name, value] : requests[0].headers) {
    if (absl::EqualsIgnoreCase(name, "Host")) {
      EXPECT_EQ(value, absl::StrCat("web.test:", server_.port()));
      host_seen = true;
    }
  }
  EXPECT_TRUE(host_seen);
}

TEST_F(EngineDnsTest, AnAddressIsTheHopsOwnAddressWithoutALookup) {
  testing::RefusedPort refused;
  ProbeResult r = RunOne(refused.url("/"));
  EXPECT_EQ(r.outcome, Outcome::kConnectError) << r.error;
  EXPECT_EQ(r.remote_ip, "");
  ASSERT_EQ(r.hops.size(), 1u);
  // What the request could connect to, though it never did.
  EXPECT_THAT(r.hops[0].addresses, ElementsAre("127.0.0.1"));
  EXPECT_EQ(r.timings.dns, absl::ZeroDuration());
  EXPECT_EQ(dns_->QueryCount("127.0.0.1"), 0u);
}

TEST_F(EngineDnsTest, CnameChainResolves) {
  dns_->AddCname("alias.test", "middle.test");
  dns_->AddCname("middle.test", "real.test");
  dns_->AddA("real.test", "127.0.0.1");
  ProbeResult r = RunOne(NameUrl("alias.test", "/status/200"));
  EXPECT_EQ(r.outcome, Outcome::kOk) << r.error;
}

TEST_F(EngineDnsTest, EachFailureClassIsReportedAsSuch) {
  dns_->SetRcode("nxdomain.test", 3);
  dns_->AddA("v4only.test", "127.0.0.1");
  dns_->SetRcode("servfail.test", 2);
  dns_->SetRcode("refused.test", 5);
  dns_->SetDrop("silent.test");
  EngineOptions options;
  options.dns_timeout = absl::Milliseconds(500);
  std::unique_ptr<Engine> engine = MakeEngine(options);
  struct Case {
    std::string url;
    DnsFailure failure;
    const char* words;
  };
  const std::vector<Case> cases = {
      {NameUrl("nxdomain.test", "/"), DnsFailure::kNxDomain, "NXDOMAIN"},
      {NameUrl("unknown.test", "/"), DnsFailure::kNxDomain, "does not exist"},
      {absl::StrCat("http://v4only.test:", server_.port(), "/"),
       DnsFailure::kNone, ""},
      {NameUrl("servfail.test", "/"), DnsFailure::kServFail, "SERVFAIL"},
      {NameUrl("refused.test", "/"), DnsFailure::kRefused, "REFUSED"},
      {NameUrl("silent.test", "/"), DnsFailure::kTimeout, "no DNS answer"},
  };
  for (const Case& c : cases) {
    SCOPED_TRACE(c.url);
    ProbeResult r = RunOne(c.url, engine.get());
    if (c.failure == DnsFailure::kNone) {
      EXPECT_EQ(r.outcome, Outcome::kUnexpectedStatus) << r.error;  // 404 "/"
      continue;
    }
    EXPECT_EQ(r.outcome, Outcome::kDnsError) << r.error;
    EXPECT_EQ(r.dns_failure, c.failure) << DnsFailureName(r.dns_failure);
    EXPECT_THAT(r.error, HasSubstr(c.words));
    EXPECT_EQ(r.status_code, 0);
  }
}

TEST_F(EngineDnsTest, NoDataWhenTheFamilyAskedForHasNoRecord) {
  dns_->AddA("v4only.test", "127.0.0.1");
  auto v6 = Options([](ProbeOptions& o) { o.ip_family = IpFamily::kIpv6; });
  BatchRun run = Run({Target(NameUrl("v4only.test", "/status/200"), v6)});
  ASSERT_EQ(run.results.size(), 1u);
  EXPECT_EQ(run.results[0].outcome, Outcome::kDnsError);
  EXPECT_EQ(run.results[0].dns_failure, DnsFailure::kNoData);
  EXPECT_THAT(run.results[0].error, HasSubstr("no AAAA record"));
}

TEST_F(EngineDnsTest, ProbeTimeoutBoundsASlowLookup) {
  dns_->AddA("slow.test", "127.0.0.1");
  dns_->SetDelay("slow.test", absl::Seconds(5));
  auto quick =
      Options([](ProbeOptions& o) { o.timeout = absl::Milliseconds(300); });
  BatchRun run = Run({Target(NameUrl("slow.test", "/status/200"), quick)});
  ASSERT_EQ(run.results.size(), 1u);
  EXPECT_EQ(run.results[0].outcome, Outcome::kTimeout) << run.results[0].error;
  EXPECT_THAT(run.results[0].error, HasSubstr("resolving slow.test"));
}

TEST_F(EngineDnsTest, TruncatedAnswerIsRetriedOverTcp) {
  dns_->AddA("big.test", "127.0.0.1");
  dns_->SetTruncate("big.test");
  ProbeResult r = RunOne(NameUrl("big.test", "/status/200"));
  EXPECT_EQ(r.outcome, Outcome::kOk) << r.error;
  EXPECT_GT(dns_->TcpQueryCount(), 0u);
}

// The failures of the issue this engine fixes: after a lookup failed, later
// probes on the same worker must not fail for the engine's own reasons.
TEST_F(EngineDnsTest, AFailedLookupNeverAffectsLaterProbes) {
  dns_->SetRcode("gone.test", 3);
  dns_->AddA("web.test", "127.0.0.1");
  EngineOptions options;
  options.workers = 1;
  std::unique_ptr<Engine> engine = MakeEngine(options);
  for (int round = 0; round < 3; ++round) {
    ASSERT_EQ(RunOne(NameUrl("gone.test", "/"), engine.get()).outcome,
              Outcome::kDnsError);
    std::vector<ProbeTarget> healthy;
    for (int i = 0; i < 50; ++i) {
      healthy.push_back(Target(NameUrl("web.test", "/status/200")));
      healthy.push_back(Target(server_.url("/status/200")));
    }
    BatchRun run = Run(std::move(healthy), {}, engine.get());
    ExpectConsistent(run);
    EXPECT_EQ(run.summary.succeeded, 100u);
    for (const ProbeResult& r : run.results) {
      EXPECT_EQ(r.outcome, Outcome::kOk) << r.url << ": " << r.error;
    }
  }
  EXPECT_EQ(engine->Stats().handles_discarded, 0u);
}

TEST_F(EngineDnsTest, TenThousandDistinctNamesAllResolve) {
  dns_->AddWildcardA("bulk.test", "127.0.0.1");
  std::vector<ProbeTarget> targets;
  for (int i = 0; i < 10000; ++i) {
    targets.push_back(
        Target(NameUrl(absl::StrFormat("h%05d.bulk.test", i), "/status/200")));
  }
  BatchOptions options;
  options.max_concurrency = 1000;
  // What is tested is that every lookup succeeds, not how fast: under ASan
  // on a loaded 2-core machine the batch took longer than kPatience (the
  // ctest timeout, 120 s, stays above this).
  BatchRun run = testing::RunBatch(*engine_, std::move(targets), options,
                                   absl::Seconds(100));
  ExpectConsistent(run);
  EXPECT_EQ(run.summary.completed, 10000u);
  // Every name resolved and its probe connected.  Whether the loopback
  // target then answered all 1,000 at once is not this test's subject (under
  // ASan on a loaded machine, cpp-httplib's pool closed 64 connections
  // unanswered).
  int shown = 0;
  for (const ProbeResult& r : run.results) {
    if ((r.outcome == Outcome::kDnsError || r.remote_ip != "127.0.0.1") &&
        shown++ < 5) {
      ADD_FAILURE() << r.url << ": " << OutcomeName(r.outcome) << " "
                    << r.error;
    }
  }
  EXPECT_EQ(shown, 0) << "names that did not resolve or connect";
  // Each name asked for both families (a loaded resolver may be asked
  // again, which loses nothing).
  EXPECT_GE(dns_->QueryCount(), 20000u);
  std::cout << "10,000 names: " << dns_->QueryCount() << " queries\n";
}

// DNS rebinding: the first answer is allowed, the next one is not.  The
// policy is checked on each lookup's answer, and the denied address never
// sees a connection.
TEST_F(EngineDnsTest, RebindingToADeniedAddressIsDenied) {
  CountingListener denied("127.0.0.2");
  EngineOptions options;
  options.destination_policy.deny.push_back(*Cidr::Parse("127.0.0.2/32"));
  std::unique_ptr<Engine> engine = MakeEngine(options);
  dns_->SetSequence("rebind.test", {{"127.0.0.1"}, {"127.0.0.2"}});
  const std::string url =
      absl::StrCat("http://rebind.test:", server_.port(), "/status/200");
  EXPECT_EQ(RunOne(url, engine.get()).outcome, Outcome::kOk);
  // The second lookup answers 127.0.0.2 (on the target's port: if it were
  // connected to, the counting listener would not see it, so probe its port
  // too).
  ProbeResult r = RunOne(url, engine.get());
  EXPECT_EQ(r.outcome, Outcome::kDenied) << r.error;
  EXPECT_THAT(r.error, HasSubstr("127.0.0.2"));
  dns_->SetSequence("rebind2.test", {{"127.0.0.1"}, {"127.0.0.2"}});
  const std::string listener_url =
      absl::StrCat("http://rebind2.test:", denied.port(), "/");
  RunOne(listener_url, engine.get());  // 127.0.0.1:<port>: refused
  EXPECT_EQ(RunOne(listener_url, engine.get()).outcome, Outcome::kDenied);
  EXPECT_EQ(denied.accepted(), 0);
}

TEST_F(EngineDnsTest, NameWithAnAllowedAndADeniedAddressUsesTheAllowedOne) {
  CountingListener denied("127.0.0.2");
  EngineOptions options;
  options.destination_policy.deny.push_back(*Cidr::Parse("127.0.0.2/32"));
  std::unique_ptr<Engine> engine = MakeEngine(options);
  dns_->AddA("mixed.test", "127.0.0.2");
  dns_->AddA("mixed.test", "127.0.0.1");
  ProbeResult r = RunOne(NameUrl("mixed.test", "/status/200"), engine.get());
  EXPECT_EQ(r.outcome, Outcome::kOk) << r.error;
  EXPECT_EQ(r.remote_ip, "127.0.0.1");
  ASSERT_EQ(r.hops.size(), 1u);
  EXPECT_THAT(r.hops[0].addresses, ElementsAre("127.0.0.2", "127.0.0.1"));
  EXPECT_EQ(denied.accepted(), 0);
}

TEST_F(EngineDnsTest, RedirectToAnUnresolvableNameIsADnsErrorWithItsHops) {
  dns_->AddA("web.test", "127.0.0.1");
  dns_->SetRcode("gone.test", 3);
  const std::string first =
      NameUrl("web.test", "/redirect_to?url=http%3A%2F%2Fgone.test%2Fx");
  ProbeResult r = RunOne(first);
  EXPECT_EQ(r.outcome, Outcome::kDnsError) << r.error;
  EXPECT_EQ(r.dns_failure, DnsFailure::kNxDomain);
  EXPECT_EQ(r.redirects, 1);
  ASSERT_EQ(r.hops.size(), 2u);
  EXPECT_EQ(r.hops[0].url, first);
  EXPECT_EQ(r.hops[0].status_code, 302);
  EXPECT_EQ(r.hops[0].location, "http://gone.test/x");
  EXPECT_EQ(r.hops[0].remote_ip, "127.0.0.1");
  EXPECT_EQ(r.hops[1].url, "http://gone.test/x");
  EXPECT_EQ(r.hops[1].status_code, 0);
  EXPECT_EQ(r.final_url, "http://gone.test/x");
}

TEST_F(EngineDnsTest, EveryHopOfARedirectChainIsReported) {
  dns_->AddA("web.test", "127.0.0.1");
  ProbeResult r = RunOne(NameUrl("web.test", "/redirect/3"));
  EXPECT_EQ(r.outcome, Outcome::kOk) << r.error;
  EXPECT_EQ(r.redirects, 3);
  ASSERT_EQ(r.hops.size(), 4u);
  for (int i = 0; i < 3; ++i) {
    EXPECT_EQ(r.hops[i].status_code, 302) << i;
    EXPECT_EQ(r.hops[i + 1].url, r.hops[i].location) << i;
  }
  EXPECT_EQ(r.hops[3].status_code, 200);
  EXPECT_EQ(r.final_url, r.hops[3].url);
  // Each hop is resolved anew.
  EXPECT_EQ(dns_->QueryCount("web.test"), 8u);
  // The probe's timings are the last request's, after the redirects.
  EXPECT_GT(r.timings.redirect, absl::ZeroDuration());
  EXPECT_GE(r.timings.dns, r.timings.redirect);
  EXPECT_LE(r.timings.first_byte, r.timings.total);
}

}  // namespace
}  // namespace fanprobe
