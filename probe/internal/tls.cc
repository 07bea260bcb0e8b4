#include "probe/internal/tls.h"

#include <openssl/bio.h>
#include <openssl/bn.h>
#include <openssl/err.h>
#include <openssl/evp.h>
#include <openssl/pem.h>
#include <openssl/ssl.h>
#include <openssl/x509.h>
#include <openssl/x509_vfy.h>
#include <openssl/x509v3.h>
#include <time.h>

#include <string>
#include <utility>

#include "absl/container/flat_hash_map.h"
#include "absl/status/status.h"
#include "absl/strings/ascii.h"
#include "absl/strings/escaping.h"
#include "absl/strings/str_cat.h"
#include "absl/synchronization/mutex.h"

namespace fanprobe::internal {
namespace {

// As libcurl sets its own stores up: prefer chains through the trust store
// (servers still send legacy intermediates), and let an intermediate in the
// store anchor a chain.
void SetVerifyFlags(X509_STORE* store) {
  X509_STORE_set_flags(store,
                       X509_V_FLAG_TRUSTED_FIRST | X509_V_FLAG_PARTIAL_CHAIN);
}

std::string NameText(const X509_NAME* name) {
  BIO* bio = BIO_new(BIO_s_mem());
  if (bio == nullptr) return "";
  X509_NAME_print_ex(bio, name, 0, XN_FLAG_RFC2253 & ~ASN1_STRFLGS_ESC_MSB);
  char* data = nullptr;
  const long length = BIO_get_mem_data(bio, &data);
  std::string text(data, length > 0 ? static_cast<size_t>(length) : 0);
  BIO_free(bio);
  return text;
}

absl::Time AsnTime(const ASN1_TIME* time) {
  struct tm tm = {};
  if (time == nullptr || ASN1_TIME_to_tm(time, &tm) != 1) {
    return absl::UnixEpoch();
  }
  return absl::FromTimeT(timegm(&tm));
}

CertificateInfo Describe(X509* cert) {
  CertificateInfo info;
  info.subject = NameText(X509_get_subject_name(cert));
  info.issuer = NameText(X509_get_issuer_name(cert));
  if (BIGNUM* serial =
          ASN1_INTEGER_to_BN(X509_get0_serialNumber(cert), nullptr)) {
    if (char* hex = BN_bn2hex(serial)) {
      info.serial = absl::AsciiStrToLower(hex);
      OPENSSL_free(hex);
    }
    BN_free(serial);
  }
  unsigned char digest[EVP_MAX_MD_SIZE];
  unsigned int length = 0;
  if (X509_digest(cert, EVP_sha256(), digest, &length) == 1) {
    info.sha256_fingerprint = absl::BytesToHexString(
        absl::string_view(reinterpret_cast<const char*>(digest), length));
  }
  info.not_before = AsnTime(X509_get0_notBefore(cert));
  info.not_after = AsnTime(X509_get0_notAfter(cert));
  auto* names = static_cast<GENERAL_NAMES*>(
      X509_get_ext_d2i(cert, NID_subject_alt_name, nullptr, nullptr));
  for (int i = 0; names != nullptr && i < sk_GENERAL_NAME_num(names); ++i) {
    const GENERAL_NAME* name = sk_GENERAL_NAME_value(names, i);
    if (name->type != GEN_DNS) continue;
    const ASN1_IA5STRING* dns = name->d.dNSName;
    info.dns_names.emplace_back(
        reinterpret_cast<const char*>(ASN1_STRING_get0_data(dns)),
        static_cast<size_t>(ASN1_STRING_length(dns)));
  }
  GENERAL_NAMES_free(names);
  return info;
}

}  // namespace

TrustStore::~TrustStore() { X509_STORE_free(store_); }

std::shared_ptr<const TrustStore> TrustStore::System() {
  static const std::shared_ptr<const TrustStore>* system = [] {
    X509_STORE* store = X509_STORE_new();
    const curl_version_info_data* curl = curl_version_info(CURLVERSION_NOW);
    const bool have_file = curl->cainfo != nullptr && curl->cainfo[0] != '\0';
    const bool have_path = curl->capath != nullptr && curl->capath[0] != '\0';
    if (have_file) X509_STORE_load_file(store, curl->cainfo);
    if (have_path) X509_STORE_load_path(store, curl->capath);
    if (!have_file && !have_path) X509_STORE_set_default_paths(store);
    SetVerifyFlags(store);
    return new std::shared_ptr<const TrustStore>(new TrustStore(store));
  }();
  return *system;
}

absl::StatusOr<std::shared_ptr<const TrustStore>> TrustStore::FromPem(
    absl::string_view pem) {
  // Batches give each target its own options object, often with the same
  // CA: parse each distinct PEM once while it is in use.
  static absl::Mutex mu(absl::kConstInit);
  static auto* cache =  // guarded by mu
      new absl::flat_hash_map<std::string, std::weak_ptr<const TrustStore>>();
  {
    absl::MutexLock lock(&mu);
    auto it = cache->find(pem);
    if (it != cache->end()) {
      if (std::shared_ptr<const TrustStore> store = it->second.lock()) {
        return store;
      }
    }
  }
  BIO* bio = BIO_new_mem_buf(pem.data(), static_cast<int>(pem.size()));
  if (bio == nullptr) return absl::ResourceExhaustedError("out of memory");
  STACK_OF(X509_INFO)* infos =
      PEM_X509_INFO_read_bio(bio, nullptr, nullptr, nullptr);
  BIO_free(bio);
  X509_STORE* store = X509_STORE_new();
  int added = 0;
  for (int i = 0; infos != nullptr && i < sk_X509_INFO_num(infos); ++i) {
    X509_INFO* info = sk_X509_INFO_value(infos, i);
    if (info->x509 != nullptr && X509_STORE_add_cert(store, info->x509) == 1) {
      ++added;
    }
  }
  if (infos != nullptr) sk_X509_INFO_pop_free(infos, X509_INFO_free);
  if (added == 0) {
    X509_STORE_free(store);
    return absl::InvalidArgumentError("holds no PEM certificate that parses");
  }
  SetVerifyFlags(store);
  std::shared_ptr<const TrustStore> trust(new TrustStore(store));
  absl::MutexLock lock(&mu);
  // Drop entries nobody holds any more, so the cache stays as small as the
  // set of CAs in use.
  absl::erase_if(*cache,
                 [](const auto& entry) { return entry.second.expired(); });
  (*cache)[std::string(pem)] = trust;
  return trust;
}

absl::StatusOr<std::shared_ptr<const ClientIdentity>> ClientIdentity::FromPem(
    absl::string_view cert_pem, absl::string_view key_pem) {
  // Whatever fails below leaves errors on this thread's OpenSSL queue, where
  // a later TLS call on the same thread would find them.
  struct ClearErrors {
    ~ClearErrors() { ERR_clear_error(); }
  } clear_errors;
  // Never prompt on a terminal for a pass phrase: an encrypted key fails.
  pem_password_cb* no_pass_phrase = [](char*, int, int, void*) { return 0; };
  BIO* bio =
      BIO_new_mem_buf(cert_pem.data(), static_cast<int>(cert_pem.size()));
  if (bio == nullptr) return absl::ResourceExhaustedError("out of memory");
  X509* cert = PEM_read_bio_X509(bio, nullptr, no_pass_phrase, nullptr);
  STACK_OF(X509)* chain = sk_X509_new_null();
  while (cert != nullptr && chain != nullptr) {
    X509* next = PEM_read_bio_X509(bio, nullptr, no_pass_phrase, nullptr);
    if (next == nullptr) break;
    sk_X509_push(chain, next);
  }
  BIO_free(bio);
  ClientIdentity* identity = nullptr;
  EVP_PKEY* key = nullptr;
  if (cert == nullptr || chain == nullptr) {
    X509_free(cert);
    sk_X509_pop_free(chain, X509_free);
    return absl::InvalidArgumentError(
        "cert_pem: holds no PEM certificate that parses");
  }
  bio = BIO_new_mem_buf(key_pem.data(), static_cast<int>(key_pem.size()));
  if (bio != nullptr) {
    key = PEM_read_bio_PrivateKey(bio, nullptr, no_pass_phrase, nullptr);
    BIO_free(bio);
  }
  // Owns all three from here.
  identity = new ClientIdentity(cert, chain, key);
  std::shared_ptr<const ClientIdentity> owned(identity);
  if (key == nullptr) {
    return absl::InvalidArgumentError(
        "key_pem: holds no unencrypted PEM private key that parses");
  }
  if (X509_check_private_key(cert, key) != 1) {
    return absl::InvalidArgumentError(
        "key_pem: does not match the certificate of cert_pem");
  }
  return owned;
}

ClientIdentity::~ClientIdentity() {
  X509_free(cert_);
  sk_X509_pop_free(chain_, X509_free);
  EVP_PKEY_free(key_);
}

bool ClientIdentity::InstallIn(SSL_CTX* ssl_ctx) const {
  return SSL_CTX_use_cert_and_key(ssl_ctx, cert_, key_, chain_,
                                  /*override=*/1) == 1;
}

CURLcode SetUpSslContext(CURL* easy, void* ssl_ctx, void* setup_ptr) {
  auto* ctx = static_cast<SSL_CTX*>(ssl_ctx);
  const auto* setup = static_cast<const SslContextSetup*>(setup_ptr);
  if (setup->verify) {
    const TrustStore* trust =
        setup->trust != nullptr ? setup->trust : TrustStore::System().get();
    SSL_CTX_set1_cert_store(ctx, trust->get());
  }
  if (setup->identity != nullptr && !setup->identity->InstallIn(ctx)) {
    ERR_clear_error();
    return CURLE_SSL_CERTPROBLEM;
  }
  return CURLE_OK;
}

std::optional<TlsInfo> ReadTlsInfo(CURL* easy) {
  curl_tlssessioninfo* session = nullptr;
  if (curl_easy_getinfo(easy, CURLINFO_TLS_SSL_PTR, &session) != CURLE_OK ||
      session == nullptr || session->backend != CURLSSLBACKEND_OPENSSL ||
      session->internals == nullptr) {
    return std::nullopt;
  }
  SSL* ssl = static_cast<SSL*>(session->internals);
  TlsInfo info;
  info.version = SSL_get_version(ssl);
  if (const SSL_CIPHER* cipher = SSL_get_current_cipher(ssl)) {
    // The IANA name, as other languages' TLS libraries name suites (OpenSSL's
    // own names differ for TLS 1.2: "ECDHE-ECDSA-AES128-GCM-SHA256").
    const char* name = SSL_CIPHER_standard_name(cipher);
    info.cipher = name != nullptr ? name : SSL_CIPHER_get_name(cipher);
  }
  info.resumed = SSL_session_reused(ssl) == 1;
  STACK_OF(X509)* chain = SSL_get0_verified_chain(ssl);
  if (chain == nullptr) chain = SSL_get_peer_cert_chain(ssl);
  for (int i = 0; chain != nullptr && i < sk_X509_num(chain); ++i) {
    info.chain.push_back(Describe(sk_X509_value(chain, i)));
  }
  return info;
}

}  // namespace fanprobe::internal
