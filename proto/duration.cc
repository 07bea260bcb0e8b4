#include "proto/duration.h"

#include <cstdint>

#include "absl/status/status.h"
#include "absl/status/statusor.h"
#include "absl/time/time.h"

namespace fanprobe {
namespace {

// google.protobuf.Duration's own range: +-10,000 years.
constexpr int64_t kMaxDurationSeconds = 315576000000;

}  // namespace

absl::StatusOr<absl::Duration> DurationFromProto(
    const google::protobuf::Duration& proto) {
  const int64_t seconds = proto.seconds();
  const int32_t nanos = proto.nanos();
  if (seconds > kMaxDurationSeconds || seconds < -kMaxDurationSeconds ||
      nanos <= -1000000000 || nanos >= 1000000000 ||
      (seconds > 0 && nanos < 0) || (seconds < 0 && nanos > 0)) {
    return absl::InvalidArgumentError("not a valid google.protobuf.Duration");
  }
  return absl::Seconds(seconds) + absl::Nanoseconds(nanos);
}

void DurationToProto(absl::Duration duration,
                     google::protobuf::Duration* proto) {
  const int64_t seconds =
      absl::IDivDuration(duration, absl::Seconds(1), &duration);
  proto->set_seconds(seconds);
  proto->set_nanos(static_cast<int32_t>(
      absl::IDivDuration(duration, absl::Nanoseconds(1), &duration)));
}

void TimeToProto(absl::Time time, google::protobuf::Timestamp* proto) {
  const int64_t seconds = absl::ToUnixSeconds(time);  // floor
  proto->set_seconds(seconds);
  proto->set_nanos(static_cast<int32_t>(
      (time - absl::FromUnixSeconds(seconds)) / absl::Nanoseconds(1)));
}

}  // namespace fanprobe
