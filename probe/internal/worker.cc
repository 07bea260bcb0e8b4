#include "probe/internal/worker.h"

#include <sys/epoll.h>
#include <sys/eventfd.h>
#include <sys/timerfd.h>
#include <time.h>
#include <unistd.h>

#include <cerrno>
#include <cstring>
#include <utility>

#include "absl/strings/str_cat.h"

namespace fanprobe::internal {
namespace {

// Idle transfers (each an easy handle) a worker keeps for reuse.  Beyond
// this, a burst's handles are freed as they finish.
constexpr size_t kMaxFreeTransfers = 4096;
constexpr int kMaxEvents = 1024;
constexpr int kShards = 8;

// What an epoll event is for, packed into epoll_data.u64: the eventfd, a
// shard's timerfd, or a curl socket of a shard.
constexpr uint64_t kEventTag = uint64_t{1} << 62;
constexpr uint64_t kTimerTag = uint64_t{1} << 61;
uint64_t SocketTag(int shard, curl_socket_t s) {
  return (static_cast<uint64_t>(shard) << 32) | static_cast<uint32_t>(s);
}
// Probes a worker starts between two looks at its sockets, so that a burst
// of 10,000 starts does not hold back the first completions.
constexpr int kMaxStartsPerTurn = 32;

int64_t MonotonicNanos() {
  timespec now;
  clock_gettime(CLOCK_MONOTONIC, &now);
  return int64_t{now.tv_sec} * 1000000000 + now.tv_nsec;
}

absl::Status ErrnoStatus(absl::string_view what) {
  return absl::InternalError(absl::StrCat(what, ": ", std::strerror(errno)));
}

}  // namespace

ProbeResult NewResult(const ProbeTarget& target, uint32_t index) {
  ProbeResult result;
  result.index = index;
  result.id = target.id;
  result.labels = target.labels;
  result.url = target.url;
  return result;
}

Worker::Worker(int id, TaskListener* listener, const DestinationPolicy* policy)
    : id_(id), listener_(listener), policy_(policy) {}

Worker::~Worker() {
  if (thread_.joinable()) {
    Post(Command{.kind = Command::Kind::kStop});
    thread_.join();
  }
  free_.clear();
  for (Shard& shard : shards_) {
    if (shard.multi != nullptr) curl_multi_cleanup(shard.multi);
    if (shard.timer_fd >= 0) close(shard.timer_fd);
  }
  for (int fd : {epoll_fd_, event_fd_}) {
    if (fd >= 0) close(fd);
  }
}

absl::Status Worker::Start() {
  epoll_fd_ = epoll_create1(EPOLL_CLOEXEC);
  if (epoll_fd_ < 0) return ErrnoStatus("epoll_create1");
  event_fd_ = eventfd(0, EFD_NONBLOCK | EFD_CLOEXEC);
  if (event_fd_ < 0) return ErrnoStatus("eventfd");
  epoll_event ev{};
  ev.events = EPOLLIN;
  ev.data.u64 = kEventTag;
  if (epoll_ctl(epoll_fd_, EPOLL_CTL_ADD, event_fd_, &ev) != 0) {
    return ErrnoStatus("epoll_ctl");
  }
  shards_.resize(kShards);
  for (int i = 0; i < kShards; ++i) {
    Shard& shard = shards_[i];
    shard.worker = this;
    shard.index = i;
    shard.timer_fd =
        timerfd_create(CLOCK_MONOTONIC, TFD_NONBLOCK | TFD_CLOEXEC);
    if (shard.timer_fd < 0) return ErrnoStatus("timerfd_create");
    ev.data.u64 = kTimerTag | static_cast<uint64_t>(i);
    if (epoll_ctl(epoll_fd_, EPOLL_CTL_ADD, shard.timer_fd, &ev) != 0) {
      return ErrnoStatus("epoll_ctl");
    }
    shard.multi = curl_multi_init();
    if (shard.multi == nullptr) {
      return absl::InternalError("curl_multi_init failed");
    }
    curl_multi_setopt(shard.multi, CURLMOPT_SOCKETFUNCTION,
                      &Worker::SocketCallback);
    curl_multi_setopt(shard.multi, CURLMOPT_SOCKETDATA, &shard);
    curl_multi_setopt(shard.multi, CURLMOPT_TIMERFUNCTION,
                      &Worker::TimerCallback);
    curl_multi_setopt(shard.multi, CURLMOPT_TIMERDATA, &shard);
  }
  thread_ = std::thread([this] { Run(); });
  return absl::OkStatus();
}

bool Worker::OnWorkerThread() const {
  return std::this_thread::get_id() == thread_.get_id();
}

void Worker::PostStart(ProbeTask task) {
  Post(Command{.kind = Command::Kind::kStart, .task = std::move(task)});
}

void Worker::PostCancel(const BatchState* batch) {
  Post(Command{.kind = Command::Kind::kCancel, .batch = batch});
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
    while (write(event_fd_, &one, sizeof(one)) < 0 && errno == EINTR) {
    }
  }
}

int Worker::SocketCallback(CURL* easy, curl_socket_t s, int what,
                           void* shard_ptr, void* socket_data) {
  auto* shard = static_cast<Shard*>(shard_ptr);
  const int epoll_fd = shard->worker->epoll_fd_;
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
  curl_multi_assign(shard->multi, s, shard);
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

void Worker::SyncTimer(Shard& shard) {
  if (shard.requested_ns >= shard.armed_ns) return;
  itimerspec spec{};
  spec.it_value.tv_sec = shard.requested_ns / 1000000000;
  spec.it_value.tv_nsec = shard.requested_ns % 1000000000;
  if (timerfd_settime(shard.timer_fd, TFD_TIMER_ABSTIME, &spec, nullptr) == 0) {
    shard.armed_ns = shard.requested_ns;
  } else {
    shard.due = true;  // cannot wait for it: act on the next turn
  }
}

void Worker::Run() {
  epoll_event events[kMaxEvents];
  int running = 0;
  while (!stopping_) {
    bool busy = !pending_starts_.empty();
    for (const Shard& shard : shards_) busy = busy || shard.due;
    int n = epoll_wait(epoll_fd_, events, kMaxEvents, busy ? 0 : -1);
    if (n < 0) {
      if (errno == EINTR) continue;
      break;  // EBADF/EINVAL: our own fd is gone; nothing sane to do
    }
    for (int i = 0; i < n; ++i) {
      const uint64_t tag = events[i].data.u64;
      uint64_t count;
      if (tag == kEventTag) {
        while (read(event_fd_, &count, sizeof(count)) < 0 && errno == EINTR) {
        }
        DrainCommands();
      } else if (tag & kTimerTag) {
        Shard& shard = shards_[tag & ~kTimerTag];
        while (read(shard.timer_fd, &count, sizeof(count)) < 0 &&
               errno == EINTR) {
        }
        shard.armed_ns = kNoDeadline;
        shard.due = true;
      } else {
        Shard& shard = shards_[tag >> 32];
        const uint32_t ev = events[i].events;
        int mask = 0;
        if (ev & EPOLLIN) mask |= CURL_CSELECT_IN;
        if (ev & EPOLLOUT) mask |= CURL_CSELECT_OUT;
        if (ev & (EPOLLERR | EPOLLHUP)) mask |= CURL_CSELECT_ERR;
        curl_multi_socket_action(shard.multi,
                                 static_cast<curl_socket_t>(tag & 0xffffffff),
                                 mask, &running);
      }
    }
    StartPending();
    for (Shard& shard : shards_) {
      if (shard.due && shard.requested_ns == kNoDeadline) {
        shard.due = false;
        curl_multi_socket_action(shard.multi, CURL_SOCKET_TIMEOUT, 0, &running);
      } else if (shard.due) {
        // An early wake-up (or a timer that expired): only act if libcurl's
        // deadline has come, else re-arm for it below.
        shard.due = false;
        if (MonotonicNanos() >= shard.requested_ns) {
          curl_multi_socket_action(shard.multi, CURL_SOCKET_TIMEOUT, 0,
                                   &running);
        }
      }
      ProcessCompletions(shard);
    }
    for (Shard& shard : shards_) SyncTimer(shard);
  }
}

void Worker::StartPending() {
  for (int i = 0; i < kMaxStartsPerTurn && !pending_starts_.empty(); ++i) {
    ProbeTask task = std::move(pending_starts_.front());
    pending_starts_.pop_front();
    StartLocal(std::move(task));
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
        if (command.kind == Command::Kind::kStop) stopping_ = true;
        std::vector<Transfer*> victims;
        for (const auto& [transfer, owned] : active_) {
          if (command.kind == Command::Kind::kStop ||
              transfer->task.batch.get() == command.batch) {
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
          (command.kind == Command::Kind::kStop ||
                   task.batch.get() == command.batch
               ? dropped
               : keep)
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
  if (stopping_ || listener_->IsBatchEnded(task)) {
    listener_->OnTaskEnded(*this, std::move(task), std::nullopt);
    return;
  }
  if (task.url.url.empty()) {
    absl::StatusOr<ParsedUrl> url =
        ParseTargetUrl(task.target->url, /*with_host_key=*/false);
    if (!url.ok()) {
      ProbeResult result = NewResult(*task.target, task.index);
      result.outcome = Outcome::kInvalidTarget;
      result.error = std::string(url.status().message());
      listener_->OnTaskEnded(*this, std::move(task), std::move(result));
      return;
    }
    task.url.url = std::move(url->url);  // keep the engine's host_key
  }
  Transfer* transfer = AcquireTransfer();
  transfer->task = std::move(task);
  absl::Status status = transfer->probe.Setup(
      transfer->task.url, transfer->task.options, policy_, transfer);
  CURLMcode mc = CURLM_OK;
  if (status.ok()) {
    Shard* shard = &shards_.front();
    for (Shard& candidate : shards_) {
      if (candidate.running < shard->running) shard = &candidate;
    }
    mc = curl_multi_add_handle(shard->multi, transfer->probe.easy());
    if (mc == CURLM_OK) {
      transfer->shard = shard;
      ++shard->running;
      return;
    }
  }
  ProbeResult result = NewResult(*transfer->task.target, transfer->task.index);
  if (!status.ok()) {
    result.outcome = Outcome::kInvalidTarget;
    result.error = std::string(status.message());
  } else {
    result.outcome = Outcome::kIoError;
    result.error = absl::StrCat("libcurl could not start the transfer: ",
                                curl_multi_strerror(mc));
  }
  // Never added to a multi handle (shard is null): just back to the pool.
  listener_->OnTaskEnded(*this, ReleaseTransfer(transfer), std::move(result));
}

void Worker::ProcessCompletions(Shard& shard) {
  int left = 0;
  while (CURLMsg* msg = curl_multi_info_read(shard.multi, &left)) {
    if (msg->msg != CURLMSG_DONE) continue;
    // Copy what we need: the message dies with curl_multi_remove_handle.
    CURL* easy = msg->easy_handle;
    const CURLcode code = msg->data.result;
    Transfer* transfer = nullptr;
    curl_easy_getinfo(easy, CURLINFO_PRIVATE, &transfer);
    ProbeResult result =
        NewResult(*transfer->task.target, transfer->task.index);
    transfer->probe.Finish(code, *transfer->task.options, &result);
    listener_->OnTaskEnded(*this, ReleaseTransfer(transfer), std::move(result));
  }
}

Worker::Transfer* Worker::AcquireTransfer() {
  std::unique_ptr<Transfer> transfer;
  if (!free_.empty()) {
    transfer = std::move(free_.back());
    free_.pop_back();
  } else {
    transfer = std::make_unique<Transfer>();
  }
  Transfer* raw = transfer.get();
  active_.emplace(raw, std::move(transfer));
  return raw;
}

ProbeTask Worker::ReleaseTransfer(Transfer* transfer) {
  if (transfer->shard != nullptr) {
    curl_multi_remove_handle(transfer->shard->multi, transfer->probe.easy());
    --transfer->shard->running;
    transfer->shard = nullptr;
  }
  ProbeTask task = std::move(transfer->task);
  auto node = active_.extract(transfer);
  if (free_.size() < kMaxFreeTransfers) {
    free_.push_back(std::move(node.mapped()));
  }
  return task;
}

}  // namespace fanprobe::internal
