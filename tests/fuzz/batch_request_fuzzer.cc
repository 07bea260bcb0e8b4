// batch_request_fuzzer.cc: libFuzzer target for the request path a caller
// controls byte for byte -- a ProbeBatchRequest as it arrives off the wire,
// through validation and conversion (service/convert.h), and the effective
// timeout.  Beyond "no crash, no sanitizer report", it checks the contract:
// a request is either refused with kInvalidArgument naming a field, or
// converted into one engine target per request target with sane options.
//
// Run: make fuzz (FUZZ_SECONDS per target), or by hand:
//   build-fuzz/tests/fuzz/batch_request_fuzzer tests/fuzz/corpus/batch_request

#include <cstddef>
#include <cstdint>
#include <cstdlib>
#include <string>

#include "absl/status/status.h"
#include "absl/status/statusor.h"
#include "absl/time/time.h"
#include "fanprobe/v1/prober.pb.h"
#include "google/protobuf/stubs/logging.h"
#include "probe/engine.h"
#include "service/convert.h"

namespace {

void Check(bool condition) {
  if (!condition) std::abort();
}

// Parsing random bytes makes protobuf log every invalid UTF-8 string.
void IgnoreLog(google::protobuf::LogLevel, const char*, int,
               const std::string&) {}

// What the server checks options with (Engine::CheckOptions, Limits): a
// real engine, one worker, made once.
const fanprobe::Engine& CheckingEngine() {
  static const fanprobe::Engine* const engine =
      fanprobe::Engine::Create({.workers = 1}).value().release();
  return *engine;
}

}  // namespace

extern "C" int LLVMFuzzerInitialize(int*, char***) {
  google::protobuf::SetLogHandler(&IgnoreLog);
  return 0;
}

extern "C" int LLVMFuzzerTestOneInput(const uint8_t* data, size_t size) {
  fanprobe::v1::ProbeBatchRequest request;
  if (!request.ParseFromArray(data, static_cast<int>(size))) return 0;

  fanprobe::service::RequestLimits limits;
  limits.max_batch_targets = 1000;  // keep each run small
  limits.max_in_flight = 500;
  const absl::StatusOr<fanprobe::service::BatchRequest> batch =
      fanprobe::service::BatchFromProto(request, limits, CheckingEngine());
  if (!batch.ok()) {
    Check(batch.status().code() == absl::StatusCode::kInvalidArgument);
    Check(!batch.status().message().empty());
    return 0;
  }
  Check(batch->targets.size() == static_cast<size_t>(request.targets_size()));
  Check(!batch->targets.empty());
  Check(batch->targets.size() <= limits.max_batch_targets);
  Check(batch->options.max_concurrency >= 1);
  Check(batch->options.max_concurrency <= limits.max_in_flight);
  Check(batch->options.timeout >= absl::ZeroDuration());
  for (int i = 0; i < request.targets_size(); ++i) {
    const fanprobe::ProbeTarget& target = batch->targets[i];
    Check(target.url == request.targets(i).url());
    Check(target.id == request.targets(i).id());
    Check(target.options != nullptr);
    Check(target.options->timeout > absl::ZeroDuration());
    Check(target.options->connect_timeout >= absl::ZeroDuration());
    for (const fanprobe::StatusRange& range : target.options->valid_status) {
      Check(range.min <= range.max);
    }
  }

  // The RPC deadline bounds the batch; whatever the two, never negative.
  const absl::Time now = absl::FromUnixSeconds(1700000000);
  for (const absl::Duration left :
       {absl::ZeroDuration(), absl::Milliseconds(1), absl::Seconds(3),
        absl::InfiniteDuration()}) {
    const absl::Duration timeout = fanprobe::service::EffectiveTimeout(
        batch->options.timeout, now + left, now, absl::Milliseconds(100));
    Check(timeout >= absl::ZeroDuration());
    Check(timeout <= batch->options.timeout);
  }
  return 0;
}
