// collectors.h: the figures /metrics reads at scrape time -- the engine's
// and the HTTP side's live stats, the process, the build -- as
// ServerMetrics collectors.  server/server.cc registers them (and the gRPC
// service's own, server/service_monitoring.h); each reads live state
// through a const reference that must outlive the ServerMetrics it is added
// to.
//
// Example:
//   metrics.AddCollector(EngineStatsCollector(engine));
//   metrics.AddCollector(BuildInfoCollector({{"grpc", grpc::Version()}}));
//   metrics.AddCollector(ProcessCollector());
//
// Thread-safety: the collectors run on the thread serving /metrics and only
// call the thread-safe Stats() methods.

#ifndef FANPROBE_MONITORING_COLLECTORS_H_
#define FANPROBE_MONITORING_COLLECTORS_H_

#include "monitoring/blackbox_modules.h"
#include "monitoring/http_server.h"
#include "monitoring/metrics.h"
#include "monitoring/prometheus_text.h"
#include "probe/engine.h"

namespace fanprobe::monitoring {

// fanprobe_probes_in_flight, fanprobe_probes_queued,
// fanprobe_probes_max_in_flight, fanprobe_batches_active,
// fanprobe_probes_paced; the descriptor budget (fanprobe_engine_fd_limit,
// fanprobe_engine_fds_open_at_start, fanprobe_engine_fd_reserve);
// fanprobe_transport_handles_discarded_total; fanprobe_dns_lookups_total,
// fanprobe_dns_lookups_pending; the histogram
// fanprobe_event_loop_lag_seconds.
ServerMetrics::Collector EngineStatsCollector(const Engine& engine);

// fanprobe_http_probe_requests_active, fanprobe_http_pending_probes.
ServerMetrics::Collector HttpStatsCollector(const HttpServer& http);

// fanprobe_config_last_reload_successful,
// fanprobe_config_last_reload_success_timestamp_seconds (blackbox_exporter's
// reload gauges) and fanprobe_http_probe_unsupported_option_total{module,
// option}.
ServerMetrics::Collector ModulesCollector(const BlackboxModulesStore& store);

// fanprobe_build_info{version, libcurl, <more>} 1: which fanprobe and which
// libraries run.  `more` names what the caller links that this library
// does not (the server adds grpc).
ServerMetrics::Collector BuildInfoCollector(MetricsWriter::Labels more);

// process_cpu_seconds_total, process_open_fds, process_max_fds,
// process_resident_memory_bytes, process_virtual_memory_bytes,
// process_start_time_seconds; nothing where /proc cannot be read.
ServerMetrics::Collector ProcessCollector();

}  // namespace fanprobe::monitoring

#endif  // FANPROBE_MONITORING_COLLECTORS_H_
