// The engine: admission (which probe starts next, on which worker) and the
// life of a batch (results, the return-when rule, timeout, cancel, summary).
//
// All admission and batch bookkeeping is guarded by EngineImpl::mu_.  What a
// locked section decides (start these tasks, deliver these results, cancel
// these batches' transfers) is collected in Actions and carried out after
// the lock is released, so callbacks and cross-thread posts never run under
// mu_.

#include "probe/engine.h"

#include <dirent.h>
#include <sys/resource.h>

#include <algorithm>
#include <atomic>
#include <deque>
#include <map>
#include <optional>
#include <string>
#include <thread>
#include <unordered_map>
#include <utility>

#include "absl/base/thread_annotations.h"
#include "absl/container/flat_hash_map.h"
#include "absl/container/flat_hash_set.h"
#include "absl/random/random.h"
#include "absl/status/status.h"
#include "absl/synchronization/mutex.h"
#include "absl/time/clock.h"
#include "probe/internal/monotonic.h"
#include "probe/internal/prepared_options.h"
#include "probe/internal/target_url.h"
#include "probe/internal/tls.h"
#include "probe/internal/transport.h"
#include "probe/internal/worker.h"

namespace fanprobe {
namespace internal {

class EngineImpl;

// Lets a Batch handle outlive its engine: a call through it after the
// engine is gone does nothing, and the engine's destructor waits for calls
// already inside.
class EngineLink {
 public:
  explicit EngineLink(EngineImpl* engine) : engine_(engine) {}

  template <typename Fn>
  void Call(Fn fn) {
    EngineImpl* engine;
    {
      absl::MutexLock lock(&mu_);
      if (engine_ == nullptr) return;
      engine = engine_;
      ++calls_;
    }
    fn(engine);
    absl::MutexLock lock(&mu_);
    if (--calls_ == 0) idle_.SignalAll();
  }

  void Detach() {
    absl::MutexLock lock(&mu_);
    engine_ = nullptr;
    while (calls_ > 0) idle_.Wait(&mu_);
  }

 private:
  absl::Mutex mu_;
  absl::CondVar idle_;
  EngineImpl* engine_ ABSL_GUARDED_BY(mu_);
  int calls_ ABSL_GUARDED_BY(mu_) = 0;
};

// One target of a batch, from Add() until it and every earlier one have
// completed.
struct Slot {
  ProbeTarget target;  // tasks point at it; a deque never moves it
  ParsedUrl url;       // moved into the task when taken
  // Null when the target is unusable: it completed as kInvalidTarget.
  std::shared_ptr<const PreparedOptions> options;
  bool done = false;  // completed: its result is in the outbox or handed over
};

// One batch.  It is also the caller's Batch handle.
class BatchState final : public Batch,
                         public std::enable_shared_from_this<BatchState> {
 public:
  BatchState(std::shared_ptr<EngineLink> link, absl::Mutex& engine_mu,
             const BatchOptions& options, uint32_t max_concurrency,
             BatchCallbacks callbacks)
      : mu(engine_mu),
        link(std::move(link)),
        options(options),
        max_concurrency(max_concurrency),
        start(absl::Now()),
        callbacks(std::move(callbacks)),
        given(options.targets_to_add) {}

  void Cancel() override;
  void PauseAdmission() override;
  void ResumeAdmission() override;
  void Add(std::vector<ProbeTarget> targets) override;
  void Close() override;
  uint32_t size() const override {
    return added.load(std::memory_order_relaxed);
  }

  // The engine's mu_, which guards the state below.  A reference, so that
  // -Wthread-safety checks every access: the engine's locked sections say
  // mu.AssertHeld() for each batch they touch.
  absl::Mutex& mu;

  // Constant after construction.
  const std::shared_ptr<EngineLink> link;
  const BatchOptions options;
  const uint32_t max_concurrency;
  const absl::Time start;

  // Set once, under the engine's mu_; read without it by workers.
  std::atomic<bool> ended{false};
  // Targets added: written under the engine's mu_, read by size() without.
  std::atomic<uint32_t> added{0};

  // Serialises Add() calls, which check their targets outside the engine's
  // mu_.
  absl::Mutex add_mu;

  // Invoked without mu_ held, by one thread at a time (the one that set
  // `delivering`); cleared once the summary has been delivered.
  BatchCallbacks callbacks;

  // State below is guarded by the engine's mu_.
  struct HostSlots {
    uint32_t running = 0;  // running or reserved for a task in `ready`
    std::deque<ProbeTask> waiting;
  };
  // Targets from this index on are not yet taken (those below `base` were
  // all done before they were reached).
  uint32_t next_index ABSL_GUARDED_BY(mu) = 0;
  // The targets from index `base` on, checked; the front one is never done
  // (done ones are dropped from the front), so what is held is what runs or
  // waits, plus done shells behind a target still running.
  std::deque<Slot> slots ABSL_GUARDED_BY(mu);
  uint32_t base ABSL_GUARDED_BY(mu) = 0;
  // Targets handed to Add() while the batch was open, or announced for it
  // (BatchOptions::targets_to_add): `added`, plus those not taken yet.
  uint32_t given ABSL_GUARDED_BY(mu);
  bool closed ABSL_GUARDED_BY(mu) = false;          // Close() was called
  std::deque<ProbeTask> ready ABSL_GUARDED_BY(mu);  // hold a reserved host slot
  absl::flat_hash_map<std::string, HostSlots> hosts ABSL_GUARDED_BY(mu);
  // Running, or waiting out a backoff before a retry (`retrying` of them):
  // a probe keeps its concurrency and host slots across its attempts.
  uint32_t running ABSL_GUARDED_BY(mu) = 0;
  uint32_t retrying ABSL_GUARDED_BY(mu) = 0;
  uint32_t completed ABSL_GUARDED_BY(mu) = 0;
  uint32_t succeeded ABSL_GUARDED_BY(mu) = 0;
  uint32_t failed ABSL_GUARDED_BY(mu) = 0;
  int pause_depth ABSL_GUARDED_BY(mu) = 0;
  bool in_admission ABSL_GUARDED_BY(mu) = false;
  std::optional<std::multimap<absl::Time, std::weak_ptr<BatchState>>::iterator>
      deadline ABSL_GUARDED_BY(mu);
  // Results in completion order, waiting for on_result.  One thread at a
  // time drains them (`delivering`), so on_result calls never overlap and
  // keep that order; the summary goes out once they are all delivered.
  std::deque<ProbeResult> outbox ABSL_GUARDED_BY(mu);
  bool delivering ABSL_GUARDED_BY(mu) = false;
  // Results completed whose on_result has not returned yet.  They hold
  // their probe's concurrency slot until then, so a consumer that pauses
  // admission from on_result gets at most max_concurrency more results.
  uint32_t unreleased ABSL_GUARDED_BY(mu) = 0;
  std::optional<BatchSummary> summary ABSL_GUARDED_BY(mu);  // set at the end
  bool summary_sent ABSL_GUARDED_BY(mu) = false;
};

// A node map: GCC 12 warns (-Wmaybe-uninitialized, wrongly) about moving
// StatusOr<shared_ptr> slots inside absl's flat_hash_map.
using PreparedCache =
    std::unordered_map<const ProbeOptions*,
                       absl::StatusOr<std::shared_ptr<const PreparedOptions>>>;

class EngineImpl final : public Engine, public TaskListener {
 public:
  explicit EngineImpl(const EngineOptions& options)
      : options_(options), link_(std::make_shared<EngineLink>(this)) {}
  ~EngineImpl() override;

  absl::Status Init();

  std::shared_ptr<Batch> Open(const BatchOptions& options,
                              BatchCallbacks callbacks) override;
  EngineStats Stats() const override;
  absl::Status CheckOptions(const ProbeOptions& options) const override {
    return internal::CheckOptions(options, options_.limits);
  }
  const ProbeLimits& Limits() const override { return options_.limits; }

  void OnTaskEnded(Lane& lane, ProbeTask task,
                   std::optional<ProbeResult> result) override;
  bool IsBatchEnded(const ProbeTask& task) override {
    return task.batch->ended.load(std::memory_order_acquire);
  }

  void Add(BatchState* batch, std::vector<ProbeTarget> targets);
  void Close(BatchState* batch);
  void EndBatch(BatchState* batch, EndReason reason);
  void Pause(BatchState* batch);
  void Resume(BatchState* batch);

 private:
  // Work decided under mu_, carried out by RunActions() without it.
  struct Actions {
    std::vector<std::pair<Lane*, ProbeTask>> starts;
    std::vector<std::shared_ptr<BatchState>> deliveries;  // outbox or summary
    std::vector<std::shared_ptr<BatchState>> cancels;
  };
  void RunActions(Actions& actions, Lane* current);
  // Delivers `batch`'s outbox and then, once it has ended, its summary;
  // returns at once if another thread is delivering for it.  Probes that a
  // delivered result's slot lets start go to `current` when it has room.
  void Deliver(BatchState* batch, Lane* current);

  // Checks `targets` outside mu_, then appends them to the batch, completes
  // the unusable ones as kInvalidTarget and opens the rest to admission.
  void AddChunk(BatchState* batch, std::vector<ProbeTarget>::iterator begin,
                std::vector<ProbeTarget>::iterator end,
                PreparedCache* prepared);
  void FillLocked(Actions* actions, Lane* current)
      ABSL_EXCLUSIVE_LOCKS_REQUIRED(mu_);
  void TakeOneLocked(BatchState* batch, Actions* actions, Lane* current)
      ABSL_EXCLUSIVE_LOCKS_REQUIRED(mu_);
  bool AdmissibleLocked(const BatchState& batch) const
      ABSL_EXCLUSIVE_LOCKS_REQUIRED(mu_);
  void EnqueueLocked(BatchState* batch) ABSL_EXCLUSIVE_LOCKS_REQUIRED(mu_);
  void CompleteLocked(BatchState* batch, ProbeResult result, Actions* actions)
      ABSL_EXCLUSIVE_LOCKS_REQUIRED(mu_);
  void EndLocked(BatchState* batch, EndReason reason, Actions* actions)
      ABSL_EXCLUSIVE_LOCKS_REQUIRED(mu_);
  Lane* PickLaneLocked(Lane* current) ABSL_EXCLUSIVE_LOCKS_REQUIRED(mu_);
  void TimerLoop();

  // Constant after Init().
  const EngineOptions options_;
  const std::shared_ptr<EngineLink> link_;
  uint32_t max_in_flight_ = 0;
  uint64_t fd_limit_ = 0;
  uint64_t fd_open_at_start_ = 0;
  std::unique_ptr<Transport> transport_;
  std::vector<Lane*> lanes_;
  std::thread timer_thread_;

  mutable absl::Mutex mu_;
  absl::CondVar timer_cv_;  // deadlines_ changed, or stopping_
  bool stopping_ ABSL_GUARDED_BY(mu_) = false;
  uint64_t in_flight_ ABSL_GUARDED_BY(mu_) = 0;
  std::vector<uint32_t> lane_load_ ABSL_GUARDED_BY(mu_);
  // Batches that may start a probe, served round-robin: fairness.
  std::deque<std::shared_ptr<BatchState>> admission_ ABSL_GUARDED_BY(mu_);
  absl::flat_hash_set<std::shared_ptr<BatchState>> active_ ABSL_GUARDED_BY(mu_);
  std::multimap<absl::Time, std::weak_ptr<BatchState>> deadlines_
      ABSL_GUARDED_BY(mu_);
  // Probes waiting out a backoff, by when they are tried again.  Each
  // still counts in in_flight_ and its batch's `running`.
  std::multimap<absl::Time, ProbeTask> retries_ ABSL_GUARDED_BY(mu_);
};

void BatchState::Cancel() {
  link->Call(
      [this](EngineImpl* e) { e->EndBatch(this, EndReason::kCancelled); });
}
void BatchState::Add(std::vector<ProbeTarget> targets) {
  link->Call(
      [this, &targets](EngineImpl* e) { e->Add(this, std::move(targets)); });
}
void BatchState::Close() {
  link->Call([this](EngineImpl* e) { e->Close(this); });
}
void BatchState::PauseAdmission() {
  link->Call([this](EngineImpl* e) { e->Pause(this); });
}
void BatchState::ResumeAdmission() {
  link->Call([this](EngineImpl* e) { e->Resume(this); });
}

namespace {

// Targets added and not yet taken by admission (some may be done already:
// unusable ones).  Below `base` every target is done, so admission starts
// there if it has not reached it.
uint32_t UntakenLocked(const BatchState& batch) {
  batch.mu.AssertHeld();
  return batch.added.load(std::memory_order_relaxed) -
         std::max(batch.next_index, batch.base);
}

// The soft RLIMIT_NOFILE in force.
uint64_t FdLimit() {
  rlimit limit{};
  if (getrlimit(RLIMIT_NOFILE, &limit) != 0) return 1024;
  return limit.rlim_cur == RLIM_INFINITY ? (1u << 20) : limit.rlim_cur;
}

// The wait before attempt `made` + 1 of a probe: gRPC's exponential
// backoff, with a fifth of jitter either way.
absl::Duration Backoff(const RetryPolicy& retry, int made) {
  double seconds = absl::ToDoubleSeconds(retry.initial_backoff);
  const double max_seconds = absl::ToDoubleSeconds(retry.max_backoff);
  for (int i = 1; i < made && seconds < max_seconds; ++i) {
    seconds *= retry.backoff_multiplier;
  }
  seconds = std::min(seconds, max_seconds);
  thread_local absl::InsecureBitGen bitgen;
  return absl::Seconds(seconds * absl::Uniform(bitgen, 0.8, 1.2));
}

// Records the attempt that ended with `result` in `task`, and returns how
// long until the next attempt begins, or nullopt when this one is the last:
// its outcome does not retry, the attempts are used up, or the next one
// could not begin before the probe's timeout.  The last one's result gets
// the list of every attempt.
std::optional<absl::Duration> EndAttempt(ProbeTask& task, ProbeResult& result) {
  const ProbeOptions& options = *task.options->options;
  const RetryPolicy& retry = options.retry;
  if (retry.max_attempts <= 1) return std::nullopt;
  task.attempts.push_back(Attempt{
      .outcome = result.outcome,
      .status_code = result.status_code,
      .error = result.error,
      .dns_failure = result.dns_failure,
      .remote_ip = result.remote_ip,
      .remote_port = result.remote_port,
      .start = absl::Nanoseconds(task.attempt_start_ns - task.first_start_ns),
      .timings = result.timings,
  });
  const int made = static_cast<int>(task.attempts.size());
  std::optional<absl::Duration> wait;
  if (made < retry.max_attempts && task.first_start_ns != 0 &&
      std::find(retry.retry_on.begin(), retry.retry_on.end(), result.outcome) !=
          retry.retry_on.end()) {
    wait = Backoff(retry, made);
    const int64_t deadline_ns =
        task.first_start_ns + absl::ToInt64Nanoseconds(options.timeout);
    if (MonotonicNanos() + absl::ToInt64Nanoseconds(*wait) >= deadline_ns) {
      wait.reset();
    }
  }
  if (!wait.has_value()) result.attempts = std::move(task.attempts);
  return wait;
}

uint64_t OpenFdCount() {
  uint64_t count = 0;
  if (DIR* dir = opendir("/proc/self/fd")) {
    while (dirent* entry = readdir(dir)) {
      if (entry->d_name[0] != '.') ++count;
    }
    closedir(dir);
  }
  return count;
}

}  // namespace

absl::Status EngineImpl::Init() {
  // Parsed once per process; done here so the first https probe does not
  // pay for it.
  TrustStore::System();
  // Each running probe holds one socket; admission keeps the total inside
  // the process's descriptor budget instead of failing with EMFILE.
  fd_limit_ = FdLimit();
  fd_open_at_start_ = OpenFdCount();
  const uint64_t used = fd_open_at_start_ + options_.fd_reserve;
  const uint64_t budget = fd_limit_ > used ? fd_limit_ - used : 1;
  max_in_flight_ = static_cast<uint32_t>(std::max<uint64_t>(
      1, std::min<uint64_t>(std::max(options_.max_in_flight, 1u), budget)));

  int workers = options_.workers;
  if (workers <= 0) {
    workers =
        std::max(1, static_cast<int>(std::thread::hardware_concurrency()));
  }
  {
    absl::MutexLock lock(&mu_);
    lane_load_.assign(workers, 0);
  }
  std::shared_ptr<TransportFactory> factory = options_.transport;
  if (factory == nullptr) {
    factory = NewCurlTransportFactory(CurlTransportOptionsFor(options_));
  }
  absl::StatusOr<std::unique_ptr<Transport>> transport =
      factory->Create(workers, this);
  if (!transport.ok()) return transport.status();
  transport_ = *std::move(transport);
  lanes_ = transport_->lanes();
  timer_thread_ = std::thread([this] { TimerLoop(); });
  return absl::OkStatus();
}

EngineImpl::~EngineImpl() {
  link_->Detach();  // batch handles now do nothing
  Actions actions;
  {
    absl::MutexLock lock(&mu_);
    stopping_ = true;
    std::vector<std::shared_ptr<BatchState>> batches(active_.begin(),
                                                     active_.end());
    for (const auto& batch : batches) {
      EndLocked(batch.get(), EndReason::kCancelled, &actions);
    }
    timer_cv_.SignalAll();
  }
  RunActions(actions, nullptr);
  if (timer_thread_.joinable()) timer_thread_.join();
  // Each lane drops what it still runs (reported back here) and joins.
  transport_.reset();
}

std::shared_ptr<Batch> EngineImpl::Open(const BatchOptions& options,
                                        BatchCallbacks callbacks) {
  uint32_t max_concurrency =
      options.max_concurrency == 0 ? max_in_flight_ : options.max_concurrency;
  auto on_start = std::move(callbacks.on_start);
  auto batch = std::make_shared<BatchState>(
      link_, mu_, options, max_concurrency, std::move(callbacks));
  if (on_start) on_start(batch);
  Actions actions;
  {
    absl::MutexLock lock(&mu_);
    batch->mu.AssertHeld();
    // Unless on_start cancelled it: then it is over, with nothing to track.
    if (!batch->ended) {
      active_.insert(batch);
      if (stopping_) {
        EndLocked(batch.get(), EndReason::kCancelled, &actions);
      } else if (options.timeout != absl::InfiniteDuration()) {
        batch->deadline = deadlines_.emplace(
            batch->start + std::max(options.timeout, absl::ZeroDuration()),
            batch);
        timer_cv_.Signal();
      }
    }
  }
  RunActions(actions, nullptr);
  return batch;
}

void EngineImpl::Add(BatchState* batch, std::vector<ProbeTarget> targets) {
  absl::MutexLock add_lock(&batch->add_mu);
  // Checked here, on the caller's thread, in growing chunks: the first
  // probes start after a few hundred targets are checked, and an unusable
  // target completes as soon as it is reached, without waiting for a slot
  // however busy the engine is.
  PreparedCache prepared;
  const size_t total = targets.size();
  {
    // Counted before any is checked: if the batch ends meanwhile, its
    // summary lists those not taken yet as pending.
    absl::MutexLock lock(&mu_);
    batch->mu.AssertHeld();
    if (batch->ended || batch->closed) return;
    // Those announced at Open() are the first added.
    const uint64_t through =
        uint64_t{batch->added.load(std::memory_order_relaxed)} + total;
    batch->given = static_cast<uint32_t>(std::min<uint64_t>(
        std::max<uint64_t>(batch->given, through), UINT32_MAX));
  }
  size_t chunk = 256;
  for (size_t begin = 0; begin < total && !batch->ended; begin += chunk) {
    if (begin > 0) chunk = 4096;
    const size_t end = std::min(total, begin + chunk);
    AddChunk(batch, targets.begin() + static_cast<ptrdiff_t>(begin),
             targets.begin() + static_cast<ptrdiff_t>(end), &prepared);
  }
}

void EngineImpl::AddChunk(BatchState* batch,
                          std::vector<ProbeTarget>::iterator begin,
                          std::vector<ProbeTarget>::iterator end,
                          PreparedCache* prepared) {
  std::vector<Slot> slots(static_cast<size_t>(end - begin));
  std::vector<std::pair<size_t, absl::Status>> invalid;
  for (size_t i = 0; i < slots.size(); ++i) {
    Slot& slot = slots[i];
    slot.target = std::move(begin[static_cast<ptrdiff_t>(i)]);
    auto [it, inserted] = prepared->try_emplace(slot.target.options.get());
    if (inserted) {
      it->second = PrepareOptions(slot.target.options, options_.limits);
    }
    absl::Status status = it->second.status();
    if (status.ok()) {
      absl::StatusOr<ParsedUrl> url = ParseTargetUrl(slot.target.url);
      if (url.ok()) {
        slot.url = *std::move(url);
        slot.options = *it->second;
      }
      status = url.status();
    }
    if (!status.ok()) invalid.emplace_back(i, std::move(status));
  }
  Actions actions;
  {
    absl::MutexLock lock(&mu_);
    batch->mu.AssertHeld();
    if (batch->ended || batch->closed) return;
    const uint32_t first = batch->added.load(std::memory_order_relaxed);
    for (Slot& slot : slots) batch->slots.push_back(std::move(slot));
    batch->added.store(first + static_cast<uint32_t>(slots.size()),
                       std::memory_order_relaxed);
    for (auto& [position, status] : invalid) {
      if (batch->ended) break;
      const uint32_t index = first + static_cast<uint32_t>(position);
      ProbeResult result =
          NewResult(batch->slots[index - batch->base].target, index);
      result.outcome = Outcome::kInvalidTarget;
      result.error = std::string(status.message());
      CompleteLocked(batch, std::move(result), &actions);
    }
    EnqueueLocked(batch);
    FillLocked(&actions, nullptr);
  }
  RunActions(actions, nullptr);
}

void EngineImpl::Close(BatchState* batch) {
  Actions actions;
  {
    absl::MutexLock lock(&mu_);
    batch->mu.AssertHeld();
    batch->closed = true;
    if (batch->completed == batch->added.load(std::memory_order_relaxed)) {
      EndLocked(batch, EndReason::kAllCompleted, &actions);
    }
  }
  RunActions(actions, nullptr);
}

EngineStats EngineImpl::Stats() const {
  absl::MutexLock lock(&mu_);
  EngineStats stats;
  stats.probes_in_flight = in_flight_;
  stats.probes_backing_off = retries_.size();
  stats.batches_active = active_.size();
  stats.max_in_flight = max_in_flight_;
  stats.fd_limit = fd_limit_;
  stats.fd_open_at_start = fd_open_at_start_;
  stats.fd_reserve = options_.fd_reserve;
  for (const Lane* lane : lanes_) {
    const LaneStats lane_stats = lane->Stats();
    stats.handles_discarded += lane_stats.handles_discarded;
    stats.dns_lookups += lane_stats.dns_lookups;
    stats.dns_pending += lane_stats.dns_pending;
    stats.probes_paced += lane_stats.probes_paced;
    for (size_t i = 0; i < stats.loop_lag.counts.size(); ++i) {
      stats.loop_lag.counts[i] += lane_stats.loop_lag.counts[i];
    }
    stats.loop_lag.count += lane_stats.loop_lag.count;
    stats.loop_lag.sum_seconds += lane_stats.loop_lag.sum_seconds;
  }
  for (const auto& batch : active_) {
    batch->mu.AssertHeld();
    uint64_t queued = UntakenLocked(*batch) + batch->ready.size();
    for (const auto& [key, host] : batch->hosts) queued += host.waiting.size();
    stats.probes_queued += queued;
  }
  return stats;
}

void EngineImpl::OnTaskEnded(Lane& lane, ProbeTask task,
                             std::optional<ProbeResult> result) {
  std::optional<absl::Duration> retry_in;
  if (result.has_value()) retry_in = EndAttempt(task, *result);
  Actions actions;
  {
    absl::MutexLock lock(&mu_);
    BatchState* batch = task.batch.get();
    batch->mu.AssertHeld();
    --lane_load_[lane.id()];
    if (retry_in.has_value() && !batch->ended) {
      // Tried again by TimerLoop(), in the slots it holds.
      ++batch->retrying;
      auto it = retries_.emplace(absl::Now() + *retry_in, std::move(task));
      if (it == retries_.begin()) timer_cv_.Signal();
      return;
    }
    --in_flight_;
    --batch->running;
    if (!batch->ended) {
      if (batch->options.max_per_host > 0) {
        auto it = batch->hosts.find(task.url.host_key);
        if (it != batch->hosts.end()) {
          BatchState::HostSlots& host = it->second;
          // Hand the slot straight to the next waiter for this host.
          if (!host.waiting.empty()) {
            batch->ready.push_back(std::move(host.waiting.front()));
            host.waiting.pop_front();
          } else {
            --host.running;
          }
        }
      }
      // A result that arrives after the batch ended is dropped: the probe is
      // already listed as pending in the summary.
      if (result.has_value()) {
        CompleteLocked(batch, std::move(*result), &actions);
      }
      EnqueueLocked(batch);
    }
    FillLocked(&actions, &lane);
  }
  RunActions(actions, &lane);
}

void EngineImpl::EndBatch(BatchState* batch, EndReason reason) {
  Actions actions;
  {
    absl::MutexLock lock(&mu_);
    EndLocked(batch, reason, &actions);
  }
  RunActions(actions, nullptr);
}

void EngineImpl::Pause(BatchState* batch) {
  absl::MutexLock lock(&mu_);
  batch->mu.AssertHeld();
  ++batch->pause_depth;
}

void EngineImpl::Resume(BatchState* batch) {
  Actions actions;
  {
    absl::MutexLock lock(&mu_);
    batch->mu.AssertHeld();
    if (batch->pause_depth > 0) --batch->pause_depth;
    EnqueueLocked(batch);
    FillLocked(&actions, nullptr);
  }
  RunActions(actions, nullptr);
}

bool EngineImpl::AdmissibleLocked(const BatchState& batch) const {
  batch.mu.AssertHeld();
  return !batch.ended && batch.pause_depth == 0 &&
         batch.running + batch.unreleased < batch.max_concurrency &&
         (!batch.ready.empty() || UntakenLocked(batch) > 0);
}

void EngineImpl::EnqueueLocked(BatchState* batch) {
  batch->mu.AssertHeld();
  if (!batch->in_admission && AdmissibleLocked(*batch)) {
    batch->in_admission = true;
    admission_.push_back(batch->shared_from_this());
  }
}

void EngineImpl::FillLocked(Actions* actions, Lane* current) {
  while (in_flight_ < max_in_flight_ && !admission_.empty() && !stopping_) {
    std::shared_ptr<BatchState> batch = std::move(admission_.front());
    admission_.pop_front();
    batch->mu.AssertHeld();
    batch->in_admission = false;
    if (!AdmissibleLocked(*batch)) continue;
    TakeOneLocked(batch.get(), actions, current);
    EnqueueLocked(batch.get());  // to the back: one probe per turn
  }
}

void EngineImpl::TakeOneLocked(BatchState* batch, Actions* actions,
                               Lane* current) {
  batch->mu.AssertHeld();
  const uint32_t max_per_host = batch->options.max_per_host;
  while (!batch->ended) {
    ProbeTask task;
    if (!batch->ready.empty()) {
      task = std::move(batch->ready.front());  // its host slot is reserved
      batch->ready.pop_front();
    } else if (UntakenLocked(*batch) > 0) {
      batch->next_index = std::max(batch->next_index, batch->base);
      const uint32_t index = batch->next_index++;
      Slot& slot = batch->slots[index - batch->base];
      if (slot.done) continue;  // completed by AddChunk(): unusable
      task.url = std::move(slot.url);
      task.batch = batch->shared_from_this();
      task.target = &slot.target;
      task.index = index;
      task.options = std::move(slot.options);
      if (max_per_host > 0) {
        BatchState::HostSlots& host = batch->hosts[task.url.host_key];
        if (host.running >= max_per_host) {
          host.waiting.push_back(std::move(task));
          continue;
        }
        ++host.running;
      }
    } else {
      return;
    }
    ++batch->running;
    ++in_flight_;
    Lane* lane = PickLaneLocked(current);
    ++lane_load_[lane->id()];
    actions->starts.emplace_back(lane, std::move(task));
    return;
  }
}

Lane* EngineImpl::PickLaneLocked(Lane* current) {
  // Stay on the calling lane (no cross-thread wake-up) unless another is
  // clearly less loaded.
  constexpr uint32_t kLocalSlack = 16;
  Lane* best = lanes_.front();
  for (Lane* lane : lanes_) {
    if (lane_load_[lane->id()] < lane_load_[best->id()]) best = lane;
  }
  if (current != nullptr &&
      lane_load_[current->id()] <= lane_load_[best->id()] + kLocalSlack) {
    return current;
  }
  return best;
}

void EngineImpl::CompleteLocked(BatchState* batch, ProbeResult result,
                                Actions* actions) {
  batch->mu.AssertHeld();
  const Outcome outcome = result.outcome;
  batch->slots[result.index - batch->base].done = true;
  // Done targets leave from the front; one behind a target still running
  // stays, emptied, until that one is done.
  if (result.index != batch->base) {
    Slot& slot = batch->slots[result.index - batch->base];
    slot.target = ProbeTarget();
    slot.url = ParsedUrl();
    slot.options.reset();
  }
  while (!batch->slots.empty() && batch->slots.front().done) {
    batch->slots.pop_front();
    ++batch->base;
  }
  ++batch->completed;
  if (outcome == Outcome::kOk) {
    ++batch->succeeded;
  } else {
    ++batch->failed;
  }
  ++batch->unreleased;
  batch->outbox.push_back(std::move(result));
  actions->deliveries.push_back(batch->shared_from_this());
  switch (batch->options.return_when) {
    case ReturnWhen::kFirstCompleted:
      EndLocked(batch, EndReason::kFirstCompleted, actions);
      return;
    case ReturnWhen::kFirstException:
      if (outcome != Outcome::kOk) {
        EndLocked(batch, EndReason::kFirstException, actions);
        return;
      }
      break;
    case ReturnWhen::kAllCompleted:
      break;
  }
  if (batch->closed &&
      batch->completed == batch->added.load(std::memory_order_relaxed)) {
    EndLocked(batch, EndReason::kAllCompleted, actions);
  }
}

void EngineImpl::EndLocked(BatchState* batch, EndReason reason,
                           Actions* actions) {
  batch->mu.AssertHeld();
  if (batch->ended) return;
  batch->ended.store(true, std::memory_order_release);
  BatchSummary summary;
  summary.reason = reason;
  const uint32_t added = batch->added.load(std::memory_order_relaxed);
  summary.total = std::max(added, batch->given);
  summary.completed = batch->completed;
  summary.succeeded = batch->succeeded;
  summary.failed = batch->failed;
  for (size_t i = 0; i < batch->slots.size(); ++i) {
    if (!batch->slots[i].done) {
      summary.pending_indices.push_back(batch->base + static_cast<uint32_t>(i));
    }
  }
  for (uint32_t index = added; index < summary.total; ++index) {
    summary.pending_indices.push_back(index);  // given or announced, not taken
  }
  summary.cancelled = static_cast<uint32_t>(summary.pending_indices.size());
  summary.elapsed = absl::Now() - batch->start;
  batch->summary = std::move(summary);

  std::shared_ptr<BatchState> self = batch->shared_from_this();
  if (batch->retrying > 0) {
    // Listed as pending above; their slots are free now.
    for (auto it = retries_.begin(); it != retries_.end();) {
      if (it->second.batch.get() != batch) {
        ++it;
        continue;
      }
      it = retries_.erase(it);
      --in_flight_;
      --batch->running;
    }
    batch->retrying = 0;
    FillLocked(actions, nullptr);
  }
  if (batch->running > 0) actions->cancels.push_back(self);
  // Queued tasks hold a reference to the batch: drop them now.
  batch->ready.clear();
  batch->hosts.clear();
  if (batch->deadline.has_value()) {
    deadlines_.erase(*batch->deadline);
    batch->deadline.reset();
  }
  if (batch->in_admission) {
    admission_.erase(std::find(admission_.begin(), admission_.end(), self));
    batch->in_admission = false;
  }
  active_.erase(self);
  actions->deliveries.push_back(std::move(self));
}

void EngineImpl::RunActions(Actions& actions, Lane* current) {
  for (auto& [lane, task] : actions.starts) {
    if (lane == current) {
      lane->StartLocal(std::move(task));
    } else {
      lane->PostStart(std::move(task));
    }
  }
  for (const auto& batch : actions.cancels) {
    for (Lane* lane : lanes_) lane->PostCancel(batch.get());
  }
  for (const auto& batch : actions.deliveries) Deliver(batch.get(), current);
}

void EngineImpl::Deliver(BatchState* batch, Lane* current) {
  {
    absl::MutexLock lock(&mu_);
    batch->mu.AssertHeld();
    if (batch->delivering) return;  // that thread will see our results too
    batch->delivering = true;
  }
  bool released_one = false;
  for (;;) {
    std::optional<ProbeResult> result;
    bool summary_now = false;
    BatchSummary summary;
    Actions actions;
    {
      absl::MutexLock lock(&mu_);
      batch->mu.AssertHeld();
      if (released_one) {
        // The last on_result returned: its slot is free now.
        --batch->unreleased;
        EnqueueLocked(batch);
        FillLocked(&actions, current);
      }
      if (!batch->outbox.empty()) {
        result = std::move(batch->outbox.front());
        batch->outbox.pop_front();
      } else {
        batch->delivering = false;
        // Nothing is added to the outbox once the batch has ended.
        summary_now = batch->ended && !batch->summary_sent;
        if (summary_now) {
          batch->summary_sent = true;
          summary = *std::move(batch->summary);
        }
      }
    }
    RunActions(actions, current);
    if (result.has_value()) {
      if (batch->callbacks.on_result) {
        batch->callbacks.on_result(*std::move(result));
      }
      released_one = true;
      continue;
    }
    if (summary_now) {
      auto on_done = std::move(batch->callbacks.on_done);
      batch->callbacks = BatchCallbacks{};
      if (on_done) on_done(std::move(summary));
    }
    return;
  }
}

void EngineImpl::TimerLoop() {
  absl::MutexLock lock(&mu_);
  while (!stopping_) {
    absl::Time next = absl::InfiniteFuture();
    if (!deadlines_.empty()) next = deadlines_.begin()->first;
    if (!retries_.empty()) next = std::min(next, retries_.begin()->first);
    const absl::Time now = absl::Now();
    if (now < next) {
      timer_cv_.WaitWithDeadline(&mu_, next);
      continue;
    }
    Actions actions;
    // Batch deadlines first: a batch that ends now drops its retries.
    while (!deadlines_.empty() && deadlines_.begin()->first <= now) {
      std::shared_ptr<BatchState> batch = deadlines_.begin()->second.lock();
      deadlines_.erase(deadlines_.begin());
      if (batch == nullptr) continue;
      batch->mu.AssertHeld();
      batch->deadline.reset();
      EndLocked(batch.get(), EndReason::kTimeout, &actions);
    }
    while (!retries_.empty() && retries_.begin()->first <= now) {
      ProbeTask task = std::move(retries_.begin()->second);
      retries_.erase(retries_.begin());
      BatchState* batch = task.batch.get();
      batch->mu.AssertHeld();
      --batch->retrying;
      Lane* lane = PickLaneLocked(nullptr);
      ++lane_load_[lane->id()];
      actions.starts.emplace_back(lane, std::move(task));
    }
    mu_.Unlock();
    RunActions(actions, nullptr);
    mu_.Lock();
  }
}

}  // namespace internal

std::shared_ptr<Batch> Engine::Submit(std::vector<ProbeTarget> targets,
                                      const BatchOptions& options,
                                      BatchCallbacks callbacks) {
  BatchOptions announced = options;
  announced.targets_to_add =
      static_cast<uint32_t>(std::min<size_t>(targets.size(), UINT32_MAX));
  std::shared_ptr<Batch> batch = Open(announced, std::move(callbacks));
  batch->Add(std::move(targets));
  batch->Close();
  return batch;
}

absl::string_view ReturnWhenName(ReturnWhen return_when) {
  switch (return_when) {
    case ReturnWhen::kAllCompleted:
      return "ALL_COMPLETED";
    case ReturnWhen::kFirstCompleted:
      return "FIRST_COMPLETED";
    case ReturnWhen::kFirstException:
      return "FIRST_EXCEPTION";
  }
  return "UNKNOWN";
}

absl::string_view EndReasonName(EndReason reason) {
  switch (reason) {
    case EndReason::kAllCompleted:
      return "ALL_COMPLETED";
    case EndReason::kFirstCompleted:
      return "FIRST_COMPLETED";
    case EndReason::kFirstException:
      return "FIRST_EXCEPTION";
    case EndReason::kTimeout:
      return "TIMEOUT";
    case EndReason::kCancelled:
      return "CANCELLED";
  }
  return "UNKNOWN";
}

absl::StatusOr<std::unique_ptr<Engine>> Engine::Create(EngineOptions options) {
  auto engine = std::make_unique<internal::EngineImpl>(options);
  absl::Status status = engine->Init();
  if (!status.ok()) return status;
  return std::unique_ptr<Engine>(std::move(engine));
}

}  // namespace fanprobe
