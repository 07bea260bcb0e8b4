// test_certs.h: throwaway X.509 certificates for the TLS tests, made at run
// time with OpenSSL (so none expire in the repository): a CA, and server or
// client certificates it signs, as PEM text.
//
// Example:
//   TestCa ca("fanprobe test CA");
//   KeyAndCert server = ca.Issue("localhost", {.server = true});
//   KeyAndCert client = ca.Issue("client-a", {.server = false});
//   WriteFile(dir + "/server.pem", server.cert_pem);
//
// Thread-safety: a TestCa is used from one thread.

#ifndef FANPROBE_TESTS_SUPPORT_TEST_CERTS_H_
#define FANPROBE_TESTS_SUPPORT_TEST_CERTS_H_

#include <memory>
#include <string>

#include "absl/strings/string_view.h"

namespace fanprobe::testing {

struct KeyAndCert {
  std::string key_pem;
  std::string cert_pem;
};

struct IssueOptions {
  // A server certificate (SAN localhost and 127.0.0.1, serverAuth) or a
  // client one (clientAuth).
  bool server = true;
};

class TestCa {
 public:
  explicit TestCa(absl::string_view common_name);
  ~TestCa();
  TestCa(const TestCa&) = delete;
  TestCa& operator=(const TestCa&) = delete;

  const std::string& cert_pem() const { return self_.cert_pem; }
  // A certificate for `common_name` signed by this CA, valid for a day.
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

// A fresh directory under $TMPDIR (or /tmp), removed with its files by the
// destructor.
class TempDir {
 public:
  TempDir();
  ~TempDir();
  TempDir(const TempDir&) = delete;
  TempDir& operator=(const TempDir&) = delete;
  const std::string& path() const { return path_; }
  std::string File(absl::string_view name) const;

 private:
  std::string path_;
};

}  // namespace fanprobe::testing

#endif  // FANPROBE_TESTS_SUPPORT_TEST_CERTS_H_
