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
//                 [--ca_file=ca.pem] [--outcomes_file=outcomes.txt]
//                 [--results_per_event=256]
//                 [--probe_stream --repeat=100 --per_message=1000]
//
// --probe_stream sends the targets over ProbeStream instead, --per_message
// in each message after the settings, the whole list --repeat times (so a
// million targets need no million-line file), and reports the client's
// peak RSS: a client that streams holds one message, not the list.
//
// Prints one JSON object: n, ok, completed, result_events (the messages
// that carried them), wall_s, first_s, client_max_rss_kb,
// server_elapsed_s (the summary's own elapsed), end_reason, and outcomes
// (count per outcome name).  --outcomes_file also writes one line per result,
// "<index> <OUTCOME_NAME>", so the bench can check each probe against the
// outcome its target was built to give.

#include <sys/resource.h>

#include <algorithm>
#include <cstdint>
#include <cstdio>
#include <fstream>
#include <map>
#include <memory>
#include <sstream>
#include <string>
#include <thread>
#include <utility>
#include <vector>

#include "absl/flags/flag.h"
#include "absl/flags/parse.h"
#include "absl/time/clock.h"
#include "absl/time/time.h"
#include "cli/remote_share.h"
#include "fanprobe/v1/prober.grpc.pb.h"
#include "fanprobe/v1/prober.pb.h"
#include "grpcpp/grpcpp.h"

ABSL_FLAG(std::string, server, "127.0.0.1:50051", "fanprobe-server address.");
ABSL_FLAG(std::string, urls_file, "", "One URL per line.");
ABSL_FLAG(int, concurrency, 100, "The batch's max_concurrency.");
ABSL_FLAG(bool, reuse, false, "reuse_connections: keep-alive between probes.");
ABSL_FLAG(uint32_t, results_per_event, 256,
          "The batch's max_results_per_event (1: one result per message).");
ABSL_FLAG(absl::Duration, timeout, absl::Seconds(30), "Per-probe timeout.");
ABSL_FLAG(absl::Duration, deadline, absl::Minutes(5), "The RPC deadline.");
ABSL_FLAG(std::string, ca_file, "",
          "PEM file sent as every probe's ca_pem (extra trusted CAs).");
ABSL_FLAG(bool, probe_stream, false,
          "Sends the targets over ProbeStream, message by message.");
ABSL_FLAG(int, repeat, 1,
          "--probe_stream: sends the URL list this many times.");
ABSL_FLAG(int, per_message, 1000, "--probe_stream: targets per message.");
ABSL_FLAG(std::string, outcomes_file, "",
          "Writes one line per result: its index and outcome name.");

namespace {

double Seconds(const google::protobuf::Duration& d) {
  return static_cast<double>(d.seconds()) + d.nanos() / 1e9;
}

long MaxRssKb() {
  rusage usage{};
  getrusage(RUSAGE_SELF, &usage);
  return usage.ru_maxrss;
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
  if (const std::string ca_file = absl::GetFlag(FLAGS_ca_file);
      !ca_file.empty()) {
    std::ifstream in(ca_file);
    std::stringstream pem;
    pem << in.rdbuf();
    if (!in || pem.str().empty()) {
      std::fprintf(stderr, "stream_client: cannot read --ca_file\n");
      return 2;
    }
    defaults->set_ca_pem(pem.str());
  }
  request.set_max_concurrency(absl::GetFlag(FLAGS_concurrency));
  request.set_max_results_per_event(absl::GetFlag(FLAGS_results_per_event));
  const bool probe_stream = absl::GetFlag(FLAGS_probe_stream);
  const int repeat =
      probe_stream ? std::max(1, absl::GetFlag(FLAGS_repeat)) : 1;
  const int per_message = std::max(1, absl::GetFlag(FLAGS_per_message));
  const int n = request.targets_size() * repeat;

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
  std::unique_ptr<grpc::ClientReader<fanprobe::v1::ProbeEvent>> reader;
  std::unique_ptr<grpc::ClientReaderWriter<fanprobe::v1::ProbeStreamRequest,
                                           fanprobe::v1::ProbeEvent>>
      stream;
  std::thread writer;
  if (!probe_stream) {
    reader = stub->StreamProbes(&context, request);
  } else {
    stream = stub->ProbeStream(&context);
    writer = std::thread([&stream, &request, repeat, per_message] {
      fanprobe::cli::WriteProbeStream(*stream, request, per_message, repeat);
    });
  }

  double first_s = -1;
  int64_t results = 0;
  int64_t result_events = 0;  // messages that carried results
  int64_t ok = 0;
  // Indexed by the result's index; OUTCOME_UNSPECIFIED until it arrives.
  std::vector<fanprobe::v1::Outcome> outcomes(
      n, fanprobe::v1::OUTCOME_UNSPECIFIED);
  fanprobe::v1::BatchSummary summary;
  const auto take = [&](const fanprobe::v1::ProbeResult& result) {
    if (results++ == 0) first_s = absl::ToDoubleSeconds(absl::Now() - start);
    if (result.outcome() == fanprobe::v1::OUTCOME_OK) ++ok;
    if (result.index() < outcomes.size()) {
      outcomes[result.index()] = result.outcome();
    }
  };
  fanprobe::v1::ProbeEvent event;
  const auto read = [&](fanprobe::v1::ProbeEvent* event) {
    return reader != nullptr ? reader->Read(event) : stream->Read(event);
  };
  while (read(&event)) {
    if (event.has_result()) {
      ++result_events;
      take(event.result());
    } else if (event.has_results()) {
      ++result_events;
      for (const fanprobe::v1::ProbeResult& result :
           event.results().results()) {
        take(result);
      }
    } else if (event.has_summary()) {
      summary = event.summary();
    }
  }
  const double wall_s = absl::ToDoubleSeconds(absl::Now() - start);
  if (writer.joinable()) writer.join();
  const grpc::Status status =
      reader != nullptr ? reader->Finish() : stream->Finish();
  if (!status.ok()) {
    std::fprintf(stderr, "stream_client: RPC failed: %d %s\n",
                 static_cast<int>(status.error_code()),
                 status.error_message().c_str());
    return 1;
  }

  // Probes with no result (cancelled by the batch's end) count as
  // OUTCOME_UNSPECIFIED.
  std::map<std::string, int64_t> counts;
  for (fanprobe::v1::Outcome outcome : outcomes) {
    ++counts[fanprobe::v1::Outcome_Name(outcome)];
  }
  if (const std::string path = absl::GetFlag(FLAGS_outcomes_file);
      !path.empty()) {
    std::ofstream out(path);
    for (size_t i = 0; i < outcomes.size(); ++i) {
      out << i << ' ' << fanprobe::v1::Outcome_Name(outcomes[i]) << '\n';
    }
    if (!out) {
      std::fprintf(stderr, "stream_client: cannot write --outcomes_file\n");
      return 2;
    }
  }
  std::string counts_json;
  for (const auto& [name, count] : counts) {
    if (!counts_json.empty()) counts_json += ", ";
    counts_json += "\"" + name + "\": " + std::to_string(count);
  }

  std::printf(
      "{\"tool\": \"fanprobe\", \"n\": %d, \"ok\": %lld, \"completed\": %lld, "
      "\"result_events\": %lld, \"wall_s\": %.6f, \"first_s\": %.6f, "
      "\"client_max_rss_kb\": %ld, "
      "\"server_elapsed_s\": %.6f, \"end_reason\": \"%s\", "
      "\"outcomes\": {%s}}\n",
      n, static_cast<long long>(ok), static_cast<long long>(results),
      static_cast<long long>(result_events), wall_s, first_s, MaxRssKb(),
      Seconds(summary.elapsed()),
      fanprobe::v1::EndReason_Name(summary.reason()).c_str(),
      counts_json.c_str());
  return ok == n ? 0 : 1;
}
