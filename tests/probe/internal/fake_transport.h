// fake_transport.h: a transport without sockets, for testing the engine's
// admission (concurrency caps, per-host limits, fairness between batches),
// its return-when rules and exactly-once reporting on their own.  Probes
// "run" until the test finishes them, with the outcome it chooses.
//
// Each lane is a thread of its own that serves its events in order, as a
// libcurl worker does; the engine sees the same threads and the same
// reporting contract (internal/transport.h).  The test drives and watches
// the probes through a FakeProbes board shared with the factory.
//
// Example:
//   auto probes = std::make_shared<FakeProbes>();
//   EngineOptions options;
//   options.transport = std::make_shared<FakeTransportFactory>(probes);
//   auto engine = MakeEngine(options);
//   ... Submit ...
//   ASSERT_TRUE(probes->WaitForRunning(3));
//   probes->Finish(probes->Running()[0].id, Outcome::kOk);
//
// Thread-safety: every FakeProbes method is safe from any thread.

#ifndef FANPROBE_TESTS_PROBE_INTERNAL_FAKE_TRANSPORT_H_
#define FANPROBE_TESTS_PROBE_INTERNAL_FAKE_TRANSPORT_H_

#include <cstdint>
#include <functional>
#include <map>
#include <memory>
#include <string>
#include <vector>

#include "absl/base/thread_annotations.h"
#include "absl/status/statusor.h"
#include "absl/synchronization/mutex.h"
#include "absl/time/time.h"
#include "probe/internal/transport.h"
#include "probe/probe.h"

namespace fanprobe::testing {

class FakeLane;

// A probe a lane is running now.
struct FakeProbe {
  uint64_t id = 0;  // unique across the board's life
  int lane = 0;
  uint32_t index = 0;
  int attempt = 1;  // 2 and on: a retry
  std::string url;
  std::string host_key;  // the per-host limit's key
};

// What the test sees and drives.
class FakeProbes {
 public:
  // Probes running now, oldest first.
  std::vector<FakeProbe> Running() const;
  // Probes ever started; the most that ran at once, in total and for one
  // host key; probes dropped by a cancel or a lane's shutdown.
  uint64_t started() const;
  uint64_t dropped() const;
  size_t max_running() const;
  size_t max_running_per_host() const;
  // URLs in the order their probes started.
  std::vector<std::string> StartOrder() const;

  // Waits until `pred` holds for the running probes; false after `timeout`.
  bool WaitFor(std::function<bool(const std::vector<FakeProbe>&)> pred,
               absl::Duration timeout);
  bool WaitForRunning(size_t count, absl::Duration timeout);
  bool WaitForStarted(uint64_t count, absl::Duration timeout);

  // Ends probe `id` with `outcome` on its lane's thread (a result whose
  // status_code is 200 for kOk, 503 otherwise).  Does nothing if it is no
  // longer running when the lane gets to it.
  void Finish(uint64_t id, Outcome outcome);

 private:
  friend class FakeLane;
  friend class FakeTransportFactory;

  void Started(const FakeProbe& probe);
  void Ended(uint64_t id, bool dropped);
  void AddLane(FakeLane* lane);
  void RemoveLane(FakeLane* lane);
  uint64_t NextId();

  mutable absl::Mutex mu_;
  uint64_t next_id_ ABSL_GUARDED_BY(mu_) = 1;
  std::map<uint64_t, FakeProbe> running_ ABSL_GUARDED_BY(mu_);
  std::map<int, FakeLane*> lanes_ ABSL_GUARDED_BY(mu_);
  std::vector<std::string> start_order_ ABSL_GUARDED_BY(mu_);
  uint64_t started_ ABSL_GUARDED_BY(mu_) = 0;
  uint64_t dropped_ ABSL_GUARDED_BY(mu_) = 0;
  size_t max_running_ ABSL_GUARDED_BY(mu_) = 0;
  size_t max_running_per_host_ ABSL_GUARDED_BY(mu_) = 0;
};

class FakeTransportFactory : public internal::TransportFactory {
 public:
  explicit FakeTransportFactory(std::shared_ptr<FakeProbes> probes)
      : probes_(std::move(probes)) {}

  absl::StatusOr<std::unique_ptr<internal::Transport>> Create(
      int lanes, internal::TaskListener* listener) override;

 private:
  std::shared_ptr<FakeProbes> probes_;
};

}  // namespace fanprobe::testing

#endif  // FANPROBE_TESTS_PROBE_INTERNAL_FAKE_TRANSPORT_H_
