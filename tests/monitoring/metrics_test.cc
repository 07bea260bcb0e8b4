// Unit tests of service/metrics.h, service/metered_engine.h and
// service/collectors.h: the text format, histograms, the counters and what
// they are labelled with, process figures from a fake /proc, the phase
// split, and the saturation rule behind /readyz.

#include "monitoring/metrics.h"

#include <sys/resource.h>

#include <limits>
#include <memory>
#include <set>
#include <string>
#include <vector>

#include "absl/status/status.h"
#include "absl/strings/str_cat.h"
#include "absl/synchronization/notification.h"
#include "absl/time/time.h"
#include "gmock/gmock.h"
#include "gtest/gtest.h"
#include "monitoring/collectors.h"
#include "monitoring/metered_engine.h"
#include "monitoring/phases.h"
#include "monitoring/process_figures.h"
#include "monitoring/prometheus_text.h"
#include "probe/engine.h"
#include "tests/support/dns_server.h"
#include "tests/support/prom_text.h"
#include "tests/support/target_server.h"
#include "tests/support/temp_dir.h"
#include "tests/support/wait.h"

namespace fanprobe::monitoring {
namespace {

using ::fanprobe::testing::Exposition;
using ::fanprobe::testing::ParseOrFail;
using ::fanprobe::testing::Sample;
using ::fanprobe::testing::TempDir;

TEST(MetricsWriterTest, FormatsFamiliesSamplesAndEscapes) {
  MetricsWriter out;
  out.Family("x_total", "counter", "Help with a \\ and a\nnewline.");
  out.Sample("x_total", {{"a", "q\"uote"}, {"b", "back\\slash\nnl"}}, 3);
  out.Sample("x_total", {}, 0.25);
  out.Sample("x_total", {}, std::numeric_limits<double>::infinity());
  out.Sample("x_total", {}, 1795254100.04);
  EXPECT_EQ(out.text(),
            "# HELP x_total Help with a \\\\ and a\\nnewline.\n"
            "# TYPE x_total counter\n"
            "x_total{a=\"q\\\"uote\",b=\"back\\\\slash\\nnl\"} 3\n"
            "x_total 0.25\n"
            "x_total +Inf\n"
            "x_total 1795254100.04\n");
  Exposition parsed = ParseOrFail(out.text());
  EXPECT_EQ(
      parsed.Value("x_total", {{"a", "q\"uote"}, {"b", "back\\slash\nnl"}}), 3);
}

TEST(HistogramTest, BucketsAreCumulativeAndCountMatchesInf) {
  Histogram histogram({0.1, 1});
  histogram.Observe(absl::Milliseconds(50));
  histogram.Observe(absl::Milliseconds(100));  // on the bound: le="0.1"
  histogram.Observe(absl::Milliseconds(500));
  histogram.Observe(absl::Seconds(3));
  MetricsWriter out;
  out.Family("h_seconds", "histogram", "h");
  histogram.Write(out, "h_seconds", {{"phase", "x"}});
  Exposition parsed = ParseOrFail(out.text());
  EXPECT_EQ(parsed.Value("h_seconds_bucket", {{"phase", "x"}, {"le", "0.1"}}),
            2);
  EXPECT_EQ(parsed.Value("h_seconds_bucket", {{"phase", "x"}, {"le", "1"}}), 3);
  EXPECT_EQ(parsed.Value("h_seconds_bucket", {{"phase", "x"}, {"le", "+Inf"}}),
            4);
  EXPECT_EQ(parsed.Value("h_seconds_count", {{"phase", "x"}}), 4);
  EXPECT_DOUBLE_EQ(*parsed.Value("h_seconds_sum", {{"phase", "x"}}), 3.65);
}

TEST(PhasesOfTest, SplitsCurlMarksIntoSpans) {
  Timings t;
  t.dns = absl::Milliseconds(1);
  t.connect = absl::Milliseconds(3);
  t.tls = absl::Milliseconds(10);
  t.first_byte = absl::Milliseconds(15);
  t.total = absl::Milliseconds(20);
  PhaseDurations p = PhasesOf(t);
  EXPECT_EQ(p.resolve, absl::Milliseconds(1));
  EXPECT_EQ(p.connect, absl::Milliseconds(2));
  EXPECT_EQ(p.tls, absl::Milliseconds(7));
  EXPECT_EQ(p.processing, absl::Milliseconds(5));
  EXPECT_EQ(p.transfer, absl::Milliseconds(5));

  // Plain http: no TLS; processing starts at connect.
  t.tls = absl::ZeroDuration();
  p = PhasesOf(t);
  EXPECT_EQ(p.tls, absl::ZeroDuration());
  EXPECT_EQ(p.processing, absl::Milliseconds(12));

  // Refused: nothing after the lookup happened.
  Timings refused;
  refused.dns = absl::Microseconds(20);
  refused.total = absl::Microseconds(90);
  p = PhasesOf(refused);
  EXPECT_EQ(p.resolve, absl::Microseconds(20));
  EXPECT_EQ(p.connect, absl::ZeroDuration());
  EXPECT_EQ(p.processing, absl::ZeroDuration());
  EXPECT_EQ(p.transfer, absl::ZeroDuration());
}

TEST(ServerMetricsTest, EveryOutcomeHasItsSeriesAndNoOther) {
  ServerMetrics metrics;
  ProbeResult header;
  header.outcome = Outcome::kHeaderMismatch;
  metrics.ProbeCompleted(MetricsApi::kHttp, header);
  Exposition m = ParseOrFail(metrics.Render());
  EXPECT_EQ(m.Value("fanprobe_probes_total",
                    {{"api", "http"}, {"outcome", "HEADER_MISMATCH"}}),
            1);
  std::set<std::string> outcomes;
  for (const Sample& sample : m.Samples("fanprobe_probes_total")) {
    outcomes.insert(sample.labels.at("outcome"));
  }
  std::set<std::string> expected;
  for (int i = 0; i < kNumOutcomes; ++i) {
    expected.insert(std::string(OutcomeName(static_cast<Outcome>(i))));
  }
  EXPECT_EQ(outcomes, expected);
}

// A probe counts once in fanprobe_probes_total, by its final outcome, and
// each of its attempts once in fanprobe_probe_attempts_total.
TEST(ServerMetricsTest, CountsEveryAttemptOfARetriedProbe) {
  ServerMetrics metrics;
  ProbeResult retried;
  retried.outcome = Outcome::kOk;
  retried.attempts = {{.outcome = Outcome::kConnectError},
                      {.outcome = Outcome::kTimeout},
                      {.outcome = Outcome::kOk}};
  ProbeResult once;  // no retry policy: no attempts listed
  once.outcome = Outcome::kTimeout;
  metrics.ProbeCompleted(MetricsApi::kGrpc, retried);
  metrics.ProbeCompleted(MetricsApi::kGrpc, once);

  Exposition m = ParseOrFail(metrics.Render());
  EXPECT_EQ(m.types["fanprobe_probe_attempts_total"], "counter");
  auto attempts = [&m](const char* outcome) {
    return m.Value("fanprobe_probe_attempts_total",
                   {{"api", "grpc"}, {"outcome", outcome}});
  };
  EXPECT_EQ(attempts("CONNECT_ERROR"), 1);
  EXPECT_EQ(attempts("TIMEOUT"), 2);
  EXPECT_EQ(attempts("OK"), 1);
  EXPECT_EQ(
      m.Value("fanprobe_probes_total", {{"api", "grpc"}, {"outcome", "OK"}}),
      1);
  EXPECT_EQ(m.Value("fanprobe_probes_total",
                    {{"api", "grpc"}, {"outcome", "CONNECT_ERROR"}}),
            0);
}

TEST(ServerMetricsTest, CountsBatchesProbesRejectionsAndStreams) {
  ServerMetrics metrics;
  ProbeResult ok;
  ok.outcome = Outcome::kOk;
  ok.timings.dns = absl::Microseconds(10);
  ok.timings.connect = absl::Microseconds(30);
  ok.timings.first_byte = absl::Milliseconds(2);
  ok.timings.total = absl::Milliseconds(3);
  ProbeResult refused;
  refused.outcome = Outcome::kConnectError;
  refused.timings.dns = absl::Microseconds(10);
  refused.timings.total = absl::Microseconds(50);
  metrics.ProbeCompleted(MetricsApi::kGrpc, ok);
  metrics.ProbeCompleted(MetricsApi::kGrpc, refused);
  metrics.ProbeCompleted(MetricsApi::kHttp, ok);
  metrics.BatchEnded(MetricsApi::kGrpc, ReturnWhen::kFirstCompleted,
                     {.reason = EndReason::kFirstCompleted, .cancelled = 4});
  metrics.RequestRejected(MetricsApi::kHttp,
                          absl::StatusCode::kInvalidArgument);
  metrics.RequestRejected(MetricsApi::kGrpc,
                          absl::StatusCode::kResourceExhausted);
  metrics.StreamStarted();
  metrics.StreamStarted();
  metrics.StreamEnded();
  metrics.StreamQueueWait(absl::Microseconds(50));

  Exposition m = ParseOrFail(metrics.Render());
  EXPECT_EQ(
      m.Value("fanprobe_probes_total", {{"api", "grpc"}, {"outcome", "OK"}}),
      1);
  EXPECT_EQ(m.Value("fanprobe_probes_total",
                    {{"api", "grpc"}, {"outcome", "CONNECT_ERROR"}}),
            1);
  EXPECT_EQ(
      m.Value("fanprobe_probes_total", {{"api", "http"}, {"outcome", "OK"}}),
      1);
  EXPECT_EQ(m.Value("fanprobe_probes_total",
                    {{"api", "http"}, {"outcome", "TIMEOUT"}}),
            0);
  EXPECT_EQ(
      m.Value("fanprobe_batches_total", {{"api", "grpc"},
                                         {"return_when", "FIRST_COMPLETED"},
                                         {"reason", "FIRST_COMPLETED"}}),
      1);
  EXPECT_EQ(m.Value("fanprobe_batches_total", {{"api", "grpc"},
                                               {"return_when", "ALL_COMPLETED"},
                                               {"reason", "TIMEOUT"}}),
            0);
  EXPECT_EQ(m.Value("fanprobe_probes_cancelled_total", {{"api", "grpc"}}), 4);
  EXPECT_EQ(m.Value("fanprobe_requests_rejected_total",
                    {{"api", "http"}, {"reason", "INVALID_ARGUMENT"}}),
            1);
  EXPECT_EQ(m.Value("fanprobe_requests_rejected_total",
                    {{"api", "grpc"}, {"reason", "RESOURCE_EXHAUSTED"}}),
            1);
  EXPECT_EQ(m.Value("fanprobe_streams_active"), 1);
  EXPECT_EQ(m.Value("fanprobe_stream_queue_wait_seconds_count"), 1);
  // Every completed probe has a duration; a refused one has no transfer.
  EXPECT_EQ(m.Value("fanprobe_probe_duration_seconds_count"), 3);
  EXPECT_EQ(m.Value("fanprobe_probe_phase_duration_seconds_count",
                    {{"phase", "resolve"}}),
            3);
  EXPECT_EQ(m.Value("fanprobe_probe_phase_duration_seconds_count",
                    {{"phase", "transfer"}}),
            2);
  EXPECT_EQ(m.Value("fanprobe_probe_phase_duration_seconds_count",
                    {{"phase", "tls"}}),
            0);
  EXPECT_EQ(m.types["fanprobe_probe_phase_duration_seconds"], "histogram");
  EXPECT_EQ(m.types["fanprobe_batches_total"], "counter");
}

TEST(ServerMetricsTest, CollectorsRunAtRender) {
  ServerMetrics metrics;
  int calls = 0;
  metrics.AddCollector([&calls](MetricsWriter& out) {
    ++calls;
    out.Family("fanprobe_test_figure", "gauge", "A figure.");
    out.Sample("fanprobe_test_figure", {}, calls);
  });
  EXPECT_EQ(ParseOrFail(metrics.Render()).Value("fanprobe_test_figure"), 1);
  EXPECT_EQ(ParseOrFail(metrics.Render()).Value("fanprobe_test_figure"), 2);
}

TEST(CollectorsTest, BuildInfoNamesFanprobeTheTransportAndWhatTheCallerAdds) {
  ServerMetrics metrics;
  metrics.AddCollector(BuildInfoCollector({{"grpc", "1.2.3"}}));
  const Exposition m = ParseOrFail(metrics.Render());
  const std::vector<Sample> samples = m.Samples("fanprobe_build_info");
  ASSERT_EQ(samples.size(), 1u);
  const Sample& info = samples[0];
  EXPECT_EQ(info.value, 1);
  EXPECT_EQ(info.labels.at("version"), FANPROBE_VERSION);
  EXPECT_EQ(info.labels.at("libcurl"), TransportVersion());
  EXPECT_FALSE(info.labels.at("libcurl").empty());
  EXPECT_EQ(info.labels.at("grpc"), "1.2.3");
}

// An engine that only has stats, set by the test.
class StatsOnlyEngine final : public Engine {
 public:
  std::shared_ptr<Batch> Open(const BatchOptions&, BatchCallbacks) override {
    ADD_FAILURE() << "not for probing";
    return nullptr;
  }
  EngineStats Stats() const override { return stats; }
  absl::Status CheckOptions(const ProbeOptions&) const override {
    return absl::OkStatus();
  }
  const ProbeLimits& Limits() const override { return limits_; }

  EngineStats stats;

 private:
  ProbeLimits limits_;
};

// Each engine figure is exported under its name and moves with the engine.
TEST(CollectorsTest, EngineFiguresFollowTheEngine) {
  StatsOnlyEngine engine;
  ServerMetrics metrics;
  metrics.AddCollector(EngineStatsCollector(engine));
  Exposition m = ParseOrFail(metrics.Render());
  for (const char* name :
       {"fanprobe_probes_paced", "fanprobe_probes_backing_off",
        "fanprobe_engine_fd_limit", "fanprobe_engine_fds_open_at_start",
        "fanprobe_engine_fd_reserve",
        "fanprobe_transport_handles_discarded_total",
        "fanprobe_dns_lookups_total", "fanprobe_dns_lookups_pending",
        "fanprobe_event_loop_lag_seconds_count"}) {
    EXPECT_EQ(m.Value(name), 0) << name;
  }
  EXPECT_EQ(m.types["fanprobe_transport_handles_discarded_total"], "counter");
  EXPECT_EQ(m.types["fanprobe_dns_lookups_total"], "counter");
  EXPECT_EQ(m.types["fanprobe_dns_lookups_pending"], "gauge");
  EXPECT_EQ(m.types["fanprobe_event_loop_lag_seconds"], "histogram");

  engine.stats.probes_paced = 7;
  engine.stats.probes_backing_off = 2;
  engine.stats.fd_limit = 1024;
  engine.stats.fd_open_at_start = 12;
  engine.stats.fd_reserve = 256;
  engine.stats.handles_discarded = 3;
  engine.stats.dns_lookups = 41;
  engine.stats.dns_pending = 5;
  // Turns of 0.5 ms, 2 ms, 30 ms and 2 s: buckets 0, 1, 5 and overflow.
  engine.stats.loop_lag.counts[0] = 1;
  engine.stats.loop_lag.counts[1] = 1;
  engine.stats.loop_lag.counts[5] = 1;
  engine.stats.loop_lag.counts[kLagBucketCount] = 1;
  engine.stats.loop_lag.count = 4;
  engine.stats.loop_lag.sum_seconds = 2.0325;
  m = ParseOrFail(metrics.Render());
  EXPECT_EQ(m.Value("fanprobe_probes_paced"), 7);
  EXPECT_EQ(m.Value("fanprobe_probes_backing_off"), 2);
  EXPECT_EQ(m.Value("fanprobe_engine_fd_limit"), 1024);
  EXPECT_EQ(m.Value("fanprobe_engine_fds_open_at_start"), 12);
  EXPECT_EQ(m.Value("fanprobe_engine_fd_reserve"), 256);
  EXPECT_EQ(m.Value("fanprobe_transport_handles_discarded_total"), 3);
  EXPECT_EQ(m.Value("fanprobe_dns_lookups_total"), 41);
  EXPECT_EQ(m.Value("fanprobe_dns_lookups_pending"), 5);
  EXPECT_EQ(
      m.Value("fanprobe_event_loop_lag_seconds_bucket", {{"le", "0.001"}}), 1);
  EXPECT_EQ(
      m.Value("fanprobe_event_loop_lag_seconds_bucket", {{"le", "0.0025"}}), 2);
  EXPECT_EQ(
      m.Value("fanprobe_event_loop_lag_seconds_bucket", {{"le", "0.025"}}), 2);
  EXPECT_EQ(m.Value("fanprobe_event_loop_lag_seconds_bucket", {{"le", "0.05"}}),
            3);
  EXPECT_EQ(m.Value("fanprobe_event_loop_lag_seconds_bucket", {{"le", "1"}}),
            3);
  EXPECT_EQ(m.Value("fanprobe_event_loop_lag_seconds_bucket", {{"le", "+Inf"}}),
            4);
  EXPECT_EQ(m.Value("fanprobe_event_loop_lag_seconds_count"), 4);
  EXPECT_EQ(m.Value("fanprobe_event_loop_lag_seconds_sum"), 2.0325);
}

// With a real engine: lookups through a DNS server count, the loop's turns
// are timed, and the descriptor budget is the process's.
TEST(CollectorsTest, ARealEngineMovesItsFigures) {
  absl::StatusOr<std::unique_ptr<fanprobe::testing::DnsServer>> dns =
      fanprobe::testing::DnsServer::Start();
  ASSERT_TRUE(dns.ok()) << dns.status();
  fanprobe::testing::TargetServer target;
  (*dns)->AddA("web.test", "127.0.0.1");
  auto engine =
      Engine::Create(
          {.workers = 1, .dns_servers = {(*dns)->address()}, .hosts_file = ""})
          .value();
  ServerMetrics metrics;
  metrics.AddCollector(EngineStatsCollector(*engine));
  const Exposition before = ParseOrFail(metrics.Render());
  EXPECT_EQ(before.Value("fanprobe_dns_lookups_total"), 0);
  rlimit limit{};
  ASSERT_EQ(getrlimit(RLIMIT_NOFILE, &limit), 0);
  EXPECT_EQ(before.Value("fanprobe_engine_fd_limit"),
            static_cast<double>(limit.rlim_cur));
  EXPECT_EQ(before.Value("fanprobe_engine_fd_reserve"), 256);

  absl::Notification done;
  std::vector<ProbeResult> results;
  engine->Submit(
      {{.url = absl::StrCat("http://web.test:", target.port(), "/status/200")},
       {.url = "http://missing.test/"}},
      {},
      {.on_result = [&results](ProbeResult r) { results.push_back(r); },
       .on_done = [&done](BatchSummary) { done.Notify(); }});
  ASSERT_TRUE(done.WaitForNotificationWithTimeout(absl::Seconds(10)));
  ASSERT_EQ(results.size(), 2u);
  const Exposition after = ParseOrFail(metrics.Render());
  EXPECT_EQ(after.Value("fanprobe_dns_lookups_total"), 2);
  // The worker takes its pending count at the end of its event-loop turn,
  // which may end after the batch's last callback: wait for that turn.
  EXPECT_TRUE(fanprobe::testing::WaitUntil(
      [&] {
        return ParseOrFail(metrics.Render())
                   .Value("fanprobe_dns_lookups_pending") == 0;
      },
      absl::Seconds(30), absl::Milliseconds(10)));
  EXPECT_GT(*after.Value("fanprobe_event_loop_lag_seconds_count"),
            *before.Value("fanprobe_event_loop_lag_seconds_count"));
  EXPECT_EQ(after.Value("fanprobe_transport_handles_discarded_total"), 0);
}

TEST(MeteredEngineTest, CountsWhatPassesThroughAndForwardsIt) {
  auto engine = Engine::Create({.workers = 1}).value();
  ServerMetrics metrics;
  MeteredEngine metered(*engine, metrics, MetricsApi::kHttp);
  fanprobe::testing::TargetServer target;
  std::vector<ProbeTarget> targets = {{.url = target.url("/status/200")},
                                      {.url = target.url("/status/503")}};
  std::atomic<int> results{0};
  absl::Notification done;
  BatchSummary summary;
  metered.Submit(std::move(targets), {},
                 {.on_result = [&results](ProbeResult) { ++results; },
                  .on_done =
                      [&](BatchSummary s) {
                        summary = s;
                        done.Notify();
                      }});
  ASSERT_TRUE(done.WaitForNotificationWithTimeout(absl::Seconds(10)));
  EXPECT_EQ(results, 2);
  EXPECT_EQ(summary.completed, 2u);
  Exposition m = ParseOrFail(metrics.Render());
  EXPECT_EQ(
      m.Value("fanprobe_probes_total", {{"api", "http"}, {"outcome", "OK"}}),
      1);
  EXPECT_EQ(m.Value("fanprobe_probes_total",
                    {{"api", "http"}, {"outcome", "UNEXPECTED_STATUS"}}),
            1);
  EXPECT_EQ(m.Value("fanprobe_batches_total", {{"api", "http"},
                                               {"return_when", "ALL_COMPLETED"},
                                               {"reason", "ALL_COMPLETED"}}),
            1);
  EXPECT_EQ(metered.Stats().max_in_flight, engine->Stats().max_in_flight);
}

// A batch that ends while its targets are still being added lists the rest
// as pending; the cancelled count is what the summary says, not only what
// the engine had taken in.
TEST(MeteredEngineTest, CountsTargetsNotYetAddedAtTheEndAsCancelled) {
  auto engine = Engine::Create({.workers = 1}).value();
  ServerMetrics metrics;
  MeteredEngine metered(*engine, metrics, MetricsApi::kHttp);
  fanprobe::testing::TargetServer target;
  // The unusable first target completes as its chunk is added, and ends
  // the batch (FIRST_COMPLETED) before any other probe starts.
  constexpr uint32_t kTargets = 5000;
  std::vector<ProbeTarget> targets(kTargets,
                                   {.url = target.url("/status/200")});
  targets[0].url = "ftp://127.0.0.1/";
  absl::Notification done;
  BatchSummary summary;
  metered.Submit(std::move(targets),
                 {.return_when = ReturnWhen::kFirstCompleted},
                 {.on_done = [&](BatchSummary s) {
                   summary = s;
                   done.Notify();
                 }});
  ASSERT_TRUE(done.WaitForNotificationWithTimeout(absl::Seconds(10)));
  EXPECT_EQ(summary.total, kTargets);
  EXPECT_EQ(summary.cancelled, kTargets - 1);
  Exposition m = ParseOrFail(metrics.Render());
  EXPECT_EQ(m.Value("fanprobe_probes_cancelled_total", {{"api", "http"}}),
            kTargets - 1);
  EXPECT_EQ(target.Stats().http.requests, 0);
}

TEST(ProcessFiguresTest, ReadsAFakeProc) {
  TempDir proc;
  // Field 2 holds spaces and a parenthesis, as a command name may.
  proc.Write("self/stat",
             "4242 (fan probe) x) S 1 4242 4242 0 -1 4194560 100 0 0 0 "
             "250 150 0 0 20 0 9 0 12000 1048576 300 18446744073709551615\n");
  proc.Write("stat", "cpu  1 2 3\nbtime 1700000000\nprocesses 10\n");
  proc.Write(
      "self/limits",
      "Limit                     Soft Limit           Hard Limit  Units\n"
      "Max open files            20000                1048576     files\n");
  proc.Write("self/fd/0", "");
  proc.Write("self/fd/1", "");
  proc.Write("self/fd/7", "");
  absl::StatusOr<ProcessFigures> figures = ReadProcessFigures(proc.path());
  ASSERT_TRUE(figures.ok()) << figures.status();
  const double ticks = static_cast<double>(sysconf(_SC_CLK_TCK));
  EXPECT_DOUBLE_EQ(figures->cpu_seconds, 400 / ticks);
  EXPECT_EQ(figures->virtual_bytes, 1048576u);
  EXPECT_EQ(figures->resident_bytes,
            300u * static_cast<uint64_t>(sysconf(_SC_PAGESIZE)));
  EXPECT_DOUBLE_EQ(figures->start_time_seconds, 1700000000 + 12000 / ticks);
  EXPECT_EQ(figures->max_fds, 20000u);
  EXPECT_EQ(figures->open_fds, 3u);
}

TEST(ProcessFiguresTest, MissingOrGarbledFilesAreErrors) {
  TempDir proc;
  EXPECT_EQ(ReadProcessFigures(proc.path()).status().code(),
            absl::StatusCode::kNotFound);
  proc.Write("self/stat", "garbage without a parenthesis");
  EXPECT_EQ(ReadProcessFigures(proc.path()).status().code(),
            absl::StatusCode::kDataLoss);
}

TEST(ProcessFiguresTest, ThisProcessHasSaneFigures) {
  absl::StatusOr<ProcessFigures> figures = ReadProcessFigures();
  ASSERT_TRUE(figures.ok()) << figures.status();
  EXPECT_GE(figures->open_fds, 3u);  // at least stdin, stdout, stderr
  EXPECT_GT(figures->resident_bytes, 1u << 20);
  EXPECT_GT(figures->max_fds, 0u);
  EXPECT_GT(figures->start_time_seconds, 1.5e9);
}

}  // namespace
}  // namespace fanprobe::monitoring
