// blackbox_modules.h: the modules file of prometheus-blackbox-exporter
// (--modules_file), so a blackbox_exporter config works unchanged against
// fanprobe's /probe: the file format, what each module means in engine terms
// (ProbeOptions), blackbox_exporter's rule for a probe's deadline, and a
// store that swaps the modules on reload.  What a probe's result looks like
// in blackbox_exporter's terms is blackbox_report.h's.
//
// A modules file is blackbox_exporter's:
//   modules:
//     http_2xx:
//       prober: http
//       timeout: 5s
//       http:
//         valid_status_codes: [200, 204]
//         headers: {Accept: text/html}
//         fail_if_body_not_matches_regexp: ["ok"]
// Every http-prober option of blackbox_exporter is parsed and checked with
// its types.  Three kinds:
//   honoured   valid_status_codes, valid_http_versions, method, headers,
//              http_headers, body, body_file, follow_redirects,
//              no_follow_redirects, fail_if_ssl, fail_if_not_ssl,
//              fail_if_body_matches_regexp, fail_if_body_not_matches_regexp,
//              fail_if_header_matches, fail_if_header_not_matches,
//              body_size_limit, enable_http2, preferred_ip_protocol,
//              ip_protocol_fallback, compression (asked for with
//              Accept-Encoding and decoded), basic_auth,
//              bearer_token(_file), authorization, tls_config
//              (insecure_skip_verify, ca_file, cert_file, key_file,
//              server_name -- else a Host header's host, as
//              blackbox_exporter --, min_version and max_version: TLS10 and
//              TLS11 floors are TLS 1.2, nothing older is offered), an
//              http:// proxy_url with no_proxy, proxy_connect_header and
//              skip_resolve_phase_with_proxy, proxy_from_environment when
//              HTTP_PROXY and HTTPS_PROXY name the same http:// proxy.
//              Files (ca_file, body_file, cert_file, key_file,
//              *password_file, bearer_token_file, credentials_file) are
//              read at load and reload.
//   loaded, but a probe with it fails naming it (BlackboxModule::unsupported)
//              oauth2, fail_if_body_json_(not_)matches_cel, a max_version
//              below TLS12, an https or SOCKS proxy, proxy_from_environment
//              with a proxy for one scheme only or one for each; a file
//              above that cannot be read
//   refused    an unknown key, a wrong type, a bad regexp or duration,
//              combinations prometheus/common refuses (basic_auth with
//              bearer_token, password with password_file, a cert without
//              its key, ...), a compression the module's Accept-Encoding
//              header does not accept
// Secrets (passwords, tokens, credentials, keys) are never shown:
// config_yaml has them as "<secret>", and no message quotes one.
// Modules of the other probers (tcp, icmp, dns, grpc, unix, websocket) load
// with one warning each; /probe answers 400 for them.  Every problem of a
// file is reported at once, one per line, each with its YAML path.
//
// Example:
//   absl::StatusOr<BlackboxConfig> config = LoadBlackboxConfig(path);
//   if (!config.ok()) { /* print config.status(), exit 1 */ }
//   for (const std::string& w : config->warnings) { /* log it */ }
//   BlackboxModulesStore store(path, config->modules);
//   ... store.Reload() on SIGHUP; store.Get() per /probe ...
//
// Thread-safety: the functions are plain functions of their arguments;
// BlackboxModulesStore is thread-safe.

#ifndef FANPROBE_MONITORING_BLACKBOX_MODULES_H_
#define FANPROBE_MONITORING_BLACKBOX_MODULES_H_

#include <cstdint>
#include <functional>
#include <map>
#include <memory>
#include <string>
#include <utility>
#include <vector>

#include "absl/base/thread_annotations.h"
#include "absl/status/status.h"
#include "absl/status/statusor.h"
#include "absl/strings/string_view.h"
#include "absl/synchronization/mutex.h"
#include "absl/time/time.h"
#include "probe/engine.h"
#include "probe/probe.h"

namespace fanprobe::monitoring {

struct BlackboxModule {
  std::string name;
  // "http", or the other prober the file names (tcp, icmp, dns, grpc, unix,
  // websocket): such a module loads but /probe refuses it.
  std::string prober = "http";
  // What each probe runs.  As blackbox_exporter's defaults where they differ
  // from the engine's: valid status 200-299, no body size limit.
  // options.timeout is set per request (ProbeTimeout).
  ProbeOptions options;
  // The module's `timeout`; zero when the file sets none, and the scrape's
  // timeout alone bounds the probe.
  absl::Duration timeout = absl::ZeroDuration();
  bool fail_if_ssl = false;      // fail when the final response came over TLS
  bool fail_if_not_ssl = false;  // fail when it did not
  // valid_http_versions as blackbox_exporter writes them ("HTTP/1.1",
  // "HTTP/2.0"); empty accepts any.
  std::vector<std::string> valid_http_versions;
  // Why a probe with this module cannot run as the file says, one line per
  // option, each naming its YAML path: options the engine cannot honour yet,
  // or a file it names (ca_file, body_file) that could not be read.  A
  // probe with any fails at once, with these lines as its error.
  std::vector<std::string> unsupported;
  // The module as the file writes it, secrets shown as "<secret>", for
  // debug=true.
  std::string config_yaml;
};

using BlackboxModules = std::map<std::string, BlackboxModule>;

// The module a /probe without `module=` uses, as blackbox_exporter does.
inline constexpr absl::string_view kDefaultModuleName = "http_2xx";

// What fanprobe serves without --modules_file: http_2xx, a GET expecting
// 2xx (blackbox_exporter's example module).
BlackboxModules DefaultBlackboxModules();

// A loaded file: its modules, and what deserves a warning (one line per
// module of another prober).
struct BlackboxConfig {
  BlackboxModules modules;
  std::vector<std::string> warnings;
};

// Parses a modules file's text.  kInvalidArgument lists every problem, one
// per line, each starting with its path, e.g.
// "modules.api.http.foo: unknown key (...)".  Files a module names
// (ca_file, body_file, cert_file, password_file, ...) are read relative to
// the working directory.
absl::StatusOr<BlackboxConfig> ParseBlackboxConfig(absl::string_view yaml);
// Reads and parses `path`; the message starts with the path.
absl::StatusOr<BlackboxConfig> LoadBlackboxConfig(const std::string& path);

// The same, without the warnings.
absl::StatusOr<BlackboxModules> ParseBlackboxModules(absl::string_view yaml);
absl::StatusOr<BlackboxModules> LoadBlackboxModules(const std::string& path);

// The options a /probe with `module` submits to `engine`, but for the
// deadline (set per request): the module's, held to the engine's limits.
// blackbox_exporter reads bodies of any size and follows 10 redirects; here
// the server's limits (--max_body_bytes, --max_redirects) are the most a
// probe does.
ProbeOptions ModuleProbeOptions(const BlackboxModule& module,
                                const Engine& engine);

// The TLS server name blackbox_exporter's handshake sends for a Host header
// (the module's, or hostname=) when tls_config has no server_name: the
// header's host without its port; empty when it is not a plain host name
// or IPv4 address (then the URL's host is sent).
std::string ServerNameOfHost(absl::string_view host);

// The engine's checks (Engine::CheckOptions) of every http module's
// options.  A module the engine refuses (a header value with CR/LF, more
// request headers than the server allows) would fail every probe as
// INVALID_TARGET, so it is refused like a module that does not parse: OK,
// or kInvalidArgument listing every such module, one per line,
// "module \"NAME\": why".  Modules of other probers never reach the engine.
absl::Status CheckModulesWithEngine(const BlackboxModules& modules,
                                    const Engine& engine);

// The modules /probe serves, swapped whole by Reload() so a probe sees
// either the old modules or the new, never a mix, and a bad file keeps the
// old ones.  Also what /metrics reports about reloads (as
// blackbox_exporter's config_last_reload_* gauges) and about probes refused
// for an unsupported option.
//
// Besides parsing, modules may have to pass a check of whoever runs them
// (SetCheck: the HTTP side installs CheckModulesWithEngine), on the first
// load as on every reload.
class BlackboxModulesStore {
 public:
  // OK when the modules can be served; else kInvalidArgument listing every
  // module that cannot, one per line.
  using Check = std::function<absl::Status(const BlackboxModules&)>;

  // `path` is what Reload() reads; empty means the modules are fixed and
  // Reload() only confirms them.  The initial modules count as a successful
  // load now.
  BlackboxModulesStore(std::string path, BlackboxModules modules);

  BlackboxModulesStore(const BlackboxModulesStore&) = delete;
  BlackboxModulesStore& operator=(const BlackboxModulesStore&) = delete;

  // The modules now; they stay valid while the caller holds them.
  std::shared_ptr<const BlackboxModules> Get() const;

  // Reads the file again and checks it.  On success the new modules
  // replace the old ones and the warnings are returned; on failure (the
  // file does not parse, or the check refuses it) the old ones stay and the
  // status, starting with the path, lists every problem.  Reloads run one
  // at a time.
  absl::StatusOr<std::vector<std::string>> Reload();

  // Checks the modules held now with `check` and, when they pass, keeps it
  // for every Reload(); when they do not, returns why and keeps the check
  // it had.  Null removes the check (what the check refers to is going
  // away): after SetCheck returns, no Reload() calls the old one.
  absl::Status SetCheck(Check check);

  struct ReloadState {
    bool last_successful = true;
    absl::Time last_success;
  };
  ReloadState State() const;

  // A probe with `module` failed at once for its unsupported options.
  void CountUnsupported(const BlackboxModule& module);
  // Per (module, first unsupported option's path): how many probes.
  std::map<std::pair<std::string, std::string>, uint64_t> UnsupportedCounts()
      const;

  const std::string& path() const { return path_; }

 private:
  const std::string path_;
  // Held for a whole Reload() and by SetCheck(): reloads do not overlap,
  // and a check is not removed while it runs.  Taken before mu_.
  absl::Mutex reload_mu_ ABSL_ACQUIRED_BEFORE(mu_);
  Check check_ ABSL_GUARDED_BY(reload_mu_);
  mutable absl::Mutex mu_;
  std::shared_ptr<const BlackboxModules> modules_ ABSL_GUARDED_BY(mu_);
  ReloadState state_ ABSL_GUARDED_BY(mu_);
  std::map<std::pair<std::string, std::string>, uint64_t> unsupported_
      ABSL_GUARDED_BY(mu_);
};

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
