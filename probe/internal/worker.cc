#include "probe/internal/worker.h"

#include <sys/epoll.h>
#include <sys/eventfd.h>
#include <sys/timerfd.h>
#include <time.h>
#include <unistd.h>

#include <algorithm>
#include <cerrno>
#include <cstring>
#include <mutex>
#include <utility>

#include "absl/strings/str_cat.h"
#include "absl/time/time.h"

namespace fanprobe::internal {
namespace {

// Idle transfers (each an easy handle) a worker keeps for reuse.  Beyond
// this, a burst's handles are freed as they finish, so what a worker keeps
// after a batch does not depend on how many of its probes happened to run
// at once.  In a steady stream of probes, starts take what finishes put
// back, so a few hundred are enough for reuse to pay.
constexpr size_t kMaxFreeTransfers = 256;
constexpr int kMaxEvents = 1024;
constexpr int kShards = 8;

// What an epoll event is for, packed into epoll_data.u64: the eventfd, a
// shard's timerfd, the resolver's timerfd, a resolver socket, or a curl
// socket of a shard (shard << 32 | fd).
constexpr uint64_t kEventTag = uint64_t{1} << 62;
constexpr uint64_t kTimerTag = uint64_t{1} << 61;
constexpr uint64_t kAuxTimerTag = uint64_t{1} << 60;
constexpr uint64_t kDnsTag = uint64_t{1} << 59;
uint64_t SocketTag(int shard, curl_socket_t s) {
  return (static_cast<uint64_t>(shard) << 32) | static_cast<uint32_t>(s);
}
// Probes a worker starts between two looks at its sockets, so that a burst
// of 10,000 starts does not hold back the first completions: a probe needs
// several turns (connected, request sent, answer read), each one behind
// this many starts.  Measured with bench/engine_bench, 10,000 zero-delay
// loopback probes at concurrency 10,000, 9 runs each: first result median
// 27.6 ms at 32, 12.8 ms at 8, 8.8 ms at 4, at the same CPU per probe.
constexpr int kMaxStartsPerTurn = 4;

absl::Status ErrnoStatus(absl::string_view what) {
  return absl::InternalError(absl::StrCat(what, ": ", std::strerror(errno)));
}

int64_t ThreadCpuNanos() {
  timespec now;
  clock_gettime(CLOCK_THREAD_CPUTIME_ID, &now);
  return int64_t{now.tv_sec} * 1000000000 + now.tv_nsec;
}

absl::Duration Since(int64_t start_ns, int64_t now_ns) {
  return absl::Nanoseconds(now_ns - start_ns);
}

void DrainFd(int fd) {
  uint64_t count;
  while (read(fd, &count, sizeof(count)) < 0 && errno == EINTR) {
  }
}

// Arms `fd` for `deadline_ns` (CLOCK_MONOTONIC); false if it could not.
bool ArmTimer(int fd, int64_t deadline_ns) {
  itimerspec spec{};
  spec.it_value.tv_sec = deadline_ns / 1000000000;
  spec.it_value.tv_nsec = deadline_ns % 1000000000;
  return timerfd_settime(fd, TFD_TIMER_ABSTIME, &spec, nullptr) == 0;
}

// The redirects a probe follows, and how, as browsers and Go's client
// (blackbox_exporter's) do: 301, 302 and 303 turn a method other than GET
// and HEAD into a GET without a body; 307 and 308 repeat the request.
bool IsFollowedRedirect(int status) {
  return status == 301 || status == 302 || status == 303 || status == 307 ||
         status == 308;
}

class CurlTransport final : public Transport {
 public:
  explicit CurlTransport(std::vector<std::unique_ptr<Worker>> workers)
      : workers_(std::move(workers)) {
    for (const auto& worker : workers_) lanes_.push_back(worker.get());
  }
  const std::vector<Lane*>& lanes() const override { return lanes_; }

 private:
  std::vector<std::unique_ptr<Worker>> workers_;
  std::vector<Lane*> lanes_;
};

class CurlTransportFactory final : public TransportFactory {
 public:
  explicit CurlTransportFactory(CurlTransportOptions options)
      : options_(std::move(options)) {}

  absl::StatusOr<std::unique_ptr<Transport>> Create(
      int lanes, TaskListener* listener) override {
    // libcurl wants curl_global_init before any other call: once per
    // process, here, before any lane's thread touches libcurl.
    static std::once_flag curl_once;
    static CURLcode curl_init = CURLE_OK;
    std::call_once(curl_once,
                   [] { curl_init = curl_global_init(CURL_GLOBAL_DEFAULT); });
    if (curl_init != CURLE_OK) {
      return absl::InternalError(curl_easy_strerror(curl_init));
    }
    std::vector<std::unique_ptr<Worker>> workers;
    for (int i = 0; i < lanes; ++i) {
      workers.push_back(std::make_unique<Worker>(i, listener, options_));
      absl::Status status = workers.back()->Start();
      if (!status.ok()) return status;
    }
    return std::make_unique<CurlTransport>(std::move(workers));
  }

 private:
  const CurlTransportOptions options_;
};

}  // namespace

std::unique_ptr<TransportFactory> NewCurlTransportFactory(
    CurlTransportOptions options) {
  return std::make_unique<CurlTransportFactory>(std::move(options));
}

CurlTransportOptions CurlTransportOptionsFor(const EngineOptions& options) {
  CurlTransportOptions curl;
  curl.policy = &options.destination_policy;
  curl.allowed_sources = &options.allowed_sources;
  curl.resolver.servers = options.dns_servers;
  curl.resolver.resolv_conf = options.resolv_conf;
  curl.resolver.hosts_file = options.hosts_file;
  curl.resolver.timeout = options.dns_timeout;
  curl.resolver.max_outstanding = options.dns_max_outstanding;
  return curl;
}

ProbeResult NewResult(const ProbeTarget& target, uint32_t index) {
  ProbeResult result;
  result.index = index;
  result.id = target.id;
  result.labels = target.labels;
  result.url = target.url;
  return result;
}

Worker::Worker(int id, TaskListener* listener,
               const CurlTransportOptions& options)
    : id_(id), listener_(listener), options_(options) {}

Worker::~Worker() {
  if (thread_.joinable()) {
    Post(Command{.kind = Command::Kind::kStop});
    thread_.join();
  }
  // The resolver tells us of the sockets it closes: while we are whole.
  resolver_.reset();
  free_.clear();
  shards_.clear();
}

absl::Status Worker::Start() {
  epoll_fd_.reset(epoll_create1(EPOLL_CLOEXEC));
  if (!epoll_fd_.valid()) return ErrnoStatus("epoll_create1");
  event_fd_.reset(eventfd(0, EFD_NONBLOCK | EFD_CLOEXEC));
  if (!event_fd_.valid()) return ErrnoStatus("eventfd");
  epoll_event ev{};
  ev.events = EPOLLIN;
  ev.data.u64 = kEventTag;
  if (epoll_ctl(epoll_fd_.get(), EPOLL_CTL_ADD, event_fd_.get(), &ev) != 0) {
    return ErrnoStatus("epoll_ctl");
  }
  aux_timer_fd_.reset(
      timerfd_create(CLOCK_MONOTONIC, TFD_NONBLOCK | TFD_CLOEXEC));
  if (!aux_timer_fd_.valid()) return ErrnoStatus("timerfd_create");
  ev.data.u64 = kAuxTimerTag;
  if (epoll_ctl(epoll_fd_.get(), EPOLL_CTL_ADD, aux_timer_fd_.get(), &ev) !=
      0) {
    return ErrnoStatus("epoll_ctl");
  }
  absl::StatusOr<std::unique_ptr<Resolver>> resolver =
      Resolver::Create(options_.resolver, this);
  if (!resolver.ok()) return resolver.status();
  resolver_ = *std::move(resolver);
  shards_.resize(kShards);
  for (int i = 0; i < kShards; ++i) {
    Shard& shard = shards_[i];
    shard.worker = this;
    shard.index = i;
    shard.timer_fd.reset(
        timerfd_create(CLOCK_MONOTONIC, TFD_NONBLOCK | TFD_CLOEXEC));
    if (!shard.timer_fd.valid()) return ErrnoStatus("timerfd_create");
    ev.data.u64 = kTimerTag | static_cast<uint64_t>(i);
    if (epoll_ctl(epoll_fd_.get(), EPOLL_CTL_ADD, shard.timer_fd.get(), &ev) !=
        0) {
      return ErrnoStatus("epoll_ctl");
    }
    shard.multi.reset(curl_multi_init());
    if (shard.multi == nullptr) {
      return absl::InternalError("curl_multi_init failed");
    }
    CURLM* multi = shard.multi.get();
    if (curl_multi_setopt(multi, CURLMOPT_SOCKETFUNCTION,
                          &Worker::SocketCallback) != CURLM_OK ||
        curl_multi_setopt(multi, CURLMOPT_SOCKETDATA, &shard) != CURLM_OK ||
        curl_multi_setopt(multi, CURLMOPT_TIMERFUNCTION,
                          &Worker::TimerCallback) != CURLM_OK ||
        curl_multi_setopt(multi, CURLMOPT_TIMERDATA, &shard) != CURLM_OK) {
      return absl::InternalError("libcurl refused a multi handle option");
    }
  }
  thread_ = std::thread([this] { Run(); });
  return absl::OkStatus();
}

void Worker::PostStart(ProbeTask task) {
  Post(Command{.kind = Command::Kind::kStart, .task = std::move(task)});
}

void Worker::PostCancel(const BatchState* batch) {
  Post(Command{.kind = Command::Kind::kCancel, .batch = batch});
}

LaneStats Worker::Stats() const {
  LaneStats stats;
  stats.handles_discarded = handles_discarded_.load(std::memory_order_relaxed);
  stats.dns_lookups = dns_lookups_.load(std::memory_order_relaxed);
  stats.dns_pending = dns_pending_.load(std::memory_order_relaxed);
  stats.probes_paced = probes_paced_.load(std::memory_order_relaxed);
  stats.loop_lag = meter_.Lag();
  return stats;
}

void Worker::Post(Command command) {
  bool wake;
  {
    absl::MutexLock lock(&mu_);
    // The worker drains the whole queue after each wake-up, so only the
    // first command of a burst needs to write the eventfd.
    wake = commands_.empty();
    commands_.push_back(std::move(command));
  }
  if (wake) {
    uint64_t one = 1;
    while (write(event_fd_.get(), &one, sizeof(one)) < 0 && errno == EINTR) {
    }
  }
}

int Worker::SocketCallback(CURL* easy, curl_socket_t s, int what,
                           void* shard_ptr, void* socket_data) {
  auto* shard = static_cast<Shard*>(shard_ptr);
  const int epoll_fd = shard->worker->epoll_fd_.get();
  if (what == CURL_POLL_REMOVE) {
    // The socket may already be closed (then the kernel dropped it).
    epoll_ctl(epoll_fd, EPOLL_CTL_DEL, s, nullptr);
    return 0;
  }
  epoll_event ev{};
  ev.events = ((what & CURL_POLL_IN) ? EPOLLIN : 0u) |
              ((what & CURL_POLL_OUT) ? EPOLLOUT : 0u);
  ev.data.u64 = SocketTag(shard->index, s);
  if (socket_data != nullptr) {
    if (epoll_ctl(epoll_fd, EPOLL_CTL_MOD, s, &ev) == 0) return 0;
    if (errno != ENOENT) return -1;
  }
  if (epoll_ctl(epoll_fd, EPOLL_CTL_ADD, s, &ev) != 0) {
    if (errno != EEXIST || epoll_ctl(epoll_fd, EPOLL_CTL_MOD, s, &ev) != 0) {
      return -1;
    }
  }
  // Marks the socket as registered; libcurl forgets it on removal.
  curl_multi_assign(shard->multi.get(), s, shard);
  return 0;
}

int Worker::TimerCallback(CURLM* multi, long timeout_ms, void* shard_ptr) {
  auto* shard = static_cast<Shard*>(shard_ptr);
  // Never call libcurl from here: note the request and let the loop act.
  if (timeout_ms < 0) {
    shard->requested_ns = kNoDeadline;
  } else if (timeout_ms == 0) {
    shard->due = true;
    shard->requested_ns = kNoDeadline;
  } else {
    shard->requested_ns = MonotonicNanos() + int64_t{timeout_ms} * 1000000;
  }
  return 0;
}

void Worker::WatchDnsSocket(int fd, bool readable, bool writable) {
  if (!readable && !writable) {
    epoll_ctl(epoll_fd_.get(), EPOLL_CTL_DEL, fd, nullptr);
    return;
  }
  epoll_event ev{};
  ev.events = (readable ? EPOLLIN : 0u) | (writable ? EPOLLOUT : 0u);
  ev.data.u64 = kDnsTag | static_cast<uint32_t>(fd);
  if (epoll_ctl(epoll_fd_.get(), EPOLL_CTL_MOD, fd, &ev) != 0) {
    epoll_ctl(epoll_fd_.get(), EPOLL_CTL_ADD, fd, &ev);
  }
}

void Worker::SyncTimer(Shard& shard) {
  if (shard.requested_ns >= shard.armed_ns) return;
  if (ArmTimer(shard.timer_fd.get(), shard.requested_ns)) {
    shard.armed_ns = shard.requested_ns;
  } else {
    shard.due = true;  // cannot wait for it: act on the next turn
  }
}

void Worker::SyncAuxTimer() {
  int64_t next = resolver_->NextDeadline();
  if (!lookup_deadlines_.empty()) {
    next = std::min(next, lookup_deadlines_.begin()->first);
  }
  if (next >= aux_armed_ns_) return;
  // A deadline already past arms the timer for the past: it fires at once.
  if (ArmTimer(aux_timer_fd_.get(), std::max<int64_t>(next, 1))) {
    aux_armed_ns_ = next;
  }
}

void Worker::Run() {
  epoll_event events[kMaxEvents];
  int running = 0;
  while (!stopping_) {
    // Probes waiting to begin keep the loop from sleeping only while there
    // is connecting room for them.
    bool busy =
        !pending_starts_.empty() && connecting_ < meter_.ConnectingLimit();
    for (const Shard& shard : shards_) busy = busy || shard.due;
    int n = epoll_wait(epoll_fd_.get(), events, kMaxEvents, busy ? 0 : -1);
    if (n < 0) {
      if (errno == EINTR) continue;
      break;  // EBADF/EINVAL: our own fd is gone; nothing sane to do
    }
    const int64_t turn_start = MonotonicNanos();
    const int64_t cpu_start = ThreadCpuNanos();
    begun_this_turn_ = 0;
    for (int i = 0; i < n; ++i) {
      const uint64_t tag = events[i].data.u64;
      const uint32_t ev = events[i].events;
      if (tag == kEventTag) {
        DrainFd(event_fd_.get());
        DrainCommands();
      } else if (tag & kTimerTag) {
        Shard& shard = shards_[tag & ~kTimerTag];
        DrainFd(shard.timer_fd.get());
        shard.armed_ns = kNoDeadline;
        shard.due = true;
      } else if (tag == kAuxTimerTag) {
        DrainFd(aux_timer_fd_.get());
        aux_armed_ns_ = kNoDeadline;
        OnAuxTimer();
      } else if (tag & kDnsTag) {
        resolver_->OnSocketEvent(static_cast<int>(tag & 0xffffffff),
                                 (ev & (EPOLLIN | EPOLLERR | EPOLLHUP)) != 0,
                                 (ev & EPOLLOUT) != 0);
      } else {
        Shard& shard = shards_[tag >> 32];
        int mask = 0;
        if (ev & EPOLLIN) mask |= CURL_CSELECT_IN;
        if (ev & EPOLLOUT) mask |= CURL_CSELECT_OUT;
        if (ev & (EPOLLERR | EPOLLHUP)) mask |= CURL_CSELECT_ERR;
        curl_multi_socket_action(shard.multi.get(),
                                 static_cast<curl_socket_t>(tag & 0xffffffff),
                                 mask, &running);
      }
    }
    StartPending();
    for (Shard& shard : shards_) {
      if (shard.due && shard.requested_ns == kNoDeadline) {
        shard.due = false;
        curl_multi_socket_action(shard.multi.get(), CURL_SOCKET_TIMEOUT, 0,
                                 &running);
      } else if (shard.due) {
        // An early wake-up (or a timer that expired): only act if libcurl's
        // deadline has come, else re-arm for it below.
        shard.due = false;
        if (MonotonicNanos() >= shard.requested_ns) {
          curl_multi_socket_action(shard.multi.get(), CURL_SOCKET_TIMEOUT, 0,
                                   &running);
        }
      }
      ProcessCompletions(shard);
    }
    for (Shard& shard : shards_) SyncTimer(shard);
    SyncAuxTimer();
    dns_pending_.store(resolver_->pending(), std::memory_order_relaxed);
    probes_paced_.store(pending_starts_.size(), std::memory_order_relaxed);
    meter_.OnTurn(turn_start, MonotonicNanos(), ThreadCpuNanos() - cpu_start,
                  begun_this_turn_);
  }
}

void Worker::StartPending() {
  const int64_t limit = meter_.ConnectingLimit();
  for (int i = 0;
       i < kMaxStartsPerTurn && !pending_starts_.empty() && connecting_ < limit;
       ++i) {
    ProbeTask task = std::move(pending_starts_.front());
    pending_starts_.pop_front();
    Begin(std::move(task));
  }
}

void Worker::DrainCommands() {
  std::vector<Command> commands;
  {
    absl::MutexLock lock(&mu_);
    commands.swap(commands_);
  }
  for (Command& command : commands) {
    switch (command.kind) {
      case Command::Kind::kStart:
        pending_starts_.push_back(std::move(command.task));
        break;
      case Command::Kind::kCancel:
      case Command::Kind::kStop: {
        const bool stop = command.kind == Command::Kind::kStop;
        if (stop) stopping_ = true;
        std::vector<Transfer*> victims;
        for (const auto& [transfer, owned] : active_) {
          if (stop || transfer->task.batch.get() == command.batch) {
            victims.push_back(transfer);
          }
        }
        for (Transfer* transfer : victims) {
          listener_->OnTaskEnded(*this, ReleaseTransfer(transfer),
                                 std::nullopt);
        }
        // Not started yet: report them now rather than when reached.
        std::deque<ProbeTask> keep;
        std::deque<ProbeTask> dropped;
        for (ProbeTask& task : pending_starts_) {
          (stop || task.batch.get() == command.batch ? dropped : keep)
              .push_back(std::move(task));
        }
        pending_starts_.swap(keep);
        for (ProbeTask& task : dropped) {
          listener_->OnTaskEnded(*this, std::move(task), std::nullopt);
        }
        break;
      }
    }
  }
}

void Worker::StartLocal(ProbeTask task) {
  // Queued, not begun here: a probe that ends at once (an unusable option,
  // a denied address) would report from inside this call, and the engine
  // would start the next one from inside that report, and so on, one stack
  // frame deeper each time.
  pending_starts_.push_back(std::move(task));
}

void Worker::Begin(ProbeTask task) {
  if (stopping_ || listener_->IsBatchEnded(task)) {
    listener_->OnTaskEnded(*this, std::move(task), std::nullopt);
    return;
  }
  ++begun_this_turn_;
  Transfer* t = AcquireTransfer();
  t->task = std::move(task);
  t->seq = next_seq_++;
  const ProbeOptions& o = *t->task.options->options;
  t->start_ns = MonotonicNanos();
  t->deadline_ns = BeginAttempt(t->task, t->start_ns);
  t->url = t->task.url;
  t->method = o.method;
  t->send_body = true;
  t->cross_host = false;
  t->result = NewResult(*t->task.target, t->task.index);
  if (const std::optional<IpAddress>& source = t->task.options->source;
      source.has_value() && !SourceAllowed(*source)) {
    Fail(t, Outcome::kInvalidTarget,
         absl::StrCat("source address ", source->ToString(),
                      " is not one this server allows probes to use "
                      "(--allow_source_cidr)"));
    return;
  }
  absl::StatusOr<bool> kept =
      t->curl.Configure(t->task.options, options_.policy, t);
  if (!kept.ok()) {
    Fail(t, Outcome::kInvalidTarget, std::string(kept.status().message()));
    return;
  }
  BeginHop(t);
}

void Worker::BeginHop(Transfer* t) {
  const ProbeOptions& o = *t->task.options->options;
  t->hop_start_ns = MonotonicNanos();
  t->hop_deadline_ns = t->deadline_ns;
  if (o.connect_timeout > absl::ZeroDuration()) {
    t->hop_deadline_ns =
        std::min(t->hop_deadline_ns,
                 t->hop_start_ns + absl::ToInt64Nanoseconds(o.connect_timeout));
  }
  t->hop = Hop{};
  t->hop.url = t->url.url;
  t->addresses.clear();
  t->proxy_addresses.clear();
  const PreparedOptions& prepared = *t->task.options;
  t->via_proxy =
      prepared.proxy.has_value() && !Bypasses(prepared.no_proxy, t->url);
  if (!t->connecting) {
    t->connecting = true;
    ++connecting_;
  }
  if (const std::optional<IpAddress>& source = prepared.source;
      source.has_value() && t->url.address.has_value() && !t->via_proxy &&
      source->is_v4 != t->url.address->is_v4) {
    Fail(t, Outcome::kInvalidTarget,
         absl::StrCat("source address ", source->ToString(), " is ",
                      source->is_v4 ? "IPv4" : "IPv6", " and the address ",
                      t->url.address->ToString(), " is not"));
    return;
  }
  if (t->url.address.has_value()) {
    t->hop.addresses.push_back(t->url.address->ToString());
    if (t->via_proxy) {
      // The socket goes to the proxy: the target's address is checked here.
      std::string denied = KeepAllowed({*t->url.address}, &t->addresses);
      if (t->addresses.empty()) {
        Fail(t, Outcome::kDenied, std::move(denied));
        return;
      }
      ResolveProxy(t);
      return;
    }
    // An address: libcurl connects to it as it is (the policy is checked
    // when it opens the socket).
    StartRequest(t);
    return;
  }
  if (t->via_proxy && prepared.options->proxy->proxy_resolves) {
    ResolveProxy(t);
    return;
  }
  Lookup(t, t->url.host);
}

void Worker::ResolveProxy(Transfer* t) {
  const ParsedUrl& proxy = *t->task.options->proxy;
  if (proxy.address.has_value()) {
    // Checked when libcurl opens the socket, as a target's address is.
    StartRequest(t);
    return;
  }
  t->resolving_proxy = true;
  Lookup(t, proxy.host);
}

void Worker::Lookup(Transfer* t, const std::string& host) {
  dns_lookups_.fetch_add(1, std::memory_order_relaxed);
  std::optional<Resolution> now =
      resolver_->Resolve(t->seq, host, t->task.options->family);
  if (now.has_value()) {
    OnLookupDone(t, *std::move(now));
    return;
  }
  t->phase = Transfer::Phase::kResolving;
  resolving_.emplace(t->seq, t);
  t->lookup_deadline = lookup_deadlines_.emplace(t->hop_deadline_ns, t);
}

void Worker::OnLookupDone(Transfer* t, Resolution resolution) {
  if (t->resolving_proxy) {
    t->resolving_proxy = false;
    OnProxyResolved(t, std::move(resolution));
    return;
  }
  OnHopResolved(t, std::move(resolution));
}

bool Worker::SourceAllowed(const IpAddress& source) const {
  if (options_.allowed_sources == nullptr) return false;
  return std::any_of(
      options_.allowed_sources->begin(), options_.allowed_sources->end(),
      [&source](const Cidr& cidr) { return cidr.Contains(source); });
}

std::string Worker::KeepAllowed(const std::vector<IpAddress>& addresses,
                                std::vector<IpAddress>* allowed) const {
  std::string denied;
  for (const IpAddress& a : addresses) {
    absl::Status status = options_.policy == nullptr
                              ? absl::OkStatus()
                              : options_.policy->Check(a);
    if (status.ok()) {
      allowed->push_back(a);
    } else if (denied.empty()) {
      denied = std::string(status.message());
    }
  }
  return denied;
}

void Worker::OnProxyResolved(Transfer* t, Resolution resolution) {
  const std::string& host = t->task.options->proxy->host;
  if (resolution.failure != DnsFailure::kNone) {
    Fail(t, Outcome::kConnectError,
         absl::StrCat("the proxy ", host,
                      " does not resolve: ", resolution.error));
    return;
  }
  const std::string denied =
      KeepAllowed(resolution.addresses, &t->proxy_addresses);
  if (t->proxy_addresses.empty()) {
    Fail(t, Outcome::kDenied,
         absl::StrCat("every address of the proxy ", host,
                      " is denied: ", denied));
    return;
  }
  StartRequest(t);
}

void Worker::OnResolved(uint64_t id, Resolution resolution) {
  auto it = resolving_.find(id);
  if (it == resolving_.end()) return;
  Transfer* t = it->second;
  resolving_.erase(it);
  lookup_deadlines_.erase(t->lookup_deadline);
  t->phase = Transfer::Phase::kIdle;
  OnLookupDone(t, std::move(resolution));
}

void Worker::OnAuxTimer() {
  resolver_->OnTimer();
  const int64_t now = MonotonicNanos();
  while (!lookup_deadlines_.empty() &&
         lookup_deadlines_.begin()->first <= now) {
    Transfer* t = lookup_deadlines_.begin()->second;
    lookup_deadlines_.erase(lookup_deadlines_.begin());
    resolving_.erase(t->seq);
    resolver_->Abandon(t->seq);
    t->phase = Transfer::Phase::kIdle;
    const bool connect_limit = t->hop_deadline_ns < t->deadline_ns;
    const std::string what =
        t->resolving_proxy
            ? absl::StrCat("the proxy ", t->task.options->proxy->host)
            : t->url.host;
    t->resolving_proxy = false;
    Fail(
        t, Outcome::kTimeout,
        absl::StrCat(connect_limit ? "connect timeout" : "timed out", " after ",
                     absl::FormatDuration(absl::Trunc(
                         Since(t->hop_start_ns, now), absl::Milliseconds(1))),
                     " resolving ", what));
  }
}

void Worker::OnHopResolved(Transfer* t, Resolution resolution) {
  t->hop.timings.dns = Since(t->hop_start_ns, MonotonicNanos());
  for (const IpAddress& a : resolution.addresses) {
    t->hop.addresses.push_back(a.ToString());
  }
  if (resolution.failure != DnsFailure::kNone) {
    t->result.dns_failure = resolution.failure;
    Fail(t, Outcome::kDnsError, std::move(resolution.error));
    return;
  }
  // Addresses the policy denies are dropped here, so libcurl never tries
  // them; it checks the rest again when it opens each socket.
  const std::string denied = KeepAllowed(resolution.addresses, &t->addresses);
  if (t->addresses.empty()) {
    Fail(
        t, Outcome::kDenied,
        absl::StrCat("every address of ", t->url.host, " is denied: ", denied));
    return;
  }
  if (t->via_proxy) {
    ResolveProxy(t);
    return;
  }
  StartRequest(t);
}

void Worker::StartRequest(Transfer* t) {
  const int64_t now = MonotonicNanos();
  if (now >= t->hop_deadline_ns) {
    Fail(t, Outcome::kTimeout,
         absl::StrCat(t->hop_deadline_ns < t->deadline_ns ? "connect timeout"
                                                          : "timed out",
                      " before connecting to ", t->url.host));
    return;
  }
  const ProbeOptions& o = *t->task.options->options;
  HopRequest request;
  request.url = &t->url;
  request.method = t->method;
  request.send_body = t->send_body;
  request.cross_host = t->cross_host;
  request.addresses = &t->addresses;
  if (t->via_proxy) request.proxy_addresses = &t->proxy_addresses;
  request.timeout = Since(now, t->deadline_ns);
  if (o.connect_timeout > absl::ZeroDuration()) {
    request.connect_timeout = Since(now, t->hop_deadline_ns);
  }
  absl::Status status = t->curl.Prepare(request);
  if (!status.ok()) {
    // The handle is the engine's trouble, not the target's: go on with a
    // fresh one, and only blame the options if that refuses them too.
    handles_discarded_.fetch_add(1, std::memory_order_relaxed);
    absl::StatusOr<bool> kept =
        t->curl.Configure(t->task.options, options_.policy, t);
    status = kept.ok() ? t->curl.Prepare(request) : kept.status();
    if (!status.ok()) {
      Fail(t, Outcome::kInvalidTarget, std::string(status.message()));
      return;
    }
  }
  Shard* shard = &shards_.front();
  for (Shard& candidate : shards_) {
    if (candidate.running < shard->running) shard = &candidate;
  }
  CURLMcode mc = curl_multi_add_handle(shard->multi.get(), t->curl.easy());
  if (mc != CURLM_OK) {
    Fail(t, Outcome::kIoError,
         absl::StrCat("libcurl could not start the request: ",
                      curl_multi_strerror(mc)));
    return;
  }
  t->shard = shard;
  ++shard->running;
  t->phase = Transfer::Phase::kRequesting;
}

void Worker::ProcessCompletions(Shard& shard) {
  int left = 0;
  while (CURLMsg* msg = curl_multi_info_read(shard.multi.get(), &left)) {
    if (msg->msg != CURLMSG_DONE) continue;
    // Copy what we need: the message dies with curl_multi_remove_handle.
    CURL* easy = msg->easy_handle;
    const CURLcode code = msg->data.result;
    Transfer* t = nullptr;
    curl_easy_getinfo(easy, CURLINFO_PRIVATE, &t);
    curl_multi_remove_handle(shard.multi.get(), easy);
    --shard.running;
    t->shard = nullptr;
    t->phase = Transfer::Phase::kIdle;
    OnRequestDone(t, code);
  }
}

void Worker::Connected(Transfer* t) {
  if (!t->connecting) return;
  t->connecting = false;
  --connecting_;
}

void Worker::OnRequestDone(Transfer* t, CURLcode code) {
  Connected(t);
  const ProbeOptions& o = *t->task.options->options;
  t->curl.ReadResponse(code, t->hop.timings.dns, &t->hop, &t->result);
  t->result.hops.push_back(t->hop);
  const Hop& hop = t->result.hops.back();
  if (code != CURLE_OK || !o.follow_redirects ||
      !IsFollowedRedirect(hop.status_code) || hop.location.empty()) {
    t->curl.Judge(code, &t->result);
    EndProbe(t);
    return;
  }
  if (t->result.redirects >= o.max_redirects) {
    t->result.outcome = Outcome::kTooManyRedirects;
    t->result.error =
        absl::StrCat("more than ", o.max_redirects, " redirects (the last to ",
                     hop.location, ")");
    EndProbe(t);
    return;
  }
  absl::StatusOr<ParsedUrl> next = ParseTargetUrl(hop.location);
  if (!next.ok()) {
    t->result.outcome = Outcome::kInvalidTarget;
    t->result.error =
        absl::StrCat("the redirect to \"", hop.location,
                     "\" is not followed: ", next.status().message());
    EndProbe(t);
    return;
  }
  if (hop.status_code != 307 && hop.status_code != 308) {
    if (t->method != "GET" && t->method != "HEAD") t->method = "GET";
    t->send_body = false;
  }
  if (next->host != t->url.host) t->cross_host = true;
  ++t->result.redirects;
  // What the result says of the response is the final one's: a next hop
  // that gets none must not show this one's.
  t->result.response_headers.clear();
  t->result.content_length.reset();
  t->result.last_modified.reset();
  t->url = *std::move(next);
  BeginHop(t);
}

void Worker::Fail(Transfer* t, Outcome outcome, std::string error) {
  if (!t->hop.url.empty()) {  // a request had begun
    t->hop.timings.total = Since(t->hop_start_ns, MonotonicNanos());
    t->result.hops.push_back(t->hop);
  }
  t->result.outcome = outcome;
  t->result.error = std::move(error);
  EndProbe(t);
}

void Worker::EndProbe(Transfer* t) {
  ProbeResult& r = t->result;
  const int64_t now = MonotonicNanos();
  r.final_url = t->url.url;
  // The probe's timings are its last request's, measured from the probe's
  // start: that request began after the redirects.
  const absl::Duration redirect = r.redirects > 0
                                      ? Since(t->start_ns, t->hop_start_ns)
                                      : absl::ZeroDuration();
  auto shifted = [redirect](absl::Duration d) {
    return d > absl::ZeroDuration() ? redirect + d : absl::ZeroDuration();
  };
  const Timings last = r.hops.empty() ? Timings{} : r.hops.back().timings;
  r.timings.redirect = redirect;
  r.timings.dns = shifted(last.dns);
  r.timings.connect = shifted(last.connect);
  r.timings.tls = shifted(last.tls);
  r.timings.first_byte = shifted(last.first_byte);
  r.timings.total = Since(t->start_ns, now);
  r.prober_lag = absl::Nanoseconds(meter_.LongestTurnSince(t->start_ns));
  ProbeResult result = std::move(t->result);
  ProbeTask task = ReleaseTransfer(t);
  listener_->OnTaskEnded(*this, std::move(task), std::move(result));
}

Worker::Transfer* Worker::AcquireTransfer() {
  std::unique_ptr<Transfer> transfer;
  if (!free_.empty()) {
    transfer = std::move(free_.back());
    free_.pop_back();
  } else {
    transfer = std::make_unique<Transfer>();
    Transfer* fresh = transfer.get();
    fresh->curl.set_on_connected([this, fresh] { Connected(fresh); });
  }
  Transfer* raw = transfer.get();
  active_.emplace(raw, std::move(transfer));
  return raw;
}

ProbeTask Worker::ReleaseTransfer(Transfer* t) {
  Connected(t);
  switch (t->phase) {
    case Transfer::Phase::kRequesting:
      curl_multi_remove_handle(t->shard->multi.get(), t->curl.easy());
      --t->shard->running;
      t->shard = nullptr;
      break;
    case Transfer::Phase::kResolving:
      resolver_->Abandon(t->seq);
      resolving_.erase(t->seq);
      lookup_deadlines_.erase(t->lookup_deadline);
      break;
    case Transfer::Phase::kIdle:
      break;
  }
  t->phase = Transfer::Phase::kIdle;
  t->resolving_proxy = false;
  t->curl.Trim();
  t->result = ProbeResult{};
  t->hop = Hop{};
  ProbeTask task = std::move(t->task);
  auto node = active_.extract(t);
  if (free_.size() < kMaxFreeTransfers) {
    free_.push_back(std::move(node.mapped()));
  }
  return task;
}

}  // namespace fanprobe::internal
