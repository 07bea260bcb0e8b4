#include "service/collectors.h"

#include <curl/curl.h>

#include <cstdint>
#include <string>

#include "absl/status/status.h"
#include "absl/status/statusor.h"
#include "absl/strings/str_cat.h"
#include "grpcpp/grpcpp.h"

namespace fanprobe::service {
namespace {

void Gauge(MetricsWriter& out, absl::string_view name, absl::string_view help,
           double value) {
  out.Family(name, "gauge", help);
  out.Sample(name, {}, value);
}

}  // namespace

ServerMetrics::Collector EngineStatsCollector(const Engine& engine) {
  return [&engine](MetricsWriter& out) {
    const EngineStats stats = engine.Stats();
    Gauge(out, "fanprobe_probes_in_flight",
          "Probes running now, across all batches of both APIs.",
          static_cast<double>(stats.probes_in_flight));
    Gauge(out, "fanprobe_probes_queued",
          "Probes of running batches waiting for a slot.",
          static_cast<double>(stats.probes_queued));
    Gauge(out, "fanprobe_probes_max_in_flight",
          "The engine's cap on probes running at once (after the file "
          "descriptor budget).",
          static_cast<double>(stats.max_in_flight));
    Gauge(out, "fanprobe_batches_active",
          "Batches submitted and not yet ended, both APIs.",
          static_cast<double>(stats.batches_active));
  };
}

ServerMetrics::Collector ServiceStatsCollector(const ProberService& service,
                                               uint64_t max_pending_probes) {
  return [&service, max_pending_probes](MetricsWriter& out) {
    const ServiceStats stats = service.Stats();
    Gauge(out, "fanprobe_grpc_pending_probes",
          "Probes of gRPC batches not yet ended (queued, running or being "
          "written).",
          static_cast<double>(stats.pending_probes));
    Gauge(out, "fanprobe_grpc_pending_probes_limit",
          "A batch that would take fanprobe_grpc_pending_probes beyond this "
          "is RESOURCE_EXHAUSTED (--max_pending_probes).",
          static_cast<double>(max_pending_probes));
    Gauge(out, "fanprobe_streams_paused",
          "StreamProbes streams whose batch is paused because the reader "
          "is behind (the stream queue is full).",
          static_cast<double>(stats.paused_streams));
    Gauge(out, "fanprobe_stream_queue_peak",
          "The most results any StreamProbes stream has had queued at once "
          "since start.",
          static_cast<double>(stats.peak_stream_queue));
  };
}

ServerMetrics::Collector HttpStatsCollector(const HttpServer& http) {
  return [&http](MetricsWriter& out) {
    const HttpStats stats = http.Stats();
    Gauge(out, "fanprobe_http_probe_requests_active",
          "/probe requests being served.",
          static_cast<double>(stats.probe_requests_active));
    Gauge(out, "fanprobe_http_pending_probes",
          "Probes of the /probe requests being served.",
          static_cast<double>(stats.pending_probes));
  };
}

ServerMetrics::Collector ProcessCollector() {
  return [](MetricsWriter& out) {
    out.Family("fanprobe_build_info", "gauge",
               "Always 1; the labels say which fanprobe and libraries run.");
    out.Sample("fanprobe_build_info",
               {{"version", FANPROBE_VERSION},
                {"libcurl", curl_version_info(CURLVERSION_NOW)->version},
                {"grpc", grpc::Version()}},
               1);
    absl::StatusOr<ProcessFigures> figures = ReadProcessFigures();
    if (!figures.ok()) return;  // not Linux /proc: no process figures
    out.Family("process_cpu_seconds_total", "counter",
               "Total user and system CPU time spent in seconds.");
    out.Sample("process_cpu_seconds_total", {}, figures->cpu_seconds);
    Gauge(out, "process_open_fds", "Number of open file descriptors.",
          static_cast<double>(figures->open_fds));
    Gauge(out, "process_max_fds",
          "Maximum number of open file descriptors (the soft limit).",
          static_cast<double>(figures->max_fds));
    Gauge(out, "process_resident_memory_bytes",
          "Resident memory size in bytes.",
          static_cast<double>(figures->resident_bytes));
    Gauge(out, "process_virtual_memory_bytes", "Virtual memory size in bytes.",
          static_cast<double>(figures->virtual_bytes));
    Gauge(out, "process_start_time_seconds",
          "Start time of the process since unix epoch in seconds.",
          figures->start_time_seconds);
  };
}

absl::Status SaturationStatus(const EngineStats& engine,
                              const ServiceStats& service,
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

}  // namespace fanprobe::service
