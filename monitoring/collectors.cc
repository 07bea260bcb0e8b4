#include "monitoring/collectors.h"

#include <string>
#include <utility>

#include "absl/status/statusor.h"
#include "absl/strings/string_view.h"
#include "monitoring/process_figures.h"
#include "probe/probe.h"

namespace fanprobe::monitoring {

ServerMetrics::Collector EngineStatsCollector(const Engine& engine) {
  return [&engine](MetricsWriter& out) {
    const EngineStats stats = engine.Stats();
    out.Gauge("fanprobe_probes_in_flight",
              "Probes running now, across all batches of both APIs.",
              static_cast<double>(stats.probes_in_flight));
    out.Gauge("fanprobe_probes_queued",
              "Probes of running batches waiting for a slot.",
              static_cast<double>(stats.probes_queued));
    out.Gauge("fanprobe_probes_max_in_flight",
              "The engine's cap on probes running at once (after the file "
              "descriptor budget).",
              static_cast<double>(stats.max_in_flight));
    out.Gauge("fanprobe_batches_active",
              "Batches submitted and not yet ended, both APIs.",
              static_cast<double>(stats.batches_active));
  };
}

ServerMetrics::Collector HttpStatsCollector(const HttpServer& http) {
  return [&http](MetricsWriter& out) {
    const HttpStats stats = http.Stats();
    out.Gauge("fanprobe_http_probe_requests_active",
              "/probe requests being served.",
              static_cast<double>(stats.probe_requests_active));
    out.Gauge("fanprobe_http_pending_probes",
              "Probes of the /probe requests being served.",
              static_cast<double>(stats.pending_probes));
  };
}

ServerMetrics::Collector BuildInfoCollector(MetricsWriter::Labels more) {
  MetricsWriter::Labels labels = {{"version", FANPROBE_VERSION},
                                  {"libcurl", std::string(TransportVersion())}};
  for (auto& label : more) labels.push_back(std::move(label));
  return [labels = std::move(labels)](MetricsWriter& out) {
    out.Family("fanprobe_build_info", "gauge",
               "Always 1; the labels say which fanprobe and libraries run.");
    out.Sample("fanprobe_build_info", labels, 1);
  };
}

ServerMetrics::Collector ProcessCollector() {
  return [](MetricsWriter& out) {
    absl::StatusOr<ProcessFigures> figures = ReadProcessFigures();
    if (!figures.ok()) return;  // not Linux /proc: no process figures
    out.Family("process_cpu_seconds_total", "counter",
               "Total user and system CPU time spent in seconds.");
    out.Sample("process_cpu_seconds_total", {}, figures->cpu_seconds);
    out.Gauge("process_open_fds", "Number of open file descriptors.",
              static_cast<double>(figures->open_fds));
    out.Gauge("process_max_fds",
              "Maximum number of open file descriptors (the soft limit).",
              static_cast<double>(figures->max_fds));
    out.Gauge("process_resident_memory_bytes", "Resident memory size in bytes.",
              static_cast<double>(figures->resident_bytes));
    out.Gauge("process_virtual_memory_bytes", "Virtual memory size in bytes.",
              static_cast<double>(figures->virtual_bytes));
    out.Gauge("process_start_time_seconds",
              "Start time of the process since unix epoch in seconds.",
              figures->start_time_seconds);
  };
}

}  // namespace fanprobe::monitoring
