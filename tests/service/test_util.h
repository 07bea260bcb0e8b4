// test_util.h: what the service tests share -- an in-process fanprobe
// server on a free loopback port with its batch log captured, a client
// channel to it, and request builders.
//
// Example:
//   TestServer server;
//   v1::ProbeBatchRequest request = BatchRequest({target.url("/status/200")});
//   grpc::ClientContext context;
//   v1::ProbeBatchResponse response;
//   grpc::Status status = server.stub().ProbeBatch(&context, request,
//   &response);
//
// Thread-safety: TestServer's methods may be called from any thread.

#ifndef FANPROBE_TESTS_SERVICE_TEST_UTIL_H_
#define FANPROBE_TESTS_SERVICE_TEST_UTIL_H_

#include <functional>
#include <memory>
#include <string>
#include <vector>

#include "absl/synchronization/mutex.h"
#include "absl/time/time.h"
#include "fanprobe/v1/prober.grpc.pb.h"
#include "fanprobe/v1/prober.pb.h"
#include "grpcpp/grpcpp.h"
#include "service/server.h"

namespace fanprobe::testing {

// How long a test waits for something that must happen.  Generous: the
// suite runs beside others on two cores; a passing test never waits it out.
inline constexpr absl::Duration kPatience = absl::Seconds(10);

// Polls `condition` every millisecond until it holds or `timeout` passes;
// for state that offers no notification (service and engine stats).
bool WaitUntil(const std::function<bool()>& condition,
               absl::Duration timeout = kPatience);

class TestServer {
 public:
  // Starts a server with `options`, except that it listens on
  // 127.0.0.1:<free port> and its batch log is captured.
  explicit TestServer(service::ServerOptions options = {});

  service::Server& server() { return *server_; }
  const std::string& address() const { return server_->address(); }
  v1::Prober::Stub& stub() { return *stub_; }
  std::shared_ptr<grpc::Channel> channel() const { return channel_; }

  // A new channel with its own connection, e.g. with a small flow-control
  // window.
  std::shared_ptr<grpc::Channel> NewChannel(
      const grpc::ChannelArguments& arguments) const;
  // A new channel with a small flow-control window (no BDP probing, 1 KiB
  // stream lookahead), so gRPC's own buffers hold few messages and a
  // stream the client does not read backs up into the service's queue.
  std::shared_ptr<grpc::Channel> NewSlowReaderChannel() const;

  // The batch log lines so far.
  std::vector<std::string> LogLines() const;
  // Blocks until `count` log lines were written or `timeout` passes.
  bool WaitForLogLines(size_t count, absl::Duration timeout = kPatience) const;

 private:
  mutable absl::Mutex mu_;
  std::vector<std::string> log_ ABSL_GUARDED_BY(mu_);

  std::unique_ptr<service::Server> server_;
  std::shared_ptr<grpc::Channel> channel_;
  std::unique_ptr<v1::Prober::Stub> stub_;
};

// A request probing `urls` with everything else at its default.
v1::ProbeBatchRequest BatchRequest(const std::vector<std::string>& urls);

void SetDuration(absl::Duration duration, google::protobuf::Duration* proto);
absl::Duration FromProto(const google::protobuf::Duration& proto);

// The indices of `results` in their order.
std::vector<uint32_t> Indices(
    const google::protobuf::RepeatedPtrField<v1::ProbeResult>& results);

}  // namespace fanprobe::testing

#endif  // FANPROBE_TESTS_SERVICE_TEST_UTIL_H_
