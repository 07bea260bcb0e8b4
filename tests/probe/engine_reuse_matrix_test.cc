// engine_reuse_matrix_test.cc: one failure must never affect another probe.
// A worker reuses its transport handles probe after probe; for every
// outcome the engine can produce (and a redirect to each), one such probe,
// then 50 healthy probes on the same worker, which must all be OK.  Then a
// seeded random sequence of all of them, where each probe's outcome must be
// its kind's.  The engine's own trouble must never show as a target's
// outcome.

#include <algorithm>
#include <memory>
#include <optional>
#include <random>
#include <string>
#include <vector>

#include "absl/strings/ascii.h"
#include "absl/strings/escaping.h"
#include "absl/strings/str_cat.h"
#include "gmock/gmock.h"
#include "gtest/gtest.h"
#include "probe/engine.h"
#include "tests/probe/engine_test_util.h"
#include "tests/support/dns_server.h"
#include "tests/support/fault_server.h"
#include "tests/support/target_server.h"
#include "tests/support/test_certs.h"
#include "tests/support/tls_target_server.h"

namespace fanprobe {
namespace {

using ::fanprobe::testing::BatchRecorder;
using ::fanprobe::testing::BatchRun;
using ::fanprobe::testing::DnsServer;
using ::fanprobe::testing::ExpectConsistent;
using ::fanprobe::testing::Fault;
using ::fanprobe::testing::FaultServer;
using ::fanprobe::testing::kPatience;
using ::fanprobe::testing::Options;
using ::fanprobe::testing::RefusedPort;
using ::fanprobe::testing::Target;
using ::fanprobe::testing::TargetServer;
using ::fanprobe::testing::TargetStats;
using ::fanprobe::testing::TestCa;
using ::fanprobe::testing::TlsStallPort;
using ::fanprobe::testing::TlsTargetServer;

// One kind of probe and the outcome it must end with.
struct Kind {
  std::string name;
  std::string url;
  std::shared_ptr<const ProbeOptions> options;
  Outcome outcome;
  bool redirectable = true;  // a redirect to it ends the same way
  // A second acceptable outcome: after a reset right after accept, on
  // loopback the RST often lands before libcurl has seen its non-blocking
  // connect complete, and the connect is what fails.
  std::optional<Outcome> also;

  bool Accepts(Outcome o) const { return o == outcome || also == o; }
};

class ReuseMatrixTest : public ::testing::Test {
 protected:
  void SetUp() override {
    absl::StatusOr<std::unique_ptr<DnsServer>> dns = DnsServer::Start();
    ASSERT_TRUE(dns.ok()) << dns.status();
    dns_ = *std::move(dns);
    dns_->AddA("web.test", "127.0.0.1");
    dns_->SetRcode("nxdomain.test", 3);
    dns_->SetRcode("servfail.test", 2);
    dns_->SetDrop("silent.test");
    dns_->AddA("denied.test", "127.0.0.2");
    EngineOptions options;
    options.workers = 1;  // every probe on the same worker and its handles
    options.dns_timeout = absl::Milliseconds(300);
    options.destination_policy.deny.push_back(*Cidr::Parse("127.0.0.2/32"));
    testing::ResolveOnlyThrough(dns_->address(), &options);
    engine_ = testing::MakeEngine(options);
  }

  std::vector<Kind> Kinds() {
    auto with = [](std::function<void(ProbeOptions&)> edit) {
      return Options([&](ProbeOptions& o) {
        o.timeout = absl::Seconds(5);
        edit(o);
      });
    };
    auto quick =
        with([](ProbeOptions& o) { o.timeout = absl::Milliseconds(300); });
    auto plain = with([](ProbeOptions&) {});
    const std::string port = absl::StrCat(server_.port());
    return {
        {"nxdomain", absl::StrCat("http://nxdomain.test:", port, "/"), plain,
         Outcome::kDnsError},
        {"servfail", absl::StrCat("http://servfail.test:", port, "/"), plain,
         Outcome::kDnsError},
        {"resolver_timeout", absl::StrCat("http://silent.test:", port, "/"),
         plain, Outcome::kDnsError},
        {"refused", refused_.url("/"), plain, Outcome::kConnectError},
        {"reset", server_.raw_url("/reset"), plain, Outcome::kIoError},
        {"reset_after_accept", faults_.url(Fault::kResetAfterAccept), plain,
         Outcome::kIoError, true, Outcome::kConnectError},
        {"not_http", faults_.url(Fault::kGarbage), plain, Outcome::kIoError},
        {"close_mid_body", faults_.url(Fault::kCloseMidBody), plain,
         Outcome::kIoError},
        {"tls_bad_certificate", tls_.url("/status/200"),
         with([this](ProbeOptions& o) { o.ca_pem = other_ca_.cert_pem(); }),
         Outcome::kTlsError},
        {"tls_stall", stall_.url("/"), quick, Outcome::kTimeout},
        {"timeout", server_.raw_url("/hang"), quick, Outcome::kTimeout},
        {"unexpected_status", server_.url("/status/503"), plain,
         Outcome::kUnexpectedStatus},
        {"too_many_redirects", server_.url("/loop"),
         with([](ProbeOptions& o) { o.max_redirects = 3; }),
         Outcome::kTooManyRedirects},
        {"body_too_large", server_.url("/bytes/5000"),
         with([](ProbeOptions& o) { o.max_body_bytes = 1000; }),
         Outcome::kBodyTooLarge},
        {"body_too_large_chunked", server_.url("/chunked/5000"),
         with([](ProbeOptions& o) { o.max_body_bytes = 1000; }),
         Outcome::kBodyTooLarge},
        {"body_mismatch", server_.url("/match"),
         with([](ProbeOptions& o) { o.body_must_match = {"absent"}; }),
         Outcome::kBodyMismatch},
        {"denied_address", absl::StrCat("http://127.0.0.2:", port, "/"), plain,
         Outcome::kDenied},
        {"denied_name", absl::StrCat("http://denied.test:", port, "/"), plain,
         Outcome::kDenied},
        {"invalid_scheme", "ftp://web.test/", plain, Outcome::kInvalidTarget},
        {"invalid_header", server_.url("/status/200"),
         with([](ProbeOptions& o) {
           o.headers = {{"X-Bad", "a\r\nb"}};
         }),
         Outcome::kInvalidTarget, /*redirectable=*/false},
        {"ok_head", server_.url("/status/200"),
         with([](ProbeOptions& o) { o.method = "HEAD"; }), Outcome::kOk},
        {"ok_post_body", server_.url("/status/200"), with([](ProbeOptions& o) {
           o.method = "POST";
           o.body = "payload";
         }),
         Outcome::kOk},
        {"ok_name", absl::StrCat("http://web.test:", port, "/status/200"),
         plain, Outcome::kOk},
        {"ok_https", tls_.url("/status/200"),
         with([this](ProbeOptions& o) { o.ca_pem = ca_.cert_pem(); }),
         Outcome::kOk},
    };
  }

  // A redirect from the target server to `kind`'s URL, with its options.
  Kind RedirectTo(const Kind& kind) {
    Kind redirect = kind;
    redirect.name = absl::StrCat("redirect_to_", kind.name);
    std::string encoded;
    for (char c : kind.url) {
      if (absl::ascii_isalnum(c) || c == '.' || c == '-' || c == '_') {
        encoded.push_back(c);
      } else {
        absl::StrAppend(&encoded, "%",
                        absl::BytesToHexString(absl::string_view(&c, 1)));
      }
    }
    redirect.url = server_.url(absl::StrCat("/redirect_to?url=", encoded));
    return redirect;
  }

  std::vector<Kind> AllKinds() {
    std::vector<Kind> all = Kinds();
    const size_t direct = all.size();
    for (size_t i = 0; i < direct; ++i) {
      if (all[i].redirectable) all.push_back(RedirectTo(all[i]));
    }
    return all;
  }

  void ExpectHealthy(absl::string_view after) {
    std::vector<ProbeTarget> healthy;
    for (int i = 0; i < 25; ++i) {
      healthy.push_back(Target(server_.url("/status/200")));
      healthy.push_back(Target(
          absl::StrCat("http://web.test:", server_.port(), "/status/200")));
    }
    BatchRun run = testing::RunBatch(*engine_, std::move(healthy));
    ExpectConsistent(run);
    EXPECT_EQ(run.summary.succeeded, 50u) << "after " << after;
    for (const ProbeResult& r : run.results) {
      EXPECT_EQ(r.outcome, Outcome::kOk)
          << "after " << after << ": " << r.url << ": " << r.error;
    }
  }

  TargetServer server_;
  FaultServer faults_;
  RefusedPort refused_;
  TestCa ca_{"matrix CA"};
  TestCa other_ca_{"untrusted CA"};
  TlsTargetServer tls_{ca_};
  TlsStallPort stall_;
  std::unique_ptr<DnsServer> dns_;
  std::unique_ptr<Engine> engine_;
};

TEST_F(ReuseMatrixTest, EveryOutcomeThenFiftyHealthyProbes) {
  for (const Kind& kind : AllKinds()) {
    SCOPED_TRACE(kind.name);
    BatchRun run =
        testing::RunBatch(*engine_, {Target(kind.url, kind.options)});
    ASSERT_EQ(run.results.size(), 1u);
    EXPECT_TRUE(kind.Accepts(run.results[0].outcome))
        << OutcomeName(run.results[0].outcome) << ": " << run.results[0].error;
    ExpectHealthy(kind.name);
  }
  EXPECT_EQ(engine_->Stats().handles_discarded, 0u);
}

TEST_F(ReuseMatrixTest, CancelledMidTransferThenFiftyHealthyProbes) {
  BatchRecorder recorder;
  std::shared_ptr<Batch> batch = engine_->Submit(
      {Target(server_.raw_url("/hang")),
       Target(tls_.url("/delay/5000"),
              Options([this](ProbeOptions& o) { o.ca_pem = ca_.cert_pem(); }))},
      {}, recorder.Callbacks());
  ASSERT_TRUE(server_.WaitFor(
      [](const TargetStats& s) { return s.raw.in_flight == 1; }, kPatience));
  batch->Cancel();
  std::optional<BatchSummary> summary = recorder.WaitDone();
  ASSERT_TRUE(summary.has_value());
  EXPECT_EQ(summary->reason, EndReason::kCancelled);
  EXPECT_EQ(summary->cancelled, 2u);
  ExpectHealthy("a cancel mid-transfer");
}

TEST_F(ReuseMatrixTest, RandomSequenceOfEveryKind) {
  const std::vector<Kind> kinds = AllKinds();
  const uint32_t seed = std::random_device()();
  SCOPED_TRACE(absl::StrCat("seed ", seed));
  std::mt19937 random(seed);
  std::vector<ProbeTarget> targets;
  std::vector<size_t> kind_of;
  for (int i = 0; i < 400; ++i) {
    const size_t k =
        std::uniform_int_distribution<size_t>(0, kinds.size() - 1)(random);
    kind_of.push_back(k);
    targets.push_back(Target(kinds[k].url, kinds[k].options));
  }
  BatchOptions options;
  options.max_concurrency = 16;
  BatchRun run = testing::RunBatch(*engine_, std::move(targets), options);
  ExpectConsistent(run);
  EXPECT_EQ(run.summary.completed, 400u);
  for (const ProbeResult& r : run.results) {
    const Kind& kind = kinds[kind_of[r.index]];
    EXPECT_TRUE(kind.Accepts(r.outcome))
        << "probe " << r.index << " (" << kind.name
        << "): " << OutcomeName(r.outcome) << ": " << r.error;
  }
  EXPECT_EQ(engine_->Stats().handles_discarded, 0u);
}

}  // namespace
}  // namespace fanprobe
