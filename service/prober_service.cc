#include "service/prober_service.h"

#include <algorithm>
#include <atomic>
#include <chrono>
#include <cstdint>
#include <deque>
#include <memory>
#include <optional>
#include <string>
#include <utility>
#include <vector>

#include "absl/status/status.h"
#include "absl/status/statusor.h"
#include "absl/strings/match.h"
#include "absl/strings/str_cat.h"
#include "absl/strings/string_view.h"
#include "absl/synchronization/mutex.h"
#include "absl/time/clock.h"
#include "absl/time/time.h"
#include "log/logger.h"
#include "service/convert.h"

namespace fanprobe::service {
namespace {

absl::Time DeadlineOf(const grpc::CallbackServerContext& context) {
  const std::chrono::system_clock::time_point deadline = context.deadline();
  if (deadline == std::chrono::system_clock::time_point::max()) {
    return absl::InfiniteFuture();
  }
  return absl::FromChrono(deadline);
}

}  // namespace

namespace internal {

// What StreamProbes and ProbeBatch share: validating and admitting the
// request, the engine batch and its cancellation, admission pause/resume,
// and the batch's log line.  A derived reactor supplies what happens to
// results and how its RPC ends.
//
// Lifetime: reference counted.  gRPC holds one reference until OnDone(); the
// engine holds one from Submit until on_done has run, since its callbacks
// may outlive the RPC (a cancelled client) and the RPC may outlive them.
// The last Unref() deletes the call, which unregisters it from the service.
// Start() runs in the reactor's constructor, before gRPC can call OnDone(),
// so gRPC's reference covers it.
class BatchCall {
 public:
  BatchCall(const BatchCall&) = delete;
  BatchCall& operator=(const BatchCall&) = delete;

  void Ref() { refs_.fetch_add(1, std::memory_order_relaxed); }
  void Unref() {
    if (refs_.fetch_sub(1, std::memory_order_acq_rel) == 1) delete this;
  }

  // Cancels the batch and lets the RPC end as the batch does, with its
  // summary: what the server's shutdown does first (CancelAll).
  void Cancel() { CancelBatch(); }

  // Ends the RPC now with `status` and cancels the batch: what a client's
  // cancel (OnCancel) and the server's shutdown, for what is left after
  // CancelAll, (AbortAll) both do.
  void Abort(const grpc::Status& status) {
    {
      absl::MutexLock lock(&mu_);
      EndRpcLocked(status);
    }
    CancelBatch();
  }

 protected:
  BatchCall(ProberService& service, const grpc::CallbackServerContext& context,
            absl::string_view rpc)
      : service_(service),
        rpc_(rpc),
        peer_(context.peer()),
        client_(service.options_.client_identity
                    ? service.options_.client_identity(context)
                    : PeerIdentity(peer_)),
        authenticated_(service.options_.authenticate
                           ? service.options_.authenticate(context)
                           : absl::OkStatus()),
        deadline_(DeadlineOf(context)) {
    service_.Register(this);
    if (ServiceObserver* o = observer()) o->CallStarted(rpc_);
  }

  virtual ~BatchCall() {
    bool paused;
    {
      absl::MutexLock lock(&mu_);
      batch_.reset();  // the engine may go once we are unregistered
      paused = paused_;
    }
    if (paused) service_.NotePaused(false);
    if (ServiceObserver* o = observer()) o->CallEnded(rpc_);
    service_.Unregister(this);
  }

  // Validates and admits `request` and submits its batch.  Not OK: the
  // status to end the RPC with; no batch runs.  With `later`, the admitted
  // batch is moved into *later instead, for the caller to Launch(): it must,
  // even if the RPC is cancelled meanwhile (the batch then ends at once, and
  // its end frees what admission took).
  grpc::Status Start(const v1::ProbeBatchRequest& request,
                     BatchRequest* later = nullptr) {
    // Who calls comes first: an unauthenticated caller learns nothing
    // about the request's validity and starts no probe.
    if (!authenticated_.ok()) return ToGrpcStatus(authenticated_);
    absl::StatusOr<BatchRequest> batch =
        BatchFromProto(request, service_.options_.limits, service_.engine_);
    if (!batch.ok()) return Rejected(batch.status());
    if (grpc::Status status =
            Admit(static_cast<uint32_t>(batch->targets.size()),
                  batch->options.return_when);
        !status.ok()) {
      return status;
    }
    if (later != nullptr) {
      *later = *std::move(batch);
    } else {
      Launch(*std::move(batch), /*open=*/false);
    }
    return grpc::Status::OK;
  }

  // ProbeStream's Start, for its first message: the batch stays open for
  // AddTargets() and CloseBatch().  It counts against max_pending_probes as
  // what it may hold at once: max_concurrency plus one message of targets.
  // On success, `*stream` holds its settings.
  grpc::Status StartStream(const v1::ProbeStreamRequest& first,
                           BatchRequest* stream) {
    if (!authenticated_.ok()) return ToGrpcStatus(authenticated_);
    const RequestLimits& limits = service_.options_.limits;
    absl::StatusOr<BatchRequest> batch =
        StreamFromProto(first, limits, service_.engine_);
    if (!batch.ok()) return Rejected(batch.status());
    stream->options = batch->options;
    stream->defaults = batch->defaults;
    {
      absl::MutexLock lock(&mu_);
      targets_given_ = batch->targets.size();
    }
    const uint64_t holds =
        static_cast<uint64_t>(batch->options.max_concurrency) +
        limits.max_batch_targets;
    if (grpc::Status status =
            Admit(static_cast<uint32_t>(std::min<uint64_t>(holds, UINT32_MAX)),
                  batch->options.return_when);
        !status.ok()) {
      return status;
    }
    Launch(*std::move(batch), /*open=*/true);
    return grpc::Status::OK;
  }

  // For an open batch: more targets, and the end of them.  Never with mu_
  // held: adding may complete unusable targets at once.
  void AddTargets(std::vector<ProbeTarget> targets) ABSL_LOCKS_EXCLUDED(mu_) {
    std::shared_ptr<Batch> batch;
    {
      absl::MutexLock lock(&mu_);
      batch = batch_;
    }
    if (batch != nullptr) batch->Add(std::move(targets));
  }
  void CloseBatch() ABSL_LOCKS_EXCLUDED(mu_) {
    std::shared_ptr<Batch> batch;
    {
      absl::MutexLock lock(&mu_);
      batch = batch_;
    }
    if (batch != nullptr) batch->Close();
  }

  // Admits a validated batch that counts as `probes` against
  // max_pending_probes.  OK: Launch() must follow.
  grpc::Status Admit(uint32_t probes, ReturnWhen return_when) {
    reserved_ = probes;
    return_when_ = return_when;
    if (absl::Status status = service_.AdmitBatch(reserved_, client_);
        !status.ok()) {
      return Rejected(status);
    }
    return grpc::Status::OK;
  }

  // Starts an admitted batch with its targets; an `open` one is not closed.
  // Its timeout counts from here.
  void Launch(BatchRequest batch, bool open) {
    batch.options.targets_to_add = static_cast<uint32_t>(batch.targets.size());
    batch.options.timeout =
        EffectiveTimeout(batch.options.timeout, deadline_, absl::Now(),
                         service_.options_.deadline_margin);

    Ref();  // the engine's, dropped once on_done has run
    std::shared_ptr<Batch> started = service_.engine_.Open(
        batch.options,
        {.on_start =
             [this](std::shared_ptr<Batch> started) {
               // Before any result: OnResult may have to pause it.
               absl::MutexLock lock(&mu_);
               batch_ = std::move(started);
             },
         .on_result =
             [this](ProbeResult result) { OnResult(std::move(result)); },
         .on_done =
             [this](BatchSummary summary) {
               BatchDone(summary);
               Unref();
             }});
    started->Add(std::move(batch.targets));
    if (!open) started->Close();
    bool cancel;
    {
      absl::MutexLock lock(&mu_);
      cancel = cancel_wanted_;
    }
    if (cancel) CancelBatch();
  }

  // The engine's callbacks, on engine threads (or within Submit).
  virtual void OnResult(ProbeResult result) = 0;
  virtual void OnBatchDone(const BatchSummary& summary) = 0;

  // Ends the RPC with `status` unless it is ending already; drops whatever
  // is not yet sent.
  virtual void EndRpcLocked(const grpc::Status& status)
      ABSL_EXCLUSIVE_LOCKS_REQUIRED(mu_) = 0;

  // Cancels the batch, now or as soon as Start() has it.  Never call with
  // mu_ held: the engine may run callbacks that take it.
  void CancelBatch() ABSL_LOCKS_EXCLUDED(mu_) {
    std::shared_ptr<Batch> batch;
    {
      absl::MutexLock lock(&mu_);
      cancel_wanted_ = true;
      batch = batch_;
    }
    if (batch != nullptr) batch->Cancel();
  }

  // Stops the batch from starting probes (a stream's queue is full), at
  // once: under mu_, so no further result is queued before the pause holds,
  // and only probes already running can still complete.  Safe under mu_
  // because the engine's PauseAdmission only counts; it never runs a
  // callback.
  void PauseAdmissionLocked() ABSL_EXCLUSIVE_LOCKS_REQUIRED(mu_) {
    if (paused_ || batch_ == nullptr) return;
    batch_->PauseAdmission();
    paused_ = true;
    service_.NotePaused(true);
  }

  // Lets the batch start probes again (the queue has drained).  Returns the
  // batch to call ResumeAdmission() on once mu_ is released, since resuming
  // may start probes and run callbacks at once; null when not paused.  Each
  // Resume pairs with one earlier Pause, so the engine's count stays right
  // even if a new Pause lands before this Resume does.
  [[nodiscard]] std::shared_ptr<Batch> ResumeAdmissionLocked()
      ABSL_EXCLUSIVE_LOCKS_REQUIRED(mu_) {
    if (!paused_) return nullptr;
    paused_ = false;
    service_.NotePaused(false);
    return batch_;
  }

  // For a stream: reports its queue length to the service's stats.
  void NoteQueueLength(size_t length) { service_.NoteStreamQueue(length); }
  // For ProbeStream: targets read whose results have not come back.
  void NoteStreamOutstanding(int64_t count) {
    if (count > 0) service_.NoteStreamOutstanding(static_cast<uint64_t>(count));
  }

  const RequestLimits& request_limits() const {
    return service_.options_.limits;
  }
  const Engine& engine() const { return service_.engine_; }

  // Metrics hooks (service_observer.h).
  ServiceObserver* observer() const { return service_.options_.observer.get(); }
  void NoteQueueWait(absl::Duration wait) {
    if (ServiceObserver* o = observer()) o->StreamQueueWait(wait);
  }
  // The status a refused RPC ends with.
  grpc::Status Rejected(const absl::Status& status) {
    if (ServiceObserver* o = observer()) {
      o->CallRejected(rpc_, status.code());
    }
    return ToGrpcStatus(status);
  }

  absl::Mutex mu_;
  // ProbeStream: the targets read so far, the next one's index.
  uint64_t targets_given_ ABSL_GUARDED_BY(mu_) = 0;

 private:
  void BatchDone(BatchSummary summary) {
    service_.BatchEnded(reserved_, client_);
    service_.logger_.Log(log::Line("batch")
                             .Add("rpc", rpc_)
                             .Add("peer", peer_)
                             .Add("targets", summary.total)
                             .Add("return_when", ReturnWhenName(return_when_))
                             .Add("reason", EndReasonName(summary.reason))
                             .Add("completed", summary.completed)
                             .Add("succeeded", summary.succeeded)
                             .Add("failed", summary.failed)
                             .Add("cancelled", summary.cancelled)
                             .AddMilliseconds("elapsed_ms", summary.elapsed));
    OnBatchDone(summary);
  }

  std::atomic<int> refs_{1};  // gRPC's, dropped in OnDone()

  // Constant after construction.
  ProberService& service_;
  const std::string rpc_;
  const std::string peer_;
  const std::string client_;  // the key of max_batches_per_client
  const absl::Status authenticated_;
  const absl::Time deadline_;

  // Written by Admit() before the batch starts, read by BatchDone() after:
  // what AdmitBatch reserved.
  uint32_t reserved_ = 0;
  ReturnWhen return_when_ = ReturnWhen::kAllCompleted;

  std::shared_ptr<Batch> batch_ ABSL_GUARDED_BY(mu_);
  bool cancel_wanted_ ABSL_GUARDED_BY(mu_) = false;
  // Admission is paused (the stream's queue is full).
  bool paused_ ABSL_GUARDED_BY(mu_) = false;
};

namespace {

// The writing half of StreamProbes and ProbeStream (`Reactor` is their
// server reactor): results are written as they complete, one write in
// flight, the rest queued; then the summary with the OK status.  Modelled on
// gRPC's health WatchReactor: a failed write and OnCancel() both end the RPC
// through EndRpcLocked() -> MaybeFinishLocked(), so Finish() runs exactly
// once and never with a write in flight.
template <typename Reactor>
class EventStreamCall : public Reactor, public BatchCall {
 public:
  void OnWriteDone(bool ok) override {
    bool failed = false;
    std::shared_ptr<Batch> resume;
    {
      absl::MutexLock lock(&mu_);
      write_in_flight_ = false;
      if (!ok) {
        failed = true;
        EndRpcLocked(grpc::Status(grpc::StatusCode::CANCELLED,
                                  "write failed: the client went away"));
      } else if (end_status_.has_value()) {
        MaybeFinishLocked();
      } else {
        resume = WriteNextLocked();
      }
    }
    if (failed) CancelBatch();
    if (resume != nullptr) resume->ResumeAdmission();
  }

  void OnCancel() override { Abort(grpc::Status::CANCELLED); }

  void OnDone() override { Unref(); }

 protected:
  EventStreamCall(ProberService& service,
                  const grpc::CallbackServerContext& context,
                  absl::string_view rpc, size_t queue_limit)
      : BatchCall(service, context, rpc),
        queue_limit_(std::max<size_t>(queue_limit, 2)) {}

  // At most this many results per event (the request's
  // max_results_per_event); before the batch starts.
  void SetResultsPerEventLocked(uint32_t count)
      ABSL_EXCLUSIVE_LOCKS_REQUIRED(mu_) {
    results_per_event_ = count;
  }

  // Once the batch has ended and what is queued is written, ends the RPC
  // with `status` instead of the summary (the caller cancels the batch).
  void EndAfterQueueLocked(const grpc::Status& status)
      ABSL_EXCLUSIVE_LOCKS_REQUIRED(mu_) {
    if (!status_instead_of_summary_.has_value()) {
      status_instead_of_summary_ = status;
    }
  }

  // A result was taken from the engine, under mu_, whether or not it will
  // be written.
  virtual void ResultTakenLocked() ABSL_EXCLUSIVE_LOCKS_REQUIRED(mu_) {}

  // The RPC is ending or has ended: nothing more is written.
  bool EndingLocked() const ABSL_EXCLUSIVE_LOCKS_REQUIRED(mu_) {
    return end_status_.has_value() || finish_called_ || summary_ready_;
  }

  void EndRpcLocked(const grpc::Status& status) override
      ABSL_EXCLUSIVE_LOCKS_REQUIRED(mu_) {
    if (!end_status_.has_value()) end_status_ = status;
    queue_.clear();
    queued_at_.clear();
    MaybeFinishLocked();
  }

 private:
  void OnResult(ProbeResult result) override {
    v1::ProbeResult proto = ResultToProto(std::move(result));
    std::shared_ptr<Batch> resume;
    {
      absl::MutexLock lock(&mu_);
      ResultTakenLocked();
      if (end_status_.has_value() || finish_called_) return;
      queue_.push_back(std::move(proto));
      queued_at_.push_back(absl::Now());
      if (!write_in_flight_) resume = WriteNextLocked();
      NoteQueueLength(queue_.size());
      if (queue_.size() >= queue_limit_) PauseAdmissionLocked();
    }
    if (resume != nullptr) resume->ResumeAdmission();
  }

  void OnBatchDone(const BatchSummary& summary) override {
    absl::MutexLock lock(&mu_);
    if (end_status_.has_value() || finish_called_) return;
    *summary_.mutable_summary() = SummaryToProto(summary);
    summary_ready_ = true;
    // The batch has ended: there is nothing left to resume.
    if (!write_in_flight_) (void)WriteNextLocked();
  }

  void MaybeFinishLocked() ABSL_EXCLUSIVE_LOCKS_REQUIRED(mu_) {
    if (write_in_flight_ || finish_called_) return;
    finish_called_ = true;
    this->Finish(*end_status_);
  }

  // Starts the next write: the queued results (the first alone, or as
  // many as the request's max_results_per_event lets one event carry),
  // else the summary (with Finish).  Returns the batch to resume once mu_
  // is released, if the queue is down to half.
  [[nodiscard]] std::shared_ptr<Batch> WriteNextLocked()
      ABSL_EXCLUSIVE_LOCKS_REQUIRED(mu_) {
    if (!queue_.empty()) {
      if (results_per_event_ <= 1) {
        *writing_.mutable_result() = PopLocked();
      } else {
        // Whatever waits goes together, up to the count and, past the
        // first result, the byte bound; never fewer than one.
        v1::ProbeResults& group = *writing_.mutable_results();
        group.Clear();
        size_t bytes = 0;
        do {
          bytes += queue_.front().ByteSizeLong();
          if (group.results_size() > 0 && bytes > kMaxEventBytes) break;
          *group.add_results() = PopLocked();
        } while (!queue_.empty() &&
                 static_cast<uint32_t>(group.results_size()) <
                     results_per_event_);
      }
      write_in_flight_ = true;
      // While more results wait, let gRPC put this one in the same send as
      // the next (one sendmsg per result was a fifth of the server's CPU in
      // W2); the last queued one goes out without the hint, which flushes.
      // Never on the first write: it carries the initial metadata, and a
      // hinted write with it never completes (grpc/grpc#12975).
      grpc::WriteOptions options;
      if (wrote_once_ && !queue_.empty()) options.set_buffer_hint();
      wrote_once_ = true;
      this->StartWrite(&writing_, options);
      if (queue_.size() <= queue_limit_ / 2) return ResumeAdmissionLocked();
    } else if (summary_ready_) {
      finish_called_ = true;
      if (status_instead_of_summary_.has_value()) {
        this->Finish(*status_instead_of_summary_);
      } else {
        this->StartWriteAndFinish(&summary_, grpc::WriteOptions(),
                                  grpc::Status::OK);
      }
    }
    return nullptr;
  }

  // The front of the queue, taken off it.
  v1::ProbeResult PopLocked() ABSL_EXCLUSIVE_LOCKS_REQUIRED(mu_) {
    v1::ProbeResult result = std::move(queue_.front());
    queue_.pop_front();
    NoteQueueWait(absl::Now() - queued_at_.front());
    queued_at_.pop_front();
    return result;
  }

  // An event of several results stops growing at this size (a client's
  // gRPC refuses messages over 4 MiB by default).
  static constexpr size_t kMaxEventBytes = 1 << 20;

  // Constant after construction.
  const size_t queue_limit_;

  // State below is protected by mu_.
  // The request's max_results_per_event.
  uint32_t results_per_event_ ABSL_GUARDED_BY(mu_) = 0;
  std::deque<v1::ProbeResult> queue_ ABSL_GUARDED_BY(mu_);
  // When each queued result was queued (the queue-wait metric).
  std::deque<absl::Time> queued_at_ ABSL_GUARDED_BY(mu_);
  // The message being written; gRPC reads it until OnWriteDone().
  v1::ProbeEvent writing_ ABSL_GUARDED_BY(mu_);
  bool write_in_flight_ ABSL_GUARDED_BY(mu_) = false;
  bool wrote_once_ ABSL_GUARDED_BY(mu_) = false;  // initial metadata sent
  // The batch has ended; summary_ is written once the queue is empty, and
  // gRPC reads it until OnDone().
  v1::ProbeEvent summary_ ABSL_GUARDED_BY(mu_);
  bool summary_ready_ ABSL_GUARDED_BY(mu_) = false;
  std::optional<grpc::Status> status_instead_of_summary_ ABSL_GUARDED_BY(mu_);
  // Set when the RPC must end early (cancel, failed write, abort): nothing
  // more is written, Finish(*end_status_) once no write is in flight.
  std::optional<grpc::Status> end_status_ ABSL_GUARDED_BY(mu_);
  bool finish_called_ ABSL_GUARDED_BY(mu_) = false;
};

// StreamProbes: one request, then the events.
class StreamProbesCall final
    : public EventStreamCall<grpc::ServerWriteReactor<v1::ProbeEvent>> {
 public:
  StreamProbesCall(ProberService& service,
                   const grpc::CallbackServerContext& context,
                   const v1::ProbeBatchRequest& request, size_t queue_limit)
      : EventStreamCall(service, context, "StreamProbes", queue_limit) {
    {
      absl::MutexLock lock(&mu_);
      SetResultsPerEventLocked(request.max_results_per_event());
    }
    // Nothing can be written before this constructor returns (gRPC binds
    // the call then), so the batch starts once the initial metadata is out:
    // started here, a large batch's first results waited for all of its
    // targets to be added (10,000 of them: 60-80 ms beside the probes they
    // started; bench W1).
    grpc::Status status = Start(request, &batch_request_);
    if (!status.ok()) {
      absl::MutexLock lock(&mu_);
      EndRpcLocked(status);
      return;
    }
    StartSendInitialMetadata();
  }

  // Launched even when the metadata could not be sent (the client left),
  // and then cancelled at once, whether or not OnCancel has run yet: the
  // summary lists every target, and the batch's end frees what admission
  // took.
  void OnSendInitialMetadataDone(bool ok) override {
    Launch(std::move(batch_request_), /*open=*/false);
    if (!ok) CancelBatch();
  }

 private:
  BatchRequest batch_request_;  // admitted, until OnSendInitialMetadataDone
};

// ProbeStream: the batch's settings, then its targets message by message,
// read only while fewer than max_concurrency of those read are waiting for
// their results; the events as in StreamProbes.  One read at a time
// (read_in_flight_, from StartRead until its message is handled), started
// by the reaction that handled the last message or by a result that brings
// the outstanding count below the bound.
class ProbeStreamCall final
    : public EventStreamCall<
          grpc::ServerBidiReactor<v1::ProbeStreamRequest, v1::ProbeEvent>> {
 public:
  ProbeStreamCall(ProberService& service,
                  const grpc::CallbackServerContext& context,
                  size_t queue_limit)
      : EventStreamCall(service, context, "ProbeStream", queue_limit) {
    absl::MutexLock lock(&mu_);
    read_in_flight_ = true;
    StartRead(&reading_);
  }

  void OnReadDone(bool ok) override {
    bool first;
    uint64_t first_index;
    BatchRequest settings;
    {
      // read_in_flight_ stays set until this message is handled: reading_
      // is in use, and its targets are not yet counted as outstanding.
      absl::MutexLock lock(&mu_);
      if (EndingLocked()) return;
      first = !started_;
      first_index = targets_given_;
      settings.defaults = stream_.defaults;
      if (!ok) {
        // The client closed its side (or went, which OnCancel handles).
        input_closed_ = true;
        if (first) {
          EndRpcLocked(ToGrpcStatus(absl::InvalidArgumentError(
              "batch: the stream ended before its first message")));
          return;
        }
      }
    }
    if (!ok) {
      CloseBatch();
      return;
    }
    if (first) {
      {
        // Before any result can come.
        absl::MutexLock lock(&mu_);
        SetResultsPerEventLocked(reading_.batch().max_results_per_event());
      }
      BatchRequest stream;
      grpc::Status status = StartStream(reading_, &stream);
      absl::MutexLock lock(&mu_);
      if (!status.ok()) {
        EndRpcLocked(status);
        return;
      }
      started_ = true;
      stream_ = std::move(stream);
      NoteOutstandingLocked(static_cast<int64_t>(targets_given_));
      read_in_flight_ = false;
      MaybeReadLocked();
      return;
    }
    absl::StatusOr<std::vector<ProbeTarget>> targets = StreamTargetsFromProto(
        reading_, first_index, settings, request_limits(), engine());
    if (!targets.ok()) {
      // The results so far are still written; then the RPC ends with the
      // error instead of the summary.
      {
        absl::MutexLock lock(&mu_);
        EndAfterQueueLocked(ToGrpcStatus(targets.status()));
      }
      CancelBatch();
      return;
    }
    {
      absl::MutexLock lock(&mu_);
      targets_given_ += targets->size();
      NoteOutstandingLocked(static_cast<int64_t>(targets->size()));
    }
    AddTargets(*std::move(targets));
    absl::MutexLock lock(&mu_);
    read_in_flight_ = false;
    MaybeReadLocked();
  }

 private:
  void ResultTakenLocked() override ABSL_EXCLUSIVE_LOCKS_REQUIRED(mu_) {
    --outstanding_;
    MaybeReadLocked();
  }

  void NoteOutstandingLocked(int64_t added) ABSL_EXCLUSIVE_LOCKS_REQUIRED(mu_) {
    outstanding_ += added;
    NoteStreamOutstanding(outstanding_);
  }

  // Reads the next message if the batch wants more targets.
  void MaybeReadLocked() ABSL_EXCLUSIVE_LOCKS_REQUIRED(mu_) {
    if (read_in_flight_ || input_closed_ || !started_ || EndingLocked() ||
        outstanding_ >= static_cast<int64_t>(stream_.options.max_concurrency)) {
      return;
    }
    read_in_flight_ = true;
    StartRead(&reading_);
  }

  // State below is protected by mu_, except as noted.
  // The message being read; gRPC writes it until OnReadDone(), and
  // OnReadDone() alone reads it.
  v1::ProbeStreamRequest reading_;
  bool read_in_flight_ ABSL_GUARDED_BY(mu_) = false;
  bool started_ ABSL_GUARDED_BY(mu_) = false;       // the first message came
  bool input_closed_ ABSL_GUARDED_BY(mu_) = false;  // no more will
  // The stream's settings and defaults, set once from the first message.
  BatchRequest stream_ ABSL_GUARDED_BY(mu_);
  // Targets read whose results have not reached OnResult.  Signed: the
  // first message's unusable targets complete before they are counted.
  int64_t outstanding_ ABSL_GUARDED_BY(mu_) = 0;
};

// ProbeBatch: results are collected and the reply is sent once the batch
// ends, in request order.
class ProbeBatchCall final : public grpc::ServerUnaryReactor, public BatchCall {
 public:
  ProbeBatchCall(ProberService& service,
                 const grpc::CallbackServerContext& context,
                 const v1::ProbeBatchRequest& request,
                 v1::ProbeBatchResponse* response)
      : BatchCall(service, context, "ProbeBatch"), response_(response) {
    grpc::Status status = Start(request);
    if (!status.ok()) {
      absl::MutexLock lock(&mu_);
      EndRpcLocked(status);
    }
  }

  void OnCancel() override { Abort(grpc::Status::CANCELLED); }

  void OnDone() override { Unref(); }

 private:
  void OnResult(ProbeResult result) override {
    v1::ProbeResult proto = ResultToProto(std::move(result));
    absl::MutexLock lock(&mu_);
    if (!finish_called_) done_.push_back(std::move(proto));
  }

  void OnBatchDone(const BatchSummary& summary) override {
    absl::MutexLock lock(&mu_);
    if (finish_called_) return;
    std::sort(done_.begin(), done_.end(),
              [](const v1::ProbeResult& a, const v1::ProbeResult& b) {
                return a.index() < b.index();
              });
    response_->mutable_done()->Reserve(static_cast<int>(done_.size()));
    for (v1::ProbeResult& result : done_) {
      *response_->add_done() = std::move(result);
    }
    done_.clear();
    response_->mutable_pending_indices()->Add(summary.pending_indices.begin(),
                                              summary.pending_indices.end());
    *response_->mutable_summary() = SummaryToProto(summary);
    finish_called_ = true;
    Finish(grpc::Status::OK);
  }

  void EndRpcLocked(const grpc::Status& status) override
      ABSL_EXCLUSIVE_LOCKS_REQUIRED(mu_) {
    if (finish_called_) return;
    finish_called_ = true;
    done_.clear();
    Finish(status);
  }

  // Owned by gRPC; filled only before Finish().
  v1::ProbeBatchResponse* const response_;

  // State below is protected by mu_.
  std::vector<v1::ProbeResult> done_ ABSL_GUARDED_BY(mu_);
  bool finish_called_ ABSL_GUARDED_BY(mu_) = false;
};

}  // namespace
}  // namespace internal

ProberService::ProberService(Engine& engine, ServiceOptions options)
    : engine_(engine), options_(std::move(options)), logger_(options_.log) {}

ProberService::~ProberService() {
  BeginShutdown();
  AbortAll(grpc::Status(grpc::StatusCode::UNAVAILABLE,
                        "the server is shutting down"));
  WaitUntilIdle(absl::InfiniteFuture());
}

void ProberService::BeginShutdown() {
  absl::MutexLock lock(&mu_);
  shutting_down_ = true;
}

bool ProberService::WaitUntilIdle(absl::Time deadline) {
  absl::MutexLock lock(&mu_);
  const auto idle = [this]() ABSL_EXCLUSIVE_LOCKS_REQUIRED(mu_) {
    return calls_.empty();
  };
  return mu_.AwaitWithDeadline(absl::Condition(&idle), deadline);
}

void ProberService::CancelAll() {
  std::vector<internal::BatchCall*> calls;
  {
    absl::MutexLock lock(&mu_);
    calls.assign(calls_.begin(), calls_.end());
    for (internal::BatchCall* call : calls) call->Ref();
  }
  // Outside mu_, as in AbortAll.
  for (internal::BatchCall* call : calls) {
    call->Cancel();
    call->Unref();
  }
}

void ProberService::AbortAll(const grpc::Status& status) {
  std::vector<internal::BatchCall*> calls;
  {
    absl::MutexLock lock(&mu_);
    calls.assign(calls_.begin(), calls_.end());
    for (internal::BatchCall* call : calls) call->Ref();
  }
  // Outside mu_: aborting cancels batches, and a call's last Unref()
  // unregisters it.
  for (internal::BatchCall* call : calls) {
    call->Abort(status);
    call->Unref();
  }
}

ServiceStats ProberService::Stats() const {
  ServiceStats stats;
  {
    absl::MutexLock lock(&mu_);
    stats.active_calls = calls_.size();
    stats.pending_probes = pending_probes_;
    stats.batches_started = batches_started_;
  }
  stats.paused_streams = paused_streams_.load(std::memory_order_relaxed);
  stats.peak_stream_queue = peak_stream_queue_.load(std::memory_order_relaxed);
  stats.peak_stream_outstanding =
      peak_stream_outstanding_.load(std::memory_order_relaxed);
  return stats;
}

grpc::ServerWriteReactor<v1::ProbeEvent>* ProberService::StreamProbes(
    grpc::CallbackServerContext* context,
    const v1::ProbeBatchRequest* request) {
  return new internal::StreamProbesCall(*this, *context, *request,
                                        options_.stream_queue_limit);
}

grpc::ServerBidiReactor<v1::ProbeStreamRequest, v1::ProbeEvent>*
ProberService::ProbeStream(grpc::CallbackServerContext* context) {
  return new internal::ProbeStreamCall(*this, *context,
                                       options_.stream_queue_limit);
}

grpc::ServerUnaryReactor* ProberService::ProbeBatch(
    grpc::CallbackServerContext* context, const v1::ProbeBatchRequest* request,
    v1::ProbeBatchResponse* response) {
  return new internal::ProbeBatchCall(*this, *context, *request, response);
}

void ProberService::Register(internal::BatchCall* call) {
  absl::MutexLock lock(&mu_);
  calls_.insert(call);
}

void ProberService::Unregister(internal::BatchCall* call) {
  absl::MutexLock lock(&mu_);
  calls_.erase(call);
}

absl::Status ProberService::AdmitBatch(uint32_t probes,
                                       const std::string& client) {
  absl::MutexLock lock(&mu_);
  if (shutting_down_) {
    return absl::UnavailableError(
        "the server is shutting down; retry on another instance");
  }
  if (pending_probes_ + probes > options_.max_pending_probes) {
    return absl::ResourceExhaustedError(absl::StrCat(
        "server overloaded: ", pending_probes_, " probes pending, ", probes,
        " more would exceed the limit of ", options_.max_pending_probes,
        "; retry later"));
  }
  if (options_.max_batches != 0 && batches_active_ >= options_.max_batches) {
    return absl::ResourceExhaustedError(
        absl::StrCat("server overloaded: ", batches_active_,
                     " batches running, the limit is ", options_.max_batches,
                     " (--max_batches); retry later"));
  }
  uint32_t& mine = batches_by_client_[client];
  if (options_.max_batches_per_client != 0 &&
      mine >= options_.max_batches_per_client) {
    return absl::ResourceExhaustedError(absl::StrCat(
        "too many batches from this client: ", mine, " running, the limit is ",
        options_.max_batches_per_client,
        " per client (--max_batches_per_client); retry when one ends"));
  }
  ++mine;
  ++batches_active_;
  pending_probes_ += probes;
  ++batches_started_;
  return absl::OkStatus();
}

void ProberService::BatchEnded(uint32_t probes, const std::string& client) {
  absl::MutexLock lock(&mu_);
  pending_probes_ -= probes;
  --batches_active_;
  auto it = batches_by_client_.find(client);
  if (it != batches_by_client_.end() && --it->second == 0) {
    batches_by_client_.erase(it);
  }
}

void ProberService::NoteStreamQueue(size_t length) {
  uint64_t peak = peak_stream_queue_.load(std::memory_order_relaxed);
  while (length > peak && !peak_stream_queue_.compare_exchange_weak(
                              peak, length, std::memory_order_relaxed)) {
  }
}

void ProberService::NoteStreamOutstanding(uint64_t count) {
  uint64_t peak = peak_stream_outstanding_.load(std::memory_order_relaxed);
  while (count > peak && !peak_stream_outstanding_.compare_exchange_weak(
                             peak, count, std::memory_order_relaxed)) {
  }
}

void ProberService::NotePaused(bool paused) {
  if (paused) {
    paused_streams_.fetch_add(1, std::memory_order_relaxed);
  } else {
    paused_streams_.fetch_sub(1, std::memory_order_relaxed);
  }
}

std::string PeerIdentity(absl::string_view peer) {
  const size_t colon = peer.rfind(':');
  if (colon != absl::string_view::npos &&
      (absl::StartsWith(peer, "ipv4:") || absl::StartsWith(peer, "ipv6:"))) {
    peer = peer.substr(0, colon);
  }
  return absl::StrCat("peer:", peer);
}

}  // namespace fanprobe::service
