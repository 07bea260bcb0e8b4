// metrics.h: fanprobe's own metrics in the Prometheus text exposition format
// (version 0.0.4), served on /metrics by the HTTP side (http_server.h).
//
// ServerMetrics holds what is counted as it happens -- batches, probes,
// rejected requests, phase and queue-wait histograms, active streams -- fed
// by MeteredEngine (metered_engine.h) for everything that goes through the
// engine and by the Prober service through the ServiceObserver hooks.  What
// is a live figure (engine and service stats, process figures) is read at
// scrape time by collectors the server registers.
//
// Example:
//   auto metrics = std::make_shared<ServerMetrics>();
//   metrics->AddCollector([&engine](MetricsWriter& out) {
//     out.Family("fanprobe_probes_in_flight", "gauge", "Probes running now.");
//     out.Sample("fanprobe_probes_in_flight", {},
//     engine.Stats().probes_in_flight);
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

#ifndef FANPROBE_SERVICE_METRICS_H_
#define FANPROBE_SERVICE_METRICS_H_

#include <array>
#include <atomic>
#include <cstdint>
#include <functional>
#include <memory>
#include <string>
#include <utility>
#include <vector>

#include "absl/base/thread_annotations.h"
#include "absl/status/status.h"
#include "absl/status/statusor.h"
#include "absl/strings/string_view.h"
#include "absl/synchronization/mutex.h"
#include "absl/time/time.h"
#include "probe/engine.h"
#include "probe/probe.h"
#include "service/service_observer.h"

namespace fanprobe::service {

// Appends Prometheus text format to a string.  A family is announced once
// with Family(), then its samples follow; label values are escaped here.
class MetricsWriter {
 public:
  using Labels = std::vector<std::pair<std::string, std::string>>;

  // "# HELP name help" and "# TYPE name type" (counter, gauge, histogram).
  void Family(absl::string_view name, absl::string_view type,
              absl::string_view help);
  // "name{k="v",...} value".  Integral values print without a fraction,
  // others in the shortest form that reads back the same; infinities as
  // +Inf / -Inf.
  void Sample(absl::string_view name, const Labels& labels, double value);

  const std::string& text() const { return text_; }
  std::string Release() { return std::move(text_); }

 private:
  std::string text_;
};

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

// The process figures every Prometheus client library exports.
struct ProcessFigures {
  double cpu_seconds = 0;  // user + system
  uint64_t resident_bytes = 0;
  uint64_t virtual_bytes = 0;
  uint64_t open_fds = 0;
  uint64_t max_fds = 0;           // the RLIMIT_NOFILE soft limit
  double start_time_seconds = 0;  // since the Unix epoch
};

// Reads the figures of the calling process from `proc_root`/self/{stat,fd,
// limits} and `proc_root`/stat (the boot time).  Tests pass a directory laid
// out the same way.  kNotFound / kDataLoss when a file is missing or does not
// parse.
absl::StatusOr<ProcessFigures> ReadProcessFigures(
    const std::string& proc_root = "/proc");

class ServerMetrics final : public ServiceObserver {
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

  // ServiceObserver: the gRPC side's calls, refusals and stream queues.
  void CallStarted(absl::string_view rpc) override;
  void CallEnded(absl::string_view rpc) override;
  void CallRejected(absl::string_view rpc, absl::StatusCode code) override;
  void StreamQueueWait(absl::Duration wait) override;

  void AddCollector(Collector collector);

  // Everything, in the text format.
  std::string Render() const;

 private:
  static constexpr int kApis = 2;
  static constexpr int kReturnWhens = 3;
  static constexpr int kEndReasons = 5;
  static constexpr int kOutcomes = 13;
  static constexpr int kStatusCodes = 17;  // absl::StatusCode 0..16
  static constexpr int kPhases = 5;

  std::array<std::atomic<uint64_t>, kApis * kReturnWhens * kEndReasons>
      batches_{};
  std::array<std::atomic<uint64_t>, kApis * kOutcomes> probes_{};
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

// blackbox_exporter's phases of one probe, each a span (not a mark): resolve
// = name lookup, connect = TCP, tls = handshake, processing = request sent
// until the first response byte, transfer = first byte until done.  A phase
// that did not happen is zero; negative spans (curl's marks on a reused or
// redirected connection) are clamped to zero.
struct PhaseDurations {
  absl::Duration resolve = absl::ZeroDuration();
  absl::Duration connect = absl::ZeroDuration();
  absl::Duration tls = absl::ZeroDuration();
  absl::Duration processing = absl::ZeroDuration();
  absl::Duration transfer = absl::ZeroDuration();
};
PhaseDurations PhasesOf(const Timings& timings);

}  // namespace fanprobe::service

#endif  // FANPROBE_SERVICE_METRICS_H_
