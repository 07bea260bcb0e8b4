#include "tests/support/test_server.h"

#include <cstdio>
#include <cstdlib>
#include <memory>
#include <utility>

#include "absl/status/statusor.h"

namespace fanprobe::testing {

TestServer::TestServer(server::ServerOptions options) {
  options.grpc_address = "127.0.0.1:0";
  options.log = log_.sink();
  absl::StatusOr<std::unique_ptr<server::Server>> server =
      server::Server::Start(std::move(options));
  if (!server.ok()) {
    std::fprintf(stderr, "cannot start the server: %s\n",
                 server.status().ToString().c_str());
    std::abort();
  }
  server_ = *std::move(server);
  channel_ = grpc::CreateChannel(server_->address(),
                                 grpc::InsecureChannelCredentials());
  stub_ = v1::Prober::NewStub(channel_);
}

std::shared_ptr<grpc::Channel> TestServer::NewChannel(
    const grpc::ChannelArguments& arguments) const {
  return grpc::CreateCustomChannel(
      server_->address(), grpc::InsecureChannelCredentials(), arguments);
}

}  // namespace fanprobe::testing
