#include "server/service_monitoring.h"

#include <cstdint>

#include "absl/status/status.h"
#include "absl/strings/str_cat.h"
#include "absl/strings/string_view.h"
#include "absl/time/time.h"
#include "monitoring/prometheus_text.h"

namespace fanprobe::server {
namespace {

// The RPCs that keep a stream of results open, which fanprobe_streams_active
// counts.
bool IsStream(absl::string_view rpc) {
  return rpc == "StreamProbes" || rpc == "ProbeStream";
}

}  // namespace

void ServiceMetricsObserver::CallStarted(absl::string_view rpc) {
  if (IsStream(rpc)) metrics_.StreamStarted();
}

void ServiceMetricsObserver::CallEnded(absl::string_view rpc) {
  if (IsStream(rpc)) metrics_.StreamEnded();
}

void ServiceMetricsObserver::CallRejected(absl::string_view rpc,
                                          absl::StatusCode code) {
  metrics_.RequestRejected(monitoring::MetricsApi::kGrpc, code);
}

void ServiceMetricsObserver::StreamQueueWait(absl::Duration wait) {
  metrics_.StreamQueueWait(wait);
}

monitoring::ServerMetrics::Collector ServiceStatsCollector(
    const service::ProberService& service, uint64_t max_pending_probes) {
  return [&service, max_pending_probes](monitoring::MetricsWriter& out) {
    const service::ServiceStats stats = service.Stats();
    out.Gauge("fanprobe_grpc_pending_probes",
              "Probes of gRPC batches not yet ended (queued, running or being "
              "written).",
              static_cast<double>(stats.pending_probes));
    out.Gauge(
        "fanprobe_grpc_pending_probes_limit",
        "A batch that would take fanprobe_grpc_pending_probes beyond this "
        "is RESOURCE_EXHAUSTED (--max_pending_probes).",
        static_cast<double>(max_pending_probes));
    out.Gauge("fanprobe_streams_paused",
              "StreamProbes and ProbeStream calls whose batch is paused "
              "because the reader "
              "is behind (the stream queue is full).",
              static_cast<double>(stats.paused_streams));
    out.Gauge("fanprobe_stream_queue_peak",
              "The most results any StreamProbes or ProbeStream call has had "
              "queued at once "
              "since start.",
              static_cast<double>(stats.peak_stream_queue));
  };
}

absl::Status SaturationStatus(const EngineStats& engine,
                              const service::ServiceStats& service,
                              uint64_t max_pending_probes) {
  if (engine.probes_queued > 0 && engine.max_in_flight > 0 &&
      engine.probes_in_flight >= engine.max_in_flight) {
    return absl::UnavailableError(absl::StrCat(
        "saturated: ", engine.probes_in_flight,
        " probes in flight (the cap) and ", engine.probes_queued, " queued"));
  }
  if (max_pending_probes > 0 && service.pending_probes >= max_pending_probes) {
    return absl::UnavailableError(
        absl::StrCat("saturated: ", service.pending_probes,
                     " gRPC probes pending, the limit (--max_pending_probes)"));
  }
  return absl::OkStatus();
}

}  // namespace fanprobe::server
