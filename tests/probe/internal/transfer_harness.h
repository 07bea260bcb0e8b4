// transfer_harness.h: runs probes through the libcurl transport alone
// (probe/internal/worker.h), without the engine's admission, so the transfer
// -- request, response checks, redirects, timings, network failures -- is
// tested on its own.  The transport is the one the engine makes by default
// (CurlTransportOptionsFor), and each target is made into a task by the
// engine's own code (PrepareOptions, ParseTargetUrl), so what runs here is
// what runs inside the engine.
//
// The harness is the transport's TaskListener: each Run starts a fresh
// transport, starts target i on lane i % lanes, waits (on the reports, never
// a sleep) until every task has been reported, and stops the transport.
// Tasks carry no BatchState: the transport only compares it, as the identity
// PostCancel names, and the harness never cancels.
//
// Example:
//   EngineOptions options{.workers = 2};
//   ResolveOnlyThrough(dns->address(), &options);
//   TransferHarness harness(std::move(options));
//   TransferRun run = harness.Run({Target(server.url("/status/200"))});
//   EXPECT_EQ(run.results[0].outcome, Outcome::kOk);
//
// Thread-safety: Run from one thread at a time; the listener's methods run
// on the lanes' threads.

#ifndef FANPROBE_TESTS_PROBE_INTERNAL_TRANSFER_HARNESS_H_
#define FANPROBE_TESTS_PROBE_INTERNAL_TRANSFER_HARNESS_H_

#include <cstdint>
#include <memory>
#include <optional>
#include <vector>

#include "absl/base/thread_annotations.h"
#include "absl/synchronization/mutex.h"
#include "absl/time/time.h"
#include "probe/engine.h"
#include "probe/internal/transport.h"
#include "probe/probe.h"
#include "tests/support/wait.h"  // kPatience

namespace fanprobe::testing {

struct TransferRun {
  std::vector<ProbeResult> results;  // in the order they were reported
  // From just before the first task was posted to the last report: what
  // every probe's own timings.total must fit in.
  absl::Duration elapsed;
};

class TransferHarness final : private internal::TaskListener {
 public:
  // `options` configures the transport as it configures the engine's
  // (destination_policy, dns_servers, resolv_conf, hosts_file, dns_timeout,
  // limits); `workers` is the number of lanes (at least one).
  explicit TransferHarness(EngineOptions options);
  TransferHarness(const TransferHarness&) = delete;
  TransferHarness& operator=(const TransferHarness&) = delete;

  // Runs `targets`, each as its index, and waits up to `patience` for all.
  // Fails the test if a target does not make a task (an unusable URL or
  // options are the engine's kInvalidTarget, tested with the engine), if the
  // transport does not start, if a task is dropped without a result or
  // reported twice, or if the reports do not all come within `patience`.
  TransferRun Run(std::vector<ProbeTarget> targets,
                  absl::Duration patience = kPatience);

 private:
  // internal::TaskListener.
  void OnTaskEnded(internal::Lane& lane, internal::ProbeTask task,
                   std::optional<ProbeResult> result) override;
  bool IsBatchEnded(const internal::ProbeTask& task) override { return false; }

  // Constant after construction; the factory points at
  // options_.destination_policy.
  const EngineOptions options_;
  const int lanes_;
  std::unique_ptr<internal::TransportFactory> factory_;

  // State below is protected by mu_; a Run resets it.
  absl::Mutex mu_;
  std::vector<int> reports_ ABSL_GUARDED_BY(mu_);  // by index
  size_t reported_ ABSL_GUARDED_BY(mu_) = 0;
  size_t dropped_ ABSL_GUARDED_BY(mu_) = 0;
  std::vector<ProbeResult> results_ ABSL_GUARDED_BY(mu_);
  int64_t last_report_ns_ ABSL_GUARDED_BY(mu_) = 0;
};

}  // namespace fanprobe::testing

#endif  // FANPROBE_TESTS_PROBE_INTERNAL_TRANSFER_HARNESS_H_
