// connection_test.cc: resolving the connection flags (cli/connection.h):
// plaintext or TLS, which flags go together, unreadable files and the
// token file.  The handshake and the token on the wire are tested against
// a real server in cli_security_test.cc.

#include "cli/connection.h"

#include <string>

#include "absl/status/status.h"
#include "absl/status/statusor.h"
#include "gmock/gmock.h"
#include "grpcpp/grpcpp.h"
#include "gtest/gtest.h"
#include "tests/support/temp_dir.h"
#include "tests/support/test_certs.h"

namespace fanprobe::cli {
namespace {

using ::fanprobe::testing::TempDir;
using ::fanprobe::testing::TestCa;
using ::fanprobe::testing::WriteFileAtomically;

std::string Refusal(const ConnectionFlags& flags) {
  absl::StatusOr<Connection> connection = Connection::Resolve(flags);
  EXPECT_EQ(connection.status().code(), absl::StatusCode::kInvalidArgument);
  return std::string(connection.status().message());
}

TEST(ConnectionTest, NoFlagsIsPlaintextWithoutAToken) {
  absl::StatusOr<Connection> connection = Connection::Resolve({});
  ASSERT_TRUE(connection.ok()) << connection.status();
  EXPECT_FALSE(connection->tls());
  EXPECT_EQ(connection->token(), "");
  EXPECT_NE(connection->NewChannel("127.0.0.1:1"), nullptr);
}

TEST(ConnectionTest, ACaOrAClientCertificateTurnsTlsOn) {
  TempDir dir;
  TestCa ca("fanprobe test CA");
  const fanprobe::testing::KeyAndCert client =
      ca.Issue("cli", {.server = false});
  WriteFileAtomically(dir.File("ca.pem"), ca.cert_pem());
  WriteFileAtomically(dir.File("client.pem"), client.cert_pem);
  WriteFileAtomically(dir.File("client.key"), client.key_pem);

  absl::StatusOr<Connection> connection = Connection::Resolve(
      {.tls_ca = dir.File("ca.pem"), .tls_server_name = "localhost"});
  ASSERT_TRUE(connection.ok()) << connection.status();
  EXPECT_TRUE(connection->tls());

  connection = Connection::Resolve(
      {.tls_cert = dir.File("client.pem"), .tls_key = dir.File("client.key")});
  ASSERT_TRUE(connection.ok()) << connection.status();
  EXPECT_TRUE(connection->tls());
}

TEST(ConnectionTest, TheTokenIsTheFirstLineThatIsNoComment) {
  TempDir dir;
  WriteFileAtomically(dir.File("token"),
                      "# who: me\n\n  the-token  \nsecond-token\n");
  absl::StatusOr<Connection> connection =
      Connection::Resolve({.auth_token_file = dir.File("token")});
  ASSERT_TRUE(connection.ok()) << connection.status();
  EXPECT_EQ(connection->token(), "the-token");
}

TEST(ConnectionTest, UnusableFlagsNameTheFlag) {
  TempDir dir;
  WriteFileAtomically(dir.File("empty"), "\n# nothing\n   \n");
  EXPECT_EQ(Refusal({.auth_token_file = dir.File("empty")}),
            "no token in --auth_token_file=" + dir.File("empty"));
  EXPECT_EQ(Refusal({.auth_token_file = dir.File("missing")}),
            "cannot read --auth_token_file=" + dir.File("missing"));
  EXPECT_EQ(Refusal({.tls_ca = dir.File("missing.pem")}),
            "cannot read --tls_ca=" + dir.File("missing.pem"));
  EXPECT_EQ(Refusal({.tls_cert = "/x.pem"}),
            "--tls_cert and --tls_key go together");
  EXPECT_EQ(Refusal({.tls_key = "/x.key"}),
            "--tls_cert and --tls_key go together");
  EXPECT_EQ(Refusal({.tls_server_name = "localhost"}),
            "--tls_server_name needs --tls_ca or --tls_cert");
}

TEST(DescribeTest, NamesTheCodeAndTheMessage) {
  EXPECT_EQ(Describe(grpc::Status(grpc::StatusCode::INVALID_ARGUMENT,
                                  "targets: at least one target")),
            "INVALID_ARGUMENT: targets: at least one target");
  EXPECT_EQ(Describe(grpc::Status(grpc::StatusCode::UNAVAILABLE, "")),
            "UNAVAILABLE: ");
}

}  // namespace
}  // namespace fanprobe::cli
