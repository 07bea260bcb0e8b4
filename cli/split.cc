#include "cli/split.h"

#include <algorithm>
#include <cstdint>
#include <functional>
#include <memory>
#include <optional>
#include <string>
#include <thread>
#include <utility>
#include <vector>

#include "absl/status/status.h"
#include "absl/strings/str_cat.h"
#include "absl/strings/string_view.h"
#include "absl/synchronization/mutex.h"
#include "absl/time/time.h"
#include "google/protobuf/util/time_util.h"

namespace fanprobe::cli {
namespace {

using ::google::protobuf::util::TimeUtil;

absl::Duration FromProto(const google::protobuf::Duration& d) {
  return absl::Nanoseconds(TimeUtil::DurationToNanoseconds(d));
}

}  // namespace

std::vector<std::vector<uint32_t>> SplitContiguous(int total, int shares) {
  std::vector<std::vector<uint32_t>> split(shares);
  for (int k = 0; k < shares; ++k) {
    const int begin = static_cast<int>(int64_t{total} * k / shares);
    const int end = static_cast<int>(int64_t{total} * (k + 1) / shares);
    for (int i = begin; i < end; ++i) split[k].push_back(i);
  }
  return split;
}

// --- SplitMerger. ------------------------------------------------------------

SplitMerger::SplitMerger(v1::ReturnWhen rule,
                         std::vector<std::vector<uint32_t>> shares,
                         Printer& printer, Progress& progress,
                         std::function<void(size_t share)> cancel,
                         absl::Time start)
    : rule_(rule),
      shares_(std::move(shares)),
      cancel_(std::move(cancel)),
      start_(start),
      total_([this] {
        size_t total = 0;
        for (const std::vector<uint32_t>& share : shares_) {
          total += share.size();
        }
        return static_cast<int>(total);
      }()),
      printer_(&printer),
      progress_(&progress),
      completed_(total_, false),
      cancelled_(shares_.size(), false),
      elapsed_(shares_.size()) {}

void SplitMerger::OnResult(size_t share, v1::ProbeResult result) {
  absl::MutexLock lock(&mu_);
  if (cut_off_ || result.index() >= shares_[share].size()) return;
  const uint32_t index = shares_[share][result.index()];
  if (completed_[index]) return;
  completed_[index] = true;
  ++completed_count_;
  const bool ok = result.outcome() == v1::OUTCOME_OK;
  if (ok) ++succeeded_;
  result.set_index(index);
  v1::ProbeEvent event;
  *event.mutable_result() = std::move(result);
  progress_->Clear();
  printer_->Print(event);
  progress_->Update(completed_count_, completed_count_ - succeeded_);
  if (rule_ == v1::RETURN_WHEN_FIRST_COMPLETED) {
    EndLocked(v1::END_REASON_FIRST_COMPLETED, share);
  } else if (rule_ == v1::RETURN_WHEN_FIRST_EXCEPTION && !ok) {
    EndLocked(v1::END_REASON_FIRST_EXCEPTION, share);
  }
}

void SplitMerger::OnSummary(size_t share, const v1::BatchSummary& summary) {
  absl::MutexLock lock(&mu_);
  elapsed_[share] = FromProto(summary.elapsed());
  if (reason_.has_value()) return;
  if (summary.reason() == v1::END_REASON_TIMEOUT ||
      summary.reason() == v1::END_REASON_CANCELLED) {
    reason_ = summary.reason();
  }
}

void SplitMerger::Interrupt() {
  absl::MutexLock lock(&mu_);
  EndLocked(v1::END_REASON_CANCELLED, std::nullopt);
}

bool SplitMerger::Cancelled(size_t share) {
  absl::MutexLock lock(&mu_);
  return cancelled_[share];
}

void SplitMerger::Note(absl::string_view message) {
  absl::MutexLock lock(&mu_);
  progress_->Note(message);
}

v1::BatchSummary SplitMerger::Summary(absl::Time now) {
  absl::MutexLock lock(&mu_);
  v1::BatchSummary summary;
  summary.set_reason(reason_.value_or(v1::END_REASON_ALL_COMPLETED));
  summary.set_total(total_);
  summary.set_completed(completed_count_);
  summary.set_succeeded(succeeded_);
  summary.set_failed(completed_count_ - succeeded_);
  summary.set_cancelled(total_ - completed_count_);
  for (int i = 0; i < total_; ++i) {
    if (!completed_[i]) summary.add_pending_indices(i);
  }
  absl::Duration elapsed = absl::ZeroDuration();
  for (size_t k = 0; k < shares_.size(); ++k) {
    if (shares_[k].empty()) continue;
    if (!elapsed_[k].has_value()) {
      elapsed = now - start_;
      break;
    }
    elapsed = std::max(elapsed, *elapsed_[k]);
  }
  *summary.mutable_elapsed() =
      TimeUtil::NanosecondsToDuration(absl::ToInt64Nanoseconds(elapsed));
  return summary;
}

void SplitMerger::PrintSummary(const v1::BatchSummary& summary) {
  v1::ProbeEvent event;
  *event.mutable_summary() = summary;
  absl::MutexLock lock(&mu_);
  progress_->Clear();
  printer_->Print(event);
}

void SplitMerger::EndLocked(v1::EndReason reason, std::optional<size_t> keep) {
  if (!reason_.has_value()) reason_ = reason;
  if (cut_off_) return;
  cut_off_ = true;
  for (size_t k = 0; k < shares_.size(); ++k) {
    if (k == keep || shares_[k].empty()) continue;
    cancelled_[k] = true;
    cancel_(k);
  }
}

// --- SplitRun. ---------------------------------------------------------------

SplitRun::SplitRun(v1::ProbeBatchRequest request,
                   std::vector<std::unique_ptr<Share>> shares, Printer& printer,
                   Progress& progress)
    : request_(std::move(request)),
      indices_(SplitContiguous(request_.targets_size(),
                               static_cast<int>(shares.size()))),
      shares_(std::move(shares)),
      merger_(request_.return_when(), indices_, printer, progress,
              [this](size_t k) { shares_[k]->Cancel(); }) {}

void SplitRun::Interrupt() { merger_.Interrupt(); }

SplitOutcome SplitRun::Run() {
  std::vector<char> failed(shares_.size(), false);
  std::vector<std::thread> threads;
  for (size_t k = 0; k < shares_.size(); ++k) {
    if (indices_[k].empty()) continue;
    threads.emplace_back([this, k, &failed] { failed[k] = !RunShare(k); });
  }
  for (std::thread& thread : threads) thread.join();

  size_t ran = 0;
  size_t failures = 0;
  for (size_t k = 0; k < shares_.size(); ++k) {
    if (indices_[k].empty()) continue;
    ++ran;
    if (failed[k]) ++failures;
  }
  SplitOutcome outcome;
  outcome.share_failed = failures > 0;
  // With every stream failed there is nothing to summarize.
  if (failures < ran) {
    outcome.summary = merger_.Summary();
    merger_.PrintSummary(*outcome.summary);
  }
  return outcome;
}

bool SplitRun::RunShare(size_t k) {
  v1::ProbeBatchRequest request = request_;
  request.clear_targets();
  for (uint32_t index : indices_[k]) {
    *request.add_targets() = request_.targets(index);
  }
  bool summarized = false;
  const absl::Status status =
      shares_[k]->Run(request, [&](v1::ProbeEvent event) {
        if (event.has_summary()) {
          summarized = true;
          merger_.OnSummary(k, event.summary());
        } else {
          merger_.OnResult(k, std::move(*event.mutable_result()));
        }
      });
  if (absl::IsCancelled(status) && merger_.Cancelled(k)) return true;
  if (!status.ok()) {
    merger_.Note(absl::StrCat("fanprobe: ", status.message()));
    return false;
  }
  if (!summarized) {
    merger_.Note(absl::StrCat("fanprobe: ", shares_[k]->name(),
                              " ended the stream without a summary"));
    return false;
  }
  return true;
}

}  // namespace fanprobe::cli
