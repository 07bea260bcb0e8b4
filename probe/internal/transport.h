// transport.h: the seam between admission (engine.cc: which probe starts
// next, batches, return-when rules, exactly-once) and what runs a probe (a
// libcurl worker, or a fake in tests).  Internal to probe/.
//
// A Transport has a fixed set of lanes, each a thread of its own.  The
// engine hands a probe to a lane and the lane reports it back, with a result
// or without one (its batch ended first), exactly once, on the lane's thread.
// The engine reacts inside that report -- often by starting the next probe
// on the same lane without a cross-thread wake-up (StartLocal).
//
// Injected through EngineOptions::transport, the way leveldb injects Env, so
// admission, fairness and return-when are tested without sockets.
//
// Example (a test):
//   EngineOptions options;
//   options.transport = std::make_shared<FakeTransportFactory>(...);
//   auto engine = Engine::Create(options).value();
//
// Thread-safety: Lane::PostStart/PostCancel from any thread; StartLocal only
// on the lane's own thread; TaskListener methods are called on lane threads.

#ifndef FANPROBE_PROBE_INTERNAL_TRANSPORT_H_
#define FANPROBE_PROBE_INTERNAL_TRANSPORT_H_

#include <cstdint>
#include <memory>
#include <optional>
#include <vector>

#include "absl/status/statusor.h"
#include "absl/time/time.h"
#include "probe/engine.h"
#include "probe/internal/prepared_options.h"
#include "probe/internal/target_url.h"
#include "probe/probe.h"

namespace fanprobe::internal {

class BatchState;  // the engine's; opaque to transports

// One probe handed to a lane.
struct ProbeTask {
  std::shared_ptr<BatchState> batch;  // keeps the target alive
  const ProbeTarget* target = nullptr;
  uint32_t index = 0;
  ParsedUrl url;  // parsed once, when the batch was submitted
  std::shared_ptr<const PreparedOptions> options;
  // Set by BeginAttempt() (CLOCK_MONOTONIC): when the first attempt began,
  // from which the probe's timeout counts across retries, and this one.
  int64_t first_start_ns = 0;
  int64_t attempt_start_ns = 0;
  // The attempts that ended and were retried (ProbeOptions::retry).
  std::vector<Attempt> attempts;
};

// Called by a lane as it begins `task` at `now_ns`: records the attempt's
// start and returns the probe's deadline.
inline int64_t BeginAttempt(ProbeTask& task, int64_t now_ns) {
  if (task.first_start_ns == 0) task.first_start_ns = now_ns;
  task.attempt_start_ns = now_ns;
  return task.first_start_ns +
         absl::ToInt64Nanoseconds(task.options->options->timeout);
}

// A result that carries the target's echoed fields and nothing else yet.
ProbeResult NewResult(const ProbeTarget& target, uint32_t index);

class Lane;

// Implemented by the engine.  Called on lane threads.
class TaskListener {
 public:
  virtual ~TaskListener() = default;
  // Every task started or posted ends here exactly once: with its result,
  // or with nullopt when it was dropped because its batch had ended.
  virtual void OnTaskEnded(Lane& lane, ProbeTask task,
                           std::optional<ProbeResult> result) = 0;
  // Whether the task's batch has ended (a cheap, lock-free check).
  virtual bool IsBatchEnded(const ProbeTask& task) = 0;
};

// What a lane has done, for the engine's stats.
struct LaneStats {
  uint64_t handles_discarded = 0;  // transport handles dropped after a
                                   // failed set-up (the probe went on)
  uint64_t dns_lookups = 0;        // lookups sent to a DNS server
  uint64_t dns_pending = 0;        // lookups in flight or waiting now
  uint64_t probes_paced = 0;       // waiting for connecting room now
  LagHistogram loop_lag;
};

class Lane {
 public:
  virtual ~Lane() = default;
  virtual int id() const = 0;
  // Starts `task` on this lane; from any thread.
  virtual void PostStart(ProbeTask task) = 0;
  // The same, on the lane's own thread (inside a TaskListener call), without
  // a wake-up.  It must not report the task from inside this call: the
  // listener starts the next task from inside a report.
  virtual void StartLocal(ProbeTask task) = 0;
  // Stops every running probe of `batch` (each reported with nullopt);
  // their connections close at once.
  virtual void PostCancel(const BatchState* batch) = 0;
  // Safe from any thread; figures may lag by a loop turn.
  virtual LaneStats Stats() const = 0;
};

class Transport {
 public:
  // Stops every lane: each task still running is reported with nullopt,
  // then the threads are joined.
  virtual ~Transport() = default;
  virtual const std::vector<Lane*>& lanes() const = 0;
};

class TransportFactory {
 public:
  virtual ~TransportFactory() = default;
  // Starts `lanes` lanes reporting to `listener`, which outlives them.
  virtual absl::StatusOr<std::unique_ptr<Transport>> Create(
      int lanes, TaskListener* listener) = 0;
};

}  // namespace fanprobe::internal

#endif  // FANPROBE_PROBE_INTERNAL_TRANSPORT_H_
