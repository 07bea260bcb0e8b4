#include "tests/probe/internal/fake_transport.h"

#include <algorithm>
#include <deque>
#include <optional>
#include <thread>
#include <utility>

#include "probe/internal/monotonic.h"

namespace fanprobe::testing {

using internal::BatchState;
using internal::LaneStats;
using internal::ProbeTask;
using internal::TaskListener;

// One lane: a thread serving its events in order.  Its tasks are touched
// only on that thread.
class FakeLane final : public internal::Lane {
 public:
  FakeLane(int id, TaskListener* listener, std::shared_ptr<FakeProbes> probes)
      : id_(id), listener_(listener), probes_(std::move(probes)) {
    probes_->AddLane(this);
    thread_ = std::thread([this] { Loop(); });
  }

  // Serves what is queued, drops every task still running (each reported
  // without a result, on the lane's thread), then joins.
  ~FakeLane() override {
    probes_->RemoveLane(this);
    {
      absl::MutexLock lock(&mu_);
      stopping_ = true;
    }
    thread_.join();
  }

  int id() const override { return id_; }

  void PostStart(ProbeTask task) override {
    Post([this, task = std::move(task)]() mutable { Begin(std::move(task)); });
  }

  // Served on a later turn, so the task is never reported from inside this
  // call (the engine starts the next task from inside a report).
  void StartLocal(ProbeTask task) override { PostStart(std::move(task)); }

  void PostCancel(const BatchState* batch) override {
    Post([this, batch] {
      DropIf(
          [batch](const ProbeTask& task) { return task.batch.get() == batch; });
    });
  }

  LaneStats Stats() const override { return {}; }

  void PostFinish(uint64_t id, Outcome outcome) {
    Post([this, id, outcome] { Finish(id, outcome); });
  }

 private:
  // std::function needs a copyable callable; a ProbeTask is one.
  void Post(std::function<void()> event) {
    absl::MutexLock lock(&mu_);
    events_.push_back(std::move(event));
  }

  bool HasWork() const ABSL_EXCLUSIVE_LOCKS_REQUIRED(mu_) {
    return !events_.empty() || stopping_;
  }

  void Loop() {
    for (;;) {
      std::deque<std::function<void()>> events;
      bool stopping;
      {
        absl::MutexLock lock(&mu_);
        mu_.Await(absl::Condition(this, &FakeLane::HasWork));
        events.swap(events_);
        stopping = stopping_;
      }
      for (auto& event : events) event();
      if (stopping) {
        absl::MutexLock lock(&mu_);
        if (!events_.empty()) continue;  // posted by the events just served
        break;
      }
    }
    DropIf([](const ProbeTask&) { return true; });
  }

  void Begin(ProbeTask task) {
    if (listener_->IsBatchEnded(task)) {
      listener_->OnTaskEnded(*this, std::move(task), std::nullopt);
      return;
    }
    const uint64_t id = probes_->NextId();
    internal::BeginAttempt(task, internal::MonotonicNanos());
    probes_->Started({.id = id,
                      .lane = id_,
                      .index = task.index,
                      .attempt = static_cast<int>(task.attempts.size()) + 1,
                      .url = task.target->url,
                      .host_key = task.url.host_key});
    tasks_.emplace(id, std::move(task));
  }

  void Finish(uint64_t id, Outcome outcome) {
    auto it = tasks_.find(id);
    if (it == tasks_.end()) return;
    ProbeTask task = std::move(it->second);
    tasks_.erase(it);
    probes_->Ended(id, /*dropped=*/false);
    ProbeResult result = internal::NewResult(*task.target, task.index);
    result.outcome = outcome;
    result.status_code = outcome == Outcome::kOk ? 200 : 503;
    listener_->OnTaskEnded(*this, std::move(task), std::move(result));
  }

  void DropIf(const std::function<bool(const ProbeTask&)>& pred) {
    std::vector<ProbeTask> dropped;
    for (auto it = tasks_.begin(); it != tasks_.end();) {
      if (pred(it->second)) {
        probes_->Ended(it->first, /*dropped=*/true);
        dropped.push_back(std::move(it->second));
        it = tasks_.erase(it);
      } else {
        ++it;
      }
    }
    for (ProbeTask& task : dropped) {
      listener_->OnTaskEnded(*this, std::move(task), std::nullopt);
    }
  }

  const int id_;
  TaskListener* const listener_;
  const std::shared_ptr<FakeProbes> probes_;
  std::map<uint64_t, ProbeTask> tasks_;  // the lane's thread only

  mutable absl::Mutex mu_;
  std::deque<std::function<void()>> events_ ABSL_GUARDED_BY(mu_);
  bool stopping_ ABSL_GUARDED_BY(mu_) = false;
  std::thread thread_;
};

namespace {

class FakeTransport final : public internal::Transport {
 public:
  FakeTransport(int lanes, TaskListener* listener,
                const std::shared_ptr<FakeProbes>& probes) {
    for (int i = 0; i < lanes; ++i) {
      owned_.push_back(std::make_unique<FakeLane>(i, listener, probes));
      lanes_.push_back(owned_.back().get());
    }
  }
  ~FakeTransport() override { owned_.clear(); }

  const std::vector<internal::Lane*>& lanes() const override { return lanes_; }

 private:
  std::vector<std::unique_ptr<FakeLane>> owned_;
  std::vector<internal::Lane*> lanes_;
};

}  // namespace

absl::StatusOr<std::unique_ptr<internal::Transport>>
FakeTransportFactory::Create(int lanes, TaskListener* listener) {
  return std::make_unique<FakeTransport>(lanes, listener, probes_);
}

std::vector<FakeProbe> FakeProbes::Running() const {
  absl::MutexLock lock(&mu_);
  std::vector<FakeProbe> running;
  for (const auto& [id, probe] : running_) running.push_back(probe);
  return running;
}

uint64_t FakeProbes::started() const {
  absl::MutexLock lock(&mu_);
  return started_;
}

uint64_t FakeProbes::dropped() const {
  absl::MutexLock lock(&mu_);
  return dropped_;
}

size_t FakeProbes::max_running() const {
  absl::MutexLock lock(&mu_);
  return max_running_;
}

size_t FakeProbes::max_running_per_host() const {
  absl::MutexLock lock(&mu_);
  return max_running_per_host_;
}

std::vector<std::string> FakeProbes::StartOrder() const {
  absl::MutexLock lock(&mu_);
  return start_order_;
}

bool FakeProbes::WaitFor(
    std::function<bool(const std::vector<FakeProbe>&)> pred,
    absl::Duration timeout) {
  const absl::Time deadline = absl::Now() + timeout;
  absl::MutexLock lock(&mu_);
  for (;;) {
    std::vector<FakeProbe> running;
    for (const auto& [id, probe] : running_) running.push_back(probe);
    if (pred(running)) return true;
    // Wakes on any change of the board (every change bumps started_ or
    // dropped_ or shrinks running_), or at the deadline.
    const uint64_t started = started_;
    const size_t size = running_.size();
    auto changed = [this, started, size]() ABSL_EXCLUSIVE_LOCKS_REQUIRED(mu_) {
      return started_ != started || running_.size() != size;
    };
    if (!mu_.AwaitWithDeadline(absl::Condition(&changed), deadline)) {
      return false;
    }
  }
}

bool FakeProbes::WaitForRunning(size_t count, absl::Duration timeout) {
  return WaitFor(
      [count](const std::vector<FakeProbe>& running) {
        return running.size() == count;
      },
      timeout);
}

bool FakeProbes::WaitForStarted(uint64_t count, absl::Duration timeout) {
  absl::MutexLock lock(&mu_);
  auto enough = [this, count]() ABSL_EXCLUSIVE_LOCKS_REQUIRED(mu_) {
    return started_ >= count;
  };
  return mu_.AwaitWithTimeout(absl::Condition(&enough), timeout);
}

void FakeProbes::Finish(uint64_t id, Outcome outcome) {
  absl::MutexLock lock(&mu_);
  auto probe = running_.find(id);
  if (probe == running_.end()) return;
  auto lane = lanes_.find(probe->second.lane);
  if (lane != lanes_.end()) lane->second->PostFinish(id, outcome);
}

void FakeProbes::Started(const FakeProbe& probe) {
  absl::MutexLock lock(&mu_);
  ++started_;
  start_order_.push_back(probe.url);
  running_.emplace(probe.id, probe);
  max_running_ = std::max(max_running_, running_.size());
  const size_t same_host = static_cast<size_t>(std::count_if(
      running_.begin(), running_.end(), [&probe](const auto& entry) {
        return entry.second.host_key == probe.host_key;
      }));
  max_running_per_host_ = std::max(max_running_per_host_, same_host);
}

void FakeProbes::Ended(uint64_t id, bool dropped) {
  absl::MutexLock lock(&mu_);
  running_.erase(id);
  if (dropped) ++dropped_;
}

void FakeProbes::AddLane(FakeLane* lane) {
  absl::MutexLock lock(&mu_);
  lanes_[lane->id()] = lane;
}

void FakeProbes::RemoveLane(FakeLane* lane) {
  absl::MutexLock lock(&mu_);
  lanes_.erase(lane->id());
}

uint64_t FakeProbes::NextId() {
  absl::MutexLock lock(&mu_);
  return next_id_++;
}

}  // namespace fanprobe::testing
