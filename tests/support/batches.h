// batches.h: what tests of fanprobe.v1.Prober share on the client's side --
// building a request, reading a stream to its end, and checking the batch
// summary that comes back (ExpectSummary, one helper for the field by field
// checks every RPC test makes).
//
// Example:
//   StreamOutcome outcome = ReadStream(stub, BatchRequest({url_a, url_b}));
//   ASSERT_TRUE(outcome.status.ok());
//   ASSERT_EQ(outcome.summaries.size(), 1u);
//   ExpectSummary(outcome.summaries[0],
//                 {.reason = v1::END_REASON_ALL_COMPLETED, .completed = 2,
//                  .failed = 0, .pending = {{}}});
//
// Thread-safety: plain functions; a StreamOutcome is a value.

#ifndef FANPROBE_TESTS_SUPPORT_BATCHES_H_
#define FANPROBE_TESTS_SUPPORT_BATCHES_H_

#include <cstdint>
#include <optional>
#include <string>
#include <vector>

#include "absl/time/time.h"
#include "fanprobe/v1/prober.grpc.pb.h"
#include "fanprobe/v1/prober.pb.h"
#include "google/protobuf/repeated_field.h"
#include "grpcpp/grpcpp.h"

namespace fanprobe::testing {

// A request probing `urls` with everything else at its default.
v1::ProbeBatchRequest BatchRequest(const std::vector<std::string>& urls);

// The indices of `results` in their order.
std::vector<uint32_t> Indices(
    const google::protobuf::RepeatedPtrField<v1::ProbeResult>& results);

// Channel arguments for a client that reads slowly: a small flow-control
// window (no BDP probing, 1 KiB stream lookahead), so gRPC's own buffers
// hold few messages and a stream the client does not read backs up into
// the service's queue.
grpc::ChannelArguments SlowReaderArguments();

// A StreamProbes or ProbeStream call read to its end.
struct StreamOutcome {
  std::vector<v1::ProbeResult> results;  // in arrival order
  // How many results each `results` event carried (max_results_per_event
  // above 1), in arrival order; empty when each came in a `result`.
  std::vector<int> group_sizes;
  std::vector<v1::BatchSummary> summaries;
  grpc::Status status;
  absl::Duration elapsed;  // from the call to its status (second form only)
};
// The FieldViolation in `status`'s details, read as any gRPC client would:
// the google.rpc.Status in its error_details (code, message, details), whose
// one detail is an Any holding a fanprobe.v1.FieldViolation.  Fails the
// test, and returns nullopt, when the details are missing or malformed or
// their code and message differ from the status's own.
std::optional<v1::FieldViolation> FieldViolationOf(const grpc::Status& status);

// Reads `reader` to its end; a result after the summary fails the test.
StreamOutcome ReadStream(grpc::ClientReader<v1::ProbeEvent>& reader);
// The same for a ProbeStream call (whose writing side the caller handles).
StreamOutcome ReadStream(
    grpc::ClientReaderWriter<v1::ProbeStreamRequest, v1::ProbeEvent>& stream);
// Calls StreamProbes with `request` and reads it to its end.
StreamOutcome ReadStream(v1::Prober::Stub& stub,
                         const v1::ProbeBatchRequest& request);

// What a test expects of a BatchSummary: the reason always, every other
// field only when set.
struct ExpectedSummary {
  v1::EndReason reason = v1::END_REASON_UNSPECIFIED;
  std::optional<uint32_t> total;
  std::optional<uint32_t> completed;
  std::optional<uint32_t> succeeded;
  std::optional<uint32_t> failed;
  std::optional<uint32_t> cancelled;
  // pending_indices, in order; {{}} expects none.
  std::optional<std::vector<uint32_t>> pending;
  // elapsed is at least this.
  std::optional<absl::Duration> min_elapsed;
};

// EXPECTs each field `expected` sets; a failure names the caller's line.
void ExpectSummary(const v1::BatchSummary& summary,
                   const ExpectedSummary& expected,
                   const char* file = __builtin_FILE(),
                   int line = __builtin_LINE());

}  // namespace fanprobe::testing

#endif  // FANPROBE_TESTS_SUPPORT_BATCHES_H_
