#include "cli/remote_share.h"

#include <functional>
#include <memory>
#include <string>
#include <thread>
#include <utility>

#include "absl/status/status.h"
#include "absl/strings/str_cat.h"
#include "absl/strings/string_view.h"
#include "fanprobe/v1/prober.grpc.pb.h"

namespace fanprobe::cli {

RemoteShare::RemoteShare(std::string server, const Connection& connection,
                         int stream_above)
    : server_(std::move(server)),
      connection_(connection),
      stream_above_(stream_above) {
  connection_.Authorize(context_);
}

template <typename Reader>
void RemoteShare::ReadEvents(
    Reader& reader, const std::function<void(v1::ProbeEvent event)>& on_event) {
  for (;;) {
    v1::ProbeEvent event;
    if (!reader.Read(&event)) break;
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
}

absl::Status RemoteShare::Run(
    const v1::ProbeBatchRequest& request,
    const std::function<void(v1::ProbeEvent event)>& on_event) {
  std::unique_ptr<v1::Prober::Stub> stub =
      v1::Prober::NewStub(connection_.NewChannel(server_));
  grpc::Status status;
  absl::string_view rpc;
  if (request.targets_size() <= stream_above_) {
    rpc = "StreamProbes";
    std::unique_ptr<grpc::ClientReader<v1::ProbeEvent>> reader =
        stub->StreamProbes(&context_, request);
    ReadEvents(*reader, on_event);
    status = reader->Finish();
  } else {
    rpc = "ProbeStream";
    std::unique_ptr<
        grpc::ClientReaderWriter<v1::ProbeStreamRequest, v1::ProbeEvent>>
        stream = stub->ProbeStream(&context_);
    std::thread writer([&stream, &request] {
      WriteProbeStream(*stream, request, kTargetsPerMessage);
    });
    ReadEvents(*stream, on_event);
    writer.join();
    status = stream->Finish();
  }
  if (status.ok()) return absl::OkStatus();
  return absl::Status(
      static_cast<absl::StatusCode>(status.error_code()),
      absl::StrCat(rpc, " on ", server_, " failed: ", Describe(status)));
}

void WriteProbeStream(grpc::ClientReaderWriterInterface<v1::ProbeStreamRequest,
                                                        v1::ProbeEvent>& stream,
                      const v1::ProbeBatchRequest& request,
                      int targets_per_message, int repeat) {
  v1::ProbeStreamRequest message;
  *message.mutable_batch() = request;
  message.mutable_batch()->clear_targets();
  if (!stream.Write(message)) return;
  message.Clear();
  for (int r = 0; r < repeat; ++r) {
    for (const v1::ProbeTarget& target : request.targets()) {
      *message.add_targets() = target;
      if (message.targets_size() == targets_per_message) {
        if (!stream.Write(message)) return;
        message.Clear();
      }
    }
  }
  if (message.targets_size() > 0 && !stream.Write(message)) return;
  stream.WritesDone();
}

}  // namespace fanprobe::cli
