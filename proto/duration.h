// duration.h: the one conversion between absl time types and the
// well-known protobuf types the contract uses (google.protobuf.Duration for
// timeouts and timings, google.protobuf.Timestamp for certificate expiry).
// The gRPC adapter (service/convert.h), the CLI and the tests all convert
// through here.
//
// Example:
//   DurationToProto(absl::Milliseconds(1500), request.mutable_timeout());
//   absl::StatusOr<absl::Duration> timeout = DurationFromProto(r.timeout());
//   if (!timeout.ok()) ...  // not a valid google.protobuf.Duration
//
// Thread-safety: plain functions of their arguments.

#ifndef FANPROBE_PROTO_DURATION_H_
#define FANPROBE_PROTO_DURATION_H_

#include "absl/status/statusor.h"
#include "absl/time/time.h"
#include "google/protobuf/duration.pb.h"
#include "google/protobuf/timestamp.pb.h"

namespace fanprobe {

// `proto` as an absl::Duration.  kInvalidArgument when it is not a valid
// google.protobuf.Duration: beyond the type's +-10,000 years, nanos outside
// +-999,999,999, or seconds and nanos of different signs.  Negative
// durations are valid here; whether one makes sense is the caller's rule.
absl::StatusOr<absl::Duration> DurationFromProto(
    const google::protobuf::Duration& proto);

// Sets `proto` to `duration`, truncated to whole nanoseconds (seconds and
// nanos of one sign, as the type requires).
void DurationToProto(absl::Duration duration,
                     google::protobuf::Duration* proto);

// Sets `proto` to `time`, to the nanosecond (nanos never negative, as the
// type requires).
void TimeToProto(absl::Time time, google::protobuf::Timestamp* proto);

}  // namespace fanprobe

#endif  // FANPROBE_PROTO_DURATION_H_
