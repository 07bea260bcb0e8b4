#include "cli/engine_share.h"

#include <cstdint>
#include <functional>
#include <limits>
#include <memory>
#include <string>
#include <utility>
#include <vector>

#include "absl/status/status.h"
#include "absl/status/statusor.h"
#include "absl/strings/str_cat.h"
#include "absl/strings/str_split.h"
#include "absl/strings/string_view.h"
#include "absl/synchronization/mutex.h"
#include "probe/destination_policy.h"
#include "service/convert.h"

namespace fanprobe::cli {
namespace {

// "--allow_cidr=10.0.0.0/8,fd00::/8 --allow_cidr=..." -> the CIDRs.
absl::Status ParseCidrs(absl::string_view flag,
                        const std::vector<std::string>& values,
                        std::vector<Cidr>& out) {
  for (const std::string& value : values) {
    for (absl::string_view text :
         absl::StrSplit(value, ',', absl::SkipWhitespace())) {
      text = absl::StripAsciiWhitespace(text);
      absl::StatusOr<Cidr> cidr = Cidr::Parse(text);
      if (!cidr.ok()) {
        return absl::InvalidArgumentError(absl::StrCat(
            "--", flag, "=", value, ": ", cidr.status().message()));
      }
      out.push_back(*cidr);
    }
  }
  return absl::OkStatus();
}

}  // namespace

absl::StatusOr<EngineOptions> EngineOptionsFromFlags(const ProbeFlags& flags) {
  EngineOptions options;
  DestinationPolicy& policy = options.destination_policy;
  policy.deny_private = flags.deny_private;
  policy.deny_loopback = flags.deny_loopback;
  if (absl::Status status =
          ParseCidrs("allow_cidr", flags.allow_cidrs, policy.allow);
      !status.ok()) {
    return status;
  }
  if (absl::Status status =
          ParseCidrs("deny_cidr", flags.deny_cidrs, policy.deny);
      !status.ok()) {
    return status;
  }
  return options;
}

std::string EngineOnlyFlagGiven(const ProbeFlags& flags) {
  if (flags.deny_private) return "--deny_private";
  if (flags.deny_loopback) return "--deny_loopback";
  if (!flags.allow_cidrs.empty()) return "--allow_cidr";
  if (!flags.deny_cidrs.empty()) return "--deny_cidr";
  return "";
}

EngineShare::EngineShare(Engine& engine) : engine_(engine) {}

absl::Status EngineShare::Run(
    const v1::ProbeBatchRequest& request,
    const std::function<void(v1::ProbeEvent event)>& on_event) {
  {
    absl::MutexLock lock(&mu_);
    if (cancelled_) return absl::CancelledError("cancelled before it started");
  }
  // The server's defaults (concurrency 100), without its batch size limit:
  // the machine is the user's own.
  service::RequestLimits limits;
  limits.max_batch_targets = std::numeric_limits<uint32_t>::max();
  limits.max_in_flight = static_cast<uint32_t>(std::min<uint64_t>(
      engine_.Stats().max_in_flight, std::numeric_limits<uint32_t>::max()));
  absl::StatusOr<service::BatchRequest> batch =
      service::BatchFromProto(request, limits);
  if (!batch.ok()) {
    return absl::InvalidArgumentError(
        absl::StrCat("the request: ", batch.status().message()));
  }

  engine_.Submit(std::move(batch->targets), batch->options,
                 {.on_start =
                      [this](std::shared_ptr<Batch> started) {
                        absl::MutexLock lock(&mu_);
                        batch_ = std::move(started);
                      },
                  .on_result =
                      [this](ProbeResult result) {
                        v1::ProbeEvent event;
                        *event.mutable_result() =
                            service::ResultToProto(std::move(result));
                        Push(std::move(event), false);
                      },
                  .on_done =
                      [this](BatchSummary summary) {
                        v1::ProbeEvent event;
                        *event.mutable_summary() =
                            service::SummaryToProto(summary);
                        Push(std::move(event), true);
                      }});
  // A Cancel() that came while the batch was being submitted found no batch
  // to cancel.
  std::shared_ptr<Batch> to_cancel;
  {
    absl::MutexLock lock(&mu_);
    if (cancelled_) to_cancel = batch_;
  }
  if (to_cancel != nullptr) to_cancel->Cancel();

  for (bool last = false; !last;) {
    v1::ProbeEvent event;
    {
      absl::MutexLock lock(&mu_);
      mu_.Await(absl::Condition(
          +[](std::deque<v1::ProbeEvent>* events) { return !events->empty(); },
          &events_));
      event = std::move(events_.front());
      events_.pop_front();
      last = done_ && events_.empty();
    }
    on_event(std::move(event));
  }
  return absl::OkStatus();
}

void EngineShare::Cancel() {
  std::shared_ptr<Batch> batch;
  {
    absl::MutexLock lock(&mu_);
    cancelled_ = true;
    batch = batch_;
  }
  if (batch != nullptr) batch->Cancel();
}

void EngineShare::Push(v1::ProbeEvent event, bool last) {
  absl::MutexLock lock(&mu_);
  events_.push_back(std::move(event));
  if (last) done_ = true;
}

}  // namespace fanprobe::cli
