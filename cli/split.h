// split.h: one batch run as shares -- contiguous slices of its targets, each
// run in one place (a fanprobe server: remote_share.h) -- merged back into
// one output: rows with their original index as they arrive, then one
// summary, as if one server had run the whole batch.  `fanprobe probe` with
// one server is the one-share case, so every run takes this path.
//
// Example:
//   std::vector<std::unique_ptr<Share>> shares = ...;  // one per server
//   SplitRun run(request, std::move(shares), printer, progress);
//   // from a signal thread: run.Interrupt();
//   SplitOutcome outcome = run.Run();  // blocks until every share ended
//
// The return-when rule holds across the shares: every share gets the
// batch's options, so each server ends its own share by the rule; the
// first result that ends the whole batch (the first result for
// FIRST_COMPLETED, the first failure for FIRST_EXCEPTION) also cancels the
// other shares, whose later results are dropped and whose probes are
// listed pending -- what one server would report.  The timeout is each
// share's own (they start together, so they share one deadline).  A share
// whose stream fails is reported and its unfinished probes listed pending;
// the others carry on.
//
// Thread-safety: SplitMerger and SplitRun::Interrupt may be called from any
// thread; SplitRun::Run once, from one thread.

#ifndef FANPROBE_CLI_SPLIT_H_
#define FANPROBE_CLI_SPLIT_H_

#include <cstddef>
#include <cstdint>
#include <functional>
#include <memory>
#include <optional>
#include <string>
#include <vector>

#include "absl/base/thread_annotations.h"
#include "absl/status/status.h"
#include "absl/strings/string_view.h"
#include "absl/synchronization/mutex.h"
#include "absl/time/clock.h"
#include "absl/time/time.h"
#include "cli/output.h"
#include "cli/progress.h"
#include "fanprobe/v1/prober.pb.h"

namespace fanprobe::cli {

// Splits `total` targets into `shares` contiguous runs of original indices,
// in order, whose sizes differ by at most one; with more shares than
// targets, some are empty.
std::vector<std::vector<uint32_t>> SplitContiguous(int total, int shares);

// One place that runs a share of the batch.
class Share {
 public:
  virtual ~Share() = default;

  // Where it runs, for messages ("127.0.0.1:50051").
  virtual const std::string& name() const = 0;

  // Runs `request` (the share's targets, indexed from 0) and passes each
  // event of its stream to `on_event`, on the calling thread, in order.
  // Returns once the stream has ended: OK; CANCELLED after Cancel(); or
  // another error whose message is for the user ("StreamProbes on ADDR
  // failed: UNAVAILABLE: ...").  Called once.
  virtual absl::Status Run(
      const v1::ProbeBatchRequest& request,
      const std::function<void(v1::ProbeEvent event)>& on_event) = 0;

  // Makes Run end soon, CANCELLED; before Run, makes it end at once.  Any
  // thread, any number of times; does not block.
  virtual void Cancel() = 0;
};

// Merges the shares' streams into one output and one summary: the state of
// a split run.  Each share's thread calls OnResult / OnSummary; a signal
// thread may call Interrupt.  It prints under its lock, so rows never
// interleave.
class SplitMerger {
 public:
  // `shares[k]`: the original indices of share k's targets.  `cancel(k)`
  // cancels share k; it is called under the merger's lock, so it must not
  // block or call back.  `printer` and `progress` must outlive the merger,
  // which is their only user meanwhile.
  SplitMerger(v1::ReturnWhen rule, std::vector<std::vector<uint32_t>> shares,
              Printer& printer, Progress& progress,
              std::function<void(size_t share)> cancel,
              absl::Time start = absl::Now());

  // A result of share `share`, indexed within it.  Printed with its
  // original index unless the batch has ended or the index is unknown or
  // seen before.
  void OnResult(size_t share, v1::ProbeResult result);

  // Share `share`'s own summary.  Its timeout or cancellation is why the
  // whole batch ended, unless something ended it earlier; its other
  // reasons follow from results already seen.
  void OnSummary(size_t share, const v1::BatchSummary& summary);

  // The user interrupted: the batch ends CANCELLED, every share cancelled.
  void Interrupt();

  // Whether the merger cancelled share `share` (so its CANCELLED end is
  // not an error of that share's).
  bool Cancelled(size_t share);

  // Prints `message` on stderr, clearing the progress line first.
  void Note(absl::string_view message);

  // Once every share has ended: the merged summary.  `elapsed` is the
  // longest share's own when every non-empty share sent its summary (so one
  // share's summary comes back unchanged), else the time since `start`.
  v1::BatchSummary Summary(absl::Time now = absl::Now());

  // Prints `summary` as the last event.
  void PrintSummary(const v1::BatchSummary& summary);

 private:
  // Ends the whole batch for `reason`: cancels every share but `keep` (the
  // share that ended by the rule itself) and drops later results.
  void EndLocked(v1::EndReason reason, std::optional<size_t> keep)
      ABSL_EXCLUSIVE_LOCKS_REQUIRED(mu_);

  // Constant after construction.
  const v1::ReturnWhen rule_;
  const std::vector<std::vector<uint32_t>> shares_;
  const std::function<void(size_t)> cancel_;
  const absl::Time start_;
  const int total_;

  absl::Mutex mu_;
  Printer* const printer_ ABSL_PT_GUARDED_BY(mu_);
  Progress* const progress_ ABSL_PT_GUARDED_BY(mu_);
  std::vector<bool> completed_ ABSL_GUARDED_BY(mu_);  // by original index
  int completed_count_ ABSL_GUARDED_BY(mu_) = 0;
  int succeeded_ ABSL_GUARDED_BY(mu_) = 0;
  // Why the whole batch ended, once something ended it.
  std::optional<v1::EndReason> reason_ ABSL_GUARDED_BY(mu_);
  // Set when the rule or an interrupt ended the whole batch: later results
  // count as pending.
  bool cut_off_ ABSL_GUARDED_BY(mu_) = false;
  std::vector<bool> cancelled_ ABSL_GUARDED_BY(mu_);  // by share
  // Each share's own elapsed time, once its summary came.
  std::vector<std::optional<absl::Duration>> elapsed_ ABSL_GUARDED_BY(mu_);
};

// How a split run went.
struct SplitOutcome {
  // The merged summary, as printed; absent when every share's stream failed
  // (then there is nothing to summarize).
  std::optional<v1::BatchSummary> summary;
  // Some share's stream failed (its message is printed on stderr).
  bool share_failed = false;
};

class SplitRun {
 public:
  // `shares[k]` runs share k of SplitContiguous(targets, shares.size()),
  // with `request`'s options.
  SplitRun(v1::ProbeBatchRequest request,
           std::vector<std::unique_ptr<Share>> shares, Printer& printer,
           Progress& progress);

  // Ends the batch CANCELLED; before or during Run, from any thread.
  void Interrupt();

  // Runs every non-empty share at once, each on its own thread, prints the
  // results as they come and then the merged summary; returns when every
  // share has ended.
  SplitOutcome Run();

 private:
  // Share k's stream to its end; false if it failed (and was reported).
  bool RunShare(size_t k);

  const v1::ProbeBatchRequest request_;
  const std::vector<std::vector<uint32_t>> indices_;
  const std::vector<std::unique_ptr<Share>> shares_;
  SplitMerger merger_;
};

}  // namespace fanprobe::cli

#endif  // FANPROBE_CLI_SPLIT_H_
