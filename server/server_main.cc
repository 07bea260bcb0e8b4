// fanprobe-server: serves fanprobe.v1.Prober, grpc.health.v1.Health and
// server reflection on --grpc_address until SIGTERM or SIGINT, then drains
// within --shutdown_grace and exits 0.  SIGHUP reloads --modules_file (as
// POST /-/reload does; a bad file keeps the modules in use), and
// --config.check checks that file and exits 0 or 1 without serving.  Logs are
// JSON lines on stderr (log/logger.h): one when listening, one per batch, one
// when stopped.  A flag value that makes no sense (a bad CIDR, an unreadable
// certificate) exits 2 at start-up, with a plain message.

#include <malloc.h>
#include <pthread.h>
#include <signal.h>

#include <algorithm>
#include <climits>
#include <cstdint>
#include <cstdio>
#include <cstdlib>
#include <memory>
#include <string>
#include <vector>

#include "absl/flags/flag.h"
#include "absl/flags/parse.h"
#include "absl/flags/usage.h"
#include "absl/flags/usage_config.h"
#include "absl/status/status.h"
#include "absl/status/statusor.h"
#include "absl/strings/match.h"
#include "absl/strings/str_cat.h"
#include "absl/time/time.h"
#include "log/logger.h"
#include "monitoring/blackbox_modules.h"
#include "probe/address_flags.h"
#include "probe/engine.h"
#include "probe/probe.h"
#include "server/descriptors.h"
#include "server/memory_trimmer.h"
#include "server/server.h"
#include "server/server_flags.h"

ABSL_FLAG(std::string, grpc_address, "127.0.0.1:50051",
          "host:port to serve gRPC on (plaintext). Port 0 picks a free port.");
ABSL_FLAG(int, workers, 0,
          "Probe engine worker threads, each driving its own libcurl multi "
          "handle; 0 = one per CPU core.");
ABSL_FLAG(uint32_t, max_in_flight, 10000,
          "Probes running at once across all batches; also caps each "
          "batch's max_concurrency. Lowered automatically to the file "
          "descriptor budget.");
ABSL_FLAG(uint32_t, max_batch_targets, 100000,
          "Most targets one request may carry; more is INVALID_ARGUMENT.");
ABSL_FLAG(uint64_t, max_pending_probes, 1000000,
          "Most probes of all running batches together; a request beyond it "
          "is RESOURCE_EXHAUSTED.");
ABSL_FLAG(uint32_t, stream_queue, 256,
          "Results a StreamProbes stream queues for a slow reader before its "
          "batch stops starting new probes.");
ABSL_FLAG(absl::Duration, shutdown_grace, absl::Seconds(10),
          "On SIGTERM/SIGINT, how long running batches may take to finish; "
          "those still running shortly before it ends are cancelled and end "
          "END_REASON_CANCELLED with their summary.");
ABSL_FLAG(std::string, http_address, "127.0.0.1:9116",
          "host:port to serve HTTP on: /metrics, /probe (compatible with "
          "blackbox_exporter), /healthz, /readyz. Port 0 picks a free port; "
          "empty disables the HTTP side.");
ABSL_FLAG(std::string, modules_file, "",
          "blackbox_exporter modules file for /probe. Modules of other "
          "probers load with a warning (/probe answers 400 for them); "
          "options fanprobe cannot honour load, and their probes fail "
          "naming them; an unknown key or a bad value stops the start. "
          "SIGHUP or POST /-/reload reloads it. Empty: the one module "
          "http_2xx.");
ABSL_FLAG(bool, config_check, false,
          "Check --modules_file (and its modules against the engine's "
          "limits the other flags set), print every problem and exit 1, or "
          "0 when it loads, without serving. --config.check is the same "
          "(blackbox_exporter's spelling), and --config.file=F is "
          "--modules_file=F.");
ABSL_FLAG(absl::Duration, probe_timeout_offset, absl::Milliseconds(500),
          "A /probe's deadline is the scrape's timeout "
          "(X-Prometheus-Scrape-Timeout-Seconds) less this.");
// TLS on the HTTP side (monitoring/http_server.h).
ABSL_FLAG(std::string, http_tls_cert, "",
          "PEM file of the HTTP side's certificate chain; with --http_tls_key "
          "the HTTP side serves HTTPS only. Re-read when it changes.");
ABSL_FLAG(std::string, http_tls_key, "",
          "PEM file of the private key for --http_tls_cert.");
ABSL_FLAG(std::string, http_client_ca, "",
          "PEM file of the CAs whose client certificates the HTTP side "
          "accepts; set, every request but /healthz and /readyz needs one "
          "(else 403). Needs --http_tls_cert. Re-read when it changes.");
// The HTTP side against hostile clients (monitoring/http_server.h).
ABSL_FLAG(uint32_t, http_max_connections, 1024,
          "HTTP connections open at once; beyond it new ones wait in the "
          "accept queue.");
ABSL_FLAG(uint32_t, http_max_connections_per_client, 256,
          "HTTP connections one client address may hold; a connection beyond "
          "it is closed at once. Keep it above the /probe scrapes one "
          "Prometheus runs at once.");
ABSL_FLAG(absl::Duration, http_header_timeout, absl::Seconds(5),
          "An HTTP request's line and headers must arrive within this of the "
          "connection opening (or its previous answer).");
ABSL_FLAG(absl::Duration, http_max_scrape_timeout, absl::Seconds(120),
          "The longest scrape timeout a /probe honours: a larger "
          "X-Prometheus-Scrape-Timeout-Seconds (or module timeout) is held "
          "to it.");

// Where probes may connect (probe/address_flags.h, probe/destination_policy.h).
ABSL_FLAG(bool, deny_private, false,
          "Deny probes to private addresses (10/8, 172.16/12, 192.168/16, "
          "100.64/10, fc00::/7).");
ABSL_FLAG(bool, deny_loopback, false,
          "Deny probes to loopback addresses (127/8, ::1).");
ABSL_FLAG(std::vector<std::string>, allow_cidr, {},
          "CIDRs probes may reach even if a class rule denies them; a comma "
          "list, and the flag may be repeated.");
ABSL_FLAG(std::vector<std::string>, deny_cidr, {},
          "CIDRs probes may never reach (checked first); a comma list, and "
          "the flag may be repeated.");
ABSL_FLAG(std::vector<std::string>, allow_source_cidr, {},
          "CIDRs a probe's source_address may lie in (the local address it "
          "connects from); by default none, so no probe may choose one. A "
          "comma list, and the flag may be repeated.");

// How names resolve (the engine resolves every name itself).
ABSL_FLAG(std::vector<std::string>, dns_server, {},
          "DNS servers to resolve probe targets with, instead of "
          "resolv.conf's: ip, ip:port or [ipv6]:port; a comma list, and the "
          "flag may be repeated. /etc/hosts is read first either way.");
ABSL_FLAG(absl::Duration, dns_timeout, absl::Seconds(5),
          "A name lookup's whole budget, retries included; past it the probe "
          "ends OUTCOME_DNS_ERROR (DNS_FAILURE_TIMEOUT).");

// What a request may ask of one probe (ProbeLimits in probe/probe.h); a
// request asking for more is INVALID_ARGUMENT naming the field.
ABSL_FLAG(uint64_t, max_body_bytes, fanprobe::ProbeLimits().max_body_bytes,
          "Most a probe's max_body_bytes may be: the body bytes one probe "
          "reads, and keeps in memory to match patterns against.");
ABSL_FLAG(uint64_t, max_request_header_bytes,
          fanprobe::ProbeLimits().max_request_header_bytes,
          "Most request header bytes (method, user agent, headers) one probe "
          "may send.");
ABSL_FLAG(uint64_t, max_request_body_bytes,
          fanprobe::ProbeLimits().max_request_body_bytes,
          "Most request body bytes one probe may send.");
ABSL_FLAG(uint32_t, max_redirects, fanprobe::ProbeLimits().max_redirects,
          "Most a probe's max_redirects may be.");
ABSL_FLAG(uint32_t, max_attempts, fanprobe::ProbeLimits().max_attempts,
          "Most a probe's retry.max_attempts may be (attempts in all, the "
          "first included; 1 allows no retry).");
ABSL_FLAG(uint32_t, max_response_headers,
          fanprobe::ProbeLimits().max_response_headers,
          "Most a probe's max_response_headers may be: the response header "
          "lines one probe keeps or matches.");
ABSL_FLAG(uint64_t, max_response_header_bytes,
          fanprobe::ProbeLimits().max_response_header_bytes,
          "Most a probe's max_response_header_bytes may be: the response "
          "header bytes (names and values) one probe keeps or matches.");

// Who may call (auth.h).
ABSL_FLAG(std::string, tls_cert, "",
          "PEM certificate chain: serve gRPC over TLS (with --tls_key). "
          "Re-read when the file changes.");
ABSL_FLAG(std::string, tls_key, "", "PEM private key of --tls_cert.");
ABSL_FLAG(std::string, client_ca, "",
          "PEM CA certificates: require client certificates signed by them "
          "(mutual TLS).");
ABSL_FLAG(std::string, auth_token_file, "",
          "File of bearer tokens, one per line: every call but health needs "
          "'authorization: Bearer <token>'. Re-read when it changes.");
ABSL_FLAG(std::string, http_auth_token_file, "",
          "File of bearer tokens for the HTTP side: /metrics and /probe need "
          "'Authorization: Bearer <token>' (/healthz and /readyz do not). "
          "Re-read when it changes.");
ABSL_FLAG(absl::Duration, credentials_reload_interval, absl::Seconds(10),
          "How often the certificate, key, CA and token files are checked "
          "for changes.");
ABSL_FLAG(std::string, health_address, "",
          "Also serve grpc.health.v1.Health alone on this host:port, "
          "plaintext and without a token (for kubelets). Empty = none.");

// Limits (server.h, prober_service.h).
ABSL_FLAG(int32_t, max_request_bytes, 16 << 20,
          "Largest request message; larger is RESOURCE_EXHAUSTED.");
ABSL_FLAG(uint32_t, max_batches, 1000,
          "Batches running at once; one more is RESOURCE_EXHAUSTED. 0 = no "
          "limit.");
ABSL_FLAG(uint32_t, max_batches_per_client, 0,
          "Batches running at once per client (certificate subject, else "
          "token, else address); 0 = no limit.");
ABSL_FLAG(absl::Duration, keepalive_time, absl::Seconds(30),
          "Ping a connection with calls running after this long without "
          "reading from it...");
ABSL_FLAG(absl::Duration, keepalive_timeout, absl::Seconds(10),
          "...and close it (cancelling its batches) if the ping is not "
          "answered within this.");
ABSL_FLAG(absl::Duration, min_client_ping_interval, absl::Seconds(10),
          "Clients pinging more often than this (or without calls) get "
          "strikes; two strikes close the connection.");
ABSL_FLAG(absl::Duration, max_connection_age, absl::InfiniteDuration(),
          "Ask clients to reconnect (GOAWAY) after this long, so long-lived "
          "clients spread over new replicas. inf = never.");
ABSL_FLAG(uint32_t, max_grpc_connections,
          fanprobe::server::ConnectionOptions().max_connections,
          "Connections the gRPC port holds at once; one more is closed at "
          "once and logged (listener_full). The engine keeps a descriptor "
          "back for each.");
ABSL_FLAG(absl::Duration, max_connection_age_grace, absl::Minutes(5),
          "After --max_connection_age, how long running calls may go on "
          "before the connection is closed.");

namespace {

// Blocks at least this large are mapped on their own (glibc's initial
// default, kept from rising).
constexpr int kMmapThresholdBytes = 128 * 1024;

// Makes gRPC read each connection into one buffer per read, at most
// GRPC_ARG_TCP_MAX_READ_CHUNK_SIZE (server.cc), instead of gRPC 1.51's
// default "tcp_read_chunks": 64 KiB buffers, as many at once as the largest
// burst the connection has read so far, the unfilled ones kept for the
// next read while the connection lives.  After 14 MB requests a connection
// kept up to 306 of them (19 MB).  The MemoryTrimmer cannot return blocks
// in use, and these are written only as data arrives, so they cost memory
// only where malloc gave them pages that the request's own buffers had
// just freed and the trimmer had not yet returned: a race with its 1 s
// tick.  Measured with tests/server/memory_test.cc: in 4 runs of 14 they
// kept 2.0 to 11.6 MB of an old request's bytes resident, and the test
// failed (over warm + 20%) in 3 runs of 49.  With this, a connection keeps
// one 64 KiB buffer, and in 32 runs after = warm + 0.7 MB (median), at
// most warm + 4.8 MB where the test looked before the trimmer's next tick
// had returned the request's freed buffers.  Server CPU for 20k-probe
// batches is unchanged (3.02 s -> 3.00 s, medians of 8).  Runs before
// grpc_init, which reads GRPC_EXPERIMENTS once; an operator's own say
// about tcp_read_chunks there wins.
void KeepGrpcReadBuffersSmall() {
  const char* set = std::getenv("GRPC_EXPERIMENTS");
  const std::string experiments = set != nullptr ? set : "";
  if (absl::StrContains(experiments, "tcp_read_chunks")) return;
  const std::string value =
      experiments.empty() ? "-tcp_read_chunks"
                          : absl::StrCat(experiments, ",-tcp_read_chunks");
  setenv("GRPC_EXPERIMENTS", value.c_str(), /*overwrite=*/1);
}

// A flag value that makes no sense (a bad CIDR, a missing certificate):
// exit 2, as for any usage error.
int ConfigError(const absl::Status& status) {
  std::fprintf(stderr, "fanprobe-server: %s\n",
               std::string(status.message()).c_str());
  return 2;
}

// blackbox_exporter's flag spellings, which absl flags cannot name (a dot),
// so a command line written for it works here.
std::vector<std::string> BlackboxSpellings(std::vector<std::string> args) {
  for (std::string& arg : args) {
    if (arg == "--config.check" || absl::StartsWith(arg, "--config.check=")) {
      arg.replace(0, 14, "--config_check");
    } else if (absl::StartsWith(arg, "--config.file=")) {
      arg.replace(0, 14, "--modules_file=");
    }
  }
  return args;
}

// What a probe may ask for, from the flags: the engine's limits.
fanprobe::ProbeLimits LimitsFromFlags() {
  fanprobe::ProbeLimits limits;
  limits.max_body_bytes = absl::GetFlag(FLAGS_max_body_bytes);
  limits.max_request_header_bytes =
      absl::GetFlag(FLAGS_max_request_header_bytes);
  limits.max_request_body_bytes = absl::GetFlag(FLAGS_max_request_body_bytes);
  limits.max_redirects = static_cast<int>(
      std::min<uint32_t>(absl::GetFlag(FLAGS_max_redirects), INT_MAX));
  limits.max_attempts = static_cast<int>(
      std::clamp<uint32_t>(absl::GetFlag(FLAGS_max_attempts), 1, INT_MAX));
  limits.max_response_headers = static_cast<int>(
      std::min<uint32_t>(absl::GetFlag(FLAGS_max_response_headers), INT_MAX));
  limits.max_response_header_bytes =
      absl::GetFlag(FLAGS_max_response_header_bytes);
  return limits;
}

// --config.check: every problem of the modules file, then 0 or 1.  The
// engine's checks of the modules run too, with the limits the flags give,
// so a file this passes is one the server starts with.
int CheckModulesFile(const std::string& path,
                     const fanprobe::ProbeLimits& limits) {
  if (path.empty()) {
    std::printf("fanprobe-server: no --modules_file: the built-in module %s\n",
                std::string(fanprobe::monitoring::kDefaultModuleName).c_str());
    return 0;
  }
  absl::StatusOr<fanprobe::monitoring::BlackboxConfig> config =
      fanprobe::monitoring::LoadBlackboxConfig(path);
  if (!config.ok()) {
    std::fprintf(stderr, "fanprobe-server: --modules_file: %s\n",
                 std::string(config.status().message()).c_str());
    return 1;
  }
  fanprobe::EngineOptions engine_options;
  engine_options.workers = 1;  // never probes: it only checks options
  engine_options.limits = limits;
  absl::StatusOr<std::unique_ptr<fanprobe::Engine>> engine =
      fanprobe::Engine::Create(std::move(engine_options));
  if (!engine.ok()) {
    std::fprintf(stderr, "fanprobe-server: %s\n",
                 engine.status().ToString().c_str());
    return 1;
  }
  if (absl::Status checked = fanprobe::monitoring::CheckModulesWithEngine(
          config->modules, **engine);
      !checked.ok()) {
    std::fprintf(stderr, "fanprobe-server: --modules_file: %s: %s\n",
                 path.c_str(), std::string(checked.message()).c_str());
    return 1;
  }
  for (const std::string& warning : config->warnings) {
    std::printf("warning: %s\n", warning.c_str());
  }
  size_t http = 0, unsupported = 0;
  for (const auto& [name, module] : config->modules) {
    if (module.prober != "http") continue;
    ++http;
    for (const std::string& line : module.unsupported) {
      ++unsupported;
      std::printf("warning: %s: %s (its probes fail)\n", path.c_str(),
                  line.c_str());
    }
  }
  std::printf(
      "%s: OK: %zu modules, %zu http, %zu options fanprobe cannot "
      "honour\n",
      path.c_str(), config->modules.size(), http, unsupported);
  return 0;
}

}  // namespace

int main(int argc, char** argv) {
  absl::SetProgramUsageMessage(
      "Serves fanprobe.v1.Prober (plus gRPC health and reflection).\n"
      "Usage: fanprobe-server [--grpc_address=127.0.0.1:50051] [flags]");
  // absl's --help lists only the flags of a file named after the program
  // (fanprobe-server.cc or fanprobe-server_main.cc), which matches none of
  // ours: list every flag but absl's own (--flagfile and the like, which
  // --helpfull shows).
  absl::FlagsUsageConfig usage_config;
  usage_config.contains_help_flags = [](absl::string_view path) {
    return !absl::StartsWith(path, "absl/") &&
           !absl::StartsWith(path, "./absl/");
  };
  usage_config.contains_helpshort_flags = usage_config.contains_help_flags;
  absl::SetFlagsUsageConfig(usage_config);
  // Repeated list flags accumulate, on the command line and in flag files.
  absl::StatusOr<std::vector<std::string>> args =
      fanprobe::server::ExpandCommandLine(
          BlackboxSpellings(std::vector<std::string>(argv, argv + argc)),
          {"allow_cidr", "deny_cidr", "allow_source_cidr", "dns_server"});
  if (!args.ok()) return ConfigError(args.status());
  std::vector<char*> arg_pointers;
  for (std::string& arg : *args) arg_pointers.push_back(arg.data());
  absl::ParseCommandLine(static_cast<int>(arg_pointers.size()),
                         arg_pointers.data());
  absl::StatusOr<fanprobe::DestinationPolicy> policy =
      fanprobe::DestinationPolicyFromFlags(
          {.deny_private = absl::GetFlag(FLAGS_deny_private),
           .deny_loopback = absl::GetFlag(FLAGS_deny_loopback),
           .allow_cidr = absl::GetFlag(FLAGS_allow_cidr),
           .deny_cidr = absl::GetFlag(FLAGS_deny_cidr)});
  if (!policy.ok()) return ConfigError(policy.status());
  absl::StatusOr<std::vector<fanprobe::Cidr>> allowed_sources =
      fanprobe::ParseCidrList("allow_source_cidr",
                              absl::GetFlag(FLAGS_allow_source_cidr));
  if (!allowed_sources.ok()) return ConfigError(allowed_sources.status());
  absl::StatusOr<std::vector<std::string>> dns_servers =
      fanprobe::ParseDnsServerList("dns_server",
                                   absl::GetFlag(FLAGS_dns_server));
  if (!dns_servers.ok()) return ConfigError(dns_servers.status());
  if (absl::GetFlag(FLAGS_dns_timeout) <= absl::ZeroDuration()) {
    return ConfigError(
        absl::InvalidArgumentError("--dns_timeout must be positive"));
  }

  if (absl::GetFlag(FLAGS_config_check)) {
    return CheckModulesFile(absl::GetFlag(FLAGS_modules_file),
                            LimitsFromFlags());
  }

  // Large blocks (a body kept for pattern matching, a request of
  // megabytes) get mappings of their own, unmapped when freed.  By default
  // glibc raises this threshold to the largest block freed so far (up to
  // 32 MiB), and after one big batch such blocks come from the arenas,
  // whose pages the process keeps.  Measured with tests/server/
  // memory_test.cc: peak RSS 300 MB -> 210 MB; what stays after the batch
  // is the MemoryTrimmer's to return (below), but for blocks still in use,
  // such as gRPC's spare read buffers (KeepGrpcReadBuffersSmall).
  mallopt(M_MMAP_THRESHOLD, kMmapThresholdBytes);
  KeepGrpcReadBuffersSmall();

  // Each running probe holds a descriptor: take the whole budget the hard
  // limit allows before the engine reads it.
  absl::StatusOr<fanprobe::server::FdLimits> fd_limits =
      fanprobe::server::RaiseFdLimit();
  if (!fd_limits.ok()) {
    std::fprintf(stderr, "fanprobe-server: %s\n",
                 fd_limits.status().ToString().c_str());
    return 1;
  }

  // Block the stop signals before any thread starts, so every thread
  // inherits the mask and only sigwait() below receives them.
  sigset_t stop_signals;
  sigemptyset(&stop_signals);
  sigaddset(&stop_signals, SIGTERM);
  sigaddset(&stop_signals, SIGINT);
  sigaddset(&stop_signals, SIGHUP);  // reload, not stop
  pthread_sigmask(SIG_BLOCK, &stop_signals, nullptr);

  fanprobe::server::ServerOptions options;
  options.grpc_address = absl::GetFlag(FLAGS_grpc_address);
  options.engine.workers = absl::GetFlag(FLAGS_workers);
  options.engine.max_in_flight = absl::GetFlag(FLAGS_max_in_flight);
  options.service.limits.max_batch_targets =
      absl::GetFlag(FLAGS_max_batch_targets);
  options.service.max_pending_probes = absl::GetFlag(FLAGS_max_pending_probes);
  options.service.stream_queue_limit = absl::GetFlag(FLAGS_stream_queue);
  options.shutdown_grace = absl::GetFlag(FLAGS_shutdown_grace);
  options.http.address = absl::GetFlag(FLAGS_http_address);
  options.http.timeout_offset = absl::GetFlag(FLAGS_probe_timeout_offset);
  options.http.max_scrape_timeout =
      absl::GetFlag(FLAGS_http_max_scrape_timeout);
  options.http.max_connections = absl::GetFlag(FLAGS_http_max_connections);
  options.http.max_connections_per_client =
      absl::GetFlag(FLAGS_http_max_connections_per_client);
  options.http.header_timeout = absl::GetFlag(FLAGS_http_header_timeout);
  std::vector<std::string> module_warnings;
  const std::string modules_path = absl::GetFlag(FLAGS_modules_file);
  if (!modules_path.empty()) {
    absl::StatusOr<fanprobe::monitoring::BlackboxConfig> config =
        fanprobe::monitoring::LoadBlackboxConfig(modules_path);
    if (!config.ok()) {
      std::fprintf(stderr, "fanprobe-server: --modules_file: %s\n",
                   std::string(config.status().message()).c_str());
      return 2;
    }
    module_warnings = std::move(config->warnings);
    options.http.module_store =
        std::make_shared<fanprobe::monitoring::BlackboxModulesStore>(
            modules_path, std::move(config->modules));
  } else {
    options.http.module_store =
        std::make_shared<fanprobe::monitoring::BlackboxModulesStore>(
            "", options.http.modules);
  }
  const std::shared_ptr<fanprobe::monitoring::BlackboxModulesStore>
      module_store = options.http.module_store;
  options.engine.destination_policy = *policy;
  options.engine.allowed_sources = *std::move(allowed_sources);
  options.engine.dns_servers = *std::move(dns_servers);
  options.engine.dns_timeout = absl::GetFlag(FLAGS_dns_timeout);
  options.engine.limits = LimitsFromFlags();
  options.security.tls_cert_file = absl::GetFlag(FLAGS_tls_cert);
  options.security.tls_key_file = absl::GetFlag(FLAGS_tls_key);
  options.security.client_ca_file = absl::GetFlag(FLAGS_client_ca);
  options.security.auth_token_file = absl::GetFlag(FLAGS_auth_token_file);
  options.security.http_auth_token_file =
      absl::GetFlag(FLAGS_http_auth_token_file);
  options.security.http_tls_cert_file = absl::GetFlag(FLAGS_http_tls_cert);
  options.security.http_tls_key_file = absl::GetFlag(FLAGS_http_tls_key);
  options.security.http_client_ca_file = absl::GetFlag(FLAGS_http_client_ca);
  options.security.reload_interval =
      absl::GetFlag(FLAGS_credentials_reload_interval);
  options.health_address = absl::GetFlag(FLAGS_health_address);
  options.connection.max_request_bytes = absl::GetFlag(FLAGS_max_request_bytes);
  options.connection.keepalive_time = absl::GetFlag(FLAGS_keepalive_time);
  options.connection.keepalive_timeout = absl::GetFlag(FLAGS_keepalive_timeout);
  options.connection.min_client_ping_interval =
      absl::GetFlag(FLAGS_min_client_ping_interval);
  options.connection.max_connection_age =
      absl::GetFlag(FLAGS_max_connection_age);
  options.connection.max_connection_age_grace =
      absl::GetFlag(FLAGS_max_connection_age_grace);
  options.connection.max_connections =
      std::max<uint32_t>(1, absl::GetFlag(FLAGS_max_grpc_connections));
  options.service.max_batches = absl::GetFlag(FLAGS_max_batches);
  options.service.max_batches_per_client =
      absl::GetFlag(FLAGS_max_batches_per_client);

  absl::StatusOr<std::unique_ptr<fanprobe::server::Server>> server =
      fanprobe::server::Server::Start(options);
  if (!server.ok()) {
    if (absl::IsInvalidArgument(server.status())) {
      return ConfigError(server.status());
    }
    std::fprintf(stderr, "fanprobe-server: %s\n",
                 server.status().ToString().c_str());
    return 1;
  }
  // Freed arena pages go back to the OS (memory_trimmer.h).
  const fanprobe::server::MemoryTrimmer trimmer;
  const fanprobe::log::Logger logger;
  logger.Log(fanprobe::log::Line("listening")
                 .Add("address", (*server)->address())
                 .Add("http_address", (*server)->http_address())
                 .Add("version", FANPROBE_VERSION));
  if (!(*server)->health_address().empty()) {
    logger.Log(fanprobe::log::Line("health_listening")
                   .Add("address", (*server)->health_address()));
  }
  for (const fanprobe::log::Line& line :
       fanprobe::server::DescriptorBudgetLines(
           *fd_limits, (*server)->engine().Stats(),
           absl::GetFlag(FLAGS_max_in_flight),
           options.connection.max_connections,
           options.http.address.empty() ? 0 : options.http.max_connections)) {
    logger.Log(line);
  }
  logger.Log(fanprobe::log::Line("destination_policy")
                 .AddJson("policy", fanprobe::server::PolicyJson(*policy)));
  for (const std::string& warning : fanprobe::server::PolicyWarnings(*policy)) {
    logger.Log(fanprobe::log::Line("warning").Add("message", warning));
  }

  for (const std::string& warning : module_warnings) {
    logger.Log(fanprobe::log::Line("warning").Add("message", warning));
  }

  int signal_number = 0;
  while (sigwait(&stop_signals, &signal_number) == 0 &&
         signal_number == SIGHUP) {
    absl::StatusOr<std::vector<std::string>> reloaded = module_store->Reload();
    if (!reloaded.ok()) {
      logger.Log(fanprobe::log::Line("modules_reload_failed")
                     .Add("error", std::string(reloaded.status().message())));
      continue;
    }
    logger.Log(fanprobe::log::Line("modules_reloaded")
                   .Add("modules_file", modules_path));
    for (const std::string& warning : *reloaded) {
      logger.Log(fanprobe::log::Line("warning").Add("message", warning));
    }
  }
  logger.Log(
      fanprobe::log::Line("draining")
          .Add("signal", signal_number == SIGINT ? "SIGINT" : "SIGTERM")
          .Add("grace_ms", absl::ToInt64Milliseconds(options.shutdown_grace)));
  (*server)->Shutdown();
  server->reset();
  logger.Log(fanprobe::log::Line("stopped"));
  return 0;
}
