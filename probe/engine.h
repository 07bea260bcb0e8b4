// engine.h: the asynchronous probe engine.  It runs batches of probes
// concurrently on a few worker threads (each owns one libcurl multi handle
// driven by epoll), hands every result to the caller the moment it
// completes, and ends each batch by its return-when rule, as Python's
// asyncio.wait does.
//
// Example:
//   auto engine = fanprobe::Engine::Create({}).value();
//   fanprobe::BatchOptions options;
//   options.return_when = fanprobe::ReturnWhen::kFirstCompleted;
//   options.timeout = absl::Seconds(3);
//   std::shared_ptr<fanprobe::Batch> batch = engine->Submit(
//       std::move(targets), options,
//       {.on_result = [](fanprobe::ProbeResult r) { /* queue it */ },
//        .on_done = [](fanprobe::BatchSummary s) { /* finish */ }});
//   ...
//   batch->Cancel();  // e.g. the client went away
//
// Guarantees:
// - Exactly once: every probe of a batch either reaches on_result exactly
//   once, or is listed exactly once in the summary's pending_indices.
// - on_result calls of one batch never overlap and come in completion
//   order; on_done is called exactly once, after the last on_result call
//   has returned.
// - Callbacks run on engine threads (or, for targets rejected before they
//   start, on the thread calling Submit, possibly before Submit returns).
//   They must not block and must not call Engine methods other than the
//   Batch handle's Cancel/PauseAdmission/ResumeAdmission.
// - A Batch handle may outlive the Engine; its methods then do nothing.
//
// Thread-safety: Engine and Batch methods may be called from any thread.

#ifndef FANPROBE_PROBE_ENGINE_H_
#define FANPROBE_PROBE_ENGINE_H_

#include <array>
#include <cstdint>
#include <functional>
#include <memory>
#include <string>
#include <vector>

#include "absl/status/statusor.h"
#include "absl/strings/string_view.h"
#include "absl/time/time.h"
#include "probe/destination_policy.h"
#include "probe/probe.h"

namespace fanprobe {
namespace internal {
class TransportFactory;
}  // namespace internal

// When a batch ends, as asyncio.wait's return_when.
enum class ReturnWhen {
  kAllCompleted,    // every probe completed (the default)
  kFirstCompleted,  // the first probe completed, whatever its outcome
  kFirstException,  // the first probe whose outcome is not kOk; if none
                    // fails, the batch ends as kAllCompleted
};

// Why a batch ended.
enum class EndReason {
  kAllCompleted,
  kFirstCompleted,
  kFirstException,
  kTimeout,    // the batch timeout expired first
  kCancelled,  // Batch::Cancel() (or engine shutdown)
};

absl::string_view ReturnWhenName(ReturnWhen return_when);  // "ALL_COMPLETED"
absl::string_view EndReasonName(EndReason reason);         // "TIMEOUT", ...

struct BatchOptions {
  ReturnWhen return_when = ReturnWhen::kAllCompleted;
  // The whole batch, measured from Submit (or Open) and covering probes
  // still queued, as asyncio.wait(timeout=).  InfiniteDuration() = none.
  absl::Duration timeout = absl::InfiniteDuration();
  // At most this many probes of the batch run at once (the semaphore); 0
  // means the engine's max_in_flight.
  uint32_t max_concurrency = 100;
  // At most this many probes of the batch run at once against one host
  // (scheme, host and port), as aiohttp's limit_per_host; 0 = no limit.
  uint32_t max_per_host = 0;
  // For Open(): how many targets the caller holds and will Add() next.  A
  // batch can end before they are added (cancelled, a zero timeout, the
  // engine stopping); its summary lists them as pending all the same.
  // Submit() sets it.
  uint32_t targets_to_add = 0;
};

// How a batch ended.  completed + cancelled == total.
struct BatchSummary {
  EndReason reason = EndReason::kAllCompleted;
  // Probes in the batch: the targets handed to Add() (or Submit) or
  // announced by BatchOptions::targets_to_add before it ended.  A batch may
  // end (its first result in, cancelled, timed out) before Add() has taken
  // them all: those never run, and are pending all the same.
  uint32_t total = 0;
  uint32_t completed = 0;  // probes that reached on_result
  uint32_t succeeded = 0;  // completed with kOk
  uint32_t failed = 0;     // completed with another outcome
  uint32_t cancelled = 0;  // not completed: running or queued at the end
  // The indices of the probes that did not complete, ascending.
  std::vector<uint32_t> pending_indices;
  absl::Duration elapsed;  // from Submit to the end of the batch
};

class Batch;

struct BatchCallbacks {
  // Runs first and once, on Submit's thread, before any probe starts or any
  // other callback runs: the batch's handle, for a consumer that acts on the
  // batch from on_result (a stream pausing it) -- the first results can come
  // before Submit returns.
  std::function<void(std::shared_ptr<Batch> batch)> on_start;
  std::function<void(ProbeResult result)> on_result;
  std::function<void(BatchSummary summary)> on_done;
};

// The caller's handle on a submitted batch.  The engine keeps the batch alive
// until on_done has run; dropping the handle does not cancel it.
class Batch {
 public:
  virtual ~Batch() = default;

  // Ends the batch now as kCancelled unless it has already ended: running
  // probes are stopped (their connections closed), queued ones never start.
  virtual void Cancel() = 0;

  // While paused, the batch starts no new probe; running ones go on.  This
  // is how a consumer that cannot keep up (a slow gRPC stream) slows its own
  // batch instead of growing a queue: a probe's concurrency slot frees only
  // when on_result for it has returned, so after a pause from on_result at
  // most max_concurrency more results arrive.  Calls nest: each Pause needs
  // a Resume.  Neither runs callbacks or blocks (beyond a short internal
  // lock), so they may be called with the caller's own locks held, from
  // inside on_result too.
  virtual void PauseAdmission() = 0;
  virtual void ResumeAdmission() = 0;

  // For a batch made by Engine::Open: appends `targets`, indexed on from the
  // last one added, and checks them as Submit does (an unusable one
  // completes at once as kInvalidTarget).  Calls must not overlap: one
  // feeder.  Does nothing once the batch is closed or has ended; if the
  // batch ends during the call, the targets it has not taken yet are
  // listed in the summary as pending.
  virtual void Add(std::vector<ProbeTarget> targets) = 0;
  // No more targets will be added: the batch may now end as kAllCompleted
  // (until then, a batch whose targets have all completed waits for more,
  // its timeout still running).  Does nothing the second time.
  virtual void Close() = 0;

  // Targets added so far.
  virtual uint32_t size() const = 0;
};

struct EngineOptions {
  // Worker threads, each with its own curl multi handles and resolver; 0 =
  // one per core.
  int workers = 0;
  // Probes running at once across all batches.  Capped further by the file
  // descriptor budget (see below).
  uint32_t max_in_flight = 10000;
  // File descriptors kept back from probes for everything else the process
  // does (gRPC connections, logs, ...).  Admission never lets probes use
  // more than (RLIMIT_NOFILE soft limit - descriptors open at start -
  // fd_reserve), so a batch larger than the budget queues instead of failing
  // with EMFILE.  The engine reads the limit; raising it is the program's
  // business (fanprobe-server raises the soft limit to the hard one).
  uint32_t fd_reserve = 256;
  // Which addresses probes may connect to, checked on every address a name
  // resolves to and on every connection of every redirect hop; a denied one
  // ends the probe as kDenied.
  DestinationPolicy destination_policy;
  // The local addresses a probe may ask to connect from
  // (ProbeOptions::source_address); empty: none, so a probe that asks is
  // kInvalidTarget.
  std::vector<Cidr> allowed_sources;

  // Name resolution.  The engine resolves every name itself, on its
  // workers' event loops: the hosts file first, then DNS.
  // DNS servers, "ip", "ip:port" or "[ipv6]:port"; empty: resolv.conf's.
  std::vector<std::string> dns_servers;
  // A lookup's whole budget, retries included; past it the probe ends as
  // kDnsError (DnsFailure::kTimeout).
  absl::Duration dns_timeout = absl::Seconds(5);
  // resolv.conf (servers, search domains, ndots); empty: the system's.
  std::string resolv_conf;
  // Read once, at start; empty: none.
  std::string hosts_file = "/etc/hosts";
  // Lookups a worker has in flight at once (each asks A and AAAA); more
  // wait, in order.  A resolver's socket buffer holds a few hundred
  // queries: a burst beyond that loses some, and each loss costs a retry.
  int dns_max_outstanding = 48;

  // What a probe's options may ask for.
  ProbeLimits limits;

  // What runs probes; null means libcurl (the only real one).  Tests inject
  // a fake to test admission without sockets.
  std::shared_ptr<internal::TransportFactory> transport;
};

// How long the workers' event-loop turns took: while a turn runs, every
// other probe of that worker waits, so long turns mean the prober, not its
// targets, is slow.  Buckets by upper bound (seconds), not cumulative; the
// last bucket holds what is above every bound.
inline constexpr std::array<double, 10> kLagBucketBounds = {
    0.001, 0.0025, 0.005, 0.01, 0.025, 0.05, 0.1, 0.25, 0.5, 1.0};
inline constexpr size_t kLagBucketCount = kLagBucketBounds.size();
struct LagHistogram {
  std::array<uint64_t, kLagBucketCount + 1> counts{};
  uint64_t count = 0;
  double sum_seconds = 0;
};

// Live figures, for metrics and readiness.
struct EngineStats {
  // Running now, or waiting out a backoff to be tried again (the
  // probes_backing_off of them).
  uint64_t probes_in_flight = 0;
  uint64_t probes_backing_off = 0;
  uint64_t probes_queued = 0;   // admitted batches' probes not yet started
  uint64_t batches_active = 0;  // submitted and not yet ended
  uint64_t max_in_flight = 0;   // the effective cap (after the fd budget)
  // The descriptor budget, as found at start.
  uint64_t fd_limit = 0;  // RLIMIT_NOFILE's soft limit
  uint64_t fd_open_at_start = 0;
  uint64_t fd_reserve = 0;
  // Transport handles dropped after a failed set-up; the probe went on with
  // a fresh one, so this is the engine's own trouble, never a target's.
  uint64_t handles_discarded = 0;
  uint64_t dns_lookups = 0;  // lookups sent to DNS servers, ever
  uint64_t dns_pending = 0;  // lookups in flight or waiting now
  LagHistogram loop_lag;     // every turn of every worker
  // Probes a worker holds back because those it is connecting already use
  // the CPU it can spend on connecting (see ProbeResult::prober_lag).
  uint64_t probes_paced = 0;
};

class Engine {
 public:
  // Starts the workers.  Fails (kInternal / kResourceExhausted) only when
  // libcurl or the OS refuses to set up.
  static absl::StatusOr<std::unique_ptr<Engine>> Create(EngineOptions options);

  // Cancels every batch still running (each gets its on_done with
  // kCancelled), then stops and joins the workers.
  virtual ~Engine() = default;

  // Starts a batch of `targets`: Open, Add and Close.  Never fails: an
  // unusable target completes at once as kInvalidTarget (without waiting for
  // a slot, however busy the engine), and an empty batch ends at once as
  // kAllCompleted.  Targets are checked on the calling thread (about 3 us
  // each) in chunks, so probes start after the first few hundred are
  // checked; Submit returns when all are.
  std::shared_ptr<Batch> Submit(std::vector<ProbeTarget> targets,
                                const BatchOptions& options,
                                BatchCallbacks callbacks);

  // Starts a batch whose targets come later, through Batch::Add, in any
  // number (ProbeStream): the engine holds a target only from Add until its
  // result has been handed over, plus an empty shell per target while an
  // earlier one of the batch still runs, so a feeder that adds as results
  // come back runs any number of targets in bounded memory.  The batch ends
  // by its return-when rule, timeout or Cancel as any other, and as
  // kAllCompleted only once Close() has been called.  Its timeout runs from
  // Open.
  virtual std::shared_ptr<Batch> Open(const BatchOptions& options,
                                      BatchCallbacks callbacks) = 0;

  virtual EngineStats Stats() const = 0;

  // OK, or kInvalidArgument naming the offending field first ("max_body_bytes:
  // ... is above this server's limit of ..."), for options a probe would end
  // with as kInvalidTarget: what a front end reports as a bad request before
  // it submits.
  virtual absl::Status CheckOptions(const ProbeOptions& options) const = 0;

  // What this engine lets a probe ask for (EngineOptions::limits).
  virtual const ProbeLimits& Limits() const = 0;
};

}  // namespace fanprobe

#endif  // FANPROBE_PROBE_ENGINE_H_
