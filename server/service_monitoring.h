// service_monitoring.h: where the gRPC service (service/) meets the
// monitoring side (monitoring/), which know nothing of each other: the
// service's calls, refusals and stream queues counted in ServerMetrics, its
// live stats as a /metrics collector, and the saturation rule /readyz
// applies to the engine and the service together.
//
// Example (server.cc does this):
//   options.service.observer = std::make_shared<ServiceMetricsObserver>(
//       metrics);
//   metrics->AddCollector(ServiceStatsCollector(service, max_pending));
//   ... readiness = [&] { return SaturationStatus(engine.Stats(),
//                                                 service.Stats(), max); }
//
// Thread-safety: the observer's hooks are lock-free and may be called from
// any thread (as ServiceObserver requires); the collector calls only
// ProberService::Stats(); SaturationStatus is a plain function.

#ifndef FANPROBE_SERVER_SERVICE_MONITORING_H_
#define FANPROBE_SERVER_SERVICE_MONITORING_H_

#include <cstdint>
#include <memory>

#include "absl/status/status.h"
#include "absl/strings/string_view.h"
#include "absl/time/time.h"
#include "monitoring/metrics.h"
#include "probe/engine.h"
#include "service/prober_service.h"
#include "service/service_observer.h"

namespace fanprobe::server {

// Records the Prober service's calls in ServerMetrics: StreamProbes calls
// active, refusals (api="grpc"), stream queue waits.  `metrics` must
// outlive it.
class ServiceMetricsObserver final : public service::ServiceObserver {
 public:
  explicit ServiceMetricsObserver(monitoring::ServerMetrics& metrics)
      : metrics_(metrics) {}

  void CallStarted(absl::string_view rpc) override;
  void CallEnded(absl::string_view rpc) override;
  void CallRejected(absl::string_view rpc, absl::StatusCode code) override;
  void StreamQueueWait(absl::Duration wait) override;

 private:
  // Constant after construction.
  monitoring::ServerMetrics& metrics_;
};

// fanprobe_grpc_pending_probes (and its limit), fanprobe_streams_paused,
// fanprobe_stream_queue_peak.
monitoring::ServerMetrics::Collector ServiceStatsCollector(
    const service::ProberService& service, uint64_t max_pending_probes);

// OK unless the server is saturated: the engine runs as many probes as it
// may while more wait for a slot, or the gRPC side's pending probes have
// reached max_pending_probes (a new batch would be RESOURCE_EXHAUSTED).
// kUnavailable says which.
absl::Status SaturationStatus(const EngineStats& engine,
                              const service::ServiceStats& service,
                              uint64_t max_pending_probes);

}  // namespace fanprobe::server

#endif  // FANPROBE_SERVER_SERVICE_MONITORING_H_
