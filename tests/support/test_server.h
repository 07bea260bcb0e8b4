// test_server.h: an in-process fanprobe server (server/server.h) on a free
// loopback port, with its log captured and a client channel to it -- for
// the tests of the server and of its clients (the CLI).
//
// Example:
//   TestServer server;
//   v1::ProbeBatchRequest request = BatchRequest({target.url("/status/200")});
//   grpc::ClientContext context;
//   v1::ProbeBatchResponse response;
//   grpc::Status status = server.stub().ProbeBatch(&context, request,
//                                                  &response);
//
// Thread-safety: TestServer's methods may be called from any thread.

#ifndef FANPROBE_TESTS_SUPPORT_TEST_SERVER_H_
#define FANPROBE_TESTS_SUPPORT_TEST_SERVER_H_

#include <memory>
#include <string>

#include "fanprobe/v1/prober.grpc.pb.h"
#include "grpcpp/grpcpp.h"
#include "server/server.h"
#include "tests/support/log_capture.h"

namespace fanprobe::testing {

class TestServer {
 public:
  // Starts a server with `options`, except that it listens on
  // 127.0.0.1:<free port> and its log is captured (log()).  Aborts the test
  // binary if it cannot start.
  explicit TestServer(server::ServerOptions options = {});

  server::Server& server() { return *server_; }
  const std::string& address() const { return server_->address(); }
  v1::Prober::Stub& stub() { return *stub_; }
  std::shared_ptr<grpc::Channel> channel() const { return channel_; }
  // Every line the server logged (batches, credentials reloads).
  const LogCapture& log() const { return log_; }

  // A new channel with its own connection, e.g. with a small flow-control
  // window (SlowReaderArguments in batches.h).
  std::shared_ptr<grpc::Channel> NewChannel(
      const grpc::ChannelArguments& arguments) const;

 private:
  LogCapture log_;
  std::unique_ptr<server::Server> server_;
  std::shared_ptr<grpc::Channel> channel_;
  std::unique_ptr<v1::Prober::Stub> stub_;
};

}  // namespace fanprobe::testing

#endif  // FANPROBE_TESTS_SUPPORT_TEST_SERVER_H_
