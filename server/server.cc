#include "server/server.h"

#include <algorithm>
#include <climits>
#include <cstdint>
#include <memory>
#include <string>
#include <utility>
#include <vector>

#include "absl/status/status.h"
#include "absl/status/statusor.h"
#include "absl/strings/str_cat.h"
#include "absl/strings/string_view.h"
#include "absl/time/clock.h"
#include "absl/time/time.h"
#include "grpcpp/ext/proto_server_reflection_plugin.h"
#include "grpcpp/grpcpp.h"
#include "grpcpp/health_check_service_interface.h"
#include "monitoring/collectors.h"
#include "server/auth.h"
#include "server/file_watcher.h"
#include "server/service_monitoring.h"

namespace fanprobe::server {
namespace {

// gRPC's default health service.
constexpr char kHealthService[] = "grpc.health.v1.Health";

int ToMillis(absl::Duration duration) {
  if (duration == absl::InfiniteDuration()) return INT_MAX;
  return static_cast<int>(
      std::clamp<int64_t>(absl::ToInt64Milliseconds(duration), 0, INT_MAX));
}

// The largest buffer one read of a connection goes into.  With gRPC's
// one-buffer-per-read path (server_main.cc turns "tcp_read_chunks" off) it
// is also the most a connection keeps allocated between reads, as the
// unfilled rest of its last buffer: gRPC's default of 4 MiB would let each
// connection hold up to 4 MiB (tests/server/memory_test.cc: after = warm +
// 3.8 MB once in 12 runs with it; with 64 KiB, the buffer a connection
// kept had at most 68 KB resident in 36 runs).  64 KiB is what gRPC's
// other path reads into, and below the mmap threshold, so reads recycle
// heap blocks instead of mapping fresh pages.  Big requests then take
// more, smaller reads at no measurable cost: server CPU for an 8 MB
// request 0.46 s -> 0.45 s, for a refused 14 MB one 0.27 s -> 0.25 s
// (medians of 8).
constexpr int kMaxReadChunkBytes = 64 * 1024;

void ApplyConnectionOptions(const ConnectionOptions& options,
                            grpc::ServerBuilder& builder) {
  builder.SetMaxReceiveMessageSize(options.max_request_bytes);
  builder.AddChannelArgument(GRPC_ARG_TCP_MAX_READ_CHUNK_SIZE,
                             kMaxReadChunkBytes);
  builder.AddChannelArgument(GRPC_ARG_KEEPALIVE_TIME_MS,
                             ToMillis(options.keepalive_time));
  builder.AddChannelArgument(GRPC_ARG_KEEPALIVE_TIMEOUT_MS,
                             ToMillis(options.keepalive_timeout));
  // Keep pinging while a quiet stream runs (all probes slow): by default
  // gRPC stops after two pings without data, and a vanished client's
  // batch would then run to its end.
  // What a client sends is buffered up to the stream's flow-control window,
  // which BDP probing grows to megabytes under a fast writer: a ProbeStream
  // client writing ahead then parks that much in the server (W9: 42-47 MB
  // peak at a million targets against 31 MB at 10,000).  Without it the
  // window stays at gRPC's initial 64 KiB per stream (33.6 MB), and only a
  // large request's upload over a long round trip is slower.
  builder.AddChannelArgument(GRPC_ARG_HTTP2_BDP_PROBE, 0);
  builder.AddChannelArgument(GRPC_ARG_HTTP2_MAX_PINGS_WITHOUT_DATA, 0);
  builder.AddChannelArgument(
      GRPC_ARG_HTTP2_MIN_SENT_PING_INTERVAL_WITHOUT_DATA_MS,
      ToMillis(options.keepalive_time));
  builder.AddChannelArgument(
      GRPC_ARG_HTTP2_MIN_RECV_PING_INTERVAL_WITHOUT_DATA_MS,
      ToMillis(options.min_client_ping_interval));
  builder.AddChannelArgument(GRPC_ARG_HTTP2_MAX_PING_STRIKES,
                             options.max_ping_strikes);
  if (options.max_connection_age != absl::InfiniteDuration()) {
    builder.AddChannelArgument(GRPC_ARG_MAX_CONNECTION_AGE_MS,
                               ToMillis(options.max_connection_age));
    builder.AddChannelArgument(GRPC_ARG_MAX_CONNECTION_AGE_GRACE_MS,
                               ToMillis(options.max_connection_age_grace));
  }
}

// fanprobe_listener_* for each listener there is.
monitoring::ServerMetrics::Collector ListenerCollector(
    std::vector<const Listener*> listeners) {
  return [listeners = std::move(listeners)](monitoring::MetricsWriter& out) {
    const auto family = [&](absl::string_view name, absl::string_view type,
                            absl::string_view help, auto value_of) {
      out.Family(name, type, help);
      for (const Listener* listener : listeners) {
        out.Sample(name, {{"listener", listener->name()}},
                   static_cast<double>(value_of(*listener)));
      }
    };
    family("fanprobe_listener_accepting", "gauge",
           "1 while the listener accepts connections, 0 while it cannot "
           "(the process is out of descriptors).",
           [](const Listener& l) { return l.Accepting().ok() ? 1 : 0; });
    family("fanprobe_listener_connections", "gauge",
           "Connections the listener handed on that are still open.",
           [](const Listener& l) { return l.Stats().open; });
    family("fanprobe_listener_refused_total", "counter",
           "Connections closed at once because the listener held its bound "
           "(--max_grpc_connections).",
           [](const Listener& l) { return l.Stats().refused; });
    family("fanprobe_listener_exhaustions_total", "counter",
           "Times the listener could not accept for lack of descriptors or "
           "memory.",
           [](const Listener& l) { return l.Stats().exhaustions; });
  };
}

}  // namespace

absl::StatusOr<std::unique_ptr<Server>> Server::Start(ServerOptions options) {
  // Incoming connections hold descriptors too: the gRPC and HTTP sides'
  // are bounded (max_connections), so the engine keeps them back on top of
  // its reserve, which is left for the server's own files and the health
  // port.  Probes then never take the descriptors the listeners need.
  // fanprobe-server logs the sum (descriptors.h).
  const uint64_t reserve_http =
      options.http.address.empty() ? 0 : options.http.max_connections;
  options.engine.fd_reserve = static_cast<uint32_t>(
      std::min<uint64_t>(uint64_t{options.engine.fd_reserve} +
                             options.connection.max_connections + reserve_http,
                         UINT32_MAX));
  absl::StatusOr<std::unique_ptr<Engine>> engine =
      Engine::Create(options.engine);
  if (!engine.ok()) return engine.status();

  absl::StatusOr<std::shared_ptr<grpc::ServerCredentials>> credentials =
      MakeServerCredentials(options.security);
  if (!credentials.ok()) return credentials.status();

  std::unique_ptr<Server> server(new Server());
  server->shutdown_grace_ = options.shutdown_grace;
  server->engine_ = *std::move(engine);
  server->metrics_ = std::make_shared<monitoring::ServerMetrics>();
  server->grpc_engine_ = std::make_unique<monitoring::MeteredEngine>(
      *server->engine_, *server->metrics_, monitoring::MetricsApi::kGrpc);
  if (options.service.observer == nullptr) {
    options.service.observer =
        std::make_shared<ServiceMetricsObserver>(*server->metrics_);
  }
  if (!options.service.log) options.service.log = options.log;
  // A batch may not ask for more concurrency than the engine can give,
  // which the file descriptor budget may have lowered below the flag.
  options.service.limits.max_in_flight = static_cast<uint32_t>(
      std::min<uint64_t>(options.engine.max_in_flight,
                         server->engine_->Stats().max_in_flight));
  if (!options.security.auth_token_file.empty() &&
      !options.service.authenticate) {
    absl::StatusOr<std::shared_ptr<TokenAuthenticator>> tokens =
        TokenAuthenticator::Create(options.security.auth_token_file,
                                   options.security.reload_interval,
                                   "auth_token_file", options.log);
    if (!tokens.ok()) return tokens.status();
    options.service.authenticate =
        [tokens =
             *std::move(tokens)](const grpc::CallbackServerContext& context) {
          return tokens->Check(context);
        };
  }
  // The HTTP side's TLS files, read now so a bad file fails before
  // anything listens.
  if (!options.http.address.empty()) {
    const struct {
      const char* flag;
      const std::string& path;
      std::string& pem;
    } files[] = {
        {"http_tls_cert", options.security.http_tls_cert_file,
         options.http.tls_cert_pem},
        {"http_tls_key", options.security.http_tls_key_file,
         options.http.tls_key_pem},
        {"http_client_ca", options.security.http_client_ca_file,
         options.http.client_ca_pem},
    };
    for (const auto& file : files) {
      if (file.path.empty()) continue;
      absl::StatusOr<std::string> pem = ReadFlagFile(file.flag, file.path);
      if (!pem.ok()) return pem.status();
      file.pem = *std::move(pem);
    }
  }
  // The HTTP side's tokens, read now so a bad file fails before anything
  // listens.
  if (!options.http.address.empty() &&
      !options.security.http_auth_token_file.empty() &&
      !options.http.authorize) {
    absl::StatusOr<std::shared_ptr<TokenAuthenticator>> tokens =
        TokenAuthenticator::Create(options.security.http_auth_token_file,
                                   options.security.reload_interval,
                                   "http_auth_token_file", options.log);
    if (!tokens.ok()) return tokens.status();
    options.http.authorize =
        [tokens = *std::move(tokens)](absl::string_view authorization) {
          return tokens->CheckAuthorization(authorization);
        };
  }
  if (!options.service.client_identity) {
    const bool tokens_checked = !options.security.auth_token_file.empty();
    options.service.client_identity =
        [tokens_checked](const grpc::CallbackServerContext& context) {
          return ClientIdentity(context, tokens_checked);
        };
  }
  server->service_ = std::make_unique<service::ProberService>(
      *server->grpc_engine_, options.service);

  // Both are process-wide switches that take effect in the next builder.
  grpc::EnableDefaultHealthCheckService(true);
  grpc::reflection::InitProtoReflectionServerBuilderPlugin();
  // The server listens itself (listener.h) and gives gRPC each connection
  // it accepts, with the same credentials a listening port would have.
  absl::StatusOr<std::unique_ptr<Listener>> listener =
      Listener::Bind(options.grpc_address,
                     {.name = "grpc",
                      .max_connections = options.connection.max_connections,
                      .log = options.log});
  if (!listener.ok()) {
    return absl::Status(
        listener.status().code(),
        absl::StrCat("--grpc_address: ", listener.status().message()));
  }
  server->listener_ = *std::move(listener);
  grpc::ServerBuilder builder;
  server->acceptor_ = builder.experimental().AddExternalConnectionAcceptor(
      grpc::ServerBuilder::experimental_type::ExternalConnectionType::FROM_FD,
      *credentials);
  builder.RegisterService(server->service_.get());
  absl::StatusOr<std::unique_ptr<ReflectionService>> reflection =
      ReflectionService::Create(
          {v1::Prober::service_full_name(), kHealthService});
  if (!reflection.ok()) return reflection.status();
  server->reflection_ = *std::move(reflection);
  builder.RegisterService(server->reflection_.get());
  ApplyConnectionOptions(options.connection, builder);
  server->server_ = builder.BuildAndStart();
  if (server->server_ == nullptr) {
    return absl::UnavailableError(
        absl::StrCat("cannot serve gRPC on ", server->listener_->address()));
  }
  server->address_ = server->listener_->address();
  server->port_ = server->listener_->port();
  server->server_->GetHealthCheckService()->SetServingStatus(
      v1::Prober::service_full_name(), true);

  if (!options.health_address.empty()) {
    // Its own server, so it has its own credentials (none) and only the
    // health service and reflection (v1alpha, which the plugin adds
    // everywhere, and our v1).
    absl::StatusOr<std::unique_ptr<Listener>> health_listener = Listener::Bind(
        options.health_address, {.name = "health",
                                 .max_connections = kHealthConnections,
                                 .log = options.log});
    if (!health_listener.ok()) {
      return absl::Status(health_listener.status().code(),
                          absl::StrCat("--health_address: ",
                                       health_listener.status().message()));
    }
    server->health_listener_ = *std::move(health_listener);
    grpc::ServerBuilder health_builder;
    server->health_acceptor_ =
        health_builder.experimental().AddExternalConnectionAcceptor(
            grpc::ServerBuilder::experimental_type::ExternalConnectionType::
                FROM_FD,
            grpc::InsecureServerCredentials());
    reflection = ReflectionService::Create({kHealthService});
    if (!reflection.ok()) return reflection.status();
    server->health_reflection_ = *std::move(reflection);
    health_builder.RegisterService(server->health_reflection_.get());
    ApplyConnectionOptions(options.connection, health_builder);
    server->health_server_ = health_builder.BuildAndStart();
    if (server->health_server_ == nullptr) {
      return absl::UnavailableError(absl::StrCat(
          "cannot serve gRPC health on ", server->health_listener_->address()));
    }
    server->health_address_ = server->health_listener_->address();
    server->health_server_->GetHealthCheckService()->SetServingStatus(
        v1::Prober::service_full_name(), true);
  }
  // Accepting starts once both servers run: an acceptor hands a
  // connection only to a started server, and a listener's state change
  // touches both.
  Server* self = server.get();
  const auto start =
      [self](Listener& listener,
             grpc::experimental::ExternalConnectionAcceptor& acceptor) {
        listener.Start(
            [&acceptor](int fd, int listen_fd) {
              grpc::experimental::ExternalConnectionAcceptor::
                  NewConnectionParameters connection;
              connection.listener_fd = listen_fd;
              connection.fd = fd;
              acceptor.HandleNewConnection(&connection);
            },
            [self] { self->UpdateServingStatus(); });
      };
  start(*server->listener_, *server->acceptor_);
  if (server->health_listener_ != nullptr) {
    start(*server->health_listener_, *server->health_acceptor_);
  }
  monitoring::ServerMetrics& metrics = *server->metrics_;
  metrics.AddCollector(monitoring::EngineStatsCollector(*server->engine_));
  metrics.AddCollector(ServiceStatsCollector(
      *server->service_, options.service.max_pending_probes));
  metrics.AddCollector(
      monitoring::BuildInfoCollector({{"grpc", grpc::Version()}}));
  metrics.AddCollector(monitoring::ProcessCollector());
  std::vector<const Listener*> listeners = {server->listener_.get()};
  if (server->health_listener_ != nullptr) {
    listeners.push_back(server->health_listener_.get());
  }
  metrics.AddCollector(ListenerCollector(std::move(listeners)));
  if (!options.http.address.empty()) {
    server->http_engine_ = std::make_unique<monitoring::MeteredEngine>(
        *server->engine_, metrics, monitoring::MetricsApi::kHttp);
    const Engine* engine = server->engine_.get();
    const service::ProberService* service = server->service_.get();
    const uint64_t max_pending = options.service.max_pending_probes;
    absl::StatusOr<std::unique_ptr<monitoring::HttpServer>> http =
        monitoring::HttpServer::Start(
            options.http, *server->http_engine_, metrics,
            [self, engine, service, max_pending] {
              if (absl::Status accepting = self->Accepting(); !accepting.ok()) {
                return accepting;
              }
              return SaturationStatus(engine->Stats(), service->Stats(),
                                      max_pending);
            });
    if (!http.ok()) return http.status();
    server->http_ = *std::move(http);
    server->http_address_ = server->http_->address();
    if (!options.security.http_tls_cert_file.empty()) {
      std::vector<std::string> paths = {options.security.http_tls_cert_file,
                                        options.security.http_tls_key_file};
      if (!options.security.http_client_ca_file.empty()) {
        paths.push_back(options.security.http_client_ca_file);
      }
      monitoring::HttpServer* http_server = server->http_.get();
      server->http_tls_watcher_ = std::make_unique<FileWatcher>(
          std::move(paths), options.security.reload_interval,
          [http_server](const std::vector<std::string>& pem) {
            return http_server->ReloadTls(pem[0], pem[1],
                                          pem.size() > 2 ? pem[2] : "");
          },
          FileWatcher::Events{.changed = "http_tls_reloaded",
                              .refused = "http_tls_reload_failed"},
          options.log);
    }
    metrics.AddCollector(monitoring::HttpStatsCollector(*server->http_));
    metrics.AddCollector(
        monitoring::ModulesCollector(server->http_->modules()));
  }
  return server;
}

Server::~Server() { Shutdown(); }

void Server::Shutdown() {
  absl::MutexLock lock(&shutdown_mu_);
  if (shut_down_ || server_ == nullptr) return;
  shut_down_ = true;
  const absl::Time deadline = absl::Now() + shutdown_grace_;
  // Refuse new batches first, so a client that sees NOT_SERVING is refused
  // from then on.
  service_->BeginShutdown();
  if (http_ != nullptr) http_->BeginShutdown();
  {
    absl::MutexLock serving_lock(&serving_mu_);
    draining_ = true;
  }
  UpdateServingStatus();
  // The tail of the grace period is for ending what still runs then.  The
  // contract: a batch ended by shutdown ends END_REASON_CANCELLED with its
  // summary and pending list, so its batch is cancelled and the RPC ends
  // as the batch does; the summaries' writes get most of the tail.  Only
  // RPCs that cannot be written to (a client gone or not reading) are left
  // then, and end UNAVAILABLE.
  const absl::Duration tail = std::min(shutdown_grace_ / 5, absl::Seconds(1));
  bool drained = service_->WaitUntilIdle(deadline - tail);
  if (!drained) {
    service_->CancelAll();
    drained = service_->WaitUntilIdle(deadline - tail / 4);
  }
  if (!drained) {
    service_->AbortAll(grpc::Status(grpc::StatusCode::UNAVAILABLE,
                                    "the server is shutting down"));
  }
  // /probe requests get the same grace; those still running then are
  // cancelled and answer 503.
  if (http_ != nullptr && !http_->WaitUntilIdle(deadline - tail)) {
    http_->CancelAll();
  }
  // Connections accepted from here on would reach a server shutting down.
  listener_->Stop();
  // Waits for RPCs to complete until the given time, then cancels them.
  // Once every batch is over, what remains never ends by itself (health
  // Watch streams) and is cancelled at once; aborted batches get the rest
  // of the grace period to deliver their status.
  server_->Shutdown(absl::ToChronoTime(drained ? absl::Now() : deadline));
  server_->Wait();
  if (http_ != nullptr) http_->Stop();
  if (health_server_ != nullptr) {
    health_listener_->Stop();
    // Only health Watch streams can still run here; end them at once.
    health_server_->Shutdown(absl::ToChronoTime(absl::Now()));
    health_server_->Wait();
  }
}

absl::Status Server::Accepting() const {
  for (const Listener* listener : {listener_.get(), health_listener_.get()}) {
    if (listener == nullptr) continue;
    if (absl::Status accepting = listener->Accepting(); !accepting.ok()) {
      return accepting;
    }
  }
  return absl::OkStatus();
}

void Server::UpdateServingStatus() {
  absl::MutexLock lock(&serving_mu_);
  const bool serving = !draining_ && Accepting().ok();
  server_->GetHealthCheckService()->SetServingStatus(serving);
  if (health_server_ != nullptr) {
    health_server_->GetHealthCheckService()->SetServingStatus(serving);
  }
}

}  // namespace fanprobe::server
