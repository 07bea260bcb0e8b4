// convert.h: the one place where fanprobe.v1 protobuf messages become engine
// types (probe/probe.h, probe/engine.h) and back, where a request is
// validated, and where an absl::Status becomes a grpc::Status.
//
// Validation rejects what is wrong with the request itself, with
// kInvalidArgument and a message that starts with the offending field's path
// ("targets[3].options.timeout: must be positive").  That includes every
// option the engine would refuse (Engine::CheckOptions: a method that is not
// a token, CR/LF/NUL in the user agent or a header, a pattern that does not
// compile, more than the server's caps on body, header and redirect sizes):
// the engine's rule, with the engine's field name turned into the request's
// path ("targets[3].options.headers.headers[0].value").  A URL the engine
// cannot probe is not a request error: it is that target's kInvalidTarget
// result, as the URL of a redirect may be.
//
// Example:
//   absl::StatusOr<fanprobe::service::BatchRequest> batch =
//       fanprobe::service::BatchFromProto(request, limits, engine);
//   if (!batch.ok()) return fanprobe::service::ToGrpcStatus(batch.status());
//   engine.Submit(std::move(batch->targets), batch->options, callbacks);
//
// Thread-safety: plain functions of their arguments.

#ifndef FANPROBE_SERVICE_CONVERT_H_
#define FANPROBE_SERVICE_CONVERT_H_

#include <cstdint>
#include <memory>
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
  // The request's defaults, shared by the targets without options of their
  // own (and by those a ProbeStream sends later).
  std::shared_ptr<const ProbeOptions> defaults;
};

// Validates `request` against `limits` and what `engine` accepts, and
// converts it.  kInvalidArgument names the field: no targets, too many
// targets, a negative or malformed duration, a zero probe timeout, an
// unknown enum value, a bad status range, and whatever
// Engine::CheckOptions refuses.  The defaults are checked once on their
// own; a target with options of its own is checked with the defaults merged
// in, and an error in it is that target's
// ("targets[3].options.max_body_bytes: ...").  A field set nowhere takes
// the engine's default, lowered to the engine's cap (Engine::Limits) where
// the server set the cap below it: a request that asks for nothing is never
// refused.
absl::StatusOr<BatchRequest> BatchFromProto(
    const v1::ProbeBatchRequest& request, const RequestLimits& limits,
    const Engine& engine);
// The same without an engine: the request's own rules only, not the
// engine's (no CheckOptions, no caps).  For a caller that checks options
// with its own engine afterwards (the CLI's in-process engine share).
absl::StatusOr<BatchRequest> BatchFromProto(
    const v1::ProbeBatchRequest& request, const RequestLimits& limits);

// ProbeStream's first message: as BatchFromProto for its `batch` (whose
// field paths then start with "batch."), except that the targets -- those
// of `batch` followed by the message's own -- may be none.  kInvalidArgument
// also when `batch` is not set.
absl::StatusOr<BatchRequest> StreamFromProto(
    const v1::ProbeStreamRequest& first, const RequestLimits& limits,
    const Engine& engine);
// A later ProbeStream message: its targets, with the defaults of `stream`
// (what StreamFromProto returned); the first is the stream's target
// `first_index`, as error paths say ("targets[1234].options.timeout").
// kInvalidArgument also when the message sets `batch` or holds more than
// max_batch_targets targets.
absl::StatusOr<std::vector<ProbeTarget>> StreamTargetsFromProto(
    const v1::ProbeStreamRequest& message, uint64_t first_index,
    const BatchRequest& stream, const RequestLimits& limits,
    const Engine& engine);

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

// absl and gRPC share their status codes; the message is kept.  An
// INVALID_ARGUMENT whose message names a field ("targets[3].options.timeout:
// must be positive") also carries it as a v1::FieldViolation, in the
// status's details (a google.rpc.Status).
grpc::Status ToGrpcStatus(const absl::Status& status);

}  // namespace fanprobe::service

#endif  // FANPROBE_SERVICE_CONVERT_H_
