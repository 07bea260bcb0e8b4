#include "probe/internal/resolver.h"

#include <ares.h>
#include <sys/time.h>

#include <algorithm>
#include <fstream>
#include <mutex>
#include <utility>

#include "absl/strings/ascii.h"
#include "absl/strings/match.h"
#include "absl/strings/str_cat.h"
#include "absl/strings/str_join.h"
#include "absl/strings/str_split.h"
#include "probe/internal/monotonic.h"

namespace fanprobe::internal {
namespace {

// c-ares retries a query with a per-try timeout that doubles each round
// (T, 2T, 4T with one server): three tries take 7 T in all, so T is chosen
// to spend the lookup's budget -- about 700 ms of the default 5 s: a lost
// datagram costs that, and a slow resolver is not asked again too soon.
constexpr int kTries = 3;
constexpr int kMinTryMillis = 50;

std::string HostKey(absl::string_view name) {
  if (absl::EndsWith(name, ".")) name.remove_suffix(1);
  return absl::AsciiStrToLower(name);
}

absl::string_view FamilyRecords(IpFamily family) {
  switch (family) {
    case IpFamily::kIpv4:
      return "A";
    case IpFamily::kIpv6:
      return "AAAA";
    case IpFamily::kAny:
      break;
  }
  return "A or AAAA";
}

bool FamilyWanted(IpFamily family, const IpAddress& address) {
  return family == IpFamily::kAny ||
         (family == IpFamily::kIpv4) == address.is_v4;
}

// IPv6 first, then IPv4, each in the order given, without repeats.
std::vector<IpAddress> HappyEyeballsOrder(std::vector<IpAddress> addresses) {
  std::stable_partition(addresses.begin(), addresses.end(),
                        [](const IpAddress& a) { return !a.is_v4; });
  std::vector<IpAddress> out;
  for (const IpAddress& a : addresses) {
    if (std::none_of(out.begin(), out.end(),
                     [&a](const IpAddress& b) { return a.bytes == b.bytes; })) {
      out.push_back(a);
    }
  }
  return out;
}

Resolution Failure(DnsFailure failure, std::string error) {
  Resolution resolution;
  resolution.failure = failure;
  resolution.error = std::move(error);
  return resolution;
}

}  // namespace

struct Resolver::Channel {
  ares_channel channel = nullptr;
  // Set while ares_destroy() runs: the callbacks it makes must not touch
  // the Resolver.
  bool destroying = false;
  // Lookups c-ares has ended since the last Drain(), in order.
  std::vector<std::pair<uint64_t, Resolution>> completed;
};

// The argument of one c-ares lookup.
struct PendingLookup {
  Resolver* resolver;
  Resolver::Channel* channel;
  uint64_t id;
  std::string name;
  IpFamily family;
};

absl::flat_hash_map<std::string, std::vector<IpAddress>> ReadHostsFile(
    const std::string& path) {
  absl::flat_hash_map<std::string, std::vector<IpAddress>> hosts;
  std::ifstream in(path);
  std::string line;
  while (std::getline(in, line)) {
    absl::string_view text = line;
    text = text.substr(0, text.find('#'));
    std::vector<absl::string_view> fields =
        absl::StrSplit(text, absl::ByAnyChar(" \t\r"), absl::SkipEmpty());
    if (fields.size() < 2) continue;
    absl::StatusOr<IpAddress> address = IpAddress::Parse(fields[0]);
    if (!address.ok()) continue;
    for (size_t i = 1; i < fields.size(); ++i) {
      std::vector<IpAddress>& list = hosts[HostKey(fields[i])];
      if (std::none_of(list.begin(), list.end(), [&](const IpAddress& a) {
            return a.bytes == address->bytes;
          })) {
        list.push_back(*address);
      }
    }
  }
  // RFC 6761 6.3: "localhost" is loopback even without a hosts entry.
  if (!hosts.contains("localhost")) {
    hosts["localhost"] = {*IpAddress::Parse("::1"),
                          *IpAddress::Parse("127.0.0.1")};
  }
  return hosts;
}

Resolver::Resolver(const ResolverOptions& options, ResolverHost* host)
    : options_(options), host_(host), channel_(std::make_unique<Channel>()) {}

absl::StatusOr<std::unique_ptr<Resolver>> Resolver::Create(
    const ResolverOptions& options, ResolverHost* host) {
  static std::once_flag init_once;
  static int init_status = ARES_SUCCESS;
  std::call_once(init_once,
                 [] { init_status = ares_library_init(ARES_LIB_INIT_ALL); });
  if (init_status != ARES_SUCCESS) {
    return absl::InternalError(
        absl::StrCat("c-ares: ", ares_strerror(init_status)));
  }
  std::unique_ptr<Resolver> resolver(new Resolver(options, host));
  if (!options.hosts_file.empty()) {
    resolver->hosts_ = ReadHostsFile(options.hosts_file);
  }

  ares_options ares{};
  int mask = ARES_OPT_SOCK_STATE_CB | ARES_OPT_LOOKUPS | ARES_OPT_TIMEOUTMS |
             ARES_OPT_TRIES | ARES_OPT_FLAGS;
  // A SERVFAIL or REFUSED answer is the answer: without this c-ares retries
  // it and then reports "connection refused", and the probe could not say
  // what the server said.
  ares.flags = ARES_FLAG_NOCHECKRESP;
  ares.sock_state_cb = [](void* data, ares_socket_t fd, int readable,
                          int writable) {
    static_cast<Resolver*>(data)->host_->WatchDnsSocket(fd, readable != 0,
                                                        writable != 0);
  };
  ares.sock_state_cb_data = resolver.get();
  // DNS only: the hosts file is ours, read once instead of per lookup.
  char lookups[] = "b";
  ares.lookups = lookups;
  ares.timeout = static_cast<int>(std::max<int64_t>(
      kMinTryMillis, absl::ToInt64Milliseconds(options.timeout) / 7));
  ares.tries = kTries;
  std::string resolv_conf = options.resolv_conf;
  if (!resolv_conf.empty()) {
    mask |= ARES_OPT_RESOLVCONF;
    ares.resolvconf_path = resolv_conf.data();
  }
  int rc = ares_init_options(&resolver->channel_->channel, &ares, mask);
  if (rc != ARES_SUCCESS) {
    return absl::InternalError(absl::StrCat("c-ares: ", ares_strerror(rc)));
  }
  if (!options.servers.empty()) {
    const std::string csv = absl::StrJoin(options.servers, ",");
    rc = ares_set_servers_ports_csv(resolver->channel_->channel, csv.c_str());
    if (rc != ARES_SUCCESS) {
      return absl::InvalidArgumentError(absl::StrCat(
          "DNS servers \"", csv, "\" do not parse: ", ares_strerror(rc)));
    }
  }
  return resolver;
}

Resolver::~Resolver() {
  if (channel_->channel != nullptr) {
    channel_->destroying = true;
    ares_destroy(channel_->channel);
  }
}

std::optional<Resolution> Resolver::Resolve(uint64_t id, absl::string_view name,
                                            IpFamily family) {
  if (auto it = hosts_.find(HostKey(name)); it != hosts_.end()) {
    Resolution resolution;
    for (const IpAddress& a : it->second) {
      if (FamilyWanted(family, a)) resolution.addresses.push_back(a);
    }
    if (!resolution.addresses.empty()) {
      resolution.addresses = HappyEyeballsOrder(resolution.addresses);
      return resolution;
    }
  }
  const int64_t now = MonotonicNanos();
  Lookup& lookup = lookups_[id];
  lookup.name = std::string(name);
  lookup.family = family;
  lookup.deadline_ns = now + absl::ToInt64Nanoseconds(options_.timeout);
  deadlines_.emplace_back(lookup.deadline_ns, id);
  if (in_channel_ < options_.max_outstanding && queued_.empty()) {
    Send(id, lookup);
    // c-ares answers some lookups inside the call (a name it rejects).
    for (auto it = channel_->completed.begin(); it != channel_->completed.end();
         ++it) {
      if (it->first != id) continue;
      Resolution resolution = std::move(it->second);
      channel_->completed.erase(it);
      lookups_.erase(id);
      return resolution;
    }
  } else {
    queued_.push_back(id);
  }
  return std::nullopt;
}

void Resolver::Send(uint64_t id, Lookup& lookup) {
  lookup.sent = true;
  ++in_channel_;
  ares_addrinfo_hints hints{};
  hints.ai_flags = ARES_AI_NOSORT;  // sorting opens a socket per address
  hints.ai_family = lookup.family == IpFamily::kIpv4   ? AF_INET
                    : lookup.family == IpFamily::kIpv6 ? AF_INET6
                                                       : AF_UNSPEC;
  hints.ai_socktype = SOCK_STREAM;
  auto* pending =
      new PendingLookup{this, channel_.get(), id, lookup.name, lookup.family};
  ares_getaddrinfo(channel_->channel, lookup.name.c_str(), nullptr, &hints,
                   &Resolver::OnAddrInfo, pending);
}

void Resolver::OnAddrInfo(void* arg, int status, int timeouts,
                          ares_addrinfo* result) {
  std::unique_ptr<PendingLookup> pending(static_cast<PendingLookup*>(arg));
  Resolution resolution;
  if (status == ARES_SUCCESS && result != nullptr) {
    for (ares_addrinfo_node* node = result->nodes; node != nullptr;
         node = node->ai_next) {
      IpAddress address;
      if (IpAddress::FromSockaddr(node->ai_addr, &address) &&
          FamilyWanted(pending->family, address)) {
        resolution.addresses.push_back(address);
      }
    }
    resolution.addresses = HappyEyeballsOrder(std::move(resolution.addresses));
  }
  if (result != nullptr) ares_freeaddrinfo(result);
  if (pending->channel->destroying) return;
  const std::string& name = pending->name;
  switch (status) {
    case ARES_SUCCESS:
      if (resolution.addresses.empty()) {
        resolution =
            Failure(DnsFailure::kNoData,
                    absl::StrCat(name, " has no ",
                                 FamilyRecords(pending->family), " record"));
      }
      break;
    case ARES_ENOTFOUND:
      resolution = Failure(DnsFailure::kNxDomain,
                           absl::StrCat(name, " does not exist (NXDOMAIN)"));
      break;
    case ARES_ENODATA:
      resolution =
          Failure(DnsFailure::kNoData,
                  absl::StrCat(name, " has no ", FamilyRecords(pending->family),
                               " record"));
      break;
    case ARES_ESERVFAIL:
      resolution = Failure(DnsFailure::kServFail,
                           absl::StrCat("the DNS server failed to resolve ",
                                        name, " (SERVFAIL)"));
      break;
    case ARES_EREFUSED:
      resolution = Failure(DnsFailure::kRefused,
                           absl::StrCat("the DNS server refused to resolve ",
                                        name, " (REFUSED)"));
      break;
    case ARES_ETIMEOUT:
      resolution = Failure(DnsFailure::kTimeout,
                           absl::StrCat("no DNS answer for ", name, " after ",
                                        timeouts, " tries"));
      break;
    default:
      resolution = Failure(
          DnsFailure::kOther,
          absl::StrCat("resolving ", name, " failed: ", ares_strerror(status)));
      break;
  }
  Resolver* self = pending->resolver;
  --self->in_channel_;
  pending->channel->completed.emplace_back(pending->id, std::move(resolution));
}

void Resolver::Abandon(uint64_t id) {
  // A query c-ares already has goes on until it answers or times out (it
  // still counts against max_outstanding); its answer is dropped.
  lookups_.erase(id);
}

void Resolver::Finish(uint64_t id, Resolution resolution) {
  if (lookups_.erase(id) == 0) return;  // abandoned meanwhile
  host_->OnResolved(id, std::move(resolution));
}

void Resolver::SendQueued() {
  while (in_channel_ < options_.max_outstanding && !queued_.empty()) {
    const uint64_t id = queued_.front();
    queued_.pop_front();
    auto it = lookups_.find(id);
    if (it != lookups_.end() && !it->second.sent) Send(id, it->second);
  }
}

void Resolver::OnSocketEvent(int fd, bool readable, bool writable) {
  ares_process_fd(channel_->channel, readable ? fd : ARES_SOCKET_BAD,
                  writable ? fd : ARES_SOCKET_BAD);
  OnTimer();
}

void Resolver::OnTimer() {
  ares_process_fd(channel_->channel, ARES_SOCKET_BAD, ARES_SOCKET_BAD);
  const int64_t now = MonotonicNanos();
  while (!deadlines_.empty() && deadlines_.front().first <= now) {
    const uint64_t id = deadlines_.front().second;
    deadlines_.pop_front();
    auto it = lookups_.find(id);
    if (it == lookups_.end()) continue;
    channel_->completed.emplace_back(
        id,
        Failure(DnsFailure::kTimeout,
                absl::StrCat("no DNS answer for ", it->second.name, " within ",
                             absl::FormatDuration(options_.timeout))));
    // Queued lookups never reach c-ares.
    it->second.sent = true;
  }
  // Completions may free room for queued lookups, and a delivery may start
  // new ones: repeat until neither happens.
  while (true) {
    SendQueued();
    if (channel_->completed.empty()) break;
    std::vector<std::pair<uint64_t, Resolution>> completed;
    completed.swap(channel_->completed);
    for (auto& [id, resolution] : completed) Finish(id, std::move(resolution));
  }
  while (!deadlines_.empty() && !lookups_.contains(deadlines_.front().second)) {
    deadlines_.pop_front();
  }
}

int64_t Resolver::NextDeadline() const {
  int64_t next = deadlines_.empty() ? kNoDeadline : deadlines_.front().first;
  timeval tv;
  if (ares_timeout(channel_->channel, nullptr, &tv) != nullptr) {
    next = std::min(next, MonotonicNanos() + int64_t{tv.tv_sec} * 1000000000 +
                              int64_t{tv.tv_usec} * 1000);
  }
  return next;
}

}  // namespace fanprobe::internal
