// metrics.h: fanprobe's own metrics -- the registry behind /metrics, written
// in the Prometheus text format (prometheus_text.h) by the HTTP side
// (http_server.h).
//
// ServerMetrics holds what is counted as it happens: batches, probes,
// rejected requests, phase and queue-wait histograms, active streams.
// MeteredEngine (metered_engine.h) feeds it everything that goes through
// the engine; each API reports its refusals, and the server connects the
// gRPC service's calls and stream queues to it (server/service_monitoring.h).
// What is a live figure (engine and service stats, process figures) is read
// at scrape time by collectors (collectors.h) that the server registers.
//
// Example:
//   auto metrics = std::make_shared<ServerMetrics>();
//   metrics->AddCollector([&engine](MetricsWriter& out) {
//     out.Family("fanprobe_probes_in_flight", "gauge", "Probes running now.");
//     out.Sample("fanprobe_probes_in_flight", {},
//                engine.Stats().probes_in_flight);
//   });
//   std::string text = metrics->Render();
//
// Names follow the Prometheus conventions: a `fanprobe_` prefix, base units
// (`_seconds`, `_bytes`), `_total` on counters only; the process figures use
// the `process_` names every Prometheus client library exports.  Label values
// reuse fanprobe's own vocabulary: outcomes and end reasons as the proto
// enums name them without their prefix ("UNEXPECTED_STATUS", "TIMEOUT"),
// refusals as status code names ("RESOURCE_EXHAUSTED").
//
// Thread-safety: recording methods are lock-free and may be called from any
// thread, including engine and gRPC callbacks.  Render() may run
// concurrently with them; a scrape sees each counter at some recent value.

#ifndef FANPROBE_MONITORING_METRICS_H_
#define FANPROBE_MONITORING_METRICS_H_

#include <array>
#include <atomic>
#include <cstdint>
#include <functional>
#include <memory>
#include <string>
#include <vector>

#include "absl/base/thread_annotations.h"
#include "absl/status/status.h"
#include "absl/strings/string_view.h"
#include "absl/synchronization/mutex.h"
#include "absl/time/time.h"
#include "monitoring/prometheus_text.h"
#include "probe/engine.h"
#include "probe/probe.h"

namespace fanprobe::monitoring {

// A cumulative histogram with fixed upper bounds, in seconds.
class Histogram {
 public:
  explicit Histogram(std::vector<double> upper_bounds);

  void Observe(absl::Duration value);
  // Writes name_bucket{...,le="..."} for every bound and +Inf, name_sum and
  // name_count, each with `labels` first.  The family line is the caller's.
  void Write(MetricsWriter& out, absl::string_view name,
             const MetricsWriter::Labels& labels) const;

 private:
  // Constant after construction.
  const std::vector<double> bounds_;
  // Observations per bucket, not cumulative; the last is above every bound.
  std::unique_ptr<std::atomic<uint64_t>[]> counts_;
  std::atomic<double> sum_{0};
};

// Which API a batch or request came through: the `api` label.
enum class MetricsApi { kGrpc, kHttp };

class ServerMetrics {
 public:
  // Writes figures read at scrape time.  Runs inside Render(); must not
  // block for long.
  using Collector = std::function<void(MetricsWriter& out)>;

  ServerMetrics();
  ServerMetrics(const ServerMetrics&) = delete;
  ServerMetrics& operator=(const ServerMetrics&) = delete;

  // From MeteredEngine, on engine threads.
  void ProbeCompleted(MetricsApi api, const ProbeResult& result);
  void BatchEnded(MetricsApi api, ReturnWhen return_when,
                  const BatchSummary& summary);

  // A request refused before its batch started, with the status it got.
  void RequestRejected(MetricsApi api, absl::StatusCode code);

  // A StreamProbes call began / ended (fanprobe_streams_active).
  void StreamStarted();
  void StreamEnded();
  // A StreamProbes result left the stream's queue for the wire after
  // waiting `wait` behind earlier writes.
  void StreamQueueWait(absl::Duration wait);

  void AddCollector(Collector collector);

  // Everything, in the text format.
  std::string Render() const;

 private:
  static constexpr int kApis = 2;
  static constexpr int kReturnWhens = 3;
  static constexpr int kEndReasons = 5;
  static constexpr int kOutcomes = kNumOutcomes;
  static constexpr int kStatusCodes = 17;  // absl::StatusCode 0..16
  static constexpr int kPhases = 5;

  std::array<std::atomic<uint64_t>, kApis * kReturnWhens * kEndReasons>
      batches_{};
  std::array<std::atomic<uint64_t>, kApis * kOutcomes> probes_{};
  std::array<std::atomic<uint64_t>, kApis * kOutcomes> attempts_{};
  std::array<std::atomic<uint64_t>, kApis> probes_cancelled_{};
  std::array<std::atomic<uint64_t>, kApis * kStatusCodes> rejected_{};
  std::atomic<int64_t> streams_active_{0};
  // resolve, connect, tls, processing, transfer (blackbox_exporter's
  // phases), then the whole probe.
  std::vector<std::unique_ptr<Histogram>> phases_;
  Histogram probe_duration_;
  Histogram stream_queue_wait_;

  mutable absl::Mutex mu_;
  std::vector<Collector> collectors_ ABSL_GUARDED_BY(mu_);
};

}  // namespace fanprobe::monitoring

#endif  // FANPROBE_MONITORING_METRICS_H_
