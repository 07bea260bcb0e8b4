// resolver.h: name resolution on a worker's own event loop, with c-ares.
// Internal to probe/.
//
// libcurl (7.88, as Debian builds it) resolves with a thread per lookup: a
// burst of a thousand names is a thousand threads sending queries at once,
// and the ones a resolver drops wait out glibc's 5 s timeouts.  A Resolver
// instead keeps one c-ares channel whose sockets its host (the worker) polls
// with everything else, lets at most `max_outstanding` lookups be in flight
// and queues the rest in order, and gives each lookup one deadline.  The
// engine then hands libcurl the addresses, so libcurl never resolves.
//
// Names are looked up in the hosts file first (read once, at creation),
// then through DNS: A and AAAA (or one of them, by family), with the search
// domains and ndots of resolv.conf, at the configured servers or
// resolv.conf's.  Addresses come back IPv6 first, then IPv4, each in the
// server's order -- the order libcurl's happy eyeballs expects.
//
// Example (the worker's side):
//   class Loop : public ResolverHost { ... WatchDnsSocket ... OnResolved };
//   auto resolver = Resolver::Create(options, &loop).value();
//   std::optional<Resolution> now = resolver->Resolve(7, "web.test", kAny);
//   ... epoll says fd is readable: resolver->OnSocketEvent(fd, true, false);
//   ... at resolver->NextDeadline(): resolver->OnTimer();
//   ... loop.OnResolved(7, resolution) is called from one of those.
//
// Thread-safety: a Resolver is used by its host's thread only.

#ifndef FANPROBE_PROBE_INTERNAL_RESOLVER_H_
#define FANPROBE_PROBE_INTERNAL_RESOLVER_H_

#include <cstdint>
#include <deque>
#include <memory>
#include <optional>
#include <string>
#include <vector>

#include "absl/container/flat_hash_map.h"
#include "absl/status/statusor.h"
#include "absl/strings/string_view.h"
#include "absl/time/time.h"
#include "probe/destination_policy.h"
#include "probe/probe.h"

struct ares_addrinfo;

namespace fanprobe::internal {

struct ResolverOptions {
  // DNS servers, "ip", "ip:port" or "[ipv6]:port"; empty means resolv.conf's.
  std::vector<std::string> servers;
  // Where resolv.conf is (servers when `servers` is empty, search domains,
  // ndots); empty means the system's.
  std::string resolv_conf;
  // Looked up before DNS; empty means none.
  std::string hosts_file = "/etc/hosts";
  // A lookup's whole budget, retries included.
  absl::Duration timeout = absl::Seconds(5);
  // Lookups in flight at once; more wait in order.  A burst of thousands
  // sent at once is what loses queries at a resolver.
  int max_outstanding = 48;
};

// What a lookup found.
struct Resolution {
  DnsFailure failure = DnsFailure::kNone;
  std::string error;                 // in words, when failure != kNone
  std::vector<IpAddress> addresses;  // IPv6 first; non-empty on success
};

// Implemented by the resolver's host (the worker).  Called on its thread,
// from inside the Resolver's methods.
class ResolverHost {
 public:
  virtual ~ResolverHost() = default;
  // Poll `fd` for these events from now on; both false: stop polling it
  // (c-ares closes it next).
  virtual void WatchDnsSocket(int fd, bool readable, bool writable) = 0;
  // Lookup `id` ended.  Called exactly once per lookup that Resolve() did
  // not answer at once and that was not Abandon()ed.
  virtual void OnResolved(uint64_t id, Resolution resolution) = 0;
};

class Resolver {
 public:
  // Fails (kInvalidArgument) on a server list that does not parse, or
  // (kInternal) when c-ares cannot start.
  static absl::StatusOr<std::unique_ptr<Resolver>> Create(
      const ResolverOptions& options, ResolverHost* host);
  ~Resolver();
  Resolver(const Resolver&) = delete;
  Resolver& operator=(const Resolver&) = delete;

  // Starts looking up `name` (ASCII, as it goes on the wire) under the
  // caller's `id` (unique among lookups in flight).  Returns the answer at
  // once when the hosts file has it; otherwise OnResolved(id, ...) follows.
  std::optional<Resolution> Resolve(uint64_t id, absl::string_view name,
                                    IpFamily family);
  // The caller lost interest in `id` (its probe ended): OnResolved will not
  // be called for it.  Unknown ids are ignored.
  void Abandon(uint64_t id);

  // The host's poller saw events on a socket WatchDnsSocket named.
  void OnSocketEvent(int fd, bool readable, bool writable);
  // Runs c-ares's retries and timeouts and ends lookups past their
  // deadline; call it at NextDeadline() (earlier is harmless).
  void OnTimer();
  // When OnTimer() must run next (CLOCK_MONOTONIC nanoseconds), or
  // INT64_MAX when nothing waits on time.
  int64_t NextDeadline() const;

  // Lookups not yet ended: in flight or queued.
  size_t pending() const { return lookups_.size(); }

  struct Channel;  // the c-ares channel, kept out of this header

 private:
  struct Lookup {
    std::string name;
    IpFamily family = IpFamily::kAny;
    int64_t deadline_ns = 0;
    bool sent = false;
  };
  explicit Resolver(const ResolverOptions& options, ResolverHost* host);
  void Send(uint64_t id, Lookup& lookup);
  void SendQueued();
  void Finish(uint64_t id, Resolution resolution);
  static void OnAddrInfo(void* arg, int status, int timeouts,
                         ::ares_addrinfo* result);

  const ResolverOptions options_;
  ResolverHost* const host_;
  std::unique_ptr<Channel> channel_;
  // The hosts file, by lower-case name.
  absl::flat_hash_map<std::string, std::vector<IpAddress>> hosts_;

  absl::flat_hash_map<uint64_t, Lookup> lookups_;
  std::deque<uint64_t> queued_;  // not yet sent, oldest first
  // (deadline, id) in the order lookups began; all share one timeout, so
  // this is sorted.  Entries of ended lookups are skipped when reached.
  std::deque<std::pair<int64_t, uint64_t>> deadlines_;
  int in_channel_ = 0;  // queries in c-ares, abandoned ones included
};

// Reads a hosts file ("address name [aliases]", '#' comments) into a map by
// lower-case name.  A missing file is an empty map.  Exposed for tests.
absl::flat_hash_map<std::string, std::vector<IpAddress>> ReadHostsFile(
    const std::string& path);

}  // namespace fanprobe::internal

#endif  // FANPROBE_PROBE_INTERNAL_RESOLVER_H_
