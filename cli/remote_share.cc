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
    if (!event.has_results()) {
      on_event(std::move(event));
      continue;
    }
    // Results that arrived together go on one by one, as the in-process
    // engine's do.
    for (v1::ProbeResult& result :
         *event.mutable_results()->mutable_results()) {
      v1::ProbeEvent one;
      *one.mutable_result() = std::move(result);
      on_event(std::move(one));
    }
  }
  const grpc::Status status = reader->Finish();
  if (status.ok()) return absl::OkStatus();
  return absl::Status(
      static_cast<absl::StatusCode>(status.error_code()),
      absl::StrCat("StreamProbes on ", server_, " failed: ", Describe(status)));
}

}  // namespace fanprobe::cli
