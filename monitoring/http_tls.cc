#include "monitoring/http_tls.h"

#include <algorithm>
#include <cstring>
#include <string>
#include <utility>

#include "absl/status/status.h"
#include "absl/strings/str_cat.h"

namespace fanprobe::monitoring {
namespace {

// The most certificates a chain (ours, or a client's) may hold.
constexpr unsigned int kMaxChain = 16;

gnutls_datum_t Datum(absl::string_view text) {
  return {reinterpret_cast<unsigned char*>(const_cast<char*>(text.data())),
          static_cast<unsigned int>(text.size())};
}

absl::Status Invalid(absl::string_view what, int code) {
  return absl::InvalidArgumentError(
      absl::StrCat(what, ": ", gnutls_strerror(code)));
}

// The SHA-1 key id of `key`; empty when it has none.
std::string KeyId(gnutls_pubkey_t key) {
  unsigned char id[64];
  size_t size = sizeof(id);
  if (gnutls_pubkey_get_key_id(key, 0, id, &size) < 0) return "";
  return std::string(reinterpret_cast<const char*>(id), size);
}

}  // namespace

absl::StatusOr<std::shared_ptr<const TlsIdentity>> TlsIdentity::Parse(
    absl::string_view cert_pem, absl::string_view key_pem,
    absl::string_view client_ca_pem) {
  std::shared_ptr<TlsIdentity> identity(new TlsIdentity());
  std::vector<gnutls_pcert_st> chain(kMaxChain);
  unsigned int count = kMaxChain;
  const gnutls_datum_t cert = Datum(cert_pem);
  int code = gnutls_pcert_list_import_x509_raw(chain.data(), &count, &cert,
                                               GNUTLS_X509_FMT_PEM, 0);
  if (code == GNUTLS_E_SHORT_MEMORY_BUFFER) {
    return absl::InvalidArgumentError(absl::StrCat(
        "the certificate chain: more than ", kMaxChain, " certificates"));
  }
  if (code < 0) return Invalid("the certificate chain", code);
  if (count == 0) {
    return absl::InvalidArgumentError("the certificate chain: no certificate");
  }
  chain.resize(count);
  identity->chain_ = std::move(chain);

  if ((code = gnutls_privkey_init(&identity->key_)) < 0) {
    return Invalid("the key", code);
  }
  const gnutls_datum_t key = Datum(key_pem);
  if ((code = gnutls_privkey_import_x509_raw(
           identity->key_, &key, GNUTLS_X509_FMT_PEM, nullptr, 0)) < 0) {
    return Invalid("the key", code);
  }
  gnutls_pubkey_t public_key = nullptr;
  std::string key_id;
  if (gnutls_pubkey_init(&public_key) >= 0) {
    if (gnutls_pubkey_import_privkey(public_key, identity->key_, 0, 0) >= 0) {
      key_id = KeyId(public_key);
    }
    gnutls_pubkey_deinit(public_key);
  }
  if (key_id.empty() || key_id != KeyId(identity->chain_[0].pubkey)) {
    return absl::InvalidArgumentError(
        "the key does not belong to the chain's first certificate");
  }

  if (!client_ca_pem.empty()) {
    if ((code = gnutls_x509_trust_list_init(&identity->client_cas_, 0)) < 0) {
      return Invalid("the client CA", code);
    }
    const gnutls_datum_t cas = Datum(client_ca_pem);
    code = gnutls_x509_trust_list_add_trust_mem(
        identity->client_cas_, &cas, nullptr, GNUTLS_X509_FMT_PEM, 0, 0);
    if (code < 0) return Invalid("the client CA", code);
    if (code == 0) {
      return absl::InvalidArgumentError("the client CA: no certificate");
    }
  }
  return identity;
}

TlsIdentity::~TlsIdentity() {
  for (gnutls_pcert_st& cert : chain_) gnutls_pcert_deinit(&cert);
  if (key_ != nullptr) gnutls_privkey_deinit(key_);
  if (client_cas_ != nullptr) gnutls_x509_trust_list_deinit(client_cas_, 1);
}

bool TlsIdentity::ClientVerified(gnutls_session_t session) const {
  if (client_cas_ == nullptr) return false;
  unsigned int count = 0;
  const gnutls_datum_t* peers = gnutls_certificate_get_peers(session, &count);
  if (peers == nullptr || count == 0) return false;
  count = std::min(count, kMaxChain);
  std::vector<gnutls_x509_crt_t> certs;
  bool parsed = true;
  for (unsigned int i = 0; i < count && parsed; ++i) {
    gnutls_x509_crt_t cert = nullptr;
    if (gnutls_x509_crt_init(&cert) < 0) break;
    certs.push_back(cert);
    parsed = gnutls_x509_crt_import(cert, &peers[i], GNUTLS_X509_FMT_DER) >= 0;
  }
  unsigned int problems = 1;
  if (parsed && certs.size() == count) {
    // Signed by a client CA, and valid now (the time is checked too).
    if (gnutls_x509_trust_list_verify_crt(client_cas_, certs.data(), count, 0,
                                          &problems, nullptr) < 0) {
      problems = 1;
    }
  }
  for (gnutls_x509_crt_t cert : certs) gnutls_x509_crt_deinit(cert);
  return problems == 0;
}

}  // namespace fanprobe::monitoring
