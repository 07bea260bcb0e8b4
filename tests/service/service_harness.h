// service_harness.h: the gRPC adapter alone -- a ProberService over its own
// engine on a grpc::Server at a free loopback port, with a client stub and
// its batch log captured.  No health, reflection, credentials or metrics:
// those are the server's (tests/server/).
//
// Example:
//   ServiceHarness service({.stream_queue_limit = 8});
//   StreamOutcome outcome = ReadStream(service.stub(), BatchRequest({url}));
//   EXPECT_EQ(service.service().Stats().pending_probes, 0u);
//
// Thread-safety: its methods may be called from any thread.

#ifndef FANPROBE_TESTS_SERVICE_SERVICE_HARNESS_H_
#define FANPROBE_TESTS_SERVICE_SERVICE_HARNESS_H_

#include <memory>
#include <string>

#include "fanprobe/v1/prober.grpc.pb.h"
#include "grpcpp/grpcpp.h"
#include "probe/engine.h"
#include "service/prober_service.h"
#include "tests/support/log_capture.h"

namespace fanprobe::testing {

class ServiceHarness {
 public:
  // Starts the engine and the service with `options`, except that the batch
  // log is captured (log()).  Throws (failing the test) if the engine cannot
  // start; aborts the test binary if nothing can listen on 127.0.0.1.
  explicit ServiceHarness(service::ServiceOptions options = {},
                          EngineOptions engine = {});
  // Ends every call (the grpc::Server, then the service), then the engine.
  ~ServiceHarness();

  service::ProberService& service() { return *service_; }
  Engine& engine() { return *engine_; }
  v1::Prober::Stub& stub() { return *stub_; }
  const LogCapture& log() const { return log_; }

  // A new channel with its own connection (e.g. SlowReaderArguments()).
  std::shared_ptr<grpc::Channel> NewChannel(
      const grpc::ChannelArguments& arguments) const;

 private:
  LogCapture log_;
  std::unique_ptr<Engine> engine_;
  std::unique_ptr<service::ProberService> service_;
  std::unique_ptr<grpc::Server> server_;
  std::string address_;
  std::unique_ptr<v1::Prober::Stub> stub_;
};

}  // namespace fanprobe::testing

#endif  // FANPROBE_TESTS_SERVICE_SERVICE_HARNESS_H_
