// http_tls.h: the HTTP side's TLS material in GnuTLS's terms -- the
// certificate chain and key a handshake presents, and the client CAs a
// request's certificate is checked against -- parsed once per version of
// the files, so that HttpServer can swap in a renewed certificate for new
// handshakes without a restart (libmicrohttpd's certificate callback hands
// GnuTLS whatever identity is current).
//
// Example:
//   absl::StatusOr<std::shared_ptr<const TlsIdentity>> identity =
//       TlsIdentity::Parse(cert_pem, key_pem, client_ca_pem);
//   if (!identity.ok()) ... keep the one in use, log identity.status() ...
//   ... in the callback: *pcert = identity->chain(); ...
//   ... per request: identity->ClientVerified(session) ...
//
// Thread-safety: a TlsIdentity is immutable once parsed; share it.  GnuTLS
// only reads the chain and key it is handed.

#ifndef FANPROBE_MONITORING_HTTP_TLS_H_
#define FANPROBE_MONITORING_HTTP_TLS_H_

#include <gnutls/abstract.h>
#include <gnutls/gnutls.h>
#include <gnutls/x509.h>

#include <memory>
#include <vector>

#include "absl/status/statusor.h"
#include "absl/strings/string_view.h"

namespace fanprobe::monitoring {

class TlsIdentity {
 public:
  // kInvalidArgument saying what is wrong: no certificate in `cert_pem`, a
  // key that does not parse or does not belong to the first certificate,
  // no CA in a non-empty `client_ca_pem`.
  static absl::StatusOr<std::shared_ptr<const TlsIdentity>> Parse(
      absl::string_view cert_pem, absl::string_view key_pem,
      absl::string_view client_ca_pem);

  TlsIdentity(const TlsIdentity&) = delete;
  TlsIdentity& operator=(const TlsIdentity&) = delete;
  ~TlsIdentity();

  // What gnutls_certificate_retrieve_function2 returns: the chain, leaf
  // first, and its key.  Valid while this object lives.
  gnutls_pcert_st* chain() const { return chain_.data(); }
  unsigned int chain_length() const {
    return static_cast<unsigned int>(chain_.size());
  }
  gnutls_privkey_t key() const { return key_; }

  bool has_client_ca() const { return client_cas_ != nullptr; }
  // Whether the peer of `session` sent a certificate chain that one of the
  // client CAs signed and that is valid now.  False without client CAs.
  bool ClientVerified(gnutls_session_t session) const;

 private:
  TlsIdentity() = default;

  mutable std::vector<gnutls_pcert_st> chain_;
  gnutls_privkey_t key_ = nullptr;
  gnutls_x509_trust_list_t client_cas_ = nullptr;
};

}  // namespace fanprobe::monitoring

#endif  // FANPROBE_MONITORING_HTTP_TLS_H_
