// tls.h: what the engine does to libcurl's OpenSSL connections.  Internal
// to probe/.
//
// libcurl 7.88 builds a new SSL_CTX for every connection and, with Debian's
// default CA file and CA path, parses the whole CA bundle into it each time
// (its store cache only applies without a CA path), plus the probe's own CA
// PEM when it has one.  A probe spent more on that than on the handshake.
// Instead the engine tells libcurl to load no CAs at all and installs a
// store it parsed once (CURLOPT_SSL_CTX_FUNCTION): the system's, or one per
// distinct CA PEM, shared by reference.
//
// A client certificate is installed the same way, parsed once per options.
//
// It also reads what a probe reports of the handshake (version, cipher,
// resumption, the certificate chain) from the live connection, instead of
// libcurl's CURLOPT_CERTINFO, which prints every certificate to text.
//
// Example:
//   std::shared_ptr<const TrustStore> trust = TrustStore::System();
//   curl_easy_setopt(easy, CURLOPT_CAINFO, nullptr);
//   curl_easy_setopt(easy, CURLOPT_CAPATH, nullptr);
//   SslContextSetup setup{.trust = trust.get()};
//   curl_easy_setopt(easy, CURLOPT_SSL_CTX_FUNCTION, &SetUpSslContext);
//   curl_easy_setopt(easy, CURLOPT_SSL_CTX_DATA, &setup);
//   ... once connected (CURLOPT_PREREQFUNCTION): ReadTlsInfo(easy)
//
// Thread-safety: a TrustStore is immutable once built and may be shared by
// every worker (OpenSSL locks its stores).  The functions may be called from
// any thread on handles that thread owns.

#ifndef FANPROBE_PROBE_INTERNAL_TLS_H_
#define FANPROBE_PROBE_INTERNAL_TLS_H_

#include <curl/curl.h>

#include <memory>
#include <optional>

#include "absl/status/statusor.h"
#include "absl/strings/string_view.h"
#include "probe/probe.h"

typedef struct x509_store_st X509_STORE;
typedef struct x509_st X509;
typedef struct evp_pkey_st EVP_PKEY;
typedef struct ssl_ctx_st SSL_CTX;
struct stack_st_X509;

namespace fanprobe::internal {

class TrustStore {
 public:
  // The CAs libcurl would use (its built-in CA file and path: Debian's
  // /etc/ssl/certs), parsed on first use.  Never null.
  static std::shared_ptr<const TrustStore> System();
  // Exactly the certificates of `pem` (one or more), as curl --cacert and
  // blackbox_exporter's ca_file trust them.  The same PEM text yields the
  // same store while anyone holds it.  kInvalidArgument when no certificate
  // in it parses.
  static absl::StatusOr<std::shared_ptr<const TrustStore>> FromPem(
      absl::string_view pem);

  ~TrustStore();
  TrustStore(const TrustStore&) = delete;
  TrustStore& operator=(const TrustStore&) = delete;

  X509_STORE* get() const { return store_; }

 private:
  explicit TrustStore(X509_STORE* store) : store_(store) {}
  X509_STORE* const store_;
};

// A client certificate (with any intermediates) and its private key,
// parsed once per probe options and installed in each connection's SSL_CTX,
// instead of libcurl parsing PEM per connection.
class ClientIdentity {
 public:
  // kInvalidArgument naming the part ("cert_pem: ...", "key_pem: ...") when
  // one does not parse, the key is encrypted, or the two do not match.  The
  // messages never quote the PEM.
  static absl::StatusOr<std::shared_ptr<const ClientIdentity>> FromPem(
      absl::string_view cert_pem, absl::string_view key_pem);

  ~ClientIdentity();
  ClientIdentity(const ClientIdentity&) = delete;
  ClientIdentity& operator=(const ClientIdentity&) = delete;

  // Makes `ssl_ctx` present this identity; false if OpenSSL refused.
  bool InstallIn(SSL_CTX* ssl_ctx) const;

 private:
  ClientIdentity(X509* cert, stack_st_X509* chain, EVP_PKEY* key)
      : cert_(cert), chain_(chain), key_(key) {}
  X509* const cert_;
  stack_st_X509* const chain_;  // the intermediates; may be empty
  EVP_PKEY* const key_;
};

// What each TLS connection of a probe gets, passed as CURLOPT_SSL_CTX_DATA
// to SetUpSslContext.  The pointees outlive the handle.
struct SslContextSetup {
  bool verify = true;                        // install `trust`
  const TrustStore* trust = nullptr;         // null: TrustStore::System()
  const ClientIdentity* identity = nullptr;  // null: no client certificate
};

// A CURLOPT_SSL_CTX_FUNCTION: sets the connection's SSL_CTX up as the
// SslContextSetup passed as its data says.
CURLcode SetUpSslContext(CURL* easy, void* ssl_ctx, void* setup);

// The TLS details of `easy`'s connection, which must be up (call it from
// CURLOPT_PREREQFUNCTION or a header callback); nullopt for plain http.
std::optional<TlsInfo> ReadTlsInfo(CURL* easy);

}  // namespace fanprobe::internal

#endif  // FANPROBE_PROBE_INTERNAL_TLS_H_
