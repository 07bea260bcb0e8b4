// engine_source_test.cc: probes that connect from an address they name
// (ProbeOptions::source_address, curl's --interface): the target sees that
// address, a name resolves over its family only, and each way it can be
// refused -- outside EngineOptions::allowed_sources (the server's
// --allow_source_cidr), not an address of this host, of the other family
// than the target's address, not an address at all -- each failure
// followed by a success on the same engine.  Several loopback addresses
// (127.0.0.2, 127.0.0.3) stand in for a host's several interfaces: Linux
// routes all of 127.0.0.0/8 to lo.

#include <map>
#include <memory>
#include <string>
#include <utility>
#include <vector>

#include "absl/status/status.h"
#include "absl/strings/str_cat.h"
#include "gmock/gmock.h"
#include "gtest/gtest.h"
#include "probe/destination_policy.h"
#include "probe/engine.h"
#include "probe/probe.h"
#include "tests/probe/engine_test_util.h"
#include "tests/support/dns_server.h"
#include "tests/support/target_server.h"

namespace fanprobe {
namespace {

using ::fanprobe::testing::DnsServer;
using ::fanprobe::testing::Options;
using ::fanprobe::testing::RecordedRequest;
using ::fanprobe::testing::Target;
using ::fanprobe::testing::TargetServer;
using ::testing::HasSubstr;
using ::testing::IsEmpty;
using ::testing::StartsWith;

class EngineSourceTest : public ::testing::Test {
 protected:
  void SetUp() override {
    absl::StatusOr<std::unique_ptr<DnsServer>> dns = DnsServer::Start();
    ASSERT_TRUE(dns.ok()) << dns.status();
    dns_ = *std::move(dns);
    dns_->AddA("web.test", "127.0.0.1");
    dns_->AddAaaa("web.test", "::1");
  }

  // An engine that lets probes connect from `allowed` (CIDRs).
  std::unique_ptr<Engine> MakeEngine(const std::vector<std::string>& allowed) {
    EngineOptions options;
    options.workers = 1;
    for (const std::string& cidr : allowed) {
      options.allowed_sources.push_back(*Cidr::Parse(cidr));
    }
    testing::ResolveOnlyThrough(dns_->address(), &options);
    return testing::MakeEngine(options);
  }

  static std::shared_ptr<const ProbeOptions> From(const std::string& source) {
    return Options([&](ProbeOptions& o) { o.source_address = source; });
  }

  ProbeResult RunOne(Engine& engine, ProbeTarget target) {
    testing::BatchRun run = testing::RunBatch(engine, {std::move(target)});
    EXPECT_EQ(run.results.size(), 1u);
    return run.results.empty() ? ProbeResult{} : run.results[0];
  }

  // Where each request the target received came from, by path.
  std::map<std::string, std::string> SourcesByPath() const {
    std::map<std::string, std::string> sources;
    for (const RecordedRequest& request : target_.Requests()) {
      sources[request.path] = request.client_address;
    }
    return sources;
  }

  std::unique_ptr<DnsServer> dns_;
  TargetServer target_;
};

TEST_F(EngineSourceTest, TheTargetSeesTheAddressEachProbeNames) {
  std::unique_ptr<Engine> engine = MakeEngine({"127.0.0.0/8"});
  testing::BatchRun run = testing::RunBatch(
      *engine, {Target(target_.url("/body/two"), From("127.0.0.2")),
                Target(target_.url("/body/three"), From("127.0.0.3")),
                Target(target_.url("/body/any"))});
  ASSERT_EQ(run.results.size(), 3u);
  for (const ProbeResult& r : run.results) {
    EXPECT_EQ(r.outcome, Outcome::kOk) << r.url << ": " << r.error;
  }
  const std::map<std::string, std::string> sources = SourcesByPath();
  EXPECT_EQ(sources.at("/body/two"), "127.0.0.2");
  EXPECT_EQ(sources.at("/body/three"), "127.0.0.3");
  EXPECT_EQ(sources.at("/body/any"), "127.0.0.1");
}

TEST_F(EngineSourceTest, ANameResolvesOverTheSourcesFamilyOnly) {
  std::unique_ptr<Engine> engine = MakeEngine({"127.0.0.0/8"});
  ProbeResult r = RunOne(
      *engine,
      Target(absl::StrCat("http://web.test:", target_.port(), "/body/named"),
             From("127.0.0.2")));
  ASSERT_EQ(r.outcome, Outcome::kOk) << r.error;
  EXPECT_EQ(r.remote_ip, "127.0.0.1");
  EXPECT_EQ(SourcesByPath().at("/body/named"), "127.0.0.2");
  // An IPv4 source asks for IPv4 addresses only.
  EXPECT_EQ(dns_->QueryCount("web.test", DnsServer::kTypeA), 1u);
  EXPECT_EQ(dns_->QueryCount("web.test", DnsServer::kTypeAaaa), 0u);
}

TEST_F(EngineSourceTest, ASourceOutsideTheAllowedNetworksSendsNothing) {
  std::unique_ptr<Engine> engine = MakeEngine({"127.0.0.2/32"});
  ProbeResult refused =
      RunOne(*engine, Target(target_.url("/body/refused"), From("127.0.0.3")));
  EXPECT_EQ(refused.outcome, Outcome::kInvalidTarget);
  EXPECT_THAT(refused.error, HasSubstr("source address 127.0.0.3"));
  EXPECT_THAT(refused.error, HasSubstr("--allow_source_cidr"));
  EXPECT_THAT(target_.Requests(), IsEmpty());

  ProbeResult allowed =
      RunOne(*engine, Target(target_.url("/body/allowed"), From("127.0.0.2")));
  ASSERT_EQ(allowed.outcome, Outcome::kOk) << allowed.error;
  EXPECT_EQ(SourcesByPath().at("/body/allowed"), "127.0.0.2");
}

TEST_F(EngineSourceTest, ByDefaultNoSourceIsAllowed) {
  std::unique_ptr<Engine> engine = MakeEngine({});
  ProbeResult refused =
      RunOne(*engine, Target(target_.url("/body/refused"), From("127.0.0.1")));
  EXPECT_EQ(refused.outcome, Outcome::kInvalidTarget);
  EXPECT_THAT(refused.error, HasSubstr("source address 127.0.0.1"));
  EXPECT_THAT(target_.Requests(), IsEmpty());

  ProbeResult plain = RunOne(*engine, Target(target_.url("/body/plain")));
  EXPECT_EQ(plain.outcome, Outcome::kOk) << plain.error;
}

TEST_F(EngineSourceTest, AnAddressThisHostDoesNotHaveIsInvalidTarget) {
  // 192.0.2.0/24 is TEST-NET-1: allowed here, but no interface has it, so
  // the socket cannot be bound and nothing is sent.
  std::unique_ptr<Engine> engine = MakeEngine({"192.0.2.0/24", "127.0.0.2"});
  ProbeResult unusable =
      RunOne(*engine, Target(target_.url("/body/unusable"), From("192.0.2.7")));
  EXPECT_EQ(unusable.outcome, Outcome::kInvalidTarget);
  EXPECT_THAT(unusable.error,
              StartsWith("source address 192.0.2.7 cannot be used: "));
  EXPECT_THAT(target_.Requests(), IsEmpty());

  ProbeResult usable =
      RunOne(*engine, Target(target_.url("/body/usable"), From("127.0.0.2")));
  ASSERT_EQ(usable.outcome, Outcome::kOk) << usable.error;
  EXPECT_EQ(SourcesByPath().at("/body/usable"), "127.0.0.2");
}

TEST_F(EngineSourceTest, ASourceOfTheOtherFamilyThanTheTargetsAddress) {
  std::unique_ptr<Engine> engine = MakeEngine({"127.0.0.0/8", "::1/128"});
  ProbeResult mismatch =
      RunOne(*engine, Target(target_.url("/body/v6"), From("::1")));
  EXPECT_EQ(mismatch.outcome, Outcome::kInvalidTarget);
  EXPECT_EQ(mismatch.error,
            "source address ::1 is IPv6 and the address 127.0.0.1 is not");
  EXPECT_THAT(target_.Requests(), IsEmpty());

  ProbeResult match =
      RunOne(*engine, Target(target_.url("/body/v4"), From("127.0.0.3")));
  EXPECT_EQ(match.outcome, Outcome::kOk) << match.error;
}

TEST_F(EngineSourceTest, WhatIsNoAddressOrContradictsIpFamilyIsRefused) {
  std::unique_ptr<Engine> engine = MakeEngine({"127.0.0.0/8"});
  ProbeOptions name;
  name.source_address = "eth0";
  EXPECT_EQ(engine->CheckOptions(name),
            absl::InvalidArgumentError(
                "source_address: \"eth0\" is not an IP address"));
  ProbeOptions family;
  family.source_address = "127.0.0.2";
  family.ip_family = IpFamily::kIpv6;
  EXPECT_EQ(engine->CheckOptions(family),
            absl::InvalidArgumentError(
                "source_address: 127.0.0.2 is IPv4 but ip_family is IPv6"));
  ProbeOptions fine;
  fine.source_address = "127.0.0.2";
  fine.ip_family = IpFamily::kIpv4;
  EXPECT_TRUE(engine->CheckOptions(fine).ok());
}

}  // namespace
}  // namespace fanprobe
