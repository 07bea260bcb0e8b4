// collectors.h: the figures /metrics reads at scrape time -- engine, gRPC
// service and HTTP side stats, the process, the build -- as ServerMetrics
// collectors, and the saturation rule /readyz applies to the same stats.
// service/server.cc registers them; each reads live state through a const
// reference that must outlive the ServerMetrics it is added to.
//
// Example:
//   metrics.AddCollector(EngineStatsCollector(engine));
//   metrics.AddCollector(ProcessCollector());
//
// Thread-safety: the collectors run on the thread serving /metrics and only
// call the thread-safe Stats() methods.

#ifndef FANPROBE_SERVICE_COLLECTORS_H_
#define FANPROBE_SERVICE_COLLECTORS_H_

#include <cstdint>

#include "absl/status/status.h"
#include "probe/engine.h"
#include "service/http_server.h"
#include "service/metrics.h"
#include "service/prober_service.h"

namespace fanprobe::service {

// fanprobe_probes_in_flight, fanprobe_probes_queued,
// fanprobe_probes_max_in_flight, fanprobe_batches_active.
ServerMetrics::Collector EngineStatsCollector(const Engine& engine);

// fanprobe_grpc_pending_probes (and its limit), fanprobe_streams_paused,
// fanprobe_stream_queue_peak.
ServerMetrics::Collector ServiceStatsCollector(const ProberService& service,
                                               uint64_t max_pending_probes);

// fanprobe_http_probe_requests_active, fanprobe_http_pending_probes.
ServerMetrics::Collector HttpStatsCollector(const HttpServer& http);

// process_cpu_seconds_total, process_open_fds, process_max_fds,
// process_resident_memory_bytes, process_virtual_memory_bytes,
// process_start_time_seconds, and fanprobe_build_info{version, libcurl,
// grpc} 1.
ServerMetrics::Collector ProcessCollector();

// OK unless the server is saturated: the engine runs as many probes as it
// may while more wait for a slot, or the gRPC side's pending probes have
// reached max_pending_probes (a new batch would be RESOURCE_EXHAUSTED).
// kUnavailable says which.
absl::Status SaturationStatus(const EngineStats& engine,
                              const ServiceStats& service,
                              uint64_t max_pending_probes);

}  // namespace fanprobe::service

#endif  // FANPROBE_SERVICE_COLLECTORS_H_
