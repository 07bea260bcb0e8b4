#include "server/auth.h"

#include <openssl/bio.h>
#include <openssl/evp.h>
#include <openssl/pem.h>
#include <openssl/x509.h>
#include <sys/stat.h>

#include <cstdint>
#include <fstream>
#include <memory>
#include <sstream>
#include <string>
#include <utility>
#include <vector>

#include "absl/status/status.h"
#include "absl/status/statusor.h"
#include "absl/strings/ascii.h"
#include "absl/strings/match.h"
#include "absl/strings/str_cat.h"
#include "absl/strings/str_format.h"
#include "absl/strings/str_split.h"
#include "absl/strings/string_view.h"
#include "absl/strings/strip.h"
#include "absl/synchronization/mutex.h"
#include "absl/time/clock.h"
#include "absl/time/time.h"
#include "grpcpp/security/tls_certificate_provider.h"
#include "grpcpp/security/tls_credentials_options.h"
#include "log/logger.h"
#include "service/prober_service.h"

namespace fanprobe::server {
namespace {

absl::StatusOr<std::string> ReadFile(absl::string_view flag,
                                     const std::string& path) {
  std::ifstream stream(path, std::ios::binary);
  if (!stream) {
    return absl::InvalidArgumentError(
        absl::StrCat("--", flag, "=", path, ": cannot read the file"));
  }
  std::ostringstream content;
  content << stream.rdbuf();
  return content.str();
}

struct BioDeleter {
  void operator()(BIO* bio) const { BIO_free(bio); }
};
struct X509Deleter {
  void operator()(X509* x509) const { X509_free(x509); }
};
struct KeyDeleter {
  void operator()(EVP_PKEY* key) const { EVP_PKEY_free(key); }
};

std::unique_ptr<BIO, BioDeleter> MemoryBio(const std::string& pem) {
  return std::unique_ptr<BIO, BioDeleter>(
      BIO_new_mem_buf(pem.data(), static_cast<int>(pem.size())));
}

// The first certificate of a PEM file; null when there is none.
std::unique_ptr<X509, X509Deleter> FirstCertificate(const std::string& pem) {
  auto bio = MemoryBio(pem);
  return std::unique_ptr<X509, X509Deleter>(
      PEM_read_bio_X509(bio.get(), nullptr, nullptr, nullptr));
}

// Checks the files at start-up, so a typo is an error now rather than every
// handshake failing later (gRPC's file watcher only logs).
absl::Status CheckTlsFiles(const SecurityOptions& options) {
  if (options.tls_cert_file.empty() != options.tls_key_file.empty()) {
    return absl::InvalidArgumentError(
        "--tls_cert and --tls_key go together: give both or neither");
  }
  if (!options.client_ca_file.empty() && options.tls_cert_file.empty()) {
    return absl::InvalidArgumentError(
        "--client_ca needs --tls_cert and --tls_key: mutual TLS is TLS");
  }
  if (options.tls_cert_file.empty()) return absl::OkStatus();

  absl::StatusOr<std::string> cert_pem =
      ReadFile("tls_cert", options.tls_cert_file);
  if (!cert_pem.ok()) return cert_pem.status();
  std::unique_ptr<X509, X509Deleter> cert = FirstCertificate(*cert_pem);
  if (cert == nullptr) {
    return absl::InvalidArgumentError(
        absl::StrCat("--tls_cert=", options.tls_cert_file,
                     ": no PEM certificate in the file"));
  }
  absl::StatusOr<std::string> key_pem =
      ReadFile("tls_key", options.tls_key_file);
  if (!key_pem.ok()) return key_pem.status();
  auto key_bio = MemoryBio(*key_pem);
  std::unique_ptr<EVP_PKEY, KeyDeleter> key(
      PEM_read_bio_PrivateKey(key_bio.get(), nullptr, nullptr, nullptr));
  if (key == nullptr) {
    return absl::InvalidArgumentError(
        absl::StrCat("--tls_key=", options.tls_key_file,
                     ": no unencrypted PEM private key in the file"));
  }
  if (X509_check_private_key(cert.get(), key.get()) != 1) {
    return absl::InvalidArgumentError(absl::StrCat(
        "--tls_key=", options.tls_key_file, " does not match the certificate ",
        "in --tls_cert=", options.tls_cert_file));
  }
  if (!options.client_ca_file.empty()) {
    absl::StatusOr<std::string> ca_pem =
        ReadFile("client_ca", options.client_ca_file);
    if (!ca_pem.ok()) return ca_pem.status();
    if (FirstCertificate(*ca_pem) == nullptr) {
      return absl::InvalidArgumentError(
          absl::StrCat("--client_ca=", options.client_ca_file,
                       ": no PEM certificate in the file"));
    }
  }
  return absl::OkStatus();
}

// gRPC's file watcher takes whole seconds.
unsigned int RefreshSeconds(absl::Duration interval) {
  const int64_t seconds = absl::ToInt64Seconds(interval);
  return seconds < 1 ? 1u : static_cast<unsigned int>(seconds);
}

// A short, stable name for a token that does not reveal it: FNV-1a.  Not a
// security boundary (the token itself is checked in constant time); it only
// keys per-client limits.
std::string Fingerprint(absl::string_view token) {
  uint64_t hash = 14695981039346656037ull;
  for (const char c : token) {
    hash ^= static_cast<unsigned char>(c);
    hash *= 1099511628211ull;
  }
  return absl::StrFormat("%016x", hash);
}

// The token of an "authorization: Bearer <token>" value; empty if not one.
absl::string_view BearerToken(absl::string_view value) {
  value = absl::StripAsciiWhitespace(value);
  if (value.size() < 7 ||
      !absl::EqualsIgnoreCase(value.substr(0, 7), "bearer ")) {
    return {};
  }
  return absl::StripAsciiWhitespace(value.substr(7));
}

}  // namespace

bool ConstantTimeEquals(absl::string_view a, absl::string_view b) {
  // Every byte of the longer one is visited whatever the contents.
  const size_t n = a.size() > b.size() ? a.size() : b.size();
  unsigned char diff = a.size() == b.size() ? 0 : 1;
  for (size_t i = 0; i < n; ++i) {
    const unsigned char x = i < a.size() ? a[i] : 0;
    const unsigned char y = i < b.size() ? b[i] : 0;
    diff |= x ^ y;
  }
  return diff == 0;
}

absl::StatusOr<std::vector<std::string>> ReadTokenFile(const std::string& path,
                                                       absl::string_view flag) {
  absl::StatusOr<std::string> content = ReadFile(flag, path);
  if (!content.ok()) return content.status();
  std::vector<std::string> tokens;
  for (absl::string_view line : absl::StrSplit(*content, '\n')) {
    line = absl::StripAsciiWhitespace(line);
    if (line.empty() || absl::StartsWith(line, "#")) continue;
    tokens.emplace_back(line);
  }
  if (tokens.empty()) {
    return absl::InvalidArgumentError(absl::StrCat(
        "--", flag, "=", path, ": no token in the file (one per line)"));
  }
  return tokens;
}

absl::StatusOr<std::shared_ptr<TokenAuthenticator>> TokenAuthenticator::Create(
    std::string path, absl::Duration reload_interval, absl::string_view flag,
    log::Sink log) {
  absl::StatusOr<std::vector<std::string>> tokens = ReadTokenFile(path, flag);
  if (!tokens.ok()) return tokens.status();
  std::shared_ptr<TokenAuthenticator> authenticator(new TokenAuthenticator(
      std::move(path), reload_interval, flag, std::move(log)));
  absl::MutexLock lock(&authenticator->mu_);
  authenticator->tokens_ = *std::move(tokens);
  struct stat st;
  if (stat(authenticator->path_.c_str(), &st) == 0) {
    authenticator->mtime_ = st.st_mtim;
  }
  authenticator->next_check_ = absl::Now() + reload_interval;
  return authenticator;
}

absl::Status TokenAuthenticator::MaybeReload() {
  const absl::Time now = absl::Now();
  if (now < next_check_) return absl::OkStatus();
  next_check_ = now + reload_interval_;
  struct stat st;
  if (stat(path_.c_str(), &st) != 0) {
    return absl::OkStatus();  // keep the tokens in use
  }
  if (st.st_mtim.tv_sec == mtime_.tv_sec &&
      st.st_mtim.tv_nsec == mtime_.tv_nsec) {
    return absl::OkStatus();
  }
  absl::StatusOr<std::vector<std::string>> tokens = ReadTokenFile(path_, flag_);
  if (!tokens.ok()) return tokens.status();  // half-written or emptied
  mtime_ = st.st_mtim;
  tokens_ = *std::move(tokens);
  return absl::OkStatus();
}

absl::Status TokenAuthenticator::Check(const grpc::ServerContextBase& context) {
  const auto& metadata = context.client_metadata();
  const auto it = metadata.find("authorization");
  return CheckAuthorization(
      it == metadata.end()
          ? absl::string_view()
          : absl::string_view(it->second.data(), it->second.size()));
}

absl::Status TokenAuthenticator::CheckAuthorization(
    absl::string_view authorization) {
  const absl::string_view token = BearerToken(authorization);
  if (token.empty()) {
    return absl::UnauthenticatedError(
        "missing credentials: send \"authorization: Bearer <token>\"");
  }
  bool valid = false;
  absl::Status reload;
  {
    absl::MutexLock lock(&mu_);
    reload = MaybeReload();
    // No early exit: the time taken does not say which token came close.
    for (const std::string& candidate : tokens_) {
      valid |= ConstantTimeEquals(token, candidate);
    }
  }
  if (!reload.ok()) {
    // What works is kept; the operator learns why the new file was not.
    logger_.Log(
        log::Line("auth_token_file_ignored").Add("error", reload.message()));
  }
  if (!valid) return absl::UnauthenticatedError("invalid bearer token");
  return absl::OkStatus();
}

absl::StatusOr<std::string> ReadFlagFile(absl::string_view flag,
                                         const std::string& path) {
  return ReadFile(flag, path);
}

absl::StatusOr<std::shared_ptr<grpc::ServerCredentials>> MakeServerCredentials(
    const SecurityOptions& options) {
  if (absl::Status status = CheckTlsFiles(options); !status.ok()) {
    return status;
  }
  std::shared_ptr<grpc::ServerCredentials> credentials;
  if (options.tls_cert_file.empty()) {
    credentials = grpc::InsecureServerCredentials();
  } else {
    // Re-reads the files every interval; a key and certificate that do not
    // match (a renewal caught half-written) are skipped until they do.
    auto provider =
        std::make_shared<grpc::experimental::FileWatcherCertificateProvider>(
            options.tls_key_file, options.tls_cert_file, options.client_ca_file,
            RefreshSeconds(options.reload_interval));
    grpc::experimental::TlsServerCredentialsOptions tls(provider);
    tls.watch_identity_key_cert_pairs();
    if (options.client_ca_file.empty()) {
      tls.set_cert_request_type(GRPC_SSL_DONT_REQUEST_CLIENT_CERTIFICATE);
    } else {
      tls.watch_root_certs();
      tls.set_cert_request_type(
          GRPC_SSL_REQUEST_AND_REQUIRE_CLIENT_CERTIFICATE_AND_VERIFY);
    }
    credentials = grpc::experimental::TlsServerCredentials(tls);
  }
  return credentials;
}

std::string ClientIdentity(const grpc::ServerContextBase& context,
                           bool tokens_checked) {
  const std::shared_ptr<const grpc::AuthContext> auth = context.auth_context();
  if (auth != nullptr) {
    const std::vector<grpc::string_ref> subject =
        auth->FindPropertyValues(GRPC_X509_SUBJECT_PROPERTY_NAME);
    if (!subject.empty()) {
      return absl::StrCat(
          "cert:", absl::string_view(subject[0].data(), subject[0].size()));
    }
  }
  if (tokens_checked) {
    const auto& metadata = context.client_metadata();
    const auto it = metadata.find("authorization");
    if (it != metadata.end()) {
      const absl::string_view token =
          BearerToken(absl::string_view(it->second.data(), it->second.size()));
      if (!token.empty()) return absl::StrCat("token:", Fingerprint(token));
    }
  }
  return service::PeerIdentity(context.peer());
}

}  // namespace fanprobe::server
