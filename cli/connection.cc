#include "cli/connection.h"

#include <fstream>
#include <sstream>
#include <string>
#include <tuple>
#include <utility>

#include "absl/status/status.h"
#include "absl/status/statusor.h"
#include "absl/strings/ascii.h"
#include "absl/strings/match.h"
#include "absl/strings/str_cat.h"
#include "absl/strings/str_split.h"
#include "absl/strings/string_view.h"

namespace fanprobe::cli {
namespace {

absl::StatusOr<std::string> ReadWholeFile(absl::string_view flag,
                                          const std::string& path) {
  std::ifstream in(path, std::ios::binary);
  if (!in) {
    return absl::InvalidArgumentError(
        absl::StrCat("cannot read --", flag, "=", path));
  }
  std::ostringstream content;
  content << in.rdbuf();
  return content.str();
}

// The first line that is neither blank nor a '#' comment; empty if none.
std::string FirstToken(absl::string_view content) {
  for (absl::string_view line : absl::StrSplit(content, '\n')) {
    line = absl::StripAsciiWhitespace(line);
    if (line.empty() || absl::StartsWith(line, "#")) continue;
    return std::string(line);
  }
  return "";
}

}  // namespace

absl::StatusOr<Connection> Connection::Resolve(const ConnectionFlags& flags) {
  Connection connection;
  if (flags.tls_cert.empty() != flags.tls_key.empty()) {
    return absl::InvalidArgumentError("--tls_cert and --tls_key go together");
  }
  connection.tls_ = !flags.tls_ca.empty() || !flags.tls_cert.empty();
  if (!connection.tls_) {
    if (!flags.tls_server_name.empty()) {
      return absl::InvalidArgumentError(
          "--tls_server_name needs --tls_ca or --tls_cert");
    }
    connection.credentials_ = grpc::InsecureChannelCredentials();
  } else {
    grpc::SslCredentialsOptions ssl;
    for (auto [flag, path, out] :
         {std::tuple{"tls_ca", &flags.tls_ca, &ssl.pem_root_certs},
          std::tuple{"tls_cert", &flags.tls_cert, &ssl.pem_cert_chain},
          std::tuple{"tls_key", &flags.tls_key, &ssl.pem_private_key}}) {
      if (path->empty()) continue;
      absl::StatusOr<std::string> pem = ReadWholeFile(flag, *path);
      if (!pem.ok()) return pem.status();
      *out = *std::move(pem);
    }
    connection.credentials_ = grpc::SslCredentials(ssl);
    if (!flags.tls_server_name.empty()) {
      connection.arguments_.SetSslTargetNameOverride(flags.tls_server_name);
    }
  }
  if (!flags.auth_token_file.empty()) {
    absl::StatusOr<std::string> content =
        ReadWholeFile("auth_token_file", flags.auth_token_file);
    if (!content.ok()) return content.status();
    connection.token_ = FirstToken(*content);
    if (connection.token_.empty()) {
      return absl::InvalidArgumentError(absl::StrCat(
          "no token in --auth_token_file=", flags.auth_token_file));
    }
  }
  return connection;
}

std::shared_ptr<grpc::Channel> Connection::NewChannel(
    const std::string& server) const {
  return grpc::CreateCustomChannel(server, credentials_, arguments_);
}

void Connection::Authorize(grpc::ClientContext& context) const {
  if (token_.empty()) return;
  context.AddMetadata("authorization", absl::StrCat("Bearer ", token_));
}

std::string Describe(const grpc::Status& status) {
  return absl::StrCat(absl::StatusCodeToString(
                          static_cast<absl::StatusCode>(status.error_code())),
                      ": ", status.error_message());
}

}  // namespace fanprobe::cli
