#include "cli/engine_share.h"

#include <algorithm>
#include <cstdint>
#include <functional>
#include <limits>
#include <memory>
#include <optional>
#include <string>
#include <utility>
#include <vector>

#include "absl/status/status.h"
#include "absl/status/statusor.h"
#include "absl/strings/str_cat.h"
#include "absl/strings/string_view.h"
#include "absl/synchronization/mutex.h"
#include "probe/address_flags.h"
#include "probe/destination_policy.h"
#include "service/convert.h"

namespace fanprobe::cli {

absl::StatusOr<EngineOptions> EngineOptionsFromFlags(const ProbeFlags& flags) {
  EngineOptions options;
  absl::StatusOr<DestinationPolicy> policy =
      DestinationPolicyFromFlags({.deny_private = flags.deny_private,
                                  .deny_loopback = flags.deny_loopback,
                                  .allow_cidr = flags.allow_cidrs,
                                  .deny_cidr = flags.deny_cidrs});
  if (!policy.ok()) return policy.status();
  options.destination_policy = *std::move(policy);
  absl::StatusOr<std::vector<std::string>> dns_servers =
      ParseDnsServerList("dns-servers", flags.dns_servers);
  if (!dns_servers.ok()) return dns_servers.status();
  options.dns_servers = *std::move(dns_servers);
  if (!flags.dns_servers.empty() && options.dns_servers.empty()) {
    return absl::InvalidArgumentError("--dns-servers= is empty");
  }
  // In-process, the user is the operator: any address of this host may be
  // a probe's source (--interface), as with curl.
  options.allowed_sources = {*Cidr::Parse("0.0.0.0/0"), *Cidr::Parse("::/0")};
  return options;
}

std::string EngineOnlyFlagGiven(const ProbeFlags& flags) {
  if (flags.deny_private) return "--deny_private";
  if (flags.deny_loopback) return "--deny_loopback";
  if (!flags.allow_cidrs.empty()) return "--allow_cidr";
  if (!flags.deny_cidrs.empty()) return "--deny_cidr";
  if (!flags.dns_servers.empty()) return "--dns-servers";
  return "";
}

std::optional<OptionsProblem> CheckProbeOptions(
    const Engine& engine, const v1::ProbeBatchRequest& request) {
  service::RequestLimits limits;
  limits.max_batch_targets = std::numeric_limits<uint32_t>::max();
  // The defaults alone: a target without options of its own has them.
  v1::ProbeBatchRequest defaults_only;
  *defaults_only.mutable_defaults() = request.defaults();
  defaults_only.add_targets()->set_url("http://defaults/");
  absl::StatusOr<service::BatchRequest> defaults =
      service::BatchFromProto(defaults_only, limits);
  if (!defaults.ok()) return OptionsProblem{-1, defaults.status()};
  if (absl::Status status =
          engine.CheckOptions(*defaults->targets.front().options);
      !status.ok()) {
    return OptionsProblem{-1, status};
  }
  bool any_own = false;
  for (const v1::ProbeTarget& target : request.targets()) {
    any_own = any_own || target.has_options();
  }
  if (!any_own) return std::nullopt;
  absl::StatusOr<service::BatchRequest> batch =
      service::BatchFromProto(request, limits);
  if (!batch.ok()) return std::nullopt;  // Run says what is wrong
  for (int i = 0; i < request.targets_size(); ++i) {
    if (!request.targets(i).has_options()) continue;
    if (absl::Status status = engine.CheckOptions(*batch->targets[i].options);
        !status.ok()) {
      return OptionsProblem{i, status};
    }
  }
  return std::nullopt;
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
