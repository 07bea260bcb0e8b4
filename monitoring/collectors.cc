#include "monitoring/collectors.h"

#include <cstddef>
#include <cstdint>
#include <string>
#include <utility>

#include "absl/status/statusor.h"
#include "absl/strings/string_view.h"
#include "absl/time/time.h"
#include "monitoring/process_figures.h"
#include "probe/probe.h"

namespace fanprobe::monitoring {

ServerMetrics::Collector EngineStatsCollector(const Engine& engine) {
  return [&engine](MetricsWriter& out) {
    const EngineStats stats = engine.Stats();
    out.Gauge("fanprobe_probes_in_flight",
              "Probes running now, across all batches of both APIs, or "
              "waiting to be tried again.",
              static_cast<double>(stats.probes_in_flight));
    out.Gauge("fanprobe_probes_backing_off",
              "Probes in flight that wait out a backoff before their next "
              "attempt.",
              static_cast<double>(stats.probes_backing_off));
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
    out.Gauge("fanprobe_probes_paced",
              "Probes the workers hold back because the probes they are "
              "connecting already use the CPU they can spend on it.",
              static_cast<double>(stats.probes_paced));

    // The descriptor budget, as the engine found it at start.
    out.Gauge("fanprobe_engine_fd_limit",
              "The RLIMIT_NOFILE soft limit the engine found at start.",
              static_cast<double>(stats.fd_limit));
    out.Gauge("fanprobe_engine_fds_open_at_start",
              "Descriptors open when the engine started.",
              static_cast<double>(stats.fd_open_at_start));
    out.Gauge("fanprobe_engine_fd_reserve",
              "Descriptors kept back from probes for the rest of the server.",
              static_cast<double>(stats.fd_reserve));

    out.Family("fanprobe_transport_handles_discarded_total", "counter",
               "Transport handles dropped after a failed set-up; the probe "
               "went on with a fresh one (the prober's trouble, not a "
               "target's).");
    out.Sample("fanprobe_transport_handles_discarded_total", {},
               static_cast<double>(stats.handles_discarded));
    out.Family("fanprobe_dns_lookups_total", "counter",
               "Name lookups sent to DNS servers (hosts-file answers and "
               "address literals are not lookups).");
    out.Sample("fanprobe_dns_lookups_total", {},
               static_cast<double>(stats.dns_lookups));
    out.Gauge("fanprobe_dns_lookups_pending",
              "Name lookups in flight or waiting for their turn.",
              static_cast<double>(stats.dns_pending));

    // Cumulative buckets from the engine's per-bucket counts; the count is
    // their total, so +Inf and _count agree.
    out.Family("fanprobe_event_loop_lag_seconds", "histogram",
               "How long the workers' event-loop turns took: while a turn "
               "runs, the worker's other probes wait.");
    uint64_t cumulative = 0;
    for (size_t i = 0; i <= kLagBucketCount; ++i) {
      cumulative += stats.loop_lag.counts[i];
      out.Sample(
          "fanprobe_event_loop_lag_seconds_bucket",
          {{"le", i < kLagBucketCount ? FormatSampleValue(kLagBucketBounds[i])
                                      : std::string("+Inf")}},
          static_cast<double>(cumulative));
    }
    out.Sample("fanprobe_event_loop_lag_seconds_sum", {},
               stats.loop_lag.sum_seconds);
    out.Sample("fanprobe_event_loop_lag_seconds_count", {},
               static_cast<double>(cumulative));
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

ServerMetrics::Collector ModulesCollector(const BlackboxModulesStore& store) {
  return [&store](MetricsWriter& out) {
    const BlackboxModulesStore::ReloadState state = store.State();
    out.Gauge("fanprobe_config_last_reload_successful",
              "1 when the last load of the modules file succeeded, as "
              "blackbox_exporter's config_last_reload_successful.",
              state.last_successful ? 1 : 0);
    out.Gauge("fanprobe_config_last_reload_success_timestamp_seconds",
              "When the modules file last loaded, in seconds since the epoch.",
              absl::ToDoubleSeconds(state.last_success - absl::UnixEpoch()));
    out.Family("fanprobe_http_probe_unsupported_option_total", "counter",
               "/probe probes failed at once because their module sets an "
               "option fanprobe cannot honour (the first one named).");
    for (const auto& [key, count] : store.UnsupportedCounts()) {
      out.Sample("fanprobe_http_probe_unsupported_option_total",
                 {{"module", key.first}, {"option", key.second}},
                 static_cast<double>(count));
    }
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
