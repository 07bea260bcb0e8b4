#include "tests/probe/internal/transfer_harness.h"

#include <algorithm>
#include <utility>

#include "absl/container/flat_hash_map.h"
#include "absl/status/statusor.h"
#include "gtest/gtest.h"
#include "probe/internal/monotonic.h"
#include "probe/internal/prepared_options.h"
#include "probe/internal/target_url.h"
#include "probe/internal/worker.h"

namespace fanprobe::testing {

using internal::Lane;
using internal::MonotonicNanos;
using internal::PreparedOptions;
using internal::ProbeTask;
using internal::Transport;

TransferHarness::TransferHarness(EngineOptions options)
    : options_(std::move(options)),
      lanes_(std::max(1, options_.workers)),
      factory_(internal::NewCurlTransportFactory(
          internal::CurlTransportOptionsFor(options_))) {}

TransferRun TransferHarness::Run(std::vector<ProbeTarget> targets,
                                 absl::Duration patience) {
  TransferRun run;
  // As the engine's Validate does: options prepared once per distinct
  // ProbeOptions object (so tasks that share them share a PreparedOptions,
  // which is what lets a lane reuse a handle), the URL parsed once.
  absl::flat_hash_map<const ProbeOptions*,
                      std::shared_ptr<const PreparedOptions>>
      prepared;
  std::vector<ProbeTask> tasks;
  for (uint32_t i = 0; i < targets.size(); ++i) {
    const ProbeTarget& target = targets[i];
    auto [it, inserted] = prepared.try_emplace(target.options.get());
    if (inserted) {
      absl::StatusOr<std::shared_ptr<const PreparedOptions>> options =
          internal::PrepareOptions(target.options, options_.limits);
      if (!options.ok()) {
        ADD_FAILURE() << "target " << i << ": " << options.status();
        return run;
      }
      it->second = *std::move(options);
    }
    absl::StatusOr<internal::ParsedUrl> url =
        internal::ParseTargetUrl(target.url);
    if (!url.ok()) {
      ADD_FAILURE() << "target " << i << ": " << url.status();
      return run;
    }
    tasks.push_back(ProbeTask{.batch = nullptr,
                              .target = &target,
                              .index = i,
                              .url = *std::move(url),
                              .options = it->second});
  }
  {
    absl::MutexLock lock(&mu_);
    reports_.assign(targets.size(), 0);
    reported_ = 0;
    dropped_ = 0;
    results_.clear();
    last_report_ns_ = 0;
  }

  absl::StatusOr<std::unique_ptr<Transport>> transport =
      factory_->Create(lanes_, this);
  if (!transport.ok()) {
    ADD_FAILURE() << "the transport did not start: " << transport.status();
    return run;
  }
  const std::vector<Lane*>& lanes = (*transport)->lanes();
  const int64_t start_ns = MonotonicNanos();
  for (ProbeTask& task : tasks) {
    lanes[task.index % lanes.size()]->PostStart(std::move(task));
  }
  {
    absl::MutexLock lock(&mu_);
    const size_t expected = targets.size();
    auto all_reported = [this, expected] {
      mu_.AssertReaderHeld();
      return reported_ >= expected;
    };
    if (!mu_.AwaitWithTimeout(absl::Condition(&all_reported), patience)) {
      ADD_FAILURE() << reported_ << " of " << expected
                    << " probes reported within " << patience;
    }
  }
  // Stops the lanes: anything still running is reported (dropped) and the
  // threads are joined, so no lane touches `targets` after this.
  transport->reset();

  absl::MutexLock lock(&mu_);
  EXPECT_EQ(dropped_, 0u) << "probes dropped without a result";
  for (size_t i = 0; i < reports_.size(); ++i) {
    EXPECT_EQ(reports_[i], 1)
        << "index " << i << " reported " << reports_[i] << " times";
  }
  run.results = std::move(results_);
  results_.clear();
  if (last_report_ns_ > 0) {
    run.elapsed = absl::Nanoseconds(last_report_ns_ - start_ns);
  }
  return run;
}

void TransferHarness::OnTaskEnded(Lane& lane, ProbeTask task,
                                  std::optional<ProbeResult> result) {
  const int64_t now = MonotonicNanos();
  absl::MutexLock lock(&mu_);
  if (task.index < reports_.size()) ++reports_[task.index];
  ++reported_;
  last_report_ns_ = now;
  if (result.has_value()) {
    results_.push_back(*std::move(result));
  } else {
    ++dropped_;
  }
}

}  // namespace fanprobe::testing
