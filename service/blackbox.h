// blackbox.h: compatibility with prometheus-blackbox-exporter's http prober,
// so a scrape config written for blackbox_exporter works unchanged against
// fanprobe's /probe: its modules file format, its probe deadline rule and its
// metric names and meanings.  The HTTP handler (http_server.h) runs the
// probes through the engine; this file turns a module into ProbeOptions and
// a ProbeResult into blackbox_exporter's metrics.
//
// A modules file is blackbox_exporter's:
//   modules:
//     http_2xx:
//       prober: http
//       timeout: 5s
//       http:
//         valid_status_codes: [200, 204]
//         method: GET
//         headers: {Accept: text/html}
//         fail_if_body_not_matches_regexp: ["ok"]
// Supported: `prober: http` and `timeout` per module, and these http
// options: valid_status_codes, method, headers, body, follow_redirects,
// no_follow_redirects, fail_if_ssl, fail_if_not_ssl,
// fail_if_body_matches_regexp, fail_if_body_not_matches_regexp,
// tls_config.insecure_skip_verify, preferred_ip_protocol,
// ip_protocol_fallback.  Anything else -- another prober, an unknown or
// unsupported option -- is a kInvalidArgument naming it, so fanprobe-server
// refuses to start rather than probe differently than the file says.
//
// Example:
//   absl::StatusOr<BlackboxModules> modules = LoadBlackboxModules(path);
//   if (!modules.ok()) { /* print modules.status(), exit 1 */ }
//
// Thread-safety: plain functions of their arguments.

#ifndef FANPROBE_SERVICE_BLACKBOX_H_
#define FANPROBE_SERVICE_BLACKBOX_H_

#include <cstdint>
#include <map>
#include <optional>
#include <string>
#include <vector>

#include "absl/status/statusor.h"
#include "absl/strings/string_view.h"
#include "absl/time/time.h"
#include "probe/probe.h"
#include "service/metrics.h"

namespace fanprobe::service {

struct BlackboxModule {
  std::string name;
  // What each probe runs.  As blackbox_exporter's defaults where they differ
  // from the engine's: valid status 200-299, no body size limit.
  // options.timeout is set per request (ProbeTimeout).
  ProbeOptions options;
  // The module's `timeout`; zero when the file sets none, and the scrape's
  // timeout alone bounds the probe.
  absl::Duration timeout = absl::ZeroDuration();
  bool fail_if_ssl = false;      // fail when the final response came over TLS
  bool fail_if_not_ssl = false;  // fail when it did not
  // The module as the file writes it, shown by debug=true.
  std::string config_yaml;
};

using BlackboxModules = std::map<std::string, BlackboxModule>;

// The module a /probe without `module=` uses, as blackbox_exporter does.
inline constexpr absl::string_view kDefaultModuleName = "http_2xx";

// What fanprobe serves without --modules_file: http_2xx, a GET expecting
// 2xx (blackbox_exporter's example module).
BlackboxModules DefaultBlackboxModules();

// Parses a modules file's text.  kInvalidArgument names the offending key,
// e.g. "modules.api.http.basic_auth: not supported by fanprobe (...)".
absl::StatusOr<BlackboxModules> ParseBlackboxModules(absl::string_view yaml);
// Reads and parses `path`; the message starts with the path.
absl::StatusOr<BlackboxModules> LoadBlackboxModules(const std::string& path);

// The probe's deadline, as blackbox_exporter computes it: the scrape's
// timeout (the X-Prometheus-Scrape-Timeout-Seconds header; 120 s when
// absent or 0) less `offset`, or the module's timeout when that is shorter.
// When the scrape's timeout is less than the offset, the module's timeout
// (zero if it has none).  kInvalidArgument when the header is not a number.
absl::StatusOr<absl::Duration> ProbeTimeout(absl::string_view header,
                                            absl::Duration module_timeout,
                                            absl::Duration offset);

// One target's probe as /probe reports it: blackbox_exporter's figures plus
// fanprobe's outcome.
struct ProbeReport {
  std::string target;  // as the request gave it
  bool success = false;
  // The engine's outcome name ("OK", "UNEXPECTED_STATUS", "TIMEOUT", ...),
  // or "FAIL_IF_SSL" / "FAIL_IF_NOT_SSL" when the module's TLS rule failed a
  // probe the engine found good.
  std::string outcome;
  std::string error;  // why, in words; empty on success
  absl::Duration duration = absl::ZeroDuration();
  int status_code = 0;
  uint64_t body_bytes = 0;
  int redirects = 0;
  bool ssl = false;         // the final response came over TLS
  double http_version = 0;  // 1, 1.1, 2; 0 without a response
  PhaseDurations phases;    // summed over redirect hops, as curl marks them
  absl::Duration dns_lookup = absl::ZeroDuration();
  bool failed_due_to_regex = false;
  int ip_protocol = 0;        // 4 or 6; 0 when no address was reached
  uint32_t ip_addr_hash = 0;  // FNV-1a of the address bytes, as blackbox
  std::optional<absl::Time> cert_expiry;
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

}  // namespace fanprobe::service

#endif  // FANPROBE_SERVICE_BLACKBOX_H_
