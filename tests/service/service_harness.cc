#include "tests/service/service_harness.h"

#include <cstdio>
#include <cstdlib>
#include <memory>
#include <utility>

#include "absl/status/statusor.h"
#include "absl/strings/str_cat.h"
#include "absl/time/clock.h"
#include "absl/time/time.h"

namespace fanprobe::testing {

ServiceHarness::ServiceHarness(service::ServiceOptions options,
                               EngineOptions engine) {
  engine_ = Engine::Create(std::move(engine)).value();
  options.log = log_.sink();
  service_ =
      std::make_unique<service::ProberService>(*engine_, std::move(options));
  grpc::ServerBuilder builder;
  int port = 0;
  builder.AddListeningPort("127.0.0.1:0", grpc::InsecureServerCredentials(),
                           &port);
  builder.RegisterService(service_.get());
  server_ = builder.BuildAndStart();
  if (server_ == nullptr || port == 0) {
    std::fprintf(stderr, "cannot listen on 127.0.0.1\n");
    std::abort();
  }
  address_ = absl::StrCat("127.0.0.1:", port);
  // Connected before any test uses it: a test's first RPC is not
  // wait_for_ready, so a first connection attempt that fails (seen once in
  // a fresh-machine ASan run at load 10: "failed to connect to all
  // addresses ... No such file or directory") would fail a test whose
  // subject is the service, not the channel.  The channel retries with its
  // backoff until then.
  std::shared_ptr<grpc::Channel> channel =
      grpc::CreateChannel(address_, grpc::InsecureChannelCredentials());
  if (!channel->WaitForConnected(
          absl::ToChronoTime(absl::Now() + absl::Seconds(60)))) {
    std::fprintf(stderr, "cannot connect to the service on %s\n",
                 address_.c_str());
    std::abort();
  }
  stub_ = v1::Prober::NewStub(std::move(channel));
}

ServiceHarness::~ServiceHarness() {
  // The service outlives the grpc::Server it is registered with.
  server_->Shutdown(absl::ToChronoTime(absl::Now()));
  server_->Wait();
}

std::shared_ptr<grpc::Channel> ServiceHarness::NewChannel(
    const grpc::ChannelArguments& arguments) const {
  return grpc::CreateCustomChannel(address_, grpc::InsecureChannelCredentials(),
                                   arguments);
}

}  // namespace fanprobe::testing
