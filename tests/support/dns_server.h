// dns_server.h: a small authoritative DNS server on loopback for the tests,
// so that no test ever asks the machine's resolver.  It answers A and AAAA
// from a table the test fills (and may change while lookups run), and it
// misbehaves on request: an rcode, a delay, a drop (the resolver times out),
// truncation (the resolver must retry over TCP), answers that change from one
// lookup to the next (DNS rebinding).
//
// One thread serves UDP and TCP on the same ephemeral port from epoll with
// non-blocking sockets; delayed answers wait in a timer queue on that loop,
// so a slow name never holds up the others.  The wire format is RFC 1035,
// written here (no DNS library): questions must be uncompressed (a pointer
// in a question is FORMERR); an EDNS0 OPT record is accepted and echoed;
// datagrams that are not queries are dropped or answered FORMERR, never
// fatal.  A TCP connection carries any number of queries, each answered when
// ready (a delayed one may be overtaken); the server closes its connections
// when it stops.  It listens on loopback only: Start() refuses other
// addresses.
//
// Answers, for a query of `name`:
//   - SetRcode(name, rcode) set: that rcode, no records.
//   - name has a CNAME: the CNAME, then the answer for its target, chained
//     (at most 16 links; a longer chain or a loop is SERVFAIL).  A target
//     absent from the table gives NXDOMAIN with the chain in the answer.
//   - name has records (A, AAAA or a sequence): those of the asked type, in
//     the order added; none of that type is NODATA (NOERROR, no answers).
//   - name is under a wildcard suffix: its A addresses (AAAA: NODATA).
//   - otherwise NXDOMAIN.
//   NXDOMAIN and NODATA carry an SOA (TTL 0) in the authority section.  Types
//   other than A, AAAA and CNAME get NODATA; ANY gets NOTIMP; a class other
//   than IN gets REFUSED.  Over UDP an answer larger than 512 bytes (or the
//   client's EDNS0 size, at most 1232) is sent truncated (TC, no records).
//   SetDelay, SetDrop and SetTruncate apply to the name asked, not to CNAME
//   targets, and may be set on names that have no records of their own
//   (e.g. one name under a wildcard).
//
// Example:
//   absl::StatusOr<std::unique_ptr<DnsServer>> started = DnsServer::Start();
//   ASSERT_TRUE(started.ok()) << started.status();
//   DnsServer& dns = **started;
//   dns.AddA("api.test", "127.0.0.1");
//   dns.SetDelay("slow.test", absl::Milliseconds(500));
//   ... point the resolver at dns.address() ("127.0.0.1:PORT") ...
//   EXPECT_EQ(dns.QueryCount("api.test", DnsServer::kTypeA), 1);
//
// Thread-safety: all methods may be called from any thread, also while the
// server answers.  Names are case-insensitive and taken without a trailing
// dot ("API.Test." and "api.test" are one name).  The Add*/Set* methods
// abort the test binary on an address literal that does not parse: that is a
// bug in the test, not a condition to handle.

#ifndef FANPROBE_TESTS_SUPPORT_DNS_SERVER_H_
#define FANPROBE_TESTS_SUPPORT_DNS_SERVER_H_

#include <cstdint>
#include <memory>
#include <string>
#include <vector>

#include "absl/status/status.h"
#include "absl/status/statusor.h"
#include "absl/strings/string_view.h"
#include "absl/time/time.h"

namespace fanprobe::testing {

struct DnsServerOptions {
  // Where to listen: a loopback literal, "127.0.0.1" or "::1".
  std::string address = "127.0.0.1";
  // 0 picks a free port, the same one for UDP and TCP.
  int port = 0;
};

class DnsServer {
 public:
  using Options = DnsServerOptions;

  // Query types and response codes the tests name.
  static constexpr int kTypeA = 1;
  static constexpr int kTypeCname = 5;
  static constexpr int kTypeSoa = 6;
  static constexpr int kTypeAaaa = 28;
  static constexpr int kTypeOpt = 41;
  static constexpr int kTypeAny = 255;
  static constexpr int kNoError = 0;
  static constexpr int kFormErr = 1;
  static constexpr int kServFail = 2;
  static constexpr int kNxDomain = 3;
  static constexpr int kNotImp = 4;
  static constexpr int kRefused = 5;

  // Binds UDP and TCP on options.address and starts the serving thread.
  // kInvalidArgument if the address is not a loopback IP literal or the
  // port is out of range, kUnavailable if the sockets cannot be bound.
  static absl::StatusOr<std::unique_ptr<DnsServer>> Start(Options options = {});
  // Stops the thread and closes every socket; answers still delayed are
  // never sent.
  ~DnsServer();

  DnsServer(const DnsServer&) = delete;
  DnsServer& operator=(const DnsServer&) = delete;

  int port() const;
  // "127.0.0.1:PORT" or "[::1]:PORT": what a --dns_server flag takes, and
  // what c-ares' ares_set_servers_ports_csv() takes.
  std::string address() const;

  // --- The table.
  // Records are appended: several A (or AAAA) records per name are answered
  // in the order added.
  void AddA(absl::string_view name, absl::string_view ipv4, uint32_t ttl = 60);
  void AddAaaa(absl::string_view name, absl::string_view ipv6,
               uint32_t ttl = 60);
  // A name with a CNAME answers only the chain (its own A/AAAA are ignored).
  void AddCname(absl::string_view name, absl::string_view target,
                uint32_t ttl = 60);
  // Every name strictly under `suffix` ("bulk.test" or "*.bulk.test":
  // a.bulk.test, h00042.bulk.test, not bulk.test itself) that has no records of
  // its own answers A `ipv4` (TTL 60); called again, adds an address.  The
  // longest matching suffix wins.
  void AddWildcardA(absl::string_view suffix, absl::string_view ipv4);
  // Answers `rcode` (kServFail, kNxDomain, kRefused, ...) for `name`,
  // whatever it holds; kNoError removes the override.
  void SetRcode(absl::string_view name, int rcode);
  // Answers `name` `delay` after its query arrived; zero removes the delay.
  void SetDelay(absl::string_view name, absl::Duration delay);
  // Never answers `name` (the resolver times out); queries are still counted.
  void SetDrop(absl::string_view name, bool drop = true);
  // UDP answers for `name` carry TC and no records; TCP answers are whole.
  void SetTruncate(absl::string_view name, bool truncate = true);
  // Answers that change between lookups.  Each step is a list of address
  // literals (IPv4 and/or IPv6).  The n-th A query for `name` (n from 0)
  // gets the IPv4 addresses of step min(n, size-1); AAAA queries are counted
  // apart from A, so a lookup asking both gets one step.  TTL 0.  While
  // set, it answers in place of the name's A/AAAA records; setting it again
  // restarts the count.
  void SetSequence(absl::string_view name,
                   std::vector<std::vector<std::string>> steps);
  // Empties the table (records, wildcards, behaviours, sequences).  The
  // query counts are kept: see ResetCounts().
  void Clear();

  // Loads zone-file text, one entry per line, '#' starts a comment:
  //   name A 1.2.3.4            name AAAA ::1        name CNAME other
  //   *.suffix A 1.2.3.4        name RCODE 3         name DELAY 500ms
  //   name DROP                 name TRUNCATE
  //   name SEQUENCE 10.0.0.1,::1 127.0.0.1   (one step per field, ',' joins)
  // A and AAAA take an optional TTL after the address.  Types are
  // case-insensitive.  Every line is checked before any is applied:
  // kInvalidArgument naming the line if one is wrong, and nothing changes.
  absl::Status LoadZone(absl::string_view text);

  // --- What it saw.
  // Well-formed queries, by the name asked (any case, no trailing dot) and
  // type: "" is any name, 0 any type.  Queries dropped or delayed count on
  // arrival.
  uint64_t QueryCount(absl::string_view name = "", int qtype = 0) const;
  // Well-formed queries that came over TCP.
  uint64_t TcpQueryCount() const;
  // Datagrams and TCP messages that were not a well-formed query (ignored,
  // or answered FORMERR / NOTIMP).
  uint64_t MalformedCount() const;
  // Blocks until QueryCount(name, qtype) >= at_least or `timeout` passes;
  // true if reached.
  bool WaitForQueries(uint64_t at_least, absl::Duration timeout,
                      absl::string_view name = "", int qtype = 0) const;
  // Sets every count above to zero.
  void ResetCounts();

 private:
  class Impl;
  explicit DnsServer(std::unique_ptr<Impl> impl);
  std::unique_ptr<Impl> impl_;
};

}  // namespace fanprobe::testing

#endif  // FANPROBE_TESTS_SUPPORT_DNS_SERVER_H_
