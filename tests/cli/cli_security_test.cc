// cli_security_test.cc: the fanprobe CLI against a server that wants TLS,
// a client certificate and a bearer token (--tls_ca, --tls_cert, --tls_key,
// --tls_server_name, --auth_token_file), run as a child process.

#include <string>
#include <vector>

#include "absl/strings/str_cat.h"
#include "gmock/gmock.h"
#include "gtest/gtest.h"
#include "tests/cli/run_cli.h"
#include "tests/support/target_server.h"
#include "tests/support/temp_dir.h"
#include "tests/support/test_certs.h"
#include "tests/support/test_server.h"
#include "tests/support/wait.h"

namespace fanprobe {
namespace {

using ::fanprobe::testing::CliBinary;
using ::fanprobe::testing::kPatience;
using ::fanprobe::testing::Subprocess;
using ::fanprobe::testing::TargetServer;
using ::fanprobe::testing::TempDir;
using ::fanprobe::testing::TestCa;
using ::fanprobe::testing::TestServer;
using ::fanprobe::testing::WriteFileAtomically;
using ::testing::HasSubstr;

class CliSecurityTest : public ::testing::Test {
 protected:
  CliSecurityTest() : ca_("fanprobe test CA") {
    const testing::KeyAndCert server = ca_.Issue("localhost", {.server = true});
    const testing::KeyAndCert client = ca_.Issue("cli", {.server = false});
    WriteFileAtomically(dir_.File("server.pem"), server.cert_pem);
    WriteFileAtomically(dir_.File("server.key"), server.key_pem);
    WriteFileAtomically(dir_.File("client.pem"), client.cert_pem);
    WriteFileAtomically(dir_.File("client.key"), client.key_pem);
    WriteFileAtomically(dir_.File("ca.pem"), ca_.cert_pem());
    WriteFileAtomically(dir_.File("token"), "# mine\ncli-token\n");
    server::ServerOptions options;
    options.security.tls_cert_file = dir_.File("server.pem");
    options.security.tls_key_file = dir_.File("server.key");
    options.security.client_ca_file = dir_.File("ca.pem");
    options.security.auth_token_file = dir_.File("token");
    server_ = std::make_unique<TestServer>(options);
  }

  // The CLI with every connection flag, then `extra`.
  Subprocess::Exit Run(const std::string& command,
                       const std::vector<std::string>& extra,
                       bool with_token = true) {
    std::vector<std::string> argv = {
        CliBinary(),
        command,
        absl::StrCat("--server=", server_->address()),
        absl::StrCat("--tls_ca=", dir_.File("ca.pem")),
        absl::StrCat("--tls_cert=", dir_.File("client.pem")),
        absl::StrCat("--tls_key=", dir_.File("client.key")),
        "--tls_server_name=localhost"};
    if (with_token) {
      argv.push_back(absl::StrCat("--auth_token_file=", dir_.File("token")));
    }
    argv.insert(argv.end(), extra.begin(), extra.end());
    cli_ = std::make_unique<Subprocess>(argv);
    return cli_->Wait(kPatience);
  }

  TempDir dir_;
  TestCa ca_;
  TargetServer target_;
  std::unique_ptr<TestServer> server_;
  std::unique_ptr<Subprocess> cli_;
};

TEST_F(CliSecurityTest, ProbesOverMutualTlsWithAToken) {
  EXPECT_EQ(Run("probe", {target_.url("/status/200")}).code, 0)
      << cli_->Stderr();
  EXPECT_THAT(cli_->Stdout(), HasSubstr("ALL_COMPLETED"));
  EXPECT_EQ(Run("health", {}).code, 0) << cli_->Stderr();
  EXPECT_THAT(cli_->Stdout(), HasSubstr("SERVING"));
}

TEST_F(CliSecurityTest, WithoutTheTokenTheServerRefusesAndTheCliExitsTwo) {
  EXPECT_EQ(Run("probe", {target_.url("/status/200")}, false).code, 2);
  EXPECT_THAT(cli_->Stderr(), HasSubstr("UNAUTHENTICATED"));
  EXPECT_EQ(target_.Stats().http.requests, 0);
}

TEST_F(CliSecurityTest, UnusableConnectionFlagsExitTwo) {
  EXPECT_EQ(Run("probe", {absl::StrCat("--tls_ca=", dir_.File("missing.pem")),
                          target_.url("/status/200")})
                .code,
            2);
  EXPECT_THAT(cli_->Stderr(), HasSubstr("cannot read --tls_ca="));
  WriteFileAtomically(dir_.File("empty"), "\n# nothing\n");
  EXPECT_EQ(
      Run("health", {absl::StrCat("--auth_token_file=", dir_.File("empty"))})
          .code,
      2);
  EXPECT_THAT(cli_->Stderr(), HasSubstr("no token"));
  Subprocess lone({CliBinary(), "health", "--tls_cert=/x.pem"});
  EXPECT_EQ(lone.Wait(kPatience).code, 2);
  EXPECT_THAT(lone.Stderr(), HasSubstr("--tls_cert and --tls_key"));
}

}  // namespace
}  // namespace fanprobe
