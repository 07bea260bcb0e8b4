// auth.h: who may call fanprobe-server.  Builds the gRPC server credentials
// from SecurityOptions -- plaintext, TLS, or mutual TLS, with certificates
// re-read when their files change -- and checks bearer tokens, which the
// Prober service does before it validates a request (so no probe runs for a
// caller without a valid token), and which the HTTP side does for /metrics
// and /probe (CheckAuthorization).  Also names the client of a call, the key
// for per-client limits.
//
// Example (server/server.cc does this):
//   absl::StatusOr<std::shared_ptr<grpc::ServerCredentials>> credentials =
//       MakeServerCredentials(options.security);
//   if (!credentials.ok()) return credentials.status();  // bad file, ...
//   builder.AddListeningPort(address, *credentials, &port);
//   auto tokens = TokenAuthenticator::Create(path, interval);  // if wanted
//   service_options.authenticate = [tokens](const auto& context) {
//     return tokens->Check(context);
//   };
//
// Tokens: --auth_token_file holds one token per line (blank lines and '#'
// comments skipped), so a token can be rotated by listing the old and the new
// one for a while.  Clients send "authorization: Bearer <token>".  The file
// is re-read when it changes (checked at most once per reload_interval, on
// the call path); an unreadable or empty file keeps the tokens in use, and
// says so in the log (after the check has let go of its lock).
// Tokens are compared in constant time.  The check is the Prober service's,
// so grpc.health.v1.Health and reflection need no token: a kubelet or load
// balancer can check health without one.  (gRPC's AuthMetadataProcessor
// would run earlier, but gRPC aborts when one is set on plaintext
// credentials, and plaintext on loopback must keep working.)  Send tokens
// over TLS: on plaintext anyone on the path can read them.
//
// Thread-safety: MakeServerCredentials and ClientIdentity are plain
// functions; TokenAuthenticator may be called from any thread.

#ifndef FANPROBE_SERVER_AUTH_H_
#define FANPROBE_SERVER_AUTH_H_

#include <sys/stat.h>

#include <memory>
#include <string>
#include <vector>

#include "absl/base/thread_annotations.h"
#include "absl/status/statusor.h"
#include "absl/strings/string_view.h"
#include "absl/synchronization/mutex.h"
#include "absl/time/time.h"
#include "grpcpp/security/server_credentials.h"
#include "grpcpp/server_context.h"
#include "log/logger.h"

namespace fanprobe::server {

struct SecurityOptions {
  // PEM files of the server's certificate chain and private key
  // (--tls_cert, --tls_key).  Both empty: plaintext.  Both set: TLS.
  std::string tls_cert_file;
  std::string tls_key_file;
  // PEM file of the CAs whose client certificates are accepted
  // (--client_ca).  Set: mutual TLS, a client without a certificate signed
  // by one of them cannot connect.  Needs tls_cert_file.
  std::string client_ca_file;
  // How often the files above (and auth_token_file) are checked for
  // changes; a change takes effect for new connections (and, for tokens,
  // new calls) without a restart (--credentials_reload_interval).
  absl::Duration reload_interval = absl::Seconds(10);
  // A file of bearer tokens, one per line (--auth_token_file).  Empty: no
  // token needed.  Set: every Prober call needs one of them (the server
  // wires a TokenAuthenticator into the service).
  std::string auth_token_file;
  // The same for the HTTP side's /metrics and /probe
  // (--http_auth_token_file; "Authorization: Bearer <token>", as
  // Prometheus' scrape config sends with `authorization.credentials_file`).
  // /healthz and /readyz need none.  May name the same file.
  std::string http_auth_token_file;
  // The HTTP side's TLS: PEM files of its certificate chain and key
  // (--http_tls_cert, --http_tls_key; both empty: plain HTTP) and of the
  // CAs whose client certificates it accepts (--http_client_ca).  Re-read
  // every reload_interval; a change takes effect for new connections
  // (server/file_watcher.h).
  std::string http_tls_cert_file;
  std::string http_tls_key_file;
  std::string http_client_ca_file;
};

// The content of the file `flag` names; kInvalidArgument
// "--<flag>=<path>: cannot read the file" when it cannot be read.
absl::StatusOr<std::string> ReadFlagFile(absl::string_view flag,
                                         const std::string& path);

// The transport credentials `options` describe (tokens are not part of
// them).  kInvalidArgument, naming the flag, when a file is missing,
// unreadable or not what it should be (a certificate and key that do not
// match), or the combination makes no sense (a key without a certificate, a
// client CA without TLS).
absl::StatusOr<std::shared_ptr<grpc::ServerCredentials>> MakeServerCredentials(
    const SecurityOptions& options);

// The bearer-token check.
class TokenAuthenticator {
 public:
  // Reads the tokens; kInvalidArgument, naming `flag`, when the file cannot
  // be read or holds none.  A later re-read that fails is logged to `log`
  // (null: stderr) and the tokens in use stay.
  static absl::StatusOr<std::shared_ptr<TokenAuthenticator>> Create(
      std::string path, absl::Duration reload_interval,
      absl::string_view flag = "auth_token_file", log::Sink log = nullptr);

  // OK for a call with a valid "authorization: Bearer <token>";
  // kUnauthenticated otherwise.  Cheap: it compares, and stats the file at
  // most once per reload interval.
  absl::Status Check(const grpc::ServerContextBase& context)
      ABSL_LOCKS_EXCLUDED(mu_);

  // The same check on the value of an "Authorization" header (HTTP);
  // empty when there is none.
  absl::Status CheckAuthorization(absl::string_view authorization)
      ABSL_LOCKS_EXCLUDED(mu_);

 private:
  TokenAuthenticator(std::string path, absl::Duration reload_interval,
                     absl::string_view flag, log::Sink log)
      : path_(std::move(path)),
        reload_interval_(reload_interval),
        flag_(flag),
        logger_(std::move(log)) {}

  // Re-reads the file if it changed and the interval has passed.  Not OK:
  // the file changed but could not be used; the tokens in use stay, and the
  // caller logs the status once mu_ is released.
  absl::Status MaybeReload() ABSL_EXCLUSIVE_LOCKS_REQUIRED(mu_);

  // Constant after construction.
  const std::string path_;
  const absl::Duration reload_interval_;
  const std::string flag_;  // for messages
  const log::Logger logger_;

  // State below is protected by mu_.
  absl::Mutex mu_;
  std::vector<std::string> tokens_ ABSL_GUARDED_BY(mu_);
  struct timespec mtime_ ABSL_GUARDED_BY(mu_) = {};
  absl::Time next_check_ ABSL_GUARDED_BY(mu_) = absl::InfinitePast();
};

// Reads a token file: the tokens, one per line.  kInvalidArgument, naming
// `flag`, when it cannot be read or holds none.
absl::StatusOr<std::vector<std::string>> ReadTokenFile(const std::string& path,
                                                       absl::string_view flag);

// Whether `a` and `b` are equal, in a time that depends only on their
// lengths, not on where they differ.
bool ConstantTimeEquals(absl::string_view a, absl::string_view b);

// Who is calling, for per-client limits: "cert:<subject>" for a client
// certificate (mutual TLS), else "token:<fingerprint>" when tokens are
// checked (`tokens_checked`; an unchecked header would let a caller pick
// any identity), else "peer:<address without port>".
std::string ClientIdentity(const grpc::ServerContextBase& context,
                           bool tokens_checked);

}  // namespace fanprobe::server

#endif  // FANPROBE_SERVER_AUTH_H_
