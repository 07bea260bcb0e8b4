// worker.h: one engine worker thread.  It owns a few libcurl multi handles
// ("shards") and drives them with curl_multi_socket_action from one epoll,
// with a timerfd per shard for libcurl's timer and an eventfd through which
// other threads post commands (start a probe, cancel a batch's probes,
// stop).  This is the idiom of curl's docs/examples/ephiperfifo.c.
//
// Why shards: libcurl 7.88 keeps every connection to one host in a single
// list per multi handle and removes a closed connection by walking that
// list, so 10,000 connections to one host in one multi handle cost O(n^2).
// Spreading a worker's transfers over several multi handles keeps each list
// short; a probe runs entirely within one shard.
//
// Thread-safety: Post*() may be called from any thread.  StartLocal() only on
// the worker's own thread (from inside a TaskListener callback).  Only the
// worker thread ever calls libcurl on its handles.

#ifndef FANPROBE_PROBE_INTERNAL_WORKER_H_
#define FANPROBE_PROBE_INTERNAL_WORKER_H_

#include <curl/curl.h>

#include <cstdint>
#include <deque>
#include <memory>
#include <optional>
#include <thread>
#include <vector>

#include "absl/base/thread_annotations.h"
#include "absl/container/flat_hash_map.h"
#include "absl/status/status.h"
#include "absl/synchronization/mutex.h"
#include "probe/internal/curl_probe.h"
#include "probe/probe.h"

namespace fanprobe::internal {

class BatchState;  // the engine's; opaque here

// One probe handed to a worker.
struct ProbeTask {
  std::shared_ptr<BatchState> batch;  // keeps the target alive
  const ProbeTarget* target = nullptr;
  uint32_t index = 0;
  // url.url is filled by the worker (parsing off the engine's lock);
  // url.host_key by the engine when the batch has a per-host limit.
  ParsedUrl url;
  std::shared_ptr<const PreparedOptions> options;
};

// A result that carries the target's echoed fields and nothing else yet.
ProbeResult NewResult(const ProbeTarget& target, uint32_t index);

class Worker;

// Implemented by the engine.  Called on the worker thread.
class TaskListener {
 public:
  virtual ~TaskListener() = default;
  // Every task posted or started ends here exactly once: with its result,
  // or with nullopt when it was dropped because its batch had ended.
  virtual void OnTaskEnded(Worker& worker, ProbeTask task,
                           std::optional<ProbeResult> result) = 0;
  // Whether the task's batch has ended (a cheap, lock-free check).
  virtual bool IsBatchEnded(const ProbeTask& task) = 0;
};

class Worker {
 public:
  // `policy` (may be null) must outlive the worker.
  Worker(int id, TaskListener* listener, const DestinationPolicy* policy);
  Worker(const Worker&) = delete;
  Worker& operator=(const Worker&) = delete;
  // Drops every task still running (each reported with nullopt) and joins.
  ~Worker();

  // Creates the epoll, timer, event and multi handles and starts the thread.
  absl::Status Start();

  void PostStart(ProbeTask task);
  // Stops every running probe of `batch`: removed from the multi handle, so
  // its connection closes at once.
  void PostCancel(const BatchState* batch);

  // Worker thread only.
  void StartLocal(ProbeTask task);
  bool OnWorkerThread() const;

  int id() const { return id_; }

 private:
  struct Shard {
    Worker* worker = nullptr;
    int index = 0;
    CURLM* multi = nullptr;
    int timer_fd = -1;
    uint32_t running = 0;  // transfers in this multi handle
    // libcurl's timer, kept lazily: the callback only records what libcurl
    // asked for, and SyncTimer() touches the timerfd once per loop turn,
    // only when the request is earlier than what is armed (a wake-up that
    // comes too early is harmless: the timer is re-armed after it).
    bool due = false;                    // call libcurl's timeout now
    int64_t requested_ns = kNoDeadline;  // CLOCK_MONOTONIC
    int64_t armed_ns = kNoDeadline;
  };
  static constexpr int64_t kNoDeadline = INT64_MAX;
  struct Transfer {
    CurlProbe probe;
    ProbeTask task;
    Shard* shard = nullptr;  // set while in a multi handle
  };
  struct Command {
    enum class Kind { kStart, kCancel, kStop } kind;
    ProbeTask task;                     // kStart
    const BatchState* batch = nullptr;  // kCancel
  };

  void Post(Command command);
  void Run();
  void DrainCommands();
  void StartPending();
  void ProcessCompletions(Shard& shard);
  void SyncTimer(Shard& shard);
  Transfer* AcquireTransfer();
  // Takes `transfer` out of its multi handle, if it is in one, and back to
  // the free list; returns its task.
  ProbeTask ReleaseTransfer(Transfer* transfer);

  static int SocketCallback(CURL* easy, curl_socket_t s, int what, void* shard,
                            void* socket_data);
  static int TimerCallback(CURLM* multi, long timeout_ms, void* shard);

  // Constant after construction / Start().
  const int id_;
  TaskListener* const listener_;
  const DestinationPolicy* const policy_;
  int epoll_fd_ = -1;
  int event_fd_ = -1;
  std::vector<Shard> shards_;
  std::thread thread_;

  absl::Mutex mu_;
  std::vector<Command> commands_ ABSL_GUARDED_BY(mu_);

  // State below is touched only by the worker thread.
  absl::flat_hash_map<Transfer*, std::unique_ptr<Transfer>> active_;
  std::vector<std::unique_ptr<Transfer>> free_;  // reused, newest last
  std::deque<ProbeTask> pending_starts_;         // posted, not yet started
  bool stopping_ = false;
};

}  // namespace fanprobe::internal

#endif  // FANPROBE_PROBE_INTERNAL_WORKER_H_
