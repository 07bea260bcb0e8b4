#include "monitoring/http_server.h"

#include <gnutls/gnutls.h>
#include <microhttpd.h>
#include <sys/epoll.h>
#include <sys/eventfd.h>
#include <sys/socket.h>
#include <unistd.h>

#include <algorithm>
#include <atomic>
#include <cerrno>
#include <cstdint>
#include <cstring>
#include <functional>
#include <memory>
#include <optional>
#include <string>
#include <thread>
#include <utility>
#include <vector>

#include "absl/container/flat_hash_map.h"
#include "absl/container/flat_hash_set.h"
#include "absl/status/status.h"
#include "absl/status/statusor.h"
#include "absl/strings/escaping.h"
#include "absl/strings/match.h"
#include "absl/strings/numbers.h"
#include "absl/strings/str_cat.h"
#include "absl/strings/str_join.h"
#include "absl/strings/string_view.h"
#include "absl/synchronization/mutex.h"
#include "absl/synchronization/notification.h"
#include "absl/time/clock.h"
#include "absl/time/time.h"
#include "monitoring/blackbox_report.h"
#include "monitoring/http_tls.h"
#include "monitoring/prometheus_text.h"
#include "probe/socket_address.h"
#include "probe/unique_fd.h"

namespace fanprobe::monitoring {
namespace {

constexpr char kTextFormat[] = "text/plain; version=0.0.4; charset=utf-8";
constexpr char kPlainText[] = "text/plain; charset=utf-8";

// The batch may outlive its probes' own timeout by this much, so a probe
// that times out reports its own result (with its phases) before the batch
// timeout cuts off the ones that never started.
constexpr absl::Duration kBatchSlack = absl::Milliseconds(50);

// How often the header deadline is checked.
constexpr absl::Duration kReapInterval = absl::Milliseconds(100);

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

// "host:port" or "[v6]:port": SplitHostPort, with a host required (one
// socket on one address, unlike the gRPC side's ":port").
absl::Status SplitHttpAddress(const std::string& address, std::string* host,
                              int* port) {
  absl::Status status = SplitHostPort(address, host, port);
  if (status.ok() && address.front() == ':') {
    status = absl::InvalidArgumentError(
        absl::StrCat("address \"", address, "\": want host:port"));
  }
  if (!status.ok()) {
    return absl::InvalidArgumentError(absl::StrCat("http ", status.message()));
  }
  return absl::OkStatus();
}

int SocketOf(MHD_Connection* connection) {
  const MHD_ConnectionInfo* info =
      MHD_get_connection_info(connection, MHD_CONNECTION_INFO_CONNECTION_FD);
  return info == nullptr ? -1 : info->connect_fd;
}

// Whether the TLS client sent a certificate that one of `identity`'s client
// CAs signed and that is valid now.
bool ClientCertificateVerified(MHD_Connection* connection,
                               const TlsIdentity& identity) {
  const MHD_ConnectionInfo* info =
      MHD_get_connection_info(connection, MHD_CONNECTION_INFO_GNUTLS_SESSION);
  if (info == nullptr || info->tls_session == nullptr) return false;
  return identity.ClientVerified(
      static_cast<gnutls_session_t>(info->tls_session));
}

// libmicrohttpd's certificate callback (GnuTLS's retrieve function): the
// identity of the server that accepted the connection, as it is now.
// libmicrohttpd makes the connection the session's pointer, and the
// connection's socket context is its HttpServer (OnConnection).
int RetrieveCertificate(gnutls_session_t session, const gnutls_datum_t*, int,
                        const gnutls_pk_algorithm_t*, int,
                        gnutls_pcert_st** chain, unsigned int* chain_length,
                        gnutls_privkey_t* key) {
  auto* connection =
      static_cast<MHD_Connection*>(gnutls_session_get_ptr(session));
  if (connection == nullptr) return -1;
  const MHD_ConnectionInfo* info =
      MHD_get_connection_info(connection, MHD_CONNECTION_INFO_SOCKET_CONTEXT);
  if (info == nullptr || info->socket_context == nullptr) return -1;
  std::shared_ptr<const TlsIdentity> identity =
      static_cast<HttpServer*>(info->socket_context)->CurrentTls();
  if (identity == nullptr) return -1;
  // No list of acceptable CAs: it would be the client CA of Start(), and a
  // client holding a certificate of a renewed CA would not send it.
  gnutls_certificate_send_x509_rdn_sequence(session, 1);
  *chain = identity->chain();
  *chain_length = identity->chain_length();
  *key = identity->key();
  return 0;
}

std::string HeaderValue(MHD_Connection* connection, const char* name) {
  const char* value =
      MHD_lookup_connection_value(connection, MHD_HEADER_KIND, name);
  return value == nullptr ? std::string() : std::string(value);
}

// Every value of query parameter `name`, in order.
std::vector<std::string> QueryValues(MHD_Connection* connection,
                                     absl::string_view name) {
  struct Query {
    absl::string_view name;
    std::vector<std::string> values;
  } query{name, {}};
  MHD_get_connection_values(
      connection, MHD_GET_ARGUMENT_KIND,
      [](void* cls, MHD_ValueKind, const char* key,
         const char* value) -> MHD_Result {
        auto* q = static_cast<Query*>(cls);
        if (key != nullptr && q->name == key) {
          q->values.emplace_back(value == nullptr ? "" : value);
        }
        return MHD_YES;
      },
      &query);
  return std::move(query.values);
}

std::string QueryValue(MHD_Connection* connection, absl::string_view name) {
  std::vector<std::string> values = QueryValues(connection, name);
  return values.empty() ? std::string() : std::move(values.front());
}

}  // namespace

// One answer, built off libmicrohttpd's structures and queued by Send().
struct HttpServer::Reply {
  int status = 200;
  std::string content_type = kPlainText;
  std::string body;
  std::string www_authenticate;

  // Queues the answer on `connection`; only inside the request callback.
  int Send(MHD_Connection* connection) const {
    MHD_Response* response = MHD_create_response_from_buffer(
        body.size(), const_cast<char*>(body.data()), MHD_RESPMEM_MUST_COPY);
    if (response == nullptr) return MHD_NO;
    MHD_add_response_header(response, MHD_HTTP_HEADER_CONTENT_TYPE,
                            content_type.c_str());
    if (!www_authenticate.empty()) {
      MHD_add_response_header(response, MHD_HTTP_HEADER_WWW_AUTHENTICATE,
                              www_authenticate.c_str());
    }
    const MHD_Result queued =
        MHD_queue_response(connection, static_cast<unsigned>(status), response);
    MHD_destroy_response(response);
    return queued;
  }
};

// One /probe request while its batch runs.  Shared by the request's
// callback state, the batch's callbacks and the hang-up watch.
struct HttpServer::ProbeRequest {
  // Constant once the batch is submitted.
  MHD_Connection* connection = nullptr;
  // Held for the request: a reload meanwhile does not pull `module` away.
  std::shared_ptr<const BlackboxModules> modules;
  const BlackboxModule* module = nullptr;  // within `modules`
  std::vector<std::string> targets;
  absl::Duration probe_timeout;
  bool debug = false;
  absl::Time start;
  // Set by the batch's on_start, before any other callback runs.
  std::shared_ptr<Batch> batch;
  uint64_t watch = 0;  // the hang-up watch (0: none); set under mu

  absl::Mutex mu;
  std::vector<std::optional<ProbeResult>> results ABSL_GUARDED_BY(mu);
  std::optional<BatchSummary> summary ABSL_GUARDED_BY(mu);
  // The connection is suspended and waits for the batch's end to resume.
  bool suspended ABSL_GUARDED_BY(mu) = false;
  bool client_gone ABSL_GUARDED_BY(mu) = false;
};

// Watches suspended /probe connections for the client hanging up
// (EPOLLRDHUP: the peer closed its end) and calls the watch's callback
// once, on the watcher's own thread.  The caller unwatches before the
// connection may be resumed, so a watched descriptor is always open.
class HttpServer::HangupWatcher {
 public:
  static absl::StatusOr<std::unique_ptr<HangupWatcher>> Create() {
    UniqueFd epoll(epoll_create1(EPOLL_CLOEXEC));
    UniqueFd wake(eventfd(0, EFD_CLOEXEC | EFD_NONBLOCK));
    if (epoll.get() < 0 || wake.get() < 0) {
      return absl::InternalError(
          absl::StrCat("hang-up watcher: ", std::strerror(errno)));
    }
    epoll_event event{};
    event.events = EPOLLIN;
    event.data.u64 = 0;
    if (epoll_ctl(epoll.get(), EPOLL_CTL_ADD, wake.get(), &event) != 0) {
      return absl::InternalError(
          absl::StrCat("hang-up watcher: ", std::strerror(errno)));
    }
    std::unique_ptr<HangupWatcher> watcher(
        new HangupWatcher(std::move(epoll), std::move(wake)));
    watcher->thread_ = std::thread([w = watcher.get()] { w->Run(); });
    return watcher;
  }

  ~HangupWatcher() {
    const uint64_t one = 1;
    stopping_ = true;
    (void)!write(wake_.get(), &one, sizeof(one));
    thread_.join();
  }

  // Returns the watch's id (never 0), or 0 when `fd` cannot be watched.
  uint64_t Watch(int fd, std::function<void()> on_hangup) {
    absl::MutexLock lock(&mu_);
    const uint64_t id = ++last_id_;
    epoll_event event{};
    event.events = EPOLLRDHUP | EPOLLHUP | EPOLLERR | EPOLLONESHOT;
    event.data.u64 = id;
    watches_[id] = {fd, std::move(on_hangup)};
    if (epoll_ctl(epoll_.get(), EPOLL_CTL_ADD, fd, &event) != 0) {
      watches_.erase(id);
      return 0;
    }
    return id;
  }

  // After this returns the watch's callback does not start; one that has
  // started may still be running.
  void Unwatch(uint64_t id) {
    if (id == 0) return;
    absl::MutexLock lock(&mu_);
    auto it = watches_.find(id);
    if (it == watches_.end()) return;
    epoll_ctl(epoll_.get(), EPOLL_CTL_DEL, it->second.fd, nullptr);
    watches_.erase(it);
  }

 private:
  struct Watched {
    int fd;
    std::function<void()> on_hangup;
  };

  HangupWatcher(UniqueFd epoll, UniqueFd wake)
      : epoll_(std::move(epoll)), wake_(std::move(wake)) {}

  void Run() {
    epoll_event events[64];
    while (!stopping_) {
      const int n = epoll_wait(epoll_.get(), events, 64, -1);
      for (int i = 0; i < n; ++i) {
        const uint64_t id = events[i].data.u64;
        if (id == 0) continue;  // woken to stop
        std::function<void()> on_hangup;
        {
          absl::MutexLock lock(&mu_);
          auto it = watches_.find(id);
          if (it == watches_.end()) continue;  // unwatched meanwhile
          on_hangup = std::move(it->second.on_hangup);
          epoll_ctl(epoll_.get(), EPOLL_CTL_DEL, it->second.fd, nullptr);
          watches_.erase(it);
        }
        on_hangup();
      }
    }
  }

  const UniqueFd epoll_;
  const UniqueFd wake_;
  std::atomic<bool> stopping_{false};
  std::thread thread_;
  absl::Mutex mu_;
  uint64_t last_id_ ABSL_GUARDED_BY(mu_) = 0;
  absl::flat_hash_map<uint64_t, Watched> watches_ ABSL_GUARDED_BY(mu_);
};

absl::StatusOr<std::unique_ptr<HttpServer>> HttpServer::Start(
    HttpServerOptions options, Engine& engine, ServerMetrics& metrics,
    ReadinessCheck readiness) {
  std::string host;
  int port = 0;
  if (absl::Status status = SplitHttpAddress(options.address, &host, &port);
      !status.ok()) {
    return status;
  }
  // A module whose options the engine refuses (a header value with CR/LF,
  // more request headers than the server allows) stops the start, as one
  // fanprobe cannot parse does.  The server installs the same check in the
  // store below, for every reload.
  if (options.module_store == nullptr) {
    options.module_store =
        std::make_shared<BlackboxModulesStore>("", options.modules);
  }
  if (absl::Status status =
          CheckModulesWithEngine(*options.module_store->Get(), engine);
      !status.ok()) {
    return absl::InvalidArgumentError(
        absl::StrCat("--modules_file: ", status.message()));
  }
  if (options.max_scrape_timeout <= absl::ZeroDuration()) {
    return absl::InvalidArgumentError("max_scrape_timeout: must be positive");
  }
  if (options.header_timeout <= absl::ZeroDuration()) {
    return absl::InvalidArgumentError("header_timeout: must be positive");
  }
  if (options.max_connections == 0 || options.max_connections_per_client == 0) {
    return absl::InvalidArgumentError(
        "max_connections, max_connections_per_client: must be positive");
  }
  if (options.tls_cert_pem.empty() != options.tls_key_pem.empty()) {
    return absl::InvalidArgumentError(
        "HTTP TLS needs both a certificate and its key");
  }
  if (!options.client_ca_pem.empty() && options.tls_cert_pem.empty()) {
    return absl::InvalidArgumentError("an HTTP client CA needs HTTP TLS");
  }
  std::shared_ptr<const TlsIdentity> identity;
  if (!options.tls_cert_pem.empty()) {
    absl::StatusOr<std::shared_ptr<const TlsIdentity>> parsed =
        TlsIdentity::Parse(options.tls_cert_pem, options.tls_key_pem,
                           options.client_ca_pem);
    if (!parsed.ok()) {
      return absl::InvalidArgumentError(
          absl::StrCat("cannot serve HTTPS on ", options.address, ": ",
                       parsed.status().message()));
    }
    identity = *std::move(parsed);
  }
  // One socket: libmicrohttpd takes one.
  absl::StatusOr<Listening> listener =
      ListenOn(host, port, /*every_address=*/false);
  if (!listener.ok()) {
    return absl::UnavailableError(
        absl::StrCat("cannot listen on ", options.address,
                     " for HTTP (address in use or not local?): ",
                     listener.status().message()));
  }
  absl::StatusOr<std::unique_ptr<HangupWatcher>> hangups =
      HangupWatcher::Create();
  if (!hangups.ok()) return hangups.status();

  std::unique_ptr<HttpServer> server(new HttpServer(
      std::move(options), engine, metrics, std::move(readiness)));
  // From now until Stop() (which removes it), a reload is checked too.  It
  // checks the modules once more, in case a reload came in between.
  if (absl::Status status =
          server->modules_->SetCheck([&engine](const BlackboxModules& modules) {
            return CheckModulesWithEngine(modules, engine);
          });
      !status.ok()) {
    return absl::InvalidArgumentError(
        absl::StrCat("--modules_file: ", status.message()));
  }
  server->hangups_ = *std::move(hangups);
  {
    absl::MutexLock lock(&server->tls_mu_);
    server->tls_ = std::move(identity);
  }
  server->port_ = listener->port;
  const std::string& address = server->options_.address;
  server->address_ =
      absl::StrCat(address.substr(0, address.rfind(':')), ":", server->port_);
  server->listen_fd_ = listener->fds.front().release();

  const HttpServerOptions& o = server->options_;
  const unsigned threads = static_cast<unsigned>(std::max(o.threads, 1));
  const unsigned inactivity = static_cast<unsigned>(
      std::max<int64_t>(1, absl::ToInt64Seconds(o.keep_alive_timeout)));
  MHD_AccessHandlerCallback on_request =
      [](void* cls, MHD_Connection* connection, const char* url,
         const char* method, const char*, const char*, size_t*,
         void** request_state) -> MHD_Result {
    return static_cast<MHD_Result>(
        OnRequest(cls, connection, url, method, request_state));
  };
  MHD_NotifyConnectionCallback on_connection =
      [](void* cls, MHD_Connection* connection, void** socket_context,
         MHD_ConnectionNotificationCode code) {
        *socket_context = cls;  // for RetrieveCertificate
        OnConnection(cls, connection, code == MHD_CONNECTION_NOTIFY_STARTED);
      };
  MHD_RequestCompletedCallback on_request_done =
      [](void* cls, MHD_Connection* connection, void** request_state,
         MHD_RequestTerminationCode) {
        OnRequestDone(cls, connection, request_state);
      };
  HttpServer* self = server.get();
  // TLS, when set, as an option array: each handshake asks
  // RetrieveCertificate for the identity of the moment.
  const bool tls = !o.tls_cert_pem.empty();
  std::vector<MHD_OptionItem> tls_options;
  if (tls) {
    tls_options.push_back({MHD_OPTION_HTTPS_CERT_CALLBACK, 0,
                           reinterpret_cast<void*>(&RetrieveCertificate)});
    if (!o.client_ca_pem.empty()) {
      // With a trust list, libmicrohttpd's handshakes ask for a client
      // certificate; Route() checks it against the client CA of the moment.
      // libmicrohttpd reads the PEM text (which options_ keeps) at start.
      tls_options.push_back({MHD_OPTION_HTTPS_MEM_TRUST, 0,
                             const_cast<char*>(o.client_ca_pem.c_str())});
    }
  }
  tls_options.push_back({MHD_OPTION_END, 0, nullptr});
  server->daemon_ = MHD_start_daemon(
      MHD_USE_INTERNAL_POLLING_THREAD | MHD_USE_EPOLL |
          MHD_ALLOW_SUSPEND_RESUME | (tls ? MHD_USE_TLS : 0),
      0, nullptr, nullptr, on_request, self,                     //
      MHD_OPTION_ARRAY, tls_options.data(),                      //
      MHD_OPTION_LISTEN_SOCKET, server->listen_fd_,              //
      MHD_OPTION_THREAD_POOL_SIZE, threads,                      //
      MHD_OPTION_CONNECTION_LIMIT, unsigned{o.max_connections},  //
      MHD_OPTION_PER_IP_CONNECTION_LIMIT,                        //
      unsigned{o.max_connections_per_client},                    //
      MHD_OPTION_CONNECTION_TIMEOUT, inactivity,                 //
      MHD_OPTION_NOTIFY_CONNECTION, on_connection, self,         //
      MHD_OPTION_NOTIFY_COMPLETED, on_request_done, self,        //
      MHD_OPTION_END);
  if (server->daemon_ == nullptr) {
    if (tls) {
      return absl::InvalidArgumentError(
          absl::StrCat("cannot serve HTTPS on ", server->address_,
                       ": the certificate, key or client CA is not usable"));
    }
    return absl::UnavailableError(absl::StrCat(
        "cannot serve HTTP on ", server->address_, ": libmicrohttpd refused"));
  }
  server->reaper_ = std::thread([self] { self->ReapSlowHeaders(); });
  return server;
}

HttpServer::HttpServer(HttpServerOptions options, Engine& engine,
                       ServerMetrics& metrics, ReadinessCheck readiness)
    : options_(std::move(options)),
      engine_(engine),
      metrics_(metrics),
      readiness_(std::move(readiness)),
      modules_(options_.module_store) {}

HttpServer::~HttpServer() {
  Stop();
  if (listen_fd_ >= 0) close(listen_fd_);
}

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
  {
    // Every /probe's batch has ended and resumed its connection before the
    // daemon (and the connections) go: a resume after that would touch a
    // freed connection.  Cancelled batches end promptly.
    absl::MutexLock lock(&mu_);
    const auto idle = [this]() ABSL_EXCLUSIVE_LOCKS_REQUIRED(mu_) {
      return active_requests_ == 0;
    };
    mu_.Await(absl::Condition(&idle));
  }
  if (daemon_ != nullptr) {
    // Quiesced first, so the daemon leaves the listening socket to us;
    // if that fails, stopping closes it.
    if (MHD_quiesce_daemon(daemon_) == MHD_INVALID_SOCKET) listen_fd_ = -1;
    MHD_stop_daemon(daemon_);
    daemon_ = nullptr;
  }
  if (reaper_.joinable()) {
    stop_reaper_.Notify();
    reaper_.join();
  }
  hangups_.reset();
  // The check refers to the engine, which may go once the server has; a
  // reload (SIGHUP) that comes later only parses.
  modules_->SetCheck(nullptr).IgnoreError();
}

HttpStats HttpServer::Stats() const {
  HttpStats stats;
  {
    absl::MutexLock lock(&mu_);
    stats.probe_requests_active = active_requests_;
    stats.pending_probes = pending_probes_;
    stats.scrapes_abandoned = scrapes_abandoned_;
  }
  absl::MutexLock lock(&conn_mu_);
  stats.connections = connections_.size();
  stats.header_timeouts = header_timeouts_;
  return stats;
}

void HttpServer::OnConnection(void* cls, MHD_Connection* connection,
                              bool opened) {
  auto* self = static_cast<HttpServer*>(cls);
  absl::MutexLock lock(&self->conn_mu_);
  if (opened) {
    self->connections_[connection] = {.fd = SocketOf(connection),
                                      .since = absl::Now(),
                                      .awaiting_headers = true};
  } else {
    self->connections_.erase(connection);
  }
}

void HttpServer::OnRequestDone(void* cls, MHD_Connection* connection,
                               void** request_state) {
  auto* self = static_cast<HttpServer*>(cls);
  // The request's state, handed to libmicrohttpd by Route(), comes back.
  std::unique_ptr<std::shared_ptr<ProbeRequest>> probe(
      static_cast<std::shared_ptr<ProbeRequest>*>(*request_state));
  *request_state = nullptr;
  absl::MutexLock lock(&self->conn_mu_);
  auto it = self->connections_.find(connection);
  if (it != self->connections_.end()) {
    // The next request's headers are due from now.
    it->second.since = absl::Now();
    it->second.awaiting_headers = true;
  }
}

void HttpServer::ReapSlowHeaders() {
  while (!stop_reaper_.WaitForNotificationWithTimeout(kReapInterval)) {
    const absl::Time late = absl::Now() - options_.header_timeout;
    absl::MutexLock lock(&conn_mu_);
    for (auto& [connection, state] : connections_) {
      if (!state.awaiting_headers || state.since > late || state.fd < 0) {
        continue;
      }
      // libmicrohttpd sees the end of the stream and closes the
      // connection itself.
      shutdown(state.fd, SHUT_RDWR);
      state.awaiting_headers = false;
      ++header_timeouts_;
    }
  }
}

int HttpServer::OnRequest(void* cls, MHD_Connection* connection,
                          const char* url, const char* method,
                          void** request_state) {
  auto* self = static_cast<HttpServer*>(cls);
  if (*request_state == nullptr) {
    return self->Route(connection, url, method, request_state);
  }
  // A /probe whose batch has ended: its connection was resumed.
  std::shared_ptr<ProbeRequest>& probe =
      *static_cast<std::shared_ptr<ProbeRequest>*>(*request_state);
  std::optional<Reply> reply = self->ProbeReply(*probe);
  // No reply: the client has gone; MHD_NO closes the connection.
  return reply.has_value() ? reply->Send(connection) : MHD_NO;
}

int HttpServer::Route(MHD_Connection* connection, absl::string_view path,
                      absl::string_view method, void** request_state) {
  {
    absl::MutexLock lock(&conn_mu_);
    auto it = connections_.find(connection);
    if (it != connections_.end()) it->second.awaiting_headers = false;
  }
  if (path == "/-/reload") {
    if (method != MHD_HTTP_METHOD_POST) {
      // blackbox_exporter's answer.
      const char* const kPostOnly = "This endpoint requires a POST request.\n";
      return Reply{.status = 405, .body = kPostOnly}.Send(connection);
    }
  } else if (method != MHD_HTTP_METHOD_GET && method != MHD_HTTP_METHOD_HEAD) {
    return Reply{.status = 405, .body = "only GET and HEAD\n"}.Send(connection);
  }
  if (!options_.client_ca_pem.empty() && path != "/healthz" &&
      path != "/readyz" &&
      !ClientCertificateVerified(connection, *CurrentTls())) {
    return Reject(absl::StatusCode::kPermissionDenied,
                  "a client certificate signed by --http_client_ca is needed")
        .Send(connection);
  }
  if (options_.authorize && path != "/healthz" && path != "/readyz") {
    const absl::Status status =
        options_.authorize(HeaderValue(connection, "Authorization"));
    if (!status.ok()) {
      Reply reply = Reject(status.code(), std::string(status.message()));
      reply.www_authenticate = R"(Bearer realm="fanprobe")";
      return reply.Send(connection);
    }
  }
  if (path == "/metrics") {
    return Reply{.content_type = kTextFormat, .body = metrics_.Render()}.Send(
        connection);
  }
  if (path == "/healthz") return Reply{.body = "ok\n"}.Send(connection);
  if (path == "/readyz") return HandleReady().Send(connection);
  if (path == "/-/reload") return HandleReload().Send(connection);
  if (path == "/") {
    return Reply{.body =
                     "fanprobe\n\n"
                     "/metrics   fanprobe's metrics (Prometheus text format)\n"
                     "/probe     ?target=URL[&target=URL...]&module=NAME"
                     "[&debug=true]: blackbox_exporter-compatible probe\n"
                     "/healthz   liveness\n"
                     "/readyz    readiness: serving and not saturated\n"
                     "/-/reload  POST: reload the modules file\n"}
        .Send(connection);
  }
  if (path != "/probe") {
    return Reply{.status = 404, .body = "not found\n"}.Send(connection);
  }

  auto probe = std::make_shared<ProbeRequest>();
  if (std::optional<Reply> refused = StartProbe(connection, probe)) {
    return refused->Send(connection);
  }
  {
    absl::MutexLock lock(&probe->mu);
    if (!probe->summary.has_value()) {
      // libmicrohttpd holds the request's state until OnRequestDone.
      *request_state = new std::shared_ptr<ProbeRequest>(probe);
      std::weak_ptr<Batch> batch = probe->batch;
      probe->watch =
          hangups_->Watch(SocketOf(connection), [this, batch, probe] {
            {
              absl::MutexLock lock(&probe->mu);
              probe->client_gone = true;
            }
            {
              absl::MutexLock lock(&mu_);
              ++scrapes_abandoned_;
            }
            if (std::shared_ptr<Batch> b = batch.lock()) b->Cancel();
          });
      probe->suspended = true;
      MHD_suspend_connection(connection);
      return MHD_YES;
    }
  }
  // The batch has ended already (within Submit, or since): answer now,
  // outside probe->mu, which ProbeReply takes.
  std::optional<Reply> reply = ProbeReply(*probe);
  return reply.has_value() ? reply->Send(connection) : MHD_NO;
}

HttpServer::Reply HttpServer::Reject(absl::StatusCode code,
                                     const std::string& message) {
  metrics_.RequestRejected(MetricsApi::kHttp, code);
  return {.status = HttpStatusFor(code), .body = absl::StrCat(message, "\n")};
}

HttpServer::Reply HttpServer::HandleReady() {
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
  if (ready.ok()) return {.body = "ready\n"};
  return {.status = 503,
          .body = absl::StrCat("not ready: ", ready.message(), "\n")};
}

HttpServer::Reply HttpServer::HandleReload() {
  absl::StatusOr<std::vector<std::string>> reloaded = modules_->Reload();
  if (!reloaded.ok()) {
    // blackbox_exporter's answer to a file it cannot load.
    return {.status = 500,
            .body = absl::StrCat("failed to reload config: ",
                                 reloaded.status().message(), "\n")};
  }
  std::string text = "reloaded\n";
  for (const std::string& warning : *reloaded) {
    absl::StrAppend(&text, "warning: ", warning, "\n");
  }
  return {.body = std::move(text)};
}

absl::Status HttpServer::ApplyRetryParameters(MHD_Connection* connection,
                                              ProbeOptions& options) const {
  if (const std::string attempts = QueryValue(connection, "attempts");
      !attempts.empty()) {
    int n = 0;
    if (!absl::SimpleAtoi(attempts, &n) || n < 1) {
      return absl::InvalidArgumentError(
          absl::StrCat("attempts: want a whole number, 1 or more, got \"",
                       absl::CHexEscape(attempts), "\""));
    }
    options.retry.max_attempts = n;
    // The module passed the engine's checks at load; only the attempts can
    // be more than this server allows.  Checked only when asked for, so a
    // plain /probe does not prepare its options an extra time.
    if (absl::Status status = engine_.CheckOptions(options); !status.ok()) {
      return absl::InvalidArgumentError(
          absl::StrCat("attempts: ", status.message()));
    }
  }
  if (const std::string backoff = QueryValue(connection, "retry_backoff");
      !backoff.empty()) {
    absl::Duration d;
    if (!absl::ParseDuration(backoff, &d) || d < absl::ZeroDuration() ||
        d == absl::InfiniteDuration()) {
      return absl::InvalidArgumentError(
          absl::StrCat("retry_backoff: want a duration such as 200ms, got \"",
                       absl::CHexEscape(backoff), "\""));
    }
    options.retry.initial_backoff = d;
  }
  return absl::OkStatus();
}

std::shared_ptr<const TlsIdentity> HttpServer::CurrentTls() const {
  absl::MutexLock lock(&tls_mu_);
  return tls_;
}

absl::Status HttpServer::ReloadTls(absl::string_view cert_pem,
                                   absl::string_view key_pem,
                                   absl::string_view client_ca_pem) {
  if (options_.tls_cert_pem.empty()) {
    return absl::FailedPreconditionError(
        "the HTTP side serves plain HTTP: TLS takes a restart");
  }
  if (client_ca_pem.empty() != options_.client_ca_pem.empty()) {
    return absl::FailedPreconditionError(
        "adding or dropping the HTTP client CA takes a restart");
  }
  absl::StatusOr<std::shared_ptr<const TlsIdentity>> identity =
      TlsIdentity::Parse(cert_pem, key_pem, client_ca_pem);
  if (!identity.ok()) return identity.status();
  absl::MutexLock lock(&tls_mu_);
  tls_replaced_.push_back(std::move(tls_));
  tls_ = *std::move(identity);
  return absl::OkStatus();
}

std::optional<HttpServer::Reply> HttpServer::StartProbe(
    MHD_Connection* connection, std::shared_ptr<ProbeRequest>& probe) {
  probe->connection = connection;
  probe->start = absl::Now();
  // Distinct targets, in the order given.
  {
    absl::flat_hash_set<std::string> seen;
    for (std::string& target : QueryValues(connection, "target")) {
      if (!target.empty() && seen.insert(target).second) {
        probe->targets.push_back(std::move(target));
      }
    }
  }
  const std::vector<std::string>& targets = probe->targets;
  if (targets.empty()) {
    return Reject(absl::StatusCode::kInvalidArgument,
                  "Target parameter is missing");
  }
  if (targets.size() > options_.max_targets_per_request) {
    return Reject(
        absl::StatusCode::kInvalidArgument,
        absl::StrCat("Too many targets: ", targets.size(), " (at most ",
                     options_.max_targets_per_request, ")"));
  }
  std::string module_name = QueryValue(connection, "module");
  if (module_name.empty()) module_name = std::string(kDefaultModuleName);
  probe->modules = modules_->Get();
  const auto module_it = probe->modules->find(module_name);
  if (module_it == probe->modules->end()) {
    return Reject(absl::StatusCode::kInvalidArgument,
                  absl::StrCat("Unknown module \"", module_name, "\""));
  }
  probe->module = &module_it->second;
  if (probe->module->prober != "http") {
    return Reject(
        absl::StatusCode::kInvalidArgument,
        absl::StrCat("Module \"", module_name, "\" uses prober \"",
                     probe->module->prober,
                     "\", which fanprobe does not support (http only)"));
  }
  absl::StatusOr<absl::Duration> timeout = ProbeTimeout(
      HeaderValue(connection, "X-Prometheus-Scrape-Timeout-Seconds"),
      probe->module->timeout, options_.timeout_offset,
      options_.max_scrape_timeout);
  if (!timeout.ok()) {
    return Reject(absl::StatusCode::kInvalidArgument,
                  absl::StrCat("Failed to parse timeout from Prometheus "
                               "header: ",
                               timeout.status().message()));
  }
  // The engine needs a positive timeout; a deadline already gone fails the
  // probes at once, as blackbox_exporter's expired context does.
  probe->probe_timeout = std::max(*timeout, absl::Milliseconds(1));
  probe->debug = QueryValue(connection, "debug") == "true";

  auto options = std::make_shared<ProbeOptions>(
      ModuleProbeOptions(*probe->module, engine_));
  options->timeout = probe->probe_timeout;
  if (absl::Status status = ApplyRetryParameters(connection, *options);
      !status.ok()) {
    return Reject(absl::StatusCode::kInvalidArgument,
                  std::string(status.message()));
  }
  // blackbox_exporter's hostname= sets the request's Host header, and the
  // TLS server name unless the module names one; a module whose own Host
  // header says otherwise is refused, as blackbox_exporter refuses it.  The
  // module passed the engine's checks at load; the header is this
  // request's, so it is checked here: a value that would inject a header
  // line is the client's mistake, a 400.
  if (const std::string hostname = QueryValue(connection, "hostname");
      !hostname.empty()) {
    for (const auto& [name, value] : options->headers) {
      if (absl::EqualsIgnoreCase(name, "Host") && value != hostname) {
        return Reject(absl::StatusCode::kInvalidArgument,
                      absl::StrCat("host header defined both in module "
                                   "configuration (",
                                   value,
                                   ") and with URL-parameter "
                                   "'hostname' (",
                                   hostname, ")"));
      }
    }
    std::erase_if(options->headers, [](const auto& header) {
      return absl::EqualsIgnoreCase(header.first, "Host");
    });
    options->headers.emplace_back("Host", hostname);
    if (options->tls_server_name.empty()) {
      options->tls_server_name = ServerNameOfHost(hostname);
    }
    if (absl::Status status = engine_.CheckOptions(*options); !status.ok()) {
      return Reject(absl::StatusCode::kInvalidArgument,
                    absl::StrCat("hostname: ", status.message()));
    }
  }

  const uint64_t probes = targets.size();
  {
    absl::MutexLock lock(&mu_);
    if (shutting_down_) {
      return Reject(absl::StatusCode::kUnavailable,
                    "fanprobe is shutting down; retry on another instance");
    }
    if (pending_probes_ + probes > options_.max_pending_probes) {
      return Reject(absl::StatusCode::kResourceExhausted,
                    absl::StrCat("Overloaded: ", pending_probes_,
                                 " /probe probes pending, ", probes,
                                 " more would exceed the limit of ",
                                 options_.max_pending_probes, "; retry later"));
    }
    if (probe->module->unsupported.empty()) {
      pending_probes_ += probes;
      ++active_requests_;
    }
  }

  if (!probe->module->unsupported.empty()) {
    // Probing without the option would answer a different question than
    // the module asks; a failed probe that says why is the honest answer.
    // Nothing is sent, so nothing is pending.
    modules_->CountUnsupported(*probe->module);
    const std::string why = absl::StrJoin(probe->module->unsupported, "; ");
    std::vector<ProbeReport> reports;
    reports.reserve(targets.size());
    for (const std::string& target : targets) {
      reports.push_back(ReportUnfinished(target, "UNSUPPORTED_OPTION", why,
                                         absl::Now() - probe->start));
    }
    MetricsWriter out;
    WriteProbeMetrics(reports, /*target_labels=*/targets.size() > 1, out);
    if (probe->debug) {
      return Reply{.body = ProbeDebugText(*probe->module, reports,
                                          probe->probe_timeout, out.text())};
    }
    return Reply{.content_type = kTextFormat, .body = out.Release()};
  }

  std::vector<ProbeTarget> probe_targets;
  probe_targets.reserve(targets.size());
  for (const std::string& target : targets) {
    probe_targets.push_back({.url = target, .options = options});
  }
  BatchOptions batch_options;
  batch_options.timeout = probe->probe_timeout + kBatchSlack;
  batch_options.max_concurrency = 0;  // every target at once, within the cap

  {
    absl::MutexLock lock(&probe->mu);
    probe->results.resize(targets.size());
  }
  std::shared_ptr<Batch> batch =
      engine_.Submit(std::move(probe_targets), batch_options,
                     {.on_start =
                          [this, probe](std::shared_ptr<Batch> batch) {
                            probe->batch = batch;
                            absl::MutexLock lock(&mu_);
                            batches_.insert(std::move(batch));
                          },
                      .on_result =
                          [probe](ProbeResult result) {
                            absl::MutexLock lock(&probe->mu);
                            const uint32_t index = result.index;
                            if (index < probe->results.size()) {
                              probe->results[index] = std::move(result);
                            }
                          },
                      .on_done =
                          [this, probe](BatchSummary summary) {
                            ProbeDone(probe, std::move(summary));
                          }});
  bool cancel;
  {
    absl::MutexLock lock(&mu_);
    cancel = cancel_all_;
  }
  if (cancel) batch->Cancel();
  return std::nullopt;
}

void HttpServer::ProbeDone(const std::shared_ptr<ProbeRequest>& probe,
                           BatchSummary summary) {
  {
    absl::MutexLock lock(&probe->mu);
    probe->summary = std::move(summary);
    if (probe->suspended) {
      // Unwatched first: once resumed, the connection (and its descriptor)
      // may go at any time.
      hangups_->Unwatch(probe->watch);
      probe->suspended = false;
      MHD_resume_connection(probe->connection);
    }
  }
  // Last: Stop() frees the connections once no request is active.
  absl::MutexLock lock(&mu_);
  batches_.erase(probe->batch);
  pending_probes_ -= probe->targets.size();
  --active_requests_;
}

std::optional<HttpServer::Reply> HttpServer::ProbeReply(ProbeRequest& probe) {
  std::vector<std::optional<ProbeResult>> results;
  BatchSummary summary;
  bool client_gone;
  {
    absl::MutexLock lock(&probe.mu);
    results = std::move(probe.results);
    summary = *probe.summary;
    client_gone = probe.client_gone;
  }
  if (summary.reason == EndReason::kCancelled) {
    if (client_gone) return std::nullopt;
    // Otherwise only shutdown cancels a /probe batch.  No metrics beat
    // wrong ones: a failed scrape leaves probe_success unset instead of 0.
    return Reject(absl::StatusCode::kUnavailable,
                  "fanprobe is shutting down; the probe was cancelled");
  }
  const std::vector<std::string>& targets = probe.targets;
  std::vector<ProbeReport> reports;
  reports.reserve(targets.size());
  for (size_t i = 0; i < targets.size(); ++i) {
    if (results[i].has_value()) {
      reports.push_back(ReportProbe(*probe.module, targets[i], *results[i]));
    } else {
      reports.push_back(ReportUnfinished(
          targets[i], "TIMEOUT",
          absl::StrCat("did not complete within the probe deadline of ",
                       absl::FormatDuration(probe.probe_timeout)),
          absl::Now() - probe.start));
    }
  }
  MetricsWriter out;
  WriteProbeMetrics(reports, /*target_labels=*/targets.size() > 1, out);
  if (probe.debug) {
    return Reply{.body = ProbeDebugText(*probe.module, reports,
                                        probe.probe_timeout, out.text())};
  }
  return Reply{.content_type = kTextFormat, .body = out.Release()};
}

}  // namespace fanprobe::monitoring
