#include "tests/service/test_util.h"

#include <cstdio>
#include <cstdlib>
#include <functional>
#include <memory>
#include <string>
#include <utility>
#include <vector>

#include "absl/status/statusor.h"
#include "absl/strings/string_view.h"
#include "absl/synchronization/mutex.h"
#include "absl/time/clock.h"
#include "absl/time/time.h"

namespace fanprobe::testing {

bool WaitUntil(const std::function<bool()>& condition, absl::Duration timeout) {
  const absl::Time deadline = absl::Now() + timeout;
  while (!condition()) {
    if (absl::Now() >= deadline) return false;
    absl::SleepFor(absl::Milliseconds(1));
  }
  return true;
}

TestServer::TestServer(service::ServerOptions options) {
  options.grpc_address = "127.0.0.1:0";
  options.service.log = [this](absl::string_view line) {
    absl::MutexLock lock(&mu_);
    log_.emplace_back(line);
  };
  absl::StatusOr<std::unique_ptr<service::Server>> server =
      service::Server::Start(std::move(options));
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

std::shared_ptr<grpc::Channel> TestServer::NewSlowReaderChannel() const {
  grpc::ChannelArguments arguments;
  arguments.SetInt(GRPC_ARG_HTTP2_BDP_PROBE, 0);
  arguments.SetInt(GRPC_ARG_HTTP2_STREAM_LOOKAHEAD_BYTES, 1024);
  return NewChannel(arguments);
}

std::vector<std::string> TestServer::LogLines() const {
  absl::MutexLock lock(&mu_);
  return log_;
}

bool TestServer::WaitForLogLines(size_t count, absl::Duration timeout) const {
  absl::MutexLock lock(&mu_);
  const auto enough = [this, count]() ABSL_EXCLUSIVE_LOCKS_REQUIRED(mu_) {
    return log_.size() >= count;
  };
  return mu_.AwaitWithTimeout(absl::Condition(&enough), timeout);
}

v1::ProbeBatchRequest BatchRequest(const std::vector<std::string>& urls) {
  v1::ProbeBatchRequest request;
  for (const std::string& url : urls) request.add_targets()->set_url(url);
  return request;
}

void SetDuration(absl::Duration duration, google::protobuf::Duration* proto) {
  const int64_t seconds =
      absl::IDivDuration(duration, absl::Seconds(1), &duration);
  proto->set_seconds(seconds);
  proto->set_nanos(static_cast<int32_t>(duration / absl::Nanoseconds(1)));
}

absl::Duration FromProto(const google::protobuf::Duration& proto) {
  return absl::Seconds(proto.seconds()) + absl::Nanoseconds(proto.nanos());
}

std::vector<uint32_t> Indices(
    const google::protobuf::RepeatedPtrField<v1::ProbeResult>& results) {
  std::vector<uint32_t> indices;
  for (const v1::ProbeResult& result : results) {
    indices.push_back(result.index());
  }
  return indices;
}

}  // namespace fanprobe::testing
