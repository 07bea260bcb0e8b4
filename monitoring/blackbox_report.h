// blackbox_report.h: a probe's result in prometheus-blackbox-exporter's
// terms, for /probe (http_server.h): its metric names and meanings
// (probe_success, probe_http_status_code, ...) plus fanprobe's outcome, and
// the debug=true explanation.  The module (blackbox_modules.h) says how the
// result is judged (fail_if_ssl, ...).
//
// Example:
//   std::vector<ProbeReport> reports = {ReportProbe(module, url, result)};
//   MetricsWriter out;
//   WriteProbeMetrics(reports, /*target_labels=*/false, out);
//
// Thread-safety: plain functions of their arguments.

#ifndef FANPROBE_MONITORING_BLACKBOX_REPORT_H_
#define FANPROBE_MONITORING_BLACKBOX_REPORT_H_

#include <cstdint>
#include <optional>
#include <string>
#include <vector>

#include "absl/strings/string_view.h"
#include "absl/time/time.h"
#include "monitoring/blackbox_modules.h"
#include "monitoring/phases.h"
#include "monitoring/prometheus_text.h"
#include "probe/probe.h"

namespace fanprobe::monitoring {

// One target's probe as /probe reports it: blackbox_exporter's figures plus
// fanprobe's outcome.
struct ProbeReport {
  std::string target;  // as the request gave it
  bool success = false;
  // The engine's outcome name ("OK", "UNEXPECTED_STATUS", "TIMEOUT", ...),
  // or "FAIL_IF_SSL" / "FAIL_IF_NOT_SSL" / "INVALID_HTTP_VERSION" when the
  // module's TLS or version rule failed a probe the engine found good, or
  // "UNSUPPORTED_OPTION" when the module asks what fanprobe cannot do.
  std::string outcome;
  std::string error;  // why, in words; empty on success
  // The whole probe: with retries, from its first attempt's start.
  absl::Duration duration = absl::ZeroDuration();
  // Attempts made (probe_fanprobe_attempts): 1 without retries, 0 when the
  // probe did not complete.
  int attempts = 0;
  int status_code = 0;
  uint64_t body_bytes = 0;  // over the wire, for debug=true
  // probe_http_content_length as blackbox_exporter sets it from Go's
  // Response.ContentLength: the Content-Length header, 0 for a status
  // without a body (1xx, 204, 304) and without a response, -1 when the
  // length was not announced (chunked, or a HEAD without the header).
  double content_length = 0;
  // probe_http_uncompressed_body_length: the body once decoded (compression),
  // as far as it was read; 0 when the response was a redirect the probe did
  // not follow (blackbox_exporter does not read that body).
  uint64_t uncompressed_body_bytes = 0;
  // probe_http_last_modified_timestamp_seconds, when the final response
  // sent a Last-Modified that parses.
  std::optional<absl::Time> last_modified;
  int redirects = 0;
  bool ssl = false;         // the final response came over TLS
  double http_version = 0;  // 1, 1.1, 2; 0 without a response
  PhaseDurations phases;    // summed over redirect hops, as curl marks them
  absl::Duration dns_lookup = absl::ZeroDuration();
  bool failed_due_to_regex = false;
  int ip_protocol = 0;        // 4 or 6; 0 when no address was reached
  uint32_t ip_addr_hash = 0;  // FNV-1a of the address bytes, as blackbox
  std::optional<absl::Time> cert_expiry;
  // When the final response came over TLS (ssl): the protocol version as Go
  // names it ("TLS 1.3", "TLS 1.2", ..., "unknown"), the cipher suite as IANA
  // does, and the leaf certificate the server presented.
  std::string tls_version;
  std::string tls_cipher;
  std::optional<CertificateInfo> leaf_certificate;
  // The earliest notAfter of the chain that verified; unset when the module
  // does not verify (insecure_skip_verify), as there is no verified chain.
  std::optional<absl::Time> last_chain_expiry;
  // For debug=true.
  std::string final_url;
  std::string remote_ip;
  int remote_port = 0;
};

// The report of a completed probe under `module`.
ProbeReport ReportProbe(const BlackboxModule& module, std::string target,
                        const ProbeResult& result);
// The report of a probe that did not complete (its batch ended first):
// probe_success 0 with `outcome` ("TIMEOUT", "CANCELLED").
ProbeReport ReportUnfinished(std::string target, absl::string_view outcome,
                             absl::string_view error, absl::Duration elapsed);

// Writes blackbox_exporter's metric families (probe_success,
// probe_http_status_code, ...) and probe_fanprobe_outcome_info for every
// report.  With `target_labels`, every series carries target="<target>"
// (several targets in one scrape); without, there must be one report and
// the output is exactly blackbox_exporter's shape.
void WriteProbeMetrics(const std::vector<ProbeReport>& reports,
                       bool target_labels, MetricsWriter& out);

// debug=true: what happened to each target, the metrics that would have
// been returned, and the module's configuration.
std::string ProbeDebugText(const BlackboxModule& module,
                           const std::vector<ProbeReport>& reports,
                           absl::Duration timeout,
                           absl::string_view metrics_text);

}  // namespace fanprobe::monitoring

#endif  // FANPROBE_MONITORING_BLACKBOX_REPORT_H_
