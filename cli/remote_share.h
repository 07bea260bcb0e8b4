// remote_share.h: a share of a batch run on a fanprobe server, through one
// StreamProbes call, or for a large batch one ProbeStream call that sends
// the targets message by message (so no message nears the server's
// --max_batch_targets or gRPC's message size, and the server holds only
// what runs).
//
// Example:
//   auto share = std::make_unique<RemoteShare>("127.0.0.1:50051", connection);
//   absl::Status status = share->Run(request, [](v1::ProbeEvent e) { ... });
//
// The call's ClientContext is made in the constructor, so Cancel() works
// before Run starts.  Making it may start gRPC's threads, so a program that
// blocks signals for a sigwait thread must do so before constructing one.
//
// Thread-safety: Run from one thread; Cancel from any.

#ifndef FANPROBE_CLI_REMOTE_SHARE_H_
#define FANPROBE_CLI_REMOTE_SHARE_H_

#include <functional>
#include <string>

#include "absl/status/status.h"
#include "cli/connection.h"
#include "cli/split.h"
#include "fanprobe/v1/prober.pb.h"
#include "grpcpp/grpcpp.h"
#include "grpcpp/support/sync_stream.h"

namespace fanprobe::cli {

class RemoteShare : public Share {
 public:
  // Batches of more targets than this go through ProbeStream.
  static constexpr int kStreamAbove = 10000;
  // Targets per ProbeStream message.
  static constexpr int kTargetsPerMessage = 500;

  // `connection` must outlive the share.
  RemoteShare(std::string server, const Connection& connection,
              int stream_above = kStreamAbove);

  const std::string& name() const override { return server_; }

  // The call's status; a failure reads "StreamProbes on ADDR failed:
  // CODE: message" (or "ProbeStream on ..."), with the call's code.
  absl::Status Run(
      const v1::ProbeBatchRequest& request,
      const std::function<void(v1::ProbeEvent event)>& on_event) override;

  void Cancel() override { context_.TryCancel(); }

 private:
  // Reads `reader`'s events into `on_event`, results one by one.
  template <typename Reader>
  static void ReadEvents(
      Reader& reader,
      const std::function<void(v1::ProbeEvent event)>& on_event);

  const std::string server_;
  const Connection& connection_;
  const int stream_above_;
  grpc::ClientContext context_;
};

// Writes `request` over a ProbeStream call: a first message with its
// settings, then its targets, `targets_per_message` to a message, `repeat`
// times over (the bench's long streams), then closes the writing side.  The
// server reads targets only as earlier ones complete, so this runs beside
// the reading of the events.  Stops at the first write that fails: the call
// has ended (the batch ended early, or a cancel).
void WriteProbeStream(grpc::ClientReaderWriterInterface<v1::ProbeStreamRequest,
                                                        v1::ProbeEvent>& stream,
                      const v1::ProbeBatchRequest& request,
                      int targets_per_message, int repeat = 1);

}  // namespace fanprobe::cli

#endif  // FANPROBE_CLI_REMOTE_SHARE_H_
