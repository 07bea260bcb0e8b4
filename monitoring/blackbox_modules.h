// blackbox_modules.h: the modules file of prometheus-blackbox-exporter's
// http prober (--modules_file), so a scrape config written for
// blackbox_exporter works unchanged against fanprobe's /probe: the file
// format, what each module means in engine terms (ProbeOptions), and
// blackbox_exporter's rule for a probe's deadline.  What a probe's result
// looks like in blackbox_exporter's terms is blackbox_report.h's.
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

#ifndef FANPROBE_MONITORING_BLACKBOX_MODULES_H_
#define FANPROBE_MONITORING_BLACKBOX_MODULES_H_

#include <map>
#include <string>

#include "absl/status/statusor.h"
#include "absl/strings/string_view.h"
#include "absl/time/time.h"
#include "probe/probe.h"

namespace fanprobe::monitoring {

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

// The longest scrape timeout a /probe honours unless the server says
// otherwise (--http_max_scrape_timeout): blackbox_exporter's default for a
// scrape without the header.
inline constexpr absl::Duration kDefaultMaxScrapeTimeout = absl::Seconds(120);

// The probe's deadline, as blackbox_exporter computes it: the scrape's
// timeout (the X-Prometheus-Scrape-Timeout-Seconds header; 120 s when
// absent or 0) less `offset`, or the module's timeout when that is shorter.
// When the scrape's timeout is less than the offset, the module's timeout
// (zero if it has none).
//
// Stricter than blackbox_exporter, whose float parse lets "inf", "nan" and
// "1e308" through and so removes the limit: kInvalidArgument when the header
// is not a finite number ("inf", "nan", "1e309", "soon") or is negative
// (blackbox_exporter would quietly use the module's timeout; Prometheus never
// sends one, so a negative header is a broken client worth telling).  The
// scrape's timeout and the module's are each held to `max_scrape_timeout`
// first, so the result never exceeds it.
absl::StatusOr<absl::Duration> ProbeTimeout(
    absl::string_view header, absl::Duration module_timeout,
    absl::Duration offset,
    absl::Duration max_scrape_timeout = kDefaultMaxScrapeTimeout);

}  // namespace fanprobe::monitoring

#endif  // FANPROBE_MONITORING_BLACKBOX_MODULES_H_
