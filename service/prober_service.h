// prober_service.h: the fanprobe.v1.Prober gRPC service on the callback API.
// Each RPC validates its request (convert.h), submits one engine batch and
// relays the engine's results: StreamProbes writes each result as it
// completes, then the summary; ProbeBatch answers once with everything.
//
// Back-pressure: a stream has one write in flight; further results wait in a
// per-stream queue.  When that queue holds options.stream_queue_limit results
// the stream's batch stops admitting new probes (Batch::PauseAdmission) and
// resumes once the queue is down to half, so a slow reader slows its own
// batch instead of growing the server's memory.  The pause holds before the
// next result is queued, from the batch's first result on (the call takes
// its handle in BatchCallbacks::on_start), and the engine frees a probe's
// slot only when its result has been handed over.  So what still arrives
// are the results of probes already running: a stream holds at most
// stream_queue_limit + max_concurrency results.
//
// Example (server/server.cc does this, plus health and reflection):
//   ProberService service(*engine, {});
//   grpc::ServerBuilder builder;
//   builder.RegisterService(&service);
//   ...
//   service.BeginShutdown();  // new RPCs: UNAVAILABLE
//   if (!service.WaitUntilIdle(absl::Now() + grace)) {
//     service.CancelAll();  // batches end CANCELLED, with their summaries
//     if (!service.WaitUntilIdle(absl::Now() + margin)) {
//       service.AbortAll(grpc::Status(grpc::StatusCode::UNAVAILABLE, "..."));
//     }
//   }
//
// Thread-safety: every method may be called from any thread.  The engine
// must outlive the service; the service must outlive the grpc::Server it is
// registered with (its destructor ends every RPC still active and waits
// for their batches to end).

#ifndef FANPROBE_SERVICE_PROBER_SERVICE_H_
#define FANPROBE_SERVICE_PROBER_SERVICE_H_

#include <atomic>
#include <cstddef>
#include <cstdint>
#include <functional>
#include <memory>
#include <string>

#include "absl/base/thread_annotations.h"
#include "absl/container/flat_hash_map.h"
#include "absl/container/flat_hash_set.h"
#include "absl/status/status.h"
#include "absl/strings/string_view.h"
#include "absl/synchronization/mutex.h"
#include "absl/time/time.h"
#include "fanprobe/v1/prober.grpc.pb.h"
#include "fanprobe/v1/prober.pb.h"
#include "grpcpp/grpcpp.h"
#include "log/logger.h"
#include "probe/engine.h"
#include "service/convert.h"
#include "service/service_observer.h"

namespace fanprobe::service {

namespace internal {
class BatchCall;
}  // namespace internal

struct ServiceOptions {
  // What one request may ask for (--max_batch_targets, --max_in_flight).
  RequestLimits limits;
  // Probes of all active batches together (queued, running, or waiting to
  // be written).  A request that would go beyond it fails with
  // RESOURCE_EXHAUSTED.  Default 10 full-size batches.
  uint64_t max_pending_probes = 1000000;
  // Batches running at once, in all and per client; one more fails with
  // RESOURCE_EXHAUSTED, and other clients are unaffected (--max_batches,
  // --max_batches_per_client).  0 = no limit.
  uint32_t max_batches = 1000;
  uint32_t max_batches_per_client = 0;
  // Names the client of a call, the key of max_batches_per_client (see
  // ClientIdentity in server/auth.h).  Null: PeerIdentity below.
  std::function<std::string(const grpc::CallbackServerContext& context)>
      client_identity;
  // Checks the caller's credentials before anything else is looked at; not
  // OK (kUnauthenticated) ends the RPC with that status and no batch runs
  // (--auth_token_file, see TokenAuthenticator in server/auth.h).  Null:
  // anyone.
  std::function<absl::Status(const grpc::CallbackServerContext& context)>
      authenticate;
  // Results a stream queues for a slow reader before its batch stops
  // admitting probes.  Must be at least 2.
  size_t stream_queue_limit = 256;
  // A batch bounded by the RPC deadline ends this long before it, or a fifth
  // of the time left when that is less (EffectiveTimeout in convert.h).
  absl::Duration deadline_margin = absl::Milliseconds(100);
  // Receives one log line (log/logger.h) per batch that ran.  Null means
  // stderr.  Called on engine threads; must not block for long.
  log::Sink log;
  // Told about calls, refusals and stream queue waits, for metrics
  // (server/service_monitoring.h).  Null: nobody.
  std::shared_ptr<ServiceObserver> observer;
};

// Live figures, for tests and metrics.
struct ServiceStats {
  uint64_t active_calls = 0;       // RPCs not yet done
  uint64_t pending_probes = 0;     // probes of batches not yet ended
  uint64_t batches_started = 0;    // since start
  uint64_t paused_streams = 0;     // streams whose batch admission is paused
  uint64_t peak_stream_queue = 0;  // the longest any stream's queue has been
  // The most targets a ProbeStream has held at once: read, their results
  // not yet back from the engine.
  uint64_t peak_stream_outstanding = 0;
};

class ProberService final : public v1::Prober::CallbackService {
 public:
  ProberService(Engine& engine, ServiceOptions options);
  ProberService(const ProberService&) = delete;
  ProberService& operator=(const ProberService&) = delete;
  // Ends every RPC still active with UNAVAILABLE and waits until their
  // batches have ended.
  ~ProberService() override;

  // From now on new RPCs fail with UNAVAILABLE; running ones go on.
  void BeginShutdown();
  // Blocks until no RPC is active or `deadline` passes; true when idle.
  bool WaitUntilIdle(absl::Time deadline);
  // Cancels every running batch without ending its RPC: each RPC ends as
  // its batch does, with its summary (END_REASON_CANCELLED and the pending
  // list; StreamProbes writes what is queued first).  What shutdown
  // promises; an RPC whose summary cannot be written (its client gone or
  // not reading) stays active, for AbortAll.
  void CancelAll();
  // Ends every active RPC now with `status` and cancels its batch.
  void AbortAll(const grpc::Status& status);

  ServiceStats Stats() const;

  grpc::ServerWriteReactor<v1::ProbeEvent>* StreamProbes(
      grpc::CallbackServerContext* context,
      const v1::ProbeBatchRequest* request) override;
  grpc::ServerBidiReactor<v1::ProbeStreamRequest, v1::ProbeEvent>* ProbeStream(
      grpc::CallbackServerContext* context) override;
  grpc::ServerUnaryReactor* ProbeBatch(
      grpc::CallbackServerContext* context,
      const v1::ProbeBatchRequest* request,
      v1::ProbeBatchResponse* response) override;

 private:
  friend class internal::BatchCall;

  // For BatchCall: a call is registered from construction to destruction.
  void Register(internal::BatchCall* call);
  void Unregister(internal::BatchCall* call);
  // Reserves room for a batch of `probes` from `client`: kUnavailable when
  // shutting down, kResourceExhausted when over max_pending_probes,
  // max_batches or max_batches_per_client.
  absl::Status AdmitBatch(uint32_t probes, const std::string& client);
  // Releases what AdmitBatch reserved, once the batch has ended.
  void BatchEnded(uint32_t probes, const std::string& client);
  void NoteStreamQueue(size_t length);
  void NoteStreamOutstanding(uint64_t count);
  void NotePaused(bool paused);

  // Constant after construction.
  Engine& engine_;
  const ServiceOptions options_;
  const log::Logger logger_;

  // State below is protected by mu_.
  mutable absl::Mutex mu_;
  bool shutting_down_ ABSL_GUARDED_BY(mu_) = false;
  absl::flat_hash_set<internal::BatchCall*> calls_ ABSL_GUARDED_BY(mu_);
  uint64_t pending_probes_ ABSL_GUARDED_BY(mu_) = 0;
  uint64_t batches_started_ ABSL_GUARDED_BY(mu_) = 0;
  uint32_t batches_active_ ABSL_GUARDED_BY(mu_) = 0;
  // Active batches per client identity; a client with none has no entry.
  absl::flat_hash_map<std::string, uint32_t> batches_by_client_
      ABSL_GUARDED_BY(mu_);

  // Counters updated without the lock.
  std::atomic<uint64_t> paused_streams_{0};
  std::atomic<uint64_t> peak_stream_queue_{0};
  std::atomic<uint64_t> peak_stream_outstanding_{0};
};

// A client named by its connection: "ipv4:10.1.2.3:45678" ->
// "peer:ipv4:10.1.2.3", so one client's connections count as one.
std::string PeerIdentity(absl::string_view peer);

}  // namespace fanprobe::service

#endif  // FANPROBE_SERVICE_PROBER_SERVICE_H_
