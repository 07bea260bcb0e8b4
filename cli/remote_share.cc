#include "cli/remote_share.h"

#include <functional>
#include <memory>
#include <string>
#include <utility>

#include "absl/status/status.h"
#include "absl/strings/str_cat.h"
#include "fanprobe/v1/prober.grpc.pb.h"

namespace fanprobe::cli {

RemoteShare::RemoteShare(std::string server, const Connection& connection)
    : server_(std::move(server)), connection_(connection) {
  connection_.Authorize(context_);
}

absl::Status RemoteShare::Run(
    const v1::ProbeBatchRequest& request,
    const std::function<void(v1::ProbeEvent event)>& on_event) {
  std::unique_ptr<v1::Prober::Stub> stub =
      v1::Prober::NewStub(connection_.NewChannel(server_));
  std::unique_ptr<grpc::ClientReader<v1::ProbeEvent>> reader =
      stub->StreamProbes(&context_, request);
  for (;;) {
    v1::ProbeEvent event;
    if (!reader->Read(&event)) break;
    on_event(std::move(event));
  }
  const grpc::Status status = reader->Finish();
  if (status.ok()) return absl::OkStatus();
  return absl::Status(
      static_cast<absl::StatusCode>(status.error_code()),
      absl::StrCat("StreamProbes on ", server_, " failed: ", Describe(status)));
}

}  // namespace fanprobe::cli
