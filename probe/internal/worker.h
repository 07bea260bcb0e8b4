// worker.h: the libcurl transport.  Each Worker is one lane: a thread with
// one epoll that drives a few libcurl multi handles ("shards") with
// curl_multi_socket_action, a c-ares resolver, a timerfd per shard for
// libcurl's timer, one for the resolver and lookup deadlines, and an
// eventfd through which other threads post commands (start a probe, cancel
// a batch's probes, stop).  The idiom is curl's docs/examples/ephiperfifo.c.
//
// A probe is a sequence of requests ("hops"): resolve the host (unless it is
// an address), drop the addresses the destination policy denies, run one
// HTTP exchange with libcurl connecting to what is left, and if the
// response is a redirect to follow, do it all again for its Location --
// within one total timeout.  The policy is checked again by libcurl's
// open-socket callback on every connection.
//
// Why shards: libcurl 7.88 keeps every connection to one host in a single
// list per multi handle and removes a closed connection by walking that
// list, so 10,000 connections to one host in one multi handle cost O(n^2).
// Spreading a worker's requests over several multi handles keeps each list
// short.
//
// Thread-safety: PostStart/PostCancel/Stats from any thread; StartLocal on
// the worker's own thread only.  Only the worker thread calls libcurl and
// c-ares on its handles.

#ifndef FANPROBE_PROBE_INTERNAL_WORKER_H_
#define FANPROBE_PROBE_INTERNAL_WORKER_H_

#include <curl/curl.h>

#include <atomic>
#include <cstdint>
#include <deque>
#include <map>
#include <memory>
#include <thread>
#include <vector>

#include "absl/base/thread_annotations.h"
#include "absl/container/flat_hash_map.h"
#include "absl/status/status.h"
#include "absl/synchronization/mutex.h"
#include "probe/destination_policy.h"
#include "probe/internal/curl_transfer.h"
#include "probe/internal/load_meter.h"
#include "probe/internal/monotonic.h"
#include "probe/internal/resolver.h"
#include "probe/internal/transport.h"
#include "probe/unique_fd.h"

namespace fanprobe::internal {

struct CurlTransportOptions {
  // Must outlive the transport.
  const DestinationPolicy* policy = nullptr;
  // EngineOptions::allowed_sources; must outlive the transport.  Null:
  // none allowed.
  const std::vector<Cidr>* allowed_sources = nullptr;
  ResolverOptions resolver;
};

// The libcurl transport: one Worker per lane.  Its Create() sets libcurl
// up for the process (curl_global_init, once) before any lane starts.
std::unique_ptr<TransportFactory> NewCurlTransportFactory(
    CurlTransportOptions options);

// What EngineOptions ask of the libcurl transport: the engine's default
// transport, and what the transfer tests run.  The result points at
// options.destination_policy, so `options` must outlive every transport
// made from it.
CurlTransportOptions CurlTransportOptionsFor(const EngineOptions& options);

class Worker final : public Lane, private ResolverHost {
 public:
  Worker(int id, TaskListener* listener, const CurlTransportOptions& options);
  Worker(const Worker&) = delete;
  Worker& operator=(const Worker&) = delete;
  // Drops every task still running (each reported with nullopt) and joins.
  ~Worker() override;

  // Creates the epoll, timers, resolver and multi handles and starts the
  // thread.
  absl::Status Start();

  int id() const override { return id_; }
  void PostStart(ProbeTask task) override;
  void StartLocal(ProbeTask task) override;
  void PostCancel(const BatchState* batch) override;
  LaneStats Stats() const override;

 private:
  struct CurlMultiDeleter {
    void operator()(CURLM* multi) const { curl_multi_cleanup(multi); }
  };
  struct Shard {
    Worker* worker = nullptr;
    int index = 0;
    std::unique_ptr<CURLM, CurlMultiDeleter> multi;
    UniqueFd timer_fd;
    uint32_t running = 0;  // requests in this multi handle
    // libcurl's timer, kept lazily: the callback only records what libcurl
    // asked for, and SyncTimer() touches the timerfd once per loop turn,
    // only when the request is earlier than what is armed (a wake-up that
    // comes too early is harmless: the timer is re-armed after it).
    bool due = false;                    // call libcurl's timeout now
    int64_t requested_ns = kNoDeadline;  // CLOCK_MONOTONIC
    int64_t armed_ns = kNoDeadline;
  };
  // One probe in progress (and its pooled handle between probes).
  struct Transfer {
    CurlTransfer curl;
    ProbeTask task;
    uint64_t seq = 0;  // unique per probe on this worker: the resolver's id
    enum class Phase { kIdle, kResolving, kRequesting } phase = Phase::kIdle;
    Shard* shard = nullptr;   // set while in a multi handle
    int64_t start_ns = 0;     // the probe's
    int64_t deadline_ns = 0;  // the probe's total timeout
    int64_t hop_start_ns = 0;
    int64_t hop_deadline_ns = 0;  // the hop's connect deadline, or the probe's
    std::multimap<int64_t, Transfer*>::iterator lookup_deadline;
    // The request now: its URL (the target's, or a redirect's), method, and
    // what a redirect changed.
    ParsedUrl url;
    std::string method;
    bool send_body = true;
    bool cross_host = false;
    std::vector<IpAddress> addresses;  // where to connect, allowed only
    // This request goes through the options' proxy, whose addresses (once
    // resolved, allowed only) are these; resolving_proxy while they are
    // looked up.
    bool via_proxy = false;
    bool resolving_proxy = false;
    std::vector<IpAddress> proxy_addresses;
    bool connecting = false;  // counted in connecting_
    Hop hop;                  // the request now, as it goes
    ProbeResult result;       // filled hop by hop
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
  void SyncAuxTimer();
  void OnAuxTimer();

  // The steps of a probe.
  void Begin(ProbeTask task);
  void BeginHop(Transfer* transfer);
  void OnHopResolved(Transfer* transfer, Resolution resolution);
  // Looks up the proxy of a request that goes through one, then starts it.
  void ResolveProxy(Transfer* transfer);
  void OnProxyResolved(Transfer* transfer, Resolution resolution);
  // Whether a probe may connect from `source` (--allow_source_cidr).
  bool SourceAllowed(const IpAddress& source) const;
  // Appends the addresses the destination policy allows to `allowed`;
  // returns why the first denied one is denied ("" when none is).
  std::string KeepAllowed(const std::vector<IpAddress>& addresses,
                          std::vector<IpAddress>* allowed) const;
  // Looks `host` up for the request (the proxy's when resolving_proxy),
  // then goes on in OnLookupDone, now or when the answer comes.
  void Lookup(Transfer* transfer, const std::string& host);
  void OnLookupDone(Transfer* transfer, Resolution resolution);
  void StartRequest(Transfer* transfer);
  void OnRequestDone(Transfer* transfer, CURLcode code);
  // Ends the probe with what transfer->result says.
  void EndProbe(Transfer* transfer);
  // Ends the probe with `outcome`; the request now, if it got anywhere, is
  // recorded as its last hop.
  void Fail(Transfer* transfer, Outcome outcome, std::string error);

  // The request's connection is up (or the request ended): it no longer
  // counts against the connecting limit.
  void Connected(Transfer* transfer);

  Transfer* AcquireTransfer();
  // Takes `transfer` out of its multi handle or the resolver, and back to
  // the free list; returns its task.
  ProbeTask ReleaseTransfer(Transfer* transfer);

  // ResolverHost.
  void WatchDnsSocket(int fd, bool readable, bool writable) override;
  void OnResolved(uint64_t id, Resolution resolution) override;

  static int SocketCallback(CURL* easy, curl_socket_t s, int what, void* shard,
                            void* socket_data);
  static int TimerCallback(CURLM* multi, long timeout_ms, void* shard);

  // Constant after construction / Start().
  const int id_;
  TaskListener* const listener_;
  const CurlTransportOptions options_;
  UniqueFd epoll_fd_;
  UniqueFd event_fd_;
  UniqueFd aux_timer_fd_;  // the resolver's and the lookups' deadlines
  std::vector<Shard> shards_;
  std::unique_ptr<Resolver> resolver_;
  std::thread thread_;

  absl::Mutex mu_;
  std::vector<Command> commands_ ABSL_GUARDED_BY(mu_);

  // Read by Stats() from other threads.
  std::atomic<uint64_t> handles_discarded_{0};
  std::atomic<uint64_t> dns_lookups_{0};
  std::atomic<uint64_t> dns_pending_{0};
  std::atomic<uint64_t> probes_paced_{0};
  LoadMeter meter_;  // its Lag() may be read from any thread

  // State below is touched only by the worker thread.
  absl::flat_hash_map<Transfer*, std::unique_ptr<Transfer>> active_;
  absl::flat_hash_map<uint64_t, Transfer*> resolving_;  // by seq
  std::multimap<int64_t, Transfer*> lookup_deadlines_;
  int64_t aux_armed_ns_ = kNoDeadline;
  std::vector<std::unique_ptr<Transfer>> free_;  // reused, newest last
  std::deque<ProbeTask> pending_starts_;         // posted, not yet started
  uint64_t next_seq_ = 1;
  int64_t connecting_ = 0;  // requests begun whose connection is not up
  int begun_this_turn_ = 0;
  bool stopping_ = false;
};

}  // namespace fanprobe::internal

#endif  // FANPROBE_PROBE_INTERNAL_WORKER_H_
