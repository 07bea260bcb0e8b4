// convert.h: the one place where fanprobe.v1 protobuf messages become engine
// types (probe/probe.h, probe/engine.h) and back, where a request is
// validated, and where an absl::Status becomes a grpc::Status.
//
// Validation rejects only what is wrong with the request as a whole, with
// kInvalidArgument and a message that starts with the offending field's path
// ("targets[3].options.timeout: must be positive").  A target the engine
// cannot probe (a bad URL, a header with CR/LF, a pattern that does not
// compile) is not a request error: the engine reports it as that target's
// kInvalidTarget result.
//
// Example:
//   absl::StatusOr<fanprobe::service::BatchRequest> batch =
//       fanprobe::service::BatchFromProto(request, limits);
//   if (!batch.ok()) return fanprobe::service::ToGrpcStatus(batch.status());
//   engine.Submit(std::move(batch->targets), batch->options, callbacks);
//
// Thread-safety: plain functions of their arguments.

#ifndef FANPROBE_SERVICE_CONVERT_H_
#define FANPROBE_SERVICE_CONVERT_H_

#include <cstdint>
#include <vector>

#include "absl/status/status.h"
#include "absl/status/statusor.h"
#include "absl/time/time.h"
#include "fanprobe/v1/prober.pb.h"
#include "grpcpp/support/status.h"
#include "probe/engine.h"
#include "probe/probe.h"

namespace fanprobe::service {

// What the server allows a request to ask for.
struct RequestLimits {
  // More targets than this is kInvalidArgument (--max_batch_targets).
  uint32_t max_batch_targets = 100000;
  // The batch concurrency when the request's max_concurrency is 0, as
  // aiohttp's connector limit.
  uint32_t default_concurrency = 100;
  // Caps every batch's concurrency (--max_in_flight).
  uint32_t max_in_flight = 10000;
};

// A validated request, in engine types.
struct BatchRequest {
  // One per request target, in request order.  Targets without options of
  // their own share one ProbeOptions built from the request's defaults.
  std::vector<ProbeTarget> targets;
  // options.timeout is the request's timeout (InfiniteDuration() if unset);
  // the RPC deadline is applied separately, see EffectiveTimeout().
  BatchOptions options;
};

// Validates `request` against `limits` and converts it.  kInvalidArgument
// names the field: no targets, too many targets, a negative or malformed
// duration, a zero probe timeout, an unknown enum value, a bad status range.
absl::StatusOr<BatchRequest> BatchFromProto(
    const v1::ProbeBatchRequest& request, const RequestLimits& limits);

// The batch timeout to run with: the earlier of the requested timeout and
// the RPC deadline less a margin, so the batch ends (END_REASON_TIMEOUT) and
// its summary still reaches the client before the deadline.  The margin is
// `max_margin`, or a fifth of the time left when that is less.  Never
// negative; InfiniteDuration() when neither bounds the batch.
absl::Duration EffectiveTimeout(absl::Duration requested, absl::Time deadline,
                                absl::Time now, absl::Duration max_margin);

v1::ProbeResult ResultToProto(ProbeResult result);
v1::BatchSummary SummaryToProto(const BatchSummary& summary);

v1::Outcome OutcomeToProto(Outcome outcome);
v1::DnsFailure DnsFailureToProto(DnsFailure failure);
v1::EndReason EndReasonToProto(EndReason reason);

// absl and gRPC share their status codes; the message is kept.
grpc::Status ToGrpcStatus(const absl::Status& status);

}  // namespace fanprobe::service

#endif  // FANPROBE_SERVICE_CONVERT_H_
