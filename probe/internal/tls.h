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
// It also reads what a probe reports of the handshake (version, cipher,
// resumption, the certificate chain) from the live connection, instead of
// libcurl's CURLOPT_CERTINFO, which prints every certificate to text.
//
// Example:
//   std::shared_ptr<const TrustStore> trust = TrustStore::System();
//   curl_easy_setopt(easy, CURLOPT_CAINFO, nullptr);
//   curl_easy_setopt(easy, CURLOPT_CAPATH, nullptr);
//   curl_easy_setopt(easy, CURLOPT_SSL_CTX_FUNCTION, &InstallTrustStore);
//   curl_easy_setopt(easy, CURLOPT_SSL_CTX_DATA, trust.get());
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

// A CURLOPT_SSL_CTX_FUNCTION: installs the TrustStore passed as its data
// (CURLOPT_SSL_CTX_DATA) in the connection's SSL_CTX; null data means
// TrustStore::System().
CURLcode InstallTrustStore(CURL* easy, void* ssl_ctx, void* trust_store);

// The TLS details of `easy`'s connection, which must be up (call it from
// CURLOPT_PREREQFUNCTION or a header callback); nullopt for plain http.
std::optional<TlsInfo> ReadTlsInfo(CURL* easy);

}  // namespace fanprobe::internal

#endif  // FANPROBE_PROBE_INTERNAL_TLS_H_
