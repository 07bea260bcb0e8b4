#include "monitoring/metrics.h"

#include <algorithm>
#include <cstdint>
#include <memory>
#include <string>
#include <utility>
#include <vector>

#include "absl/status/status.h"
#include "absl/strings/str_cat.h"
#include "absl/strings/string_view.h"
#include "absl/synchronization/mutex.h"
#include "absl/time/time.h"
#include "monitoring/phases.h"
#include "monitoring/prometheus_text.h"

namespace fanprobe::monitoring {
namespace {

// Probe and phase durations: from loopback (sub-millisecond) to the longest
// probe timeouts.
std::vector<double> DurationBuckets() {
  return {0.0005, 0.001, 0.0025, 0.005, 0.01, 0.025, 0.05, 0.1,
          0.25,   0.5,   1,      2.5,   5,    10,    30,   60};
}

// How long a result waits in a stream's queue: from no wait at all to a
// reader that stalls for seconds.
std::vector<double> QueueWaitBuckets() {
  return {0.0001, 0.0005, 0.001, 0.005, 0.01, 0.05, 0.1, 0.5, 1, 5, 10};
}

absl::string_view ApiName(MetricsApi api) {
  return api == MetricsApi::kGrpc ? "grpc" : "http";
}

constexpr std::array<MetricsApi, 2> kAllApis = {MetricsApi::kGrpc,
                                                MetricsApi::kHttp};
constexpr std::array<ReturnWhen, 3> kAllReturnWhens = {
    ReturnWhen::kAllCompleted, ReturnWhen::kFirstCompleted,
    ReturnWhen::kFirstException};
constexpr std::array<EndReason, 5> kAllEndReasons = {
    EndReason::kAllCompleted, EndReason::kFirstCompleted,
    EndReason::kFirstException, EndReason::kTimeout, EndReason::kCancelled};
// The refusals either API makes; other codes appear once they happen.
constexpr std::array<absl::StatusCode, 3> kRejectionCodes = {
    absl::StatusCode::kInvalidArgument, absl::StatusCode::kResourceExhausted,
    absl::StatusCode::kUnavailable};
constexpr std::array<absl::string_view, 5> kPhaseNames = {
    "resolve", "connect", "tls", "processing", "transfer"};

}  // namespace

Histogram::Histogram(std::vector<double> upper_bounds)
    : bounds_(std::move(upper_bounds)),
      counts_(new std::atomic<uint64_t>[bounds_.size() + 1]) {
  for (size_t i = 0; i <= bounds_.size(); ++i) counts_[i] = 0;
}

void Histogram::Observe(absl::Duration value) {
  const double seconds = absl::ToDoubleSeconds(value);
  const size_t bucket =
      std::lower_bound(bounds_.begin(), bounds_.end(), seconds) -
      bounds_.begin();
  counts_[bucket].fetch_add(1, std::memory_order_relaxed);
  sum_.fetch_add(seconds, std::memory_order_relaxed);
}

void Histogram::Write(MetricsWriter& out, absl::string_view name,
                      const MetricsWriter::Labels& labels) const {
  // The count is the buckets' total, so +Inf and _count always agree even
  // while observations land.
  uint64_t cumulative = 0;
  MetricsWriter::Labels with_le = labels;
  with_le.emplace_back("le", "");
  const std::string bucket_name = absl::StrCat(name, "_bucket");
  for (size_t i = 0; i <= bounds_.size(); ++i) {
    cumulative += counts_[i].load(std::memory_order_relaxed);
    with_le.back().second = i < bounds_.size() ? FormatSampleValue(bounds_[i])
                                               : std::string("+Inf");
    out.Sample(bucket_name, with_le, static_cast<double>(cumulative));
  }
  out.Sample(absl::StrCat(name, "_sum"), labels,
             sum_.load(std::memory_order_relaxed));
  out.Sample(absl::StrCat(name, "_count"), labels,
             static_cast<double>(cumulative));
}

ServerMetrics::ServerMetrics()
    : probe_duration_(DurationBuckets()),
      stream_queue_wait_(QueueWaitBuckets()) {
  for (int i = 0; i < kPhases; ++i) {
    phases_.push_back(std::make_unique<Histogram>(DurationBuckets()));
  }
}

void ServerMetrics::ProbeCompleted(MetricsApi api, const ProbeResult& result) {
  const int outcome = static_cast<int>(result.outcome);
  if (outcome >= 0 && outcome < kOutcomes) {
    probes_[static_cast<int>(api) * kOutcomes + outcome].fetch_add(
        1, std::memory_order_relaxed);
  }
  // A probe without retries is its one attempt.
  if (result.attempts.empty() && outcome >= 0 && outcome < kOutcomes) {
    attempts_[static_cast<int>(api) * kOutcomes + outcome].fetch_add(
        1, std::memory_order_relaxed);
  }
  for (const Attempt& attempt : result.attempts) {
    const int o = static_cast<int>(attempt.outcome);
    if (o < 0 || o >= kOutcomes) continue;
    attempts_[static_cast<int>(api) * kOutcomes + o].fetch_add(
        1, std::memory_order_relaxed);
  }
  const Timings& t = result.timings;
  const PhaseDurations phases = PhasesOf(t);
  // A phase is observed only when it happened, so an http:// probe does not
  // pile up zero-length TLS handshakes.
  if (t.dns > absl::ZeroDuration()) phases_[0]->Observe(phases.resolve);
  if (t.connect > absl::ZeroDuration()) phases_[1]->Observe(phases.connect);
  if (t.tls > absl::ZeroDuration()) phases_[2]->Observe(phases.tls);
  if (t.first_byte > absl::ZeroDuration()) {
    phases_[3]->Observe(phases.processing);
    phases_[4]->Observe(phases.transfer);
  }
  probe_duration_.Observe(t.total);
}

void ServerMetrics::BatchEnded(MetricsApi api, ReturnWhen return_when,
                               const BatchSummary& summary) {
  const int index =
      (static_cast<int>(api) * kReturnWhens + static_cast<int>(return_when)) *
          kEndReasons +
      static_cast<int>(summary.reason);
  batches_[index].fetch_add(1, std::memory_order_relaxed);
  probes_cancelled_[static_cast<int>(api)].fetch_add(summary.cancelled,
                                                     std::memory_order_relaxed);
}

void ServerMetrics::RequestRejected(MetricsApi api, absl::StatusCode code) {
  const int c = static_cast<int>(code);
  if (c <= 0 || c >= kStatusCodes) return;
  rejected_[static_cast<int>(api) * kStatusCodes + c].fetch_add(
      1, std::memory_order_relaxed);
}

void ServerMetrics::StreamStarted() {
  streams_active_.fetch_add(1, std::memory_order_relaxed);
}

void ServerMetrics::StreamEnded() {
  streams_active_.fetch_sub(1, std::memory_order_relaxed);
}

void ServerMetrics::StreamQueueWait(absl::Duration wait) {
  stream_queue_wait_.Observe(wait);
}

void ServerMetrics::AddCollector(Collector collector) {
  absl::MutexLock lock(&mu_);
  collectors_.push_back(std::move(collector));
}

std::string ServerMetrics::Render() const {
  MetricsWriter out;

  out.Family("fanprobe_batches_total", "counter",
             "Batches that ended, by the API they came through, their "
             "return_when rule and the reason they ended.");
  for (const MetricsApi api : kAllApis) {
    for (const ReturnWhen rw : kAllReturnWhens) {
      for (const EndReason reason : kAllEndReasons) {
        const int index =
            (static_cast<int>(api) * kReturnWhens + static_cast<int>(rw)) *
                kEndReasons +
            static_cast<int>(reason);
        out.Sample("fanprobe_batches_total",
                   {{"api", std::string(ApiName(api))},
                    {"return_when", std::string(ReturnWhenName(rw))},
                    {"reason", std::string(EndReasonName(reason))}},
                   batches_[index].load(std::memory_order_relaxed));
      }
    }
  }

  // Counters by API and outcome.
  auto by_outcome = [&out](absl::string_view name, absl::string_view help,
                           const auto& counts) {
    out.Family(name, "counter", help);
    for (const MetricsApi api : kAllApis) {
      for (int o = 0; o < kOutcomes; ++o) {
        out.Sample(
            name,
            {{"api", std::string(ApiName(api))},
             {"outcome", std::string(OutcomeName(static_cast<Outcome>(o)))}},
            counts[static_cast<int>(api) * kOutcomes + o].load(
                std::memory_order_relaxed));
      }
    }
  };
  by_outcome("fanprobe_probes_total",
             "Probes that completed, by API and outcome.", probes_);
  by_outcome("fanprobe_probe_attempts_total",
             "Attempts of the probes that completed, retries included, by "
             "API and the attempt's outcome.",
             attempts_);

  out.Family("fanprobe_probes_cancelled_total", "counter",
             "Probes that had not completed when their batch ended "
             "(first completed/exception, timeout, cancel).");
  for (const MetricsApi api : kAllApis) {
    out.Sample("fanprobe_probes_cancelled_total",
               {{"api", std::string(ApiName(api))}},
               probes_cancelled_[static_cast<int>(api)].load(
                   std::memory_order_relaxed));
  }

  out.Family("fanprobe_requests_rejected_total", "counter",
             "Requests refused before a batch started, by API and the "
             "status code they got.");
  for (const MetricsApi api : kAllApis) {
    for (int c = 1; c < kStatusCodes; ++c) {
      const uint64_t n =
          rejected_[static_cast<int>(api) * kStatusCodes + c].load(
              std::memory_order_relaxed);
      const auto code = static_cast<absl::StatusCode>(c);
      const bool always =
          std::find(kRejectionCodes.begin(), kRejectionCodes.end(), code) !=
          kRejectionCodes.end();
      if (n == 0 && !always) continue;
      out.Sample("fanprobe_requests_rejected_total",
                 {{"api", std::string(ApiName(api))},
                  {"reason", absl::StatusCodeToString(code)}},
                 static_cast<double>(n));
    }
  }

  out.Family("fanprobe_probe_duration_seconds", "histogram",
             "Completed probes' whole duration (every redirect hop).");
  probe_duration_.Write(out, "fanprobe_probe_duration_seconds", {});

  out.Family("fanprobe_probe_phase_duration_seconds", "histogram",
             "Completed probes' phases, as blackbox_exporter splits them; a "
             "phase is observed only when it happened.");
  for (int i = 0; i < kPhases; ++i) {
    phases_[i]->Write(out, "fanprobe_probe_phase_duration_seconds",
                      {{"phase", std::string(kPhaseNames[i])}});
  }

  out.Family("fanprobe_stream_queue_wait_seconds", "histogram",
             "How long StreamProbes and ProbeStream results waited in their "
             "stream's queue "
             "behind earlier writes.");
  stream_queue_wait_.Write(out, "fanprobe_stream_queue_wait_seconds", {});

  out.Family("fanprobe_streams_active", "gauge",
             "StreamProbes and ProbeStream calls in progress.");
  out.Sample(
      "fanprobe_streams_active", {},
      static_cast<double>(streams_active_.load(std::memory_order_relaxed)));

  std::vector<Collector> collectors;
  {
    absl::MutexLock lock(&mu_);
    collectors = collectors_;
  }
  for (const Collector& collect : collectors) collect(out);
  return out.Release();
}

}  // namespace fanprobe::monitoring
