// stream_client: the bench's gRPC client for fanprobe-server.  Sends one
// StreamProbes batch and reads the stream the way any client would, timing
// it from the client's side: the clock starts just before the RPC is issued
// (the channel is connected beforehand, as a long-lived client's is), the
// first result is the first ProbeEvent carrying a result, and the batch ends
// with the summary event.  It formats nothing, so on 2 shared cores it takes
// as little CPU from the server as it can.
//
//   stream_client --server=127.0.0.1:50051 --urls_file=urls.txt
//                 --concurrency=10000 [--reuse] [--timeout=30s]
//
// Prints one JSON object: n, ok, completed, wall_s, first_s,
// server_elapsed_s (the summary's own elapsed), end_reason.

#include <cstdint>
#include <cstdio>
#include <fstream>
#include <memory>
#include <string>
#include <utility>

#include "absl/flags/flag.h"
#include "absl/flags/parse.h"
#include "absl/time/clock.h"
#include "absl/time/time.h"
#include "fanprobe/v1/prober.grpc.pb.h"
#include "fanprobe/v1/prober.pb.h"
#include "grpcpp/grpcpp.h"

ABSL_FLAG(std::string, server, "127.0.0.1:50051", "fanprobe-server address.");
ABSL_FLAG(std::string, urls_file, "", "One URL per line.");
ABSL_FLAG(int, concurrency, 100, "The batch's max_concurrency.");
ABSL_FLAG(bool, reuse, false, "reuse_connections: keep-alive between probes.");
ABSL_FLAG(absl::Duration, timeout, absl::Seconds(30), "Per-probe timeout.");
ABSL_FLAG(absl::Duration, deadline, absl::Minutes(5), "The RPC deadline.");

namespace {

double Seconds(const google::protobuf::Duration& d) {
  return static_cast<double>(d.seconds()) + d.nanos() / 1e9;
}

}  // namespace

int main(int argc, char** argv) {
  absl::ParseCommandLine(argc, argv);

  fanprobe::v1::ProbeBatchRequest request;
  {
    std::ifstream in(absl::GetFlag(FLAGS_urls_file));
    if (!in) {
      std::fprintf(stderr, "stream_client: cannot read --urls_file\n");
      return 2;
    }
    for (std::string line; std::getline(in, line);) {
      if (!line.empty()) request.add_targets()->set_url(std::move(line));
    }
  }
  const absl::Duration timeout = absl::GetFlag(FLAGS_timeout);
  fanprobe::v1::ProbeOptions* defaults = request.mutable_defaults();
  defaults->mutable_timeout()->set_seconds(absl::ToInt64Seconds(timeout));
  defaults->set_reuse_connections(absl::GetFlag(FLAGS_reuse));
  request.set_max_concurrency(absl::GetFlag(FLAGS_concurrency));
  const int n = request.targets_size();

  grpc::ChannelArguments channel_args;
  channel_args.SetMaxSendMessageSize(-1);
  channel_args.SetMaxReceiveMessageSize(-1);
  std::shared_ptr<grpc::Channel> channel = grpc::CreateCustomChannel(
      absl::GetFlag(FLAGS_server), grpc::InsecureChannelCredentials(),
      channel_args);
  if (!channel->WaitForConnected(
          absl::ToChronoTime(absl::Now() + absl::Seconds(10)))) {
    std::fprintf(stderr, "stream_client: cannot connect to %s\n",
                 absl::GetFlag(FLAGS_server).c_str());
    return 2;
  }
  std::unique_ptr<fanprobe::v1::Prober::Stub> stub =
      fanprobe::v1::Prober::NewStub(channel);

  grpc::ClientContext context;
  context.set_deadline(
      absl::ToChronoTime(absl::Now() + absl::GetFlag(FLAGS_deadline)));
  const absl::Time start = absl::Now();
  std::unique_ptr<grpc::ClientReader<fanprobe::v1::ProbeEvent>> reader =
      stub->StreamProbes(&context, request);

  double first_s = -1;
  int64_t results = 0;
  int64_t ok = 0;
  fanprobe::v1::BatchSummary summary;
  fanprobe::v1::ProbeEvent event;
  while (reader->Read(&event)) {
    if (event.has_result()) {
      if (results++ == 0) first_s = absl::ToDoubleSeconds(absl::Now() - start);
      if (event.result().outcome() == fanprobe::v1::OUTCOME_OK) ++ok;
    } else if (event.has_summary()) {
      summary = event.summary();
    }
  }
  const double wall_s = absl::ToDoubleSeconds(absl::Now() - start);
  const grpc::Status status = reader->Finish();
  if (!status.ok()) {
    std::fprintf(stderr, "stream_client: RPC failed: %d %s\n",
                 static_cast<int>(status.error_code()),
                 status.error_message().c_str());
    return 1;
  }

  std::printf(
      "{\"tool\": \"fanprobe\", \"n\": %d, \"ok\": %lld, \"completed\": %lld, "
      "\"wall_s\": %.6f, \"first_s\": %.6f, \"server_elapsed_s\": %.6f, "
      "\"end_reason\": \"%s\"}\n",
      n, static_cast<long long>(ok), static_cast<long long>(results), wall_s,
      first_s, Seconds(summary.elapsed()),
      fanprobe::v1::EndReason_Name(summary.reason()).c_str());
  return ok == n ? 0 : 1;
}
