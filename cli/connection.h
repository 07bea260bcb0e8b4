// connection.h: how the CLI reaches a fanprobe server -- plaintext or TLS,
// a client certificate, a bearer token -- from the connection flags both
// commands take (--tls_ca, --tls_cert, --tls_key, --tls_server_name,
// --auth_token_file).
//
// Example:
//   absl::StatusOr<Connection> connection = Connection::Resolve(flags);
//   if (!connection.ok()) return ...;  // names the flag at fault
//   auto stub = v1::Prober::NewStub(connection->NewChannel("host:50051"));
//   grpc::ClientContext context;
//   connection->Authorize(context);    // the token, if there is one
//
// Resolve reads every file it is given at once, so an unusable flag fails
// before any RPC starts.
//
// Thread-safety: a resolved Connection is immutable; its methods may be
// called from any thread.

#ifndef FANPROBE_CLI_CONNECTION_H_
#define FANPROBE_CLI_CONNECTION_H_

#include <memory>
#include <string>

#include "absl/status/status.h"
#include "absl/status/statusor.h"
#include "grpcpp/grpcpp.h"

namespace fanprobe::cli {

// The connection flags, as given (empty = not given).
struct ConnectionFlags {
  // PEM CA certificates to trust; turns TLS on.
  std::string tls_ca;
  // PEM client certificate and its key, for mutual TLS; they go together
  // and turn TLS on (with the system's CAs unless tls_ca).
  std::string tls_cert;
  std::string tls_key;
  // The name the server's certificate must carry, when it is not the
  // server address's host.  Needs TLS.
  std::string tls_server_name;
  // A file whose first line that is neither blank nor a '#' comment is the
  // bearer token.
  std::string auth_token_file;
};

class Connection {
 public:
  // Checks the flags and reads their files.  kInvalidArgument naming the
  // flag when a file cannot be read, holds no token, or flags that go
  // together are not given together.
  static absl::StatusOr<Connection> Resolve(const ConnectionFlags& flags);

  // A channel to `server` ("host:port") with these credentials.
  std::shared_ptr<grpc::Channel> NewChannel(const std::string& server) const;

  // Adds "authorization: Bearer <token>" to `context` when there is a token.
  void Authorize(grpc::ClientContext& context) const;

  bool tls() const { return tls_; }
  const std::string& token() const { return token_; }

 private:
  Connection() = default;

  std::shared_ptr<grpc::ChannelCredentials> credentials_;
  grpc::ChannelArguments arguments_;
  bool tls_ = false;
  std::string token_;
};

// How an RPC failed, for a message: "UNAVAILABLE: failed to connect ...".
std::string Describe(const grpc::Status& status);

}  // namespace fanprobe::cli

#endif  // FANPROBE_CLI_CONNECTION_H_
