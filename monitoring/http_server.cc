#include "monitoring/http_server.h"

#include <sys/socket.h>

#include <algorithm>
#include <chrono>
#include <cstdint>
#include <memory>
#include <optional>
#include <string>
#include <thread>
#include <utility>
#include <vector>

#include "absl/container/flat_hash_set.h"
#include "absl/status/status.h"
#include "absl/status/statusor.h"
#include "absl/strings/numbers.h"
#include "absl/strings/str_cat.h"
#include "absl/strings/string_view.h"
#include "absl/synchronization/mutex.h"
#include "absl/synchronization/notification.h"
#include "absl/time/clock.h"
#include "absl/time/time.h"
#include "httplib.h"
#include "monitoring/blackbox_report.h"
#include "monitoring/prometheus_text.h"

namespace fanprobe::monitoring {
namespace {

constexpr char kTextFormat[] = "text/plain; version=0.0.4; charset=utf-8";
constexpr char kPlainText[] = "text/plain; charset=utf-8";

// The batch may outlive its probes' own timeout by this much, so a probe
// that times out reports its own result (with its phases) before the batch
// timeout cuts off the ones that never started.
constexpr absl::Duration kBatchSlack = absl::Milliseconds(50);

int HttpStatusFor(absl::StatusCode code) {
  switch (code) {
    case absl::StatusCode::kInvalidArgument:
      return 400;
    case absl::StatusCode::kUnauthenticated:
      return 401;
    case absl::StatusCode::kPermissionDenied:
      return 403;
    case absl::StatusCode::kResourceExhausted:
    case absl::StatusCode::kUnavailable:
      return 503;
    default:
      return 500;
  }
}

// "host:port", "[v6]:port".  The host is returned without brackets.
absl::Status SplitAddress(const std::string& address, std::string* host,
                          int* port) {
  const size_t colon = address.rfind(':');
  if (colon == std::string::npos || colon == 0 ||
      !absl::SimpleAtoi(address.substr(colon + 1), port) || *port < 0 ||
      *port > 65535) {
    return absl::InvalidArgumentError(
        absl::StrCat("http address \"", address, "\": want host:port"));
  }
  *host = address.substr(0, colon);
  if (host->size() >= 2 && host->front() == '[' && host->back() == ']') {
    *host = host->substr(1, host->size() - 2);
  }
  return absl::OkStatus();
}

// What one /probe request's batch delivers, filled on engine threads.
struct ProbeRun {
  absl::Mutex mu;
  std::vector<std::optional<ProbeResult>> results ABSL_GUARDED_BY(mu);
  std::optional<BatchSummary> summary ABSL_GUARDED_BY(mu);
};

}  // namespace

absl::StatusOr<std::unique_ptr<HttpServer>> HttpServer::Start(
    HttpServerOptions options, Engine& engine, ServerMetrics& metrics,
    ReadinessCheck readiness) {
  std::string host;
  int port = 0;
  if (absl::Status status = SplitAddress(options.address, &host, &port);
      !status.ok()) {
    return status;
  }
  // A module whose options the engine refuses (a header value with CR/LF,
  // more request headers than the server allows) would fail every probe
  // as INVALID_TARGET: stop at start instead, as for a module fanprobe
  // cannot honour.  The timeout and body cap are set per /probe, below.
  for (const auto& [name, module] : options.modules) {
    ProbeOptions checked = module.options;
    checked.timeout = absl::Seconds(1);
    checked.max_body_bytes =
        std::min(checked.max_body_bytes, engine.Limits().max_body_bytes);
    checked.max_redirects =
        std::min(checked.max_redirects, engine.Limits().max_redirects);
    if (absl::Status status = engine.CheckOptions(checked); !status.ok()) {
      return absl::InvalidArgumentError(absl::StrCat(
          "--modules_file: module \"", name, "\": ", status.message()));
    }
  }
  if (options.max_scrape_timeout <= absl::ZeroDuration()) {
    return absl::InvalidArgumentError("max_scrape_timeout: must be positive");
  }
  std::unique_ptr<HttpServer> server(new HttpServer(
      std::move(options), engine, metrics, std::move(readiness)));
  httplib::Server& http = *server->http_;
  const int threads = std::max(server->options_.threads, 1);
  http.new_task_queue = [threads] { return new httplib::ThreadPool(threads); };
  http.set_keep_alive_timeout(std::max<time_t>(
      1, absl::ToInt64Seconds(server->options_.keep_alive_timeout)));
  http.set_payload_max_length(64 * 1024);
  // cpp-httplib's default also sets SO_REUSEPORT, with which a second
  // server on the same port would silently share it instead of failing.
  http.set_socket_options([](int socket) {
    const int yes = 1;
    setsockopt(socket, SOL_SOCKET, SO_REUSEADDR, &yes, sizeof(yes));
  });

  HttpServer* self = server.get();
  if (self->options_.authorize) {
    http.set_pre_routing_handler(
        [self](const httplib::Request& req, httplib::Response& res) {
          using Handled = httplib::Server::HandlerResponse;
          if (req.path == "/healthz" || req.path == "/readyz") {
            return Handled::Unhandled;
          }
          const absl::Status status =
              self->options_.authorize(req.get_header_value("Authorization"));
          if (status.ok()) return Handled::Unhandled;
          res.set_header("WWW-Authenticate", R"(Bearer realm="fanprobe")");
          self->Reject(status.code(), std::string(status.message()), res);
          return Handled::Handled;
        });
  }
  http.Get("/metrics", [self](const httplib::Request&, httplib::Response& res) {
    res.set_content(self->metrics_.Render(), kTextFormat);
  });
  http.Get("/probe",
           [self](const httplib::Request& req, httplib::Response& res) {
             self->HandleProbe(req, res);
           });
  http.Get("/healthz", [](const httplib::Request&, httplib::Response& res) {
    res.set_content("ok\n", kPlainText);
  });
  http.Get("/readyz", [self](const httplib::Request&, httplib::Response& res) {
    self->HandleReady(res);
  });
  http.Get("/", [](const httplib::Request&, httplib::Response& res) {
    res.set_content(
        "fanprobe\n\n"
        "/metrics   fanprobe's metrics (Prometheus text format)\n"
        "/probe     ?target=URL[&target=URL...]&module=NAME[&debug=true]: "
        "blackbox_exporter-compatible probe\n"
        "/healthz   liveness\n"
        "/readyz    readiness: serving and not saturated\n",
        kPlainText);
  });

  server->port_ = port == 0 ? http.bind_to_any_port(host)
                            : (http.bind_to_port(host, port) ? port : -1);
  if (server->port_ <= 0) {
    return absl::UnavailableError(
        absl::StrCat("cannot listen on ", server->options_.address,
                     " for HTTP (address in use or not local?)"));
  }
  const std::string& address = server->options_.address;
  server->address_ =
      absl::StrCat(address.substr(0, address.rfind(':')), ":", server->port_);
  server->listener_ = std::thread([self] {
    self->http_->listen_after_bind();
    self->listener_done_.Notify();
  });
  // Requests are served once the listener thread runs; a client connecting
  // before then waits in the accept queue, which the bind already opened.
  return server;
}

HttpServer::HttpServer(HttpServerOptions options, Engine& engine,
                       ServerMetrics& metrics, ReadinessCheck readiness)
    : options_(std::move(options)),
      engine_(engine),
      metrics_(metrics),
      readiness_(std::move(readiness)),
      http_(std::make_unique<httplib::Server>()) {}

HttpServer::~HttpServer() { Stop(); }

void HttpServer::BeginShutdown() {
  absl::MutexLock lock(&mu_);
  shutting_down_ = true;
}

bool HttpServer::WaitUntilIdle(absl::Time deadline) {
  absl::MutexLock lock(&mu_);
  const auto idle = [this]() ABSL_EXCLUSIVE_LOCKS_REQUIRED(mu_) {
    return active_requests_ == 0;
  };
  return mu_.AwaitWithDeadline(absl::Condition(&idle), deadline);
}

void HttpServer::CancelAll() {
  std::vector<std::shared_ptr<Batch>> batches;
  {
    absl::MutexLock lock(&mu_);
    shutting_down_ = true;
    cancel_all_ = true;
    batches.assign(batches_.begin(), batches_.end());
  }
  // Outside mu_: cancelling runs the batch's callbacks.
  for (const std::shared_ptr<Batch>& batch : batches) batch->Cancel();
}

void HttpServer::Stop() {
  {
    absl::MutexLock lock(&mu_);
    if (stopped_) return;
    stopped_ = true;
  }
  CancelAll();
  if (listener_.joinable()) {
    // stop() does nothing until the listener thread has started listening,
    // so it is repeated until that thread is done.  It closes the listener;
    // the thread then finishes when the pool's threads have finished their
    // connections (an idle keep-alive one within keep_alive_timeout).
    do {
      http_->stop();
    } while (
        !listener_done_.WaitForNotificationWithTimeout(absl::Milliseconds(10)));
    listener_.join();
  }
}

HttpStats HttpServer::Stats() const {
  absl::MutexLock lock(&mu_);
  return {.probe_requests_active = active_requests_,
          .pending_probes = pending_probes_};
}

void HttpServer::Reject(absl::StatusCode code, const std::string& message,
                        httplib::Response& response) {
  metrics_.RequestRejected(MetricsApi::kHttp, code);
  response.status = HttpStatusFor(code);
  response.set_content(absl::StrCat(message, "\n"), kPlainText);
}

void HttpServer::HandleReady(httplib::Response& response) {
  absl::Status ready;
  {
    absl::MutexLock lock(&mu_);
    if (shutting_down_) {
      ready = absl::UnavailableError("shutting down");
    } else if (pending_probes_ >= options_.max_pending_probes) {
      ready = absl::UnavailableError(absl::StrCat(
          "saturated: ", pending_probes_, " /probe probes pending, the limit"));
    }
  }
  if (ready.ok() && readiness_) ready = readiness_();
  if (ready.ok()) {
    response.set_content("ready\n", kPlainText);
  } else {
    response.status = 503;
    response.set_content(absl::StrCat("not ready: ", ready.message(), "\n"),
                         kPlainText);
  }
}

void HttpServer::HandleProbe(const httplib::Request& request,
                             httplib::Response& response) {
  const absl::Time start = absl::Now();
  // Distinct targets, in the order given.
  std::vector<std::string> targets;
  {
    absl::flat_hash_set<std::string> seen;
    const size_t count = request.get_param_value_count("target");
    for (size_t i = 0; i < count; ++i) {
      std::string target = request.get_param_value("target", i);
      if (!target.empty() && seen.insert(target).second) {
        targets.push_back(std::move(target));
      }
    }
  }
  if (targets.empty()) {
    Reject(absl::StatusCode::kInvalidArgument, "Target parameter is missing",
           response);
    return;
  }
  if (targets.size() > options_.max_targets_per_request) {
    Reject(absl::StatusCode::kInvalidArgument,
           absl::StrCat("Too many targets: ", targets.size(), " (at most ",
                        options_.max_targets_per_request, ")"),
           response);
    return;
  }
  std::string module_name = request.get_param_value("module");
  if (module_name.empty()) module_name = std::string(kDefaultModuleName);
  const auto module_it = options_.modules.find(module_name);
  if (module_it == options_.modules.end()) {
    Reject(absl::StatusCode::kInvalidArgument,
           absl::StrCat("Unknown module \"", module_name, "\""), response);
    return;
  }
  const BlackboxModule& module = module_it->second;
  absl::StatusOr<absl::Duration> timeout = ProbeTimeout(
      request.get_header_value("X-Prometheus-Scrape-Timeout-Seconds"),
      module.timeout, options_.timeout_offset, options_.max_scrape_timeout);
  if (!timeout.ok()) {
    Reject(absl::StatusCode::kInvalidArgument,
           absl::StrCat("Failed to parse timeout from Prometheus header: ",
                        timeout.status().message()),
           response);
    return;
  }
  // The engine needs a positive timeout; a deadline already gone fails the
  // probes at once, as blackbox_exporter's expired context does.
  const absl::Duration probe_timeout =
      std::max(*timeout, absl::Milliseconds(1));

  const uint64_t probes = targets.size();
  {
    absl::MutexLock lock(&mu_);
    // Reject() only counts and fills the response: fine under mu_.
    if (shutting_down_) {
      Reject(absl::StatusCode::kUnavailable,
             "fanprobe is shutting down; retry on another instance", response);
      return;
    }
    if (pending_probes_ + probes > options_.max_pending_probes) {
      Reject(absl::StatusCode::kResourceExhausted,
             absl::StrCat("Overloaded: ", pending_probes_,
                          " /probe probes pending, ", probes,
                          " more would exceed the limit of ",
                          options_.max_pending_probes, "; retry later"),
             response);
      return;
    }
    pending_probes_ += probes;
    ++active_requests_;
  }

  auto options = std::make_shared<ProbeOptions>(module.options);
  options->timeout = probe_timeout;
  // blackbox_exporter reads bodies of any size by default; here the
  // server's limit is the most a probe reads.
  options->max_body_bytes =
      std::min(options->max_body_bytes, engine_.Limits().max_body_bytes);
  // Nor may it follow more redirects than the server allows (blackbox
  // modules follow 10, which --max_redirects may be below).
  options->max_redirects =
      std::min(options->max_redirects, engine_.Limits().max_redirects);
  std::vector<ProbeTarget> probe_targets;
  probe_targets.reserve(targets.size());
  for (const std::string& target : targets) {
    probe_targets.push_back({.url = target, .options = options});
  }
  BatchOptions batch_options;
  batch_options.timeout = probe_timeout + kBatchSlack;
  batch_options.max_concurrency = 0;  // every target at once, within the cap

  auto run = std::make_shared<ProbeRun>();
  {
    absl::MutexLock lock(&run->mu);
    run->results.resize(targets.size());
  }
  std::shared_ptr<Batch> batch =
      engine_.Submit(std::move(probe_targets), batch_options,
                     {.on_result =
                          [run](ProbeResult result) {
                            absl::MutexLock lock(&run->mu);
                            const uint32_t index = result.index;
                            if (index < run->results.size()) {
                              run->results[index] = std::move(result);
                            }
                          },
                      .on_done =
                          [run](BatchSummary summary) {
                            absl::MutexLock lock(&run->mu);
                            run->summary = std::move(summary);
                          }});
  bool cancel;
  {
    absl::MutexLock lock(&mu_);
    cancel = cancel_all_;
    batches_.insert(batch);
  }
  if (cancel) batch->Cancel();

  std::vector<std::optional<ProbeResult>> results;
  BatchSummary summary;
  {
    absl::MutexLock lock(&run->mu);
    const auto done = [&run]() ABSL_EXCLUSIVE_LOCKS_REQUIRED(run->mu) {
      return run->summary.has_value();
    };
    run->mu.Await(absl::Condition(&done));
    results = std::move(run->results);
    summary = *run->summary;
  }
  {
    absl::MutexLock lock(&mu_);
    batches_.erase(batch);
    pending_probes_ -= probes;
    --active_requests_;
  }

  if (summary.reason == EndReason::kCancelled) {
    // Only shutdown cancels a /probe batch.  No metrics beat wrong ones: a
    // failed scrape leaves probe_success unset instead of 0.
    Reject(absl::StatusCode::kUnavailable,
           "fanprobe is shutting down; the probe was cancelled", response);
    return;
  }
  std::vector<ProbeReport> reports;
  reports.reserve(targets.size());
  for (size_t i = 0; i < targets.size(); ++i) {
    if (results[i].has_value()) {
      reports.push_back(ReportProbe(module, targets[i], *results[i]));
    } else {
      reports.push_back(ReportUnfinished(
          targets[i], "TIMEOUT",
          absl::StrCat("did not complete within the probe deadline of ",
                       absl::FormatDuration(probe_timeout)),
          absl::Now() - start));
    }
  }
  MetricsWriter out;
  WriteProbeMetrics(reports, /*target_labels=*/targets.size() > 1, out);
  if (request.get_param_value("debug") == "true") {
    response.set_content(
        ProbeDebugText(module, reports, probe_timeout, out.text()), kPlainText);
  } else {
    response.set_content(out.Release(), kTextFormat);
  }
}

}  // namespace fanprobe::monitoring
