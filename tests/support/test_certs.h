// test_certs.h: throwaway X.509 certificates for the TLS tests, made at run
// time with OpenSSL (so none expire in the repository): a CA, and server or
// client certificates it signs (or that sign themselves), as PEM text.  Every
// key is ECDSA P-256.
//
// Example:
//   TestCa ca("fanprobe test CA");
//   KeyAndCert server = ca.Issue("localhost", {.server = true});
//   KeyAndCert client = ca.Issue("client-a", {.server = false});
//   KeyAndCert web = ca.Issue("web", {.dns_names = {"*.tls.test"}});
//   KeyAndCert expired = ca.Issue("localhost", {.not_before = -absl::Hours(48),
//                                               .not_after =
//                                               -absl::Hours(24)});
//   WriteFileAtomically(dir + "/server.pem", server.cert_pem);
//
// Thread-safety: a TestCa is used from one thread.

#ifndef FANPROBE_TESTS_SUPPORT_TEST_CERTS_H_
#define FANPROBE_TESTS_SUPPORT_TEST_CERTS_H_

#include <memory>
#include <string>
#include <vector>

#include "absl/strings/string_view.h"
#include "absl/time/time.h"

namespace fanprobe::testing {

struct KeyAndCert {
  std::string key_pem;
  std::string cert_pem;
};

// Fields in declaration order, as designated initializers need them.
struct IssueOptions {
  // A server certificate (serverAuth, with the SANs below) or a client one
  // (clientAuth, no SAN).
  bool server = true;
  // A server certificate's subject alternative names: DNS names (a wildcard
  // such as "*.tls.test" is written as such) and IP addresses ("127.0.0.1",
  // "::1").  When both are empty: DNS:localhost and IP:127.0.0.1.
  std::vector<std::string> dns_names;
  std::vector<std::string> ip_addresses;
  // The validity period, relative to the time of issue: a not_after in the
  // past makes an expired certificate, a not_before in the future one that
  // is not yet valid.
  absl::Duration not_before = -absl::Hours(1);
  absl::Duration not_after = absl::Hours(24);
  // Signed by its own key, its issuer its own subject, instead of by the CA
  // (which is then not used): a client trusts it only if it trusts this very
  // certificate.
  bool self_signed = false;
};

class TestCa {
 public:
  explicit TestCa(absl::string_view common_name);
  ~TestCa();
  TestCa(const TestCa&) = delete;
  TestCa& operator=(const TestCa&) = delete;

  const std::string& cert_pem() const { return self_.cert_pem; }
  // A certificate for `common_name` signed by this CA (unless
  // `options.self_signed`); by default valid from an hour ago for a day.
  KeyAndCert Issue(absl::string_view common_name,
                   const IssueOptions& options) const;

 private:
  struct Keys;
  std::unique_ptr<Keys> keys_;
  KeyAndCert self_;
};

// Writes `content` to `path` atomically (a temporary file renamed over it),
// as a certificate renewal would; aborts the test binary on failure.
void WriteFileAtomically(const std::string& path, absl::string_view content);

}  // namespace fanprobe::testing

#endif  // FANPROBE_TESTS_SUPPORT_TEST_CERTS_H_
