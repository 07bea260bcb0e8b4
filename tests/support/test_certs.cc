#include "tests/support/test_certs.h"

#include <openssl/bio.h>
#include <openssl/bn.h>
#include <openssl/evp.h>
#include <openssl/pem.h>
#include <openssl/rand.h>
#include <openssl/x509.h>
#include <openssl/x509v3.h>
#include <stdlib.h>
#include <unistd.h>

#include <cstdio>
#include <cstdlib>
#include <fstream>
#include <string>
#include <vector>

#include "absl/strings/str_cat.h"
#include "absl/strings/str_join.h"
#include "absl/strings/string_view.h"

namespace fanprobe::testing {
namespace {

[[noreturn]] void Die(absl::string_view what) {
  std::fprintf(stderr, "test_certs: %.*s failed\n",
               static_cast<int>(what.size()), what.data());
  std::abort();
}

struct KeyDeleter {
  void operator()(EVP_PKEY* key) const { EVP_PKEY_free(key); }
};
struct X509Deleter {
  void operator()(X509* x509) const { X509_free(x509); }
};
struct BioDeleter {
  void operator()(BIO* bio) const { BIO_free(bio); }
};
using KeyPtr = std::unique_ptr<EVP_PKEY, KeyDeleter>;
using X509Ptr = std::unique_ptr<X509, X509Deleter>;

KeyPtr NewKey() {
  KeyPtr key(EVP_EC_gen("P-256"));
  if (key == nullptr) Die("EVP_EC_gen");
  return key;
}

std::string BioText(BIO* bio) {
  char* data = nullptr;
  const long size = BIO_get_mem_data(bio, &data);
  return std::string(data, static_cast<size_t>(size));
}

std::string KeyPem(EVP_PKEY* key) {
  std::unique_ptr<BIO, BioDeleter> bio(BIO_new(BIO_s_mem()));
  if (PEM_write_bio_PrivateKey(bio.get(), key, nullptr, nullptr, 0, nullptr,
                               nullptr) != 1) {
    Die("PEM_write_bio_PrivateKey");
  }
  return BioText(bio.get());
}

std::string CertPem(X509* cert) {
  std::unique_ptr<BIO, BioDeleter> bio(BIO_new(BIO_s_mem()));
  if (PEM_write_bio_X509(bio.get(), cert) != 1) Die("PEM_write_bio_X509");
  return BioText(bio.get());
}

void AddExtension(X509* cert, X509* issuer, int nid, const char* value) {
  X509V3_CTX ctx;
  X509V3_set_ctx_nodb(&ctx);
  X509V3_set_ctx(&ctx, issuer, cert, nullptr, nullptr, 0);
  X509_EXTENSION* ext = X509V3_EXT_conf_nid(nullptr, &ctx, nid, value);
  if (ext == nullptr) Die("X509V3_EXT_conf_nid");
  X509_add_ext(cert, ext, -1);
  X509_EXTENSION_free(ext);
}

// "DNS:a,DNS:b,IP:c": the subjectAltName extension's config syntax.
std::string SubjectAltNames(const IssueOptions& options) {
  if (options.dns_names.empty() && options.ip_addresses.empty()) {
    return "DNS:localhost,IP:127.0.0.1";
  }
  std::vector<std::string> names;
  for (const std::string& dns : options.dns_names) {
    names.push_back(absl::StrCat("DNS:", dns));
  }
  for (const std::string& ip : options.ip_addresses) {
    names.push_back(absl::StrCat("IP:", ip));
  }
  return absl::StrJoin(names, ",");
}

long Seconds(absl::Duration d) {
  return static_cast<long>(absl::ToInt64Seconds(d));
}

// A certificate for `key` named `common_name`; self-signed when `issuer`
// is null.  A CA's when `options` is null.
X509Ptr MakeCert(EVP_PKEY* key, absl::string_view common_name, X509* issuer,
                 EVP_PKEY* issuer_key, const IssueOptions* options) {
  const bool ca = options == nullptr;
  X509Ptr cert(X509_new());
  X509_set_version(cert.get(), 2);
  uint64_t serial = 0;
  RAND_bytes(reinterpret_cast<unsigned char*>(&serial), sizeof(serial));
  ASN1_INTEGER_set_uint64(X509_get_serialNumber(cert.get()), serial >> 1);
  const IssueOptions defaults;
  const IssueOptions& validity = ca ? defaults : *options;
  X509_gmtime_adj(X509_getm_notBefore(cert.get()),
                  Seconds(validity.not_before));
  X509_gmtime_adj(X509_getm_notAfter(cert.get()), Seconds(validity.not_after));
  X509_set_pubkey(cert.get(), key);
  X509_NAME* name = X509_get_subject_name(cert.get());
  const std::string cn(common_name);
  X509_NAME_add_entry_by_txt(name, "O", MBSTRING_ASC,
                             reinterpret_cast<const unsigned char*>("fanprobe"),
                             -1, -1, 0);
  X509_NAME_add_entry_by_txt(name, "CN", MBSTRING_ASC,
                             reinterpret_cast<const unsigned char*>(cn.c_str()),
                             -1, -1, 0);
  X509* signer = issuer != nullptr ? issuer : cert.get();
  X509_set_issuer_name(cert.get(), X509_get_subject_name(signer));
  if (ca) {
    AddExtension(cert.get(), signer, NID_basic_constraints, "critical,CA:TRUE");
    AddExtension(cert.get(), signer, NID_key_usage,
                 "critical,keyCertSign,cRLSign");
  } else {
    AddExtension(cert.get(), signer, NID_basic_constraints, "CA:FALSE");
    AddExtension(cert.get(), signer, NID_key_usage,
                 "critical,digitalSignature,keyEncipherment");
    AddExtension(cert.get(), signer, NID_ext_key_usage,
                 options->server ? "serverAuth" : "clientAuth");
    if (options->server) {
      AddExtension(cert.get(), signer, NID_subject_alt_name,
                   SubjectAltNames(*options).c_str());
    }
  }
  if (X509_sign(cert.get(), issuer_key != nullptr ? issuer_key : key,
                EVP_sha256()) == 0) {
    Die("X509_sign");
  }
  return cert;
}

}  // namespace

struct TestCa::Keys {
  KeyPtr key;
  X509Ptr cert;
};

TestCa::TestCa(absl::string_view common_name)
    : keys_(std::make_unique<Keys>()) {
  keys_->key = NewKey();
  keys_->cert = MakeCert(keys_->key.get(), common_name, /*issuer=*/nullptr,
                         /*issuer_key=*/nullptr, /*options=*/nullptr);
  self_ = {KeyPem(keys_->key.get()), CertPem(keys_->cert.get())};
}

TestCa::~TestCa() = default;

KeyAndCert TestCa::Issue(absl::string_view common_name,
                         const IssueOptions& options) const {
  KeyPtr key = NewKey();
  X509Ptr cert =
      options.self_signed
          ? MakeCert(key.get(), common_name, nullptr, nullptr, &options)
          : MakeCert(key.get(), common_name, keys_->cert.get(),
                     keys_->key.get(), &options);
  return {KeyPem(key.get()), CertPem(cert.get())};
}

void WriteFileAtomically(const std::string& path, absl::string_view content) {
  const std::string temporary = absl::StrCat(path, ".tmp");
  {
    std::ofstream out(temporary, std::ios::binary | std::ios::trunc);
    out.write(content.data(), static_cast<std::streamsize>(content.size()));
    if (!out) Die(absl::StrCat("writing ", temporary));
  }
  if (std::rename(temporary.c_str(), path.c_str()) != 0) {
    Die(absl::StrCat("renaming to ", path));
  }
}

}  // namespace fanprobe::testing
