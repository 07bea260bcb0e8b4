#include "tests/support/tls_target_server.h"

#include <arpa/inet.h>
#include <netinet/in.h>
#include <openssl/bio.h>
#include <openssl/err.h>
#include <openssl/pem.h>
#include <openssl/ssl.h>
#include <openssl/x509.h>
#include <poll.h>
#include <signal.h>
#include <sys/eventfd.h>
#include <sys/socket.h>
#include <unistd.h>

#include <atomic>
#include <cerrno>
#include <cstdint>
#include <cstdio>
#include <cstdlib>
#include <cstring>
#include <list>
#include <optional>
#include <thread>
#include <utility>

#include "absl/strings/str_cat.h"
#include "absl/synchronization/notification.h"
#include "httplib.h"
#include "tests/support/httplib_target.h"

namespace fanprobe::testing {
namespace {

// Test support has no error path worth recovering from: a certificate that
// does not load or a loopback socket that cannot be made means the test or
// the machine is broken.
[[noreturn]] void Die(absl::string_view what) {
  std::fprintf(stderr, "tls_target_server: %.*s (errno: %s)\n",
               static_cast<int>(what.size()), what.data(),
               std::strerror(errno));
  ERR_print_errors_fp(stderr);
  std::abort();
}

struct BioDeleter {
  void operator()(BIO* bio) const { BIO_free(bio); }
};
struct KeyDeleter {
  void operator()(EVP_PKEY* key) const { EVP_PKEY_free(key); }
};
struct X509Deleter {
  void operator()(X509* x509) const { X509_free(x509); }
};
using BioPtr = std::unique_ptr<BIO, BioDeleter>;
using KeyPtr = std::unique_ptr<EVP_PKEY, KeyDeleter>;
using X509Ptr = std::unique_ptr<X509, X509Deleter>;

BioPtr MemoryBio(const std::string& pem) {
  BioPtr bio(BIO_new_mem_buf(pem.data(), static_cast<int>(pem.size())));
  if (bio == nullptr) Die("BIO_new_mem_buf");
  return bio;
}

int OpenSslVersion(TlsVersion version) {
  return version == TlsVersion::kTls12 ? TLS1_2_VERSION : TLS1_3_VERSION;
}

// Per-connection marks in the SSL's ex_data, so that callbacks OpenSSL may
// call more than once per connection count it once: TLS 1.3 servers report
// SSL_CB_HANDSHAKE_DONE again after post-handshake messages (the session
// tickets) on some OpenSSL versions, and a HelloRetryRequest makes a second
// ClientHello.  Marks die with the SSL, so a later SSL at the same address
// starts clean.
enum Mark : uintptr_t {
  kHandshakeCounted = 1,
  kServerNameRecorded = 2,
};

int MarkIndex() {
  static const int index =
      SSL_get_ex_new_index(0, nullptr, nullptr, nullptr, nullptr);
  return index;
}

// Sets `mark` on `ssl`; returns whether it was already set.  The info
// callback gets a const SSL, but ex_data is the connection's own scratch
// space, not state OpenSSL reads.
bool TestAndSetMark(const SSL* ssl, Mark mark) {
  const uintptr_t marks =
      reinterpret_cast<uintptr_t>(SSL_get_ex_data(ssl, MarkIndex()));
  if ((marks & mark) != 0) return true;
  SSL_set_ex_data(const_cast<SSL*>(ssl), MarkIndex(),
                  reinterpret_cast<void*>(marks | mark));
  return false;
}

// httplib's thread pool, counting each connection the listen loop hands it
// (accepted) and each it is done with (closed): httplib offers no other
// hook that sees a connection before its handshake.
class CountingQueue : public httplib::TaskQueue {
 public:
  CountingQueue(size_t threads, std::function<void()> on_accepted,
                std::function<void()> on_closed)
      : pool_(threads),
        on_accepted_(std::move(on_accepted)),
        on_closed_(std::move(on_closed)) {}

  void enqueue(std::function<void()> fn) override {
    on_accepted_();
    pool_.enqueue([this, fn = std::move(fn)] {
      fn();
      on_closed_();
    });
  }
  void shutdown() override { pool_.shutdown(); }

 private:
  httplib::ThreadPool pool_;
  const std::function<void()> on_accepted_;
  const std::function<void()> on_closed_;
};

// A file descriptor, closed with its owner.
class Fd {
 public:
  explicit Fd(int fd) : fd_(fd) {}
  Fd(Fd&& other) : fd_(std::exchange(other.fd_, -1)) {}
  Fd& operator=(Fd&&) = delete;
  ~Fd() {
    if (fd_ >= 0) ::close(fd_);
  }
  int get() const { return fd_; }

 private:
  int fd_;
};

// Constant after construction: the parsed identity.
struct Identity {
  KeyPtr key;
  std::vector<X509Ptr> chain;  // the leaf first
};

Identity ParseIdentity(const KeyAndCert& identity) {
  Identity parsed;
  BioPtr key_bio = MemoryBio(identity.key_pem);
  parsed.key.reset(
      PEM_read_bio_PrivateKey(key_bio.get(), nullptr, nullptr, nullptr));
  if (parsed.key == nullptr) Die("reading the private key");
  BioPtr cert_bio = MemoryBio(identity.cert_pem);
  while (X509* cert =
             PEM_read_bio_X509(cert_bio.get(), nullptr, nullptr, nullptr)) {
    parsed.chain.emplace_back(cert);
  }
  ERR_clear_error();  // the end of the PEM text reads as an error
  if (parsed.chain.empty()) Die("reading the certificate");
  return parsed;
}

}  // namespace

// ---------------------------------------------------------------------------
// The HTTPS listener: cpp-httplib's SSLServer, with the SSL_CTX set up here.

class TlsTargetServer::Listener {
 public:
  Listener(TlsTargetServer* owner, const KeyAndCert& identity,
           const TlsTargetOptions& options)
      : owner_(owner), identity_(ParseIdentity(identity)) {
    // httplib 0.11's callback constructor makes a bare TLS_method() context
    // and sets nothing on it (no options, no minimum version): everything
    // the server does is decided in SetUp.
    server_.emplace(
        [this, &options](SSL_CTX& ctx) { return SetUp(ctx, options); });
    if (!server_->is_valid()) Die("setting up the SSL_CTX");
    server_->new_task_queue = [this, threads = options.threads] {
      return new CountingQueue(
          static_cast<size_t>(threads), [this] { Accepted(); },
          [this] { Closed(); });
    };
    // As TargetServer's HTTP listener: bounded, so that stopping never
    // waits long on a connection a client holds idle.  The read timeout
    // also bounds each wait within a handshake.
    server_->set_keep_alive_timeout(1);
    server_->set_keep_alive_max_count(1000);
    server_->set_read_timeout(2);
    server_->set_write_timeout(2);
    AddTargetRoutes(*server_, stopping_,
                    [this](const httplib::Request& req, httplib::Response& res,
                           const RouteHandler& handler) {
                      handler(req, res);
                      Answered(req.path);
                    });
    runner_.emplace(*server_);
  }

  ~Listener() {
    stopping_.Notify();  // ends every /delay
    runner_.reset();     // stops the server, joins its pool
  }

  int port() const { return runner_->port(); }

 private:
  bool SetUp(SSL_CTX& ctx, const TlsTargetOptions& options) {
    if (SSL_CTX_set_min_proto_version(
            &ctx, OpenSslVersion(options.min_version)) != 1 ||
        SSL_CTX_set_max_proto_version(
            &ctx, OpenSslVersion(options.max_version)) != 1) {
      return false;
    }
    SSL_CTX_set_options(&ctx, SSL_OP_NO_COMPRESSION | SSL_OP_NO_RENEGOTIATION);
    if (SSL_CTX_use_certificate(&ctx, identity_.chain.front().get()) != 1) {
      return false;
    }
    for (size_t i = 1; i < identity_.chain.size(); ++i) {
      if (SSL_CTX_add1_chain_cert(&ctx, identity_.chain[i].get()) != 1) {
        return false;
      }
    }
    if (SSL_CTX_use_PrivateKey(&ctx, identity_.key.get()) != 1 ||
        SSL_CTX_check_private_key(&ctx) != 1) {
      return false;
    }
    if (options.allow_resumption) {
      // TLS 1.3 resumes from tickets, TLS 1.2 from tickets or the cache.
      static constexpr unsigned char kContext[] = "fanprobe-tls-target";
      SSL_CTX_set_session_cache_mode(&ctx, SSL_SESS_CACHE_SERVER);
      SSL_CTX_set_session_id_context(&ctx, kContext, sizeof(kContext) - 1);
    } else {
      // No ticket of either kind (TLS 1.3 would otherwise send stateful
      // ones under SSL_OP_NO_TICKET) and no cache to look a session up in.
      SSL_CTX_set_options(&ctx, SSL_OP_NO_TICKET);
      SSL_CTX_set_session_cache_mode(&ctx, SSL_SESS_CACHE_OFF);
      SSL_CTX_set_num_tickets(&ctx, 0);
    }
    if (!options.client_ca_pem.empty()) {
      X509_STORE* store = SSL_CTX_get_cert_store(&ctx);
      BioPtr bio = MemoryBio(options.client_ca_pem);
      int added = 0;
      while (X509* ca =
                 PEM_read_bio_X509(bio.get(), nullptr, nullptr, nullptr)) {
        if (X509_STORE_add_cert(store, ca) == 1) ++added;
        X509_free(ca);
      }
      ERR_clear_error();  // the end of the PEM text reads as an error
      if (added == 0) return false;
      SSL_CTX_set_verify(
          &ctx, SSL_VERIFY_PEER | SSL_VERIFY_FAIL_IF_NO_PEER_CERT, nullptr);
    }
    SSL_CTX_set_app_data(&ctx, this);
    SSL_CTX_set_info_callback(&ctx, &Listener::OnInfo);
    SSL_CTX_set_tlsext_servername_callback(&ctx, &Listener::OnServerName);
    SSL_CTX_set_tlsext_servername_arg(&ctx, this);
    return true;
  }

  static void OnInfo(const SSL* ssl, int where, int ret) {
    auto* self =
        static_cast<Listener*>(SSL_CTX_get_app_data(SSL_get_SSL_CTX(ssl)));
    if ((where & SSL_CB_HANDSHAKE_DONE) != 0 &&
        !TestAndSetMark(ssl, kHandshakeCounted)) {
      self->HandshakeDone(SSL_session_reused(ssl) == 1, SSL_get_version(ssl),
                          PeerSubject(ssl));
    }
    if ((where & SSL_CB_READ_ALERT) == SSL_CB_READ_ALERT &&
        (ret >> 8) == SSL3_AL_FATAL) {
      self->AlertReceived(SSL_alert_desc_string_long(ret));
    }
  }

  // Called for every ClientHello, with or without SNI.
  static int OnServerName(SSL* ssl, int* alert, void* arg) {
    if (!TestAndSetMark(ssl, kServerNameRecorded)) {
      const char* name = SSL_get_servername(ssl, TLSEXT_NAMETYPE_host_name);
      static_cast<Listener*>(arg)->ServerName(name != nullptr ? name : "");
    }
    return SSL_TLSEXT_ERR_OK;
  }

  void Accepted() {
    absl::MutexLock lock(&owner_->mu_);
    ++owner_->stats_.connections;
  }
  void Closed() {
    absl::MutexLock lock(&owner_->mu_);
    ++owner_->stats_.connections_closed;
  }
  // The subject of the client's certificate; empty when it sent none.
  static std::optional<std::string> PeerSubject(const SSL* ssl) {
    X509* peer = SSL_get0_peer_certificate(ssl);
    if (peer == nullptr) return std::nullopt;
    BioPtr bio(BIO_new(BIO_s_mem()));
    X509_NAME_print_ex(bio.get(), X509_get_subject_name(peer), 0,
                       XN_FLAG_RFC2253);
    char* data = nullptr;
    const long length = BIO_get_mem_data(bio.get(), &data);
    return std::string(data, length > 0 ? static_cast<size_t>(length) : 0);
  }

  void HandshakeDone(bool resumed, const char* protocol,
                     std::optional<std::string> client_subject) {
    absl::MutexLock lock(&owner_->mu_);
    ++owner_->stats_.handshakes;
    if (resumed) ++owner_->stats_.resumed_handshakes;
    owner_->stats_.last_protocol = protocol;
    if (client_subject.has_value()) {
      owner_->stats_.client_subjects.push_back(*std::move(client_subject));
    }
  }
  void AlertReceived(const char* description) {
    absl::MutexLock lock(&owner_->mu_);
    owner_->stats_.alerts_received.emplace_back(description);
  }
  void ServerName(const char* name) {
    absl::MutexLock lock(&owner_->mu_);
    owner_->stats_.server_names.emplace_back(name);
  }
  void Answered(const std::string& path) {
    absl::MutexLock lock(&owner_->mu_);
    ++owner_->stats_.requests;
    ++owner_->stats_.requests_by_path[path];
  }

  TlsTargetServer* const owner_;
  const Identity identity_;
  absl::Notification stopping_;
  std::optional<httplib::SSLServer> server_;
  std::optional<HttplibRunner> runner_;
};

TlsTargetServer::TlsTargetServer(const TestCa& ca, TlsTargetOptions options)
    : TlsTargetServer(ca.Issue("localhost", {.server = true}), options) {}

TlsTargetServer::TlsTargetServer(KeyAndCert identity, TlsTargetOptions options)
    : identity_(std::move(identity)) {
  ::signal(SIGPIPE, SIG_IGN);
  listener_ = std::make_unique<Listener>(this, identity_, options);
  port_ = listener_->port();
}

TlsTargetServer::~TlsTargetServer() { listener_.reset(); }

std::string TlsTargetServer::url(absl::string_view path) const {
  return url("127.0.0.1", path);
}

std::string TlsTargetServer::url(absl::string_view host,
                                 absl::string_view path) const {
  return absl::StrCat("https://", host, ":", port_, path);
}

TlsTargetStats TlsTargetServer::Stats() const {
  absl::MutexLock lock(&mu_);
  return stats_;
}

bool TlsTargetServer::WaitFor(
    const std::function<bool(const TlsTargetStats&)>& condition,
    absl::Duration timeout) const {
  absl::MutexLock lock(&mu_);
  auto holds = [this, &condition]() {
    mu_.AssertReaderHeld();
    return condition(stats_);
  };
  return mu_.AwaitWithTimeout(absl::Condition(&holds), timeout);
}

// ---------------------------------------------------------------------------
// The stall port: one thread, poll(), connections read and never answered.

class TlsStallPort::Loop {
 public:
  explicit Loop(TlsStallPort* owner)
      : owner_(owner),
        listen_fd_(
            ::socket(AF_INET, SOCK_STREAM | SOCK_NONBLOCK | SOCK_CLOEXEC, 0)),
        wake_fd_(::eventfd(0, EFD_NONBLOCK | EFD_CLOEXEC)) {
    if (listen_fd_.get() < 0 || wake_fd_.get() < 0) Die("socket/eventfd");
    sockaddr_in addr{};
    addr.sin_family = AF_INET;
    addr.sin_addr.s_addr = htonl(INADDR_LOOPBACK);
    socklen_t len = sizeof(addr);
    if (::bind(listen_fd_.get(), reinterpret_cast<sockaddr*>(&addr), len) !=
            0 ||
        ::listen(listen_fd_.get(), SOMAXCONN) != 0 ||
        ::getsockname(listen_fd_.get(), reinterpret_cast<sockaddr*>(&addr),
                      &len) != 0) {
      Die("bind/listen 127.0.0.1:0");
    }
    port_ = ntohs(addr.sin_port);
    thread_ = std::thread([this] { Run(); });
  }

  ~Loop() {
    stopping_.store(true);
    uint64_t one = 1;
    if (::write(wake_fd_.get(), &one, sizeof(one)) < 0) Die("eventfd write");
    thread_.join();
    // Connections still open close here, as the server's, not the client's.
    absl::MutexLock lock(&owner_->mu_);
    owner_->stats_.open_connections -= static_cast<int>(connections_.size());
    connections_.clear();
  }

  int port() const { return port_; }

 private:
  void Run() {
    std::vector<pollfd> fds;
    while (!stopping_.load()) {
      fds.clear();
      fds.push_back({wake_fd_.get(), POLLIN, 0});
      fds.push_back({listen_fd_.get(), POLLIN, 0});
      for (const Fd& fd : connections_) {
        fds.push_back({fd.get(), POLLIN | POLLRDHUP, 0});
      }
      if (::poll(fds.data(), fds.size(), -1) < 0) {
        if (errno == EINTR) continue;
        Die("poll");
      }
      for (size_t i = 2; i < fds.size(); ++i) {
        if (fds[i].revents != 0) Drain(fds[i].fd);
      }
      if ((fds[1].revents & POLLIN) != 0) Accept();
    }
  }

  void Accept() {
    for (;;) {
      const int fd = ::accept4(listen_fd_.get(), nullptr, nullptr,
                               SOCK_NONBLOCK | SOCK_CLOEXEC);
      if (fd < 0) {
        if (errno == EINTR || errno == ECONNABORTED) continue;
        if (errno == EAGAIN || errno == EWOULDBLOCK) return;
        Die("accept4");
      }
      connections_.emplace_back(fd);
      absl::MutexLock lock(&owner_->mu_);
      ++owner_->stats_.connections;
      ++owner_->stats_.open_connections;
    }
  }

  // Reads and drops what `fd` sent; closes it on the client's EOF or reset.
  void Drain(int fd) {
    char buf[4096];
    int64_t received = 0;
    bool closed = false;
    for (;;) {
      const ssize_t n = ::recv(fd, buf, sizeof(buf), 0);
      if (n > 0) {
        received += n;
        continue;
      }
      if (n < 0 && errno == EINTR) continue;
      closed = !(n < 0 && (errno == EAGAIN || errno == EWOULDBLOCK));
      break;
    }
    if (closed) {
      connections_.remove_if([fd](const Fd& c) { return c.get() == fd; });
    }
    absl::MutexLock lock(&owner_->mu_);
    owner_->stats_.bytes_received += received;
    if (closed) {
      ++owner_->stats_.closed_by_client;
      --owner_->stats_.open_connections;
    }
  }

  TlsStallPort* const owner_;
  const Fd listen_fd_;
  const Fd wake_fd_;
  int port_ = 0;
  std::atomic<bool> stopping_{false};
  // Only the loop's thread touches this (and the destructor, after joining
  // it).
  std::list<Fd> connections_;
  std::thread thread_;
};

TlsStallPort::TlsStallPort() {
  loop_ = std::make_unique<Loop>(this);
  port_ = loop_->port();
}

TlsStallPort::~TlsStallPort() { loop_.reset(); }

std::string TlsStallPort::url(absl::string_view path) const {
  return absl::StrCat("https://127.0.0.1:", port_, path);
}

StallStats TlsStallPort::Stats() const {
  absl::MutexLock lock(&mu_);
  return stats_;
}

bool TlsStallPort::WaitFor(
    const std::function<bool(const StallStats&)>& condition,
    absl::Duration timeout) const {
  absl::MutexLock lock(&mu_);
  auto holds = [this, &condition]() {
    mu_.AssertReaderHeld();
    return condition(stats_);
  };
  return mu_.AwaitWithTimeout(absl::Condition(&holds), timeout);
}

}  // namespace fanprobe::testing
