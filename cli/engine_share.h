// engine_share.h: `fanprobe probe` without --server -- the batch run by
// the probe engine inside the fanprobe process, as one more Share (split.h),
// so the output, return-when rules, summary, exit statuses and progress line
// are the ones a server gives.  The request is converted by the server's own
// code (service/convert.h: same validation, same defaults, same result
// mapping), so `--format=jsonl` prints the same ProbeEvents either way.
//
// Example:
//   absl::StatusOr<EngineOptions> options = EngineOptionsFromFlags(flags);
//   auto engine = Engine::Create(*options).value();
//   auto share = std::make_unique<EngineShare>(*engine);
//   absl::Status status = share->Run(request, [](v1::ProbeEvent e) { ... });
//
// The engine's callbacks only queue events; Run hands them to `on_event` on
// its own thread, in order, so a slow terminal never blocks an engine
// thread.  The queue is not bounded: a batch's events are small, and the
// CLI runs one batch.
//
// Thread-safety: Run from one thread; Cancel from any.  The engine must be
// created after the caller blocked the signals it waits for (its worker
// threads inherit the mask), and must outlive the share.

#ifndef FANPROBE_CLI_ENGINE_SHARE_H_
#define FANPROBE_CLI_ENGINE_SHARE_H_

#include <deque>
#include <functional>
#include <memory>
#include <optional>
#include <string>

#include "absl/base/thread_annotations.h"
#include "absl/status/status.h"
#include "absl/status/statusor.h"
#include "absl/synchronization/mutex.h"
#include "cli/flags.h"
#include "cli/split.h"
#include "fanprobe/v1/prober.pb.h"
#include "probe/engine.h"

namespace fanprobe::cli {

// The embedded engine's options from the flags: the destination policy
// (--deny_private, --deny_loopback, --allow_cidr, --deny_cidr, meaning
// what fanprobe-server's flags of those names mean) and the DNS servers
// (--dns-servers).  kInvalidArgument naming the flag for a CIDR or a DNS
// server that does not parse.
absl::StatusOr<EngineOptions> EngineOptionsFromFlags(const ProbeFlags& flags);

// Whether any flag that only the embedded engine uses was given: with
// --server they would silently do nothing, so that is a usage error.
// Returns the first such flag's name, or empty.
std::string EngineOnlyFlagGiven(const ProbeFlags& flags);

// The check the engine makes of each probe's options before it sends
// anything (Engine::CheckOptions: methods, header and body bytes, patterns
// that compile, a CA file that parses, the engine's limits), made of the
// whole request at once, so that a batch whose probes would end
// INVALID_TARGET for their options is refused with one message instead.
// `target` is -1 when the request's defaults (the flags) fail, else the
// index of the first target whose options of its own fail.
struct OptionsProblem {
  int target = -1;
  absl::Status status;  // kInvalidArgument, naming the field first
};
// nullopt when every probe's options pass; the request must be one
// service::BatchFromProto accepts (EngineShare::Run reports it otherwise).
std::optional<OptionsProblem> CheckProbeOptions(
    const Engine& engine, const v1::ProbeBatchRequest& request);

class EngineShare : public Share {
 public:
  explicit EngineShare(Engine& engine);

  const std::string& name() const override { return name_; }

  // OK once the engine's summary was passed on (also after Cancel: the
  // summary then says END_REASON_CANCELLED); CANCELLED when cancelled
  // before it started; INVALID_ARGUMENT, naming the field, for a request
  // the server would refuse.
  absl::Status Run(
      const v1::ProbeBatchRequest& request,
      const std::function<void(v1::ProbeEvent event)>& on_event) override;

  void Cancel() override;

 private:
  // The engine's callbacks.
  void Push(v1::ProbeEvent event, bool last) ABSL_LOCKS_EXCLUDED(mu_);

  Engine& engine_;
  const std::string name_ = "the in-process engine";

  absl::Mutex mu_;
  bool cancelled_ ABSL_GUARDED_BY(mu_) = false;
  std::shared_ptr<Batch> batch_ ABSL_GUARDED_BY(mu_);
  std::deque<v1::ProbeEvent> events_ ABSL_GUARDED_BY(mu_);
  bool done_ ABSL_GUARDED_BY(mu_) = false;  // the summary is queued
};

}  // namespace fanprobe::cli

#endif  // FANPROBE_CLI_ENGINE_SHARE_H_
