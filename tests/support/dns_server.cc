#include "tests/support/dns_server.h"

#include <arpa/inet.h>
#include <errno.h>
#include <netinet/in.h>
#include <sys/epoll.h>
#include <sys/eventfd.h>
#include <sys/socket.h>
#include <unistd.h>

#include <algorithm>
#include <array>
#include <chrono>
#include <cstdint>
#include <cstdio>
#include <cstdlib>
#include <cstring>
#include <functional>
#include <map>
#include <memory>
#include <optional>
#include <string>
#include <thread>
#include <unordered_map>
#include <utility>
#include <vector>

#include "absl/base/thread_annotations.h"
#include "absl/container/flat_hash_map.h"
#include "absl/status/status.h"
#include "absl/status/statusor.h"
#include "absl/strings/ascii.h"
#include "absl/strings/match.h"
#include "absl/strings/numbers.h"
#include "absl/strings/str_cat.h"
#include "absl/strings/str_split.h"
#include "absl/strings/string_view.h"
#include "absl/synchronization/mutex.h"
#include "absl/time/time.h"
#include "probe/unique_fd.h"

namespace fanprobe::testing {
namespace {

using Clock = std::chrono::steady_clock;

constexpr uint16_t kClassIn = 1;
// The EDNS0 UDP payload size we advertise and the most we send over UDP:
// the DNS flag day's value, which fits any loopback or Ethernet MTU.
constexpr uint16_t kMaxUdpPayload = 1232;
constexpr uint16_t kPlainUdpPayload = 512;
// CNAME links followed before giving up, as a recursive server would on a
// loop.
constexpr int kMaxCnameLinks = 16;
// Bounds on what a client can make the server hold: connections, and bytes
// queued to one that does not read its answers.
constexpr size_t kMaxConnections = 1024;
constexpr size_t kMaxQueuedBytes = 1 << 20;
// Datagrams read per wake-up, so TCP clients are served during a UDP flood,
// and UDP during a TCP one.
constexpr int kUdpBurst = 256;
// The same for reads from one TCP connection.
constexpr int kTcpReadsPerWake = 16;
// Header flag bits (RFC 1035 4.1.1).
constexpr uint16_t kFlagQr = 0x8000;
constexpr uint16_t kFlagAa = 0x0400;
constexpr uint16_t kFlagTc = 0x0200;
constexpr uint16_t kFlagRd = 0x0100;
constexpr uint16_t kFlagRa = 0x0080;
constexpr uint16_t kOpcodeMask = 0x7800;

// epoll tags; connections get ids from kFirstConnectionId up.
constexpr uint64_t kStopTag = 1;
constexpr uint64_t kUdpTag = 2;
constexpr uint64_t kListenerTag = 3;
constexpr uint64_t kFirstConnectionId = 16;

[[noreturn]] void Die(absl::string_view what) {
  std::fprintf(stderr, "dns_server: %.*s\n", static_cast<int>(what.size()),
               what.data());
  std::abort();
}

// The engine's descriptor owner; header-only, so the test server links no
// engine code.
using ::fanprobe::UniqueFd;

std::string NormalizeName(absl::string_view name) {
  if (absl::EndsWith(name, ".")) name.remove_suffix(1);
  return absl::AsciiStrToLower(name);
}

// Address literals as the 4 or 16 bytes of their RDATA.
std::optional<std::string> ParseIpv4(absl::string_view text) {
  in_addr address;
  if (inet_pton(AF_INET, std::string(text).c_str(), &address) != 1) {
    return std::nullopt;
  }
  return std::string(reinterpret_cast<const char*>(&address), 4);
}

std::optional<std::string> ParseIpv6(absl::string_view text) {
  in6_addr address;
  if (inet_pton(AF_INET6, std::string(text).c_str(), &address) != 1) {
    return std::nullopt;
  }
  return std::string(reinterpret_cast<const char*>(&address), 16);
}

uint16_t ReadU16(absl::string_view bytes, size_t at) {
  return static_cast<uint16_t>(static_cast<uint8_t>(bytes[at]) << 8 |
                               static_cast<uint8_t>(bytes[at + 1]));
}

// A query as far as the server needs it.
struct Query {
  uint16_t id = 0;
  uint16_t flags = 0;
  std::string name;              // lower case, dotted, no trailing dot
  std::vector<size_t> label_at;  // offset of each label of the question name
  absl::string_view question;    // QNAME QTYPE QCLASS as received
  uint16_t qtype = 0;
  uint16_t qclass = 0;
  bool has_opt = false;
  uint16_t udp_payload = 0;  // the OPT record's CLASS field
};

enum class Parse {
  kOk,
  kIgnore,   // no header to answer, or not a query: drop silently
  kFormErr,  // a query we cannot read
  kNotImp,   // an opcode other than QUERY
};

// Skips a name anywhere but in the question, where compression is allowed;
// false if it runs off the end or uses a reserved label type.
bool SkipName(absl::string_view message, size_t& at) {
  for (;;) {
    if (at >= message.size()) return false;
    const uint8_t length = static_cast<uint8_t>(message[at]);
    if ((length & 0xC0) == 0xC0) {
      at += 2;
      return at <= message.size();
    }
    if ((length & 0xC0) != 0) return false;
    at += 1 + length;
    if (length == 0) return true;
  }
}

Parse ParseQuery(absl::string_view message, Query& query) {
  if (message.size() < 12) return Parse::kIgnore;
  query.id = ReadU16(message, 0);
  query.flags = ReadU16(message, 2);
  // A response sent to us (or a reflection of our own) is never answered:
  // two servers must not ping-pong.
  if (query.flags & kFlagQr) return Parse::kIgnore;
  if (query.flags & kOpcodeMask) return Parse::kNotImp;
  if (ReadU16(message, 4) != 1) return Parse::kFormErr;
  const int records =
      ReadU16(message, 6) + ReadU16(message, 8) + ReadU16(message, 10);

  // QNAME: uncompressed labels only; a pointer here has nothing to point at.
  size_t at = 12;
  size_t name_length = 0;
  for (;;) {
    if (at >= message.size()) return Parse::kFormErr;
    const uint8_t length = static_cast<uint8_t>(message[at]);
    if (length == 0) {
      ++at;
      break;
    }
    if ((length & 0xC0) != 0) return Parse::kFormErr;
    if (at + 1 + length > message.size()) return Parse::kFormErr;
    const absl::string_view label = message.substr(at + 1, length);
    // The table keys names as dotted text, so a label holding a dot would
    // alias another name.  No test needs one.
    if (absl::StrContains(label, '.')) return Parse::kFormErr;
    name_length += 1 + length;
    if (name_length > 254) return Parse::kFormErr;
    query.label_at.push_back(at);
    if (!query.name.empty()) query.name += '.';
    query.name += absl::AsciiStrToLower(label);
    at += 1 + length;
  }
  if (at + 4 > message.size()) return Parse::kFormErr;
  query.qtype = ReadU16(message, at);
  query.qclass = ReadU16(message, at + 2);
  at += 4;
  query.question = message.substr(12, at - 12);

  // The other sections: only an OPT record matters, but all must parse.
  const int additional_from = ReadU16(message, 6) + ReadU16(message, 8);
  for (int i = 0; i < records; ++i) {
    if (!SkipName(message, at) || at + 10 > message.size()) {
      return Parse::kFormErr;
    }
    const uint16_t type = ReadU16(message, at);
    const uint16_t rr_class = ReadU16(message, at + 2);
    const uint16_t rdlength = ReadU16(message, at + 8);
    at += 10;
    if (at + rdlength > message.size()) return Parse::kFormErr;
    at += rdlength;
    if (type == DnsServer::kTypeOpt) {
      // RFC 6891 6.1.1: at most one OPT, and only in the additional section.
      if (i < additional_from || query.has_opt) return Parse::kFormErr;
      query.has_opt = true;
      query.udp_payload = rr_class;
    }
  }
  return Parse::kOk;
}

// One resource record of an answer or authority section.
struct Record {
  std::string owner;  // dotted, lower case
  uint16_t type = 0;
  uint32_t ttl = 0;
  std::string address;  // A / AAAA: the address bytes
  std::string target;   // CNAME: the target name
};

// Builds a message, compressing names against those already written.
class MessageWriter {
 public:
  void U16(uint16_t value) {
    out_ += static_cast<char>(value >> 8);
    out_ += static_cast<char>(value & 0xFF);
  }
  void U32(uint32_t value) {
    U16(static_cast<uint16_t>(value >> 16));
    U16(static_cast<uint16_t>(value & 0xFFFF));
  }
  void Bytes(absl::string_view bytes) {
    out_.append(bytes.data(), bytes.size());
  }

  // Makes the question's name (and each of its suffixes) a target for
  // compression pointers.
  void RememberQuestionName(const Query& query) {
    for (size_t i = 0; i < query.label_at.size(); ++i) {
      // The i-th suffix of the dotted name starts after i dots.
      size_t dot = 0;
      for (size_t k = 0; k < i; ++k) dot = query.name.find('.', dot) + 1;
      Remember(query.name.substr(dot), query.label_at[i]);
    }
  }

  void Name(absl::string_view name) {
    while (!name.empty()) {
      const auto known = offsets_.find(name);
      if (known != offsets_.end()) {
        U16(static_cast<uint16_t>(0xC000 | known->second));
        return;
      }
      Remember(name, out_.size());
      const size_t dot = name.find('.');
      const absl::string_view label = name.substr(0, dot);
      out_ += static_cast<char>(std::min<size_t>(label.size(), 63));
      const absl::string_view kept = label.substr(0, 63);
      out_.append(kept.data(), kept.size());
      name = dot == absl::string_view::npos ? "" : name.substr(dot + 1);
    }
    out_ += '\0';
  }

  void Resource(const Record& record) {
    Name(record.owner);
    U16(record.type);
    U16(kClassIn);
    U32(record.ttl);
    const size_t length_at = out_.size();
    U16(0);
    const size_t rdata_at = out_.size();
    if (record.type == DnsServer::kTypeCname) {
      Name(record.target);
    } else if (record.type == DnsServer::kTypeSoa) {
      // Owner is the zone; TTL and MINIMUM 0, so no resolver caches the
      // negative answer across a table change.
      Name(record.owner.empty() ? "ns" : absl::StrCat("ns.", record.owner));
      Name(record.owner.empty() ? "hostmaster"
                                : absl::StrCat("hostmaster.", record.owner));
      U32(1);      // SERIAL
      U32(3600);   // REFRESH
      U32(600);    // RETRY
      U32(86400);  // EXPIRE
      U32(0);      // MINIMUM
    } else {
      Bytes(record.address);
    }
    const size_t rdlength = out_.size() - rdata_at;
    out_[length_at] = static_cast<char>(rdlength >> 8);
    out_[length_at + 1] = static_cast<char>(rdlength & 0xFF);
  }

  std::string Take() { return std::move(out_); }

 private:
  void Remember(absl::string_view name, size_t offset) {
    if (offset < 0x4000) offsets_.emplace(std::string(name), offset);
  }

  std::string out_;
  absl::flat_hash_map<std::string, size_t> offsets_;
};

uint16_t ResponseFlags(const Query& query, int rcode, bool truncated) {
  return static_cast<uint16_t>(kFlagQr | (query.flags & kOpcodeMask) | kFlagAa |
                               (truncated ? kFlagTc : 0) |
                               (query.flags & kFlagRd) | kFlagRa |
                               (rcode & 0xF));
}

// FORMERR or NOTIMP for a message whose question we do not echo.
std::string HeaderOnlyResponse(const Query& query, int rcode) {
  MessageWriter writer;
  writer.U16(query.id);
  writer.U16(ResponseFlags(query, rcode, false));
  for (int i = 0; i < 4; ++i) writer.U16(0);
  return writer.Take();
}

std::string BuildResponse(const Query& query, int rcode,
                          const std::vector<Record>& answers,
                          const std::vector<Record>& authority,
                          bool truncated) {
  MessageWriter writer;
  writer.U16(query.id);
  writer.U16(ResponseFlags(query, rcode, truncated));
  writer.U16(1);
  writer.U16(truncated ? 0 : static_cast<uint16_t>(answers.size()));
  writer.U16(truncated ? 0 : static_cast<uint16_t>(authority.size()));
  writer.U16(query.has_opt ? 1 : 0);
  writer.Bytes(query.question);
  writer.RememberQuestionName(query);
  if (!truncated) {
    for (const Record& record : answers) writer.Resource(record);
    for (const Record& record : authority) writer.Resource(record);
  }
  if (query.has_opt) {
    writer.Bytes(absl::string_view("\0", 1));  // root
    writer.U16(DnsServer::kTypeOpt);
    writer.U16(kMaxUdpPayload);
    writer.U32(0);  // extended rcode, version 0, no flags
    writer.U16(0);  // no options
  }
  return writer.Take();
}

}  // namespace

class DnsServer::Impl {
 public:
  // What the loop does with one message.
  struct Reply {
    std::string bytes;
    absl::Duration delay;
  };

  static absl::StatusOr<std::unique_ptr<Impl>> Bind(const Options& options);

  ~Impl() {
    if (thread_.joinable()) {
      const uint64_t one = 1;
      if (write(stop_.get(), &one, sizeof(one)) != sizeof(one)) {
        Die("cannot wake the serving thread");
      }
      thread_.join();
    }
  }

  void Start() {
    thread_ = std::thread([this] { Run(); });
  }

  int port() const { return port_; }
  std::string address() const {
    return family_ == AF_INET6 ? absl::StrCat("[", host_, "]:", port_)
                               : absl::StrCat(host_, ":", port_);
  }

  // --- The table.
  struct Step {
    std::vector<std::string> ipv4;
    std::vector<std::string> ipv6;
  };
  struct AddressRecord {
    std::string address;
    uint32_t ttl = 0;
  };
  struct Entry {
    std::vector<AddressRecord> a;
    std::vector<AddressRecord> aaaa;
    std::optional<std::string> cname;
    uint32_t cname_ttl = 0;
    std::vector<Step> sequence;
    uint64_t sequence_a_queries = 0;
    uint64_t sequence_aaaa_queries = 0;
    int rcode = kNoError;
    absl::Duration delay;
    bool drop = false;
    bool truncate = false;

    bool HasRecords() const {
      return !a.empty() || !aaaa.empty() || cname.has_value() ||
             !sequence.empty();
    }
  };

  // Runs `change` on the entry of `name`, made if absent.
  void Edit(absl::string_view name, const std::function<void(Entry&)>& change) {
    absl::MutexLock lock(&mu_);
    change(entries_[NormalizeName(name)]);
  }

  void AddWildcardA(absl::string_view suffix, std::string address) {
    absl::ConsumePrefix(&suffix, "*.");
    absl::MutexLock lock(&mu_);
    wildcards_[NormalizeName(suffix)].push_back(std::move(address));
  }

  void Clear() {
    absl::MutexLock lock(&mu_);
    entries_.clear();
    wildcards_.clear();
  }

  uint64_t QueryCount(absl::string_view name, int qtype) const {
    absl::MutexLock lock(&mu_);
    return QueryCountLocked(NormalizeName(name), qtype);
  }

  uint64_t TcpQueryCount() const {
    absl::MutexLock lock(&mu_);
    return tcp_queries_;
  }

  uint64_t MalformedCount() const {
    absl::MutexLock lock(&mu_);
    return malformed_;
  }

  bool WaitForQueries(uint64_t at_least, absl::Duration timeout,
                      absl::string_view name, int qtype) const {
    const std::string key = NormalizeName(name);
    absl::MutexLock lock(&mu_);
    const auto reached = [&]() ABSL_EXCLUSIVE_LOCKS_REQUIRED(mu_) {
      return QueryCountLocked(key, qtype) >= at_least;
    };
    return mu_.AwaitWithTimeout(absl::Condition(&reached), timeout);
  }

  void ResetCounts() {
    absl::MutexLock lock(&mu_);
    counts_.clear();
    type_counts_.clear();
    queries_ = 0;
    tcp_queries_ = 0;
    malformed_ = 0;
  }

 private:
  struct Connection {
    UniqueFd fd;
    std::string in;
    std::string out;  // framed answers not yet sent
    bool watching_out = false;
  };
  // Where a delayed answer goes.
  struct Delayed {
    std::string bytes;
    bool tcp = false;
    uint64_t connection = 0;
    sockaddr_storage peer{};
    socklen_t peer_length = 0;
  };

  Impl(int family, std::string host)
      : family_(family), host_(std::move(host)) {}

  // Decides the reply to one message (none: stay silent) and counts it.
  std::optional<Reply> Answer(absl::string_view message, bool tcp)
      ABSL_LOCKS_EXCLUDED(mu_);
  // The answer's rcode and records for a well-formed IN query.
  int Resolve(const Query& query, std::vector<Record>& answers)
      ABSL_EXCLUSIVE_LOCKS_REQUIRED(mu_);
  uint64_t QueryCountLocked(const std::string& name, int qtype) const
      ABSL_EXCLUSIVE_LOCKS_REQUIRED(mu_);

  // The loop and what it calls; serving thread only.
  void Run();
  void Watch(int fd, uint32_t events, uint64_t tag);
  void ReadDatagrams();
  void AcceptConnections();
  void ServeConnection(uint64_t id, uint32_t events);
  // Answers the complete messages in connection.in; false if the
  // connection had to be closed.
  bool AnswerFrames(uint64_t id, Connection& connection);
  // Queues one framed answer; false if the connection had to be closed.
  bool SendOnConnection(uint64_t id, Connection& connection,
                        absl::string_view bytes);
  bool Flush(uint64_t id, Connection& connection);
  void SendDatagram(absl::string_view bytes, const sockaddr_storage& peer,
                    socklen_t peer_length);
  void SendDueAnswers();

  // Constant after Bind().
  const int family_;
  const std::string host_;
  int port_ = 0;
  UniqueFd epoll_;
  UniqueFd stop_;
  UniqueFd udp_;
  UniqueFd listener_;
  std::thread thread_;

  // Serving thread only.
  std::unordered_map<uint64_t, Connection> connections_;
  uint64_t next_connection_id_ = kFirstConnectionId;
  std::multimap<Clock::time_point, Delayed> delayed_;

  // State below is protected by mu_.
  mutable absl::Mutex mu_;
  absl::flat_hash_map<std::string, Entry> entries_ ABSL_GUARDED_BY(mu_);
  // Suffix -> A addresses for every name under it.
  absl::flat_hash_map<std::string, std::vector<std::string>> wildcards_
      ABSL_GUARDED_BY(mu_);
  // Name -> qtype -> queries.
  absl::flat_hash_map<std::string, absl::flat_hash_map<int, uint64_t>> counts_
      ABSL_GUARDED_BY(mu_);
  absl::flat_hash_map<int, uint64_t> type_counts_ ABSL_GUARDED_BY(mu_);
  uint64_t queries_ ABSL_GUARDED_BY(mu_) = 0;
  uint64_t tcp_queries_ ABSL_GUARDED_BY(mu_) = 0;
  uint64_t malformed_ ABSL_GUARDED_BY(mu_) = 0;
};

absl::StatusOr<std::unique_ptr<DnsServer::Impl>> DnsServer::Impl::Bind(
    const Options& options) {
  sockaddr_storage address{};
  socklen_t address_length = 0;
  int family = AF_INET;
  auto* v4 = reinterpret_cast<sockaddr_in*>(&address);
  auto* v6 = reinterpret_cast<sockaddr_in6*>(&address);
  if (inet_pton(AF_INET, options.address.c_str(), &v4->sin_addr) == 1) {
    v4->sin_family = AF_INET;
    address_length = sizeof(sockaddr_in);
    if ((ntohl(v4->sin_addr.s_addr) >> 24) != 127) {
      return absl::InvalidArgumentError(
          absl::StrCat("not a loopback address: ", options.address));
    }
  } else if (inet_pton(AF_INET6, options.address.c_str(), &v6->sin6_addr) ==
             1) {
    family = AF_INET6;
    v6->sin6_family = AF_INET6;
    address_length = sizeof(sockaddr_in6);
    if (!IN6_IS_ADDR_LOOPBACK(&v6->sin6_addr)) {
      return absl::InvalidArgumentError(
          absl::StrCat("not a loopback address: ", options.address));
    }
  } else {
    return absl::InvalidArgumentError(
        absl::StrCat("not an IP address: \"", options.address, "\""));
  }
  if (options.port < 0 || options.port > 65535) {
    return absl::InvalidArgumentError(
        absl::StrCat("port out of range: ", options.port));
  }

  std::unique_ptr<Impl> impl(new Impl(family, options.address));
  // Port 0 asks the kernel for a free TCP port; UDP then takes the same
  // number, which another socket may hold: try again with a new one.
  absl::Status last = absl::OkStatus();
  for (int attempt = 0; attempt < 32; ++attempt) {
    const auto set_port = [&](int port) {
      if (family == AF_INET) {
        v4->sin_port = htons(static_cast<uint16_t>(port));
      } else {
        v6->sin6_port = htons(static_cast<uint16_t>(port));
      }
    };
    const auto fail = [&](absl::string_view what) {
      return absl::UnavailableError(absl::StrCat(
          "dns_server: ", what, " ", options.address, ": ", strerror(errno)));
    };
    set_port(options.port);
    UniqueFd listener(
        socket(family, SOCK_STREAM | SOCK_NONBLOCK | SOCK_CLOEXEC, 0));
    UniqueFd udp(socket(family, SOCK_DGRAM | SOCK_NONBLOCK | SOCK_CLOEXEC, 0));
    if (!listener.valid() || !udp.valid()) return fail("socket");
    const int one = 1;
    setsockopt(listener.get(), SOL_SOCKET, SO_REUSEADDR, &one, sizeof(one));
    if (family == AF_INET6) {
      setsockopt(listener.get(), IPPROTO_IPV6, IPV6_V6ONLY, &one, sizeof(one));
      setsockopt(udp.get(), IPPROTO_IPV6, IPV6_V6ONLY, &one, sizeof(one));
    }
    if (bind(listener.get(), reinterpret_cast<sockaddr*>(&address),
             address_length) != 0 ||
        listen(listener.get(), SOMAXCONN) != 0) {
      return fail("bind TCP");
    }
    sockaddr_storage bound{};
    socklen_t bound_length = sizeof(bound);
    getsockname(listener.get(), reinterpret_cast<sockaddr*>(&bound),
                &bound_length);
    const int port = ntohs(
        family == AF_INET ? reinterpret_cast<sockaddr_in*>(&bound)->sin_port
                          : reinterpret_cast<sockaddr_in6*>(&bound)->sin6_port);
    set_port(port);
    if (bind(udp.get(), reinterpret_cast<sockaddr*>(&address),
             address_length) != 0) {
      last = fail("bind UDP");
      if (errno == EADDRINUSE && options.port == 0) continue;
      return last;
    }
    // A resolver may send thousands of queries at once; the default buffer
    // (about 200 datagrams) would drop most of them.
    const int buffer = 4 << 20;
    setsockopt(udp.get(), SOL_SOCKET, SO_RCVBUF, &buffer, sizeof(buffer));
    setsockopt(udp.get(), SOL_SOCKET, SO_SNDBUF, &buffer, sizeof(buffer));
    impl->port_ = port;
    impl->listener_ = std::move(listener);
    impl->udp_ = std::move(udp);
    break;
  }
  if (!impl->udp_.valid()) return last;

  impl->epoll_ = UniqueFd(epoll_create1(EPOLL_CLOEXEC));
  impl->stop_ = UniqueFd(eventfd(0, EFD_CLOEXEC | EFD_NONBLOCK));
  if (!impl->epoll_.valid() || !impl->stop_.valid()) {
    return absl::UnavailableError(
        absl::StrCat("dns_server: epoll/eventfd: ", strerror(errno)));
  }
  impl->Watch(impl->stop_.get(), EPOLLIN, kStopTag);
  impl->Watch(impl->udp_.get(), EPOLLIN, kUdpTag);
  impl->Watch(impl->listener_.get(), EPOLLIN, kListenerTag);
  return impl;
}

std::optional<DnsServer::Impl::Reply> DnsServer::Impl::Answer(
    absl::string_view message, bool tcp) {
  Query query;
  const Parse parse = ParseQuery(message, query);
  absl::MutexLock lock(&mu_);
  switch (parse) {
    case Parse::kIgnore:
      ++malformed_;
      return std::nullopt;
    case Parse::kFormErr:
      ++malformed_;
      return Reply{HeaderOnlyResponse(query, kFormErr), absl::ZeroDuration()};
    case Parse::kNotImp:
      ++malformed_;
      return Reply{HeaderOnlyResponse(query, kNotImp), absl::ZeroDuration()};
    case Parse::kOk:
      break;
  }
  ++queries_;
  if (tcp) ++tcp_queries_;
  ++counts_[query.name][query.qtype];
  ++type_counts_[query.qtype];

  // The behaviours of the name asked, whether or not it has records.
  const auto found = entries_.find(query.name);
  const Entry* entry = found == entries_.end() ? nullptr : &found->second;
  if (entry != nullptr && entry->drop) return std::nullopt;

  int rcode = kNoError;
  std::vector<Record> answers;
  if (query.qclass != kClassIn) {
    rcode = kRefused;
  } else if (query.qtype == kTypeAny) {
    rcode = kNotImp;
  } else if (entry != nullptr && entry->rcode != kNoError) {
    rcode = entry->rcode;
  } else {
    rcode = Resolve(query, answers);
  }
  // NODATA: no record of the asked type, though a CNAME chain may lead on.
  const bool no_data =
      rcode == kNoError &&
      std::none_of(answers.begin(), answers.end(), [&](const Record& record) {
        return record.type == query.qtype;
      });
  std::vector<Record> authority;
  if (rcode == kNxDomain || no_data) {
    // The zone is the top-level label: enough for a resolver to read the
    // negative answer, no more.
    const size_t dot = query.name.rfind('.');
    Record soa;
    soa.owner =
        dot == std::string::npos ? query.name : query.name.substr(dot + 1);
    soa.type = kTypeSoa;
    soa.ttl = 0;
    authority.push_back(std::move(soa));
  }

  Reply reply;
  reply.delay = entry != nullptr ? entry->delay : absl::ZeroDuration();
  reply.bytes = BuildResponse(query, rcode, answers, authority, false);
  if (!tcp) {
    const size_t limit =
        query.has_opt ? std::clamp<size_t>(query.udp_payload, kPlainUdpPayload,
                                           kMaxUdpPayload)
                      : kPlainUdpPayload;
    if ((entry != nullptr && entry->truncate) || reply.bytes.size() > limit) {
      reply.bytes = BuildResponse(query, rcode, answers, authority, true);
    }
  }
  return reply;
}

int DnsServer::Impl::Resolve(const Query& query, std::vector<Record>& answers) {
  std::string name = query.name;
  for (int links = 0;; ++links) {
    const auto found = entries_.find(name);
    Entry* entry = found != entries_.end() && found->second.HasRecords()
                       ? &found->second
                       : nullptr;
    if (entry != nullptr && entry->cname.has_value()) {
      if (links == kMaxCnameLinks) {
        answers.clear();
        return kServFail;
      }
      Record cname;
      cname.owner = name;
      cname.type = kTypeCname;
      cname.ttl = entry->cname_ttl;
      cname.target = *entry->cname;
      answers.push_back(cname);
      if (query.qtype == kTypeCname) return kNoError;
      name = cname.target;
      continue;
    }
    const auto add = [&](const std::string& address, uint16_t type,
                         uint32_t ttl) {
      Record record;
      record.owner = name;
      record.type = type;
      record.ttl = ttl;
      record.address = address;
      answers.push_back(std::move(record));
    };
    if (entry != nullptr) {
      const bool a = query.qtype == kTypeA;
      if (!a && query.qtype != kTypeAaaa) return kNoError;
      if (!entry->sequence.empty()) {
        uint64_t& n =
            a ? entry->sequence_a_queries : entry->sequence_aaaa_queries;
        const Step& step =
            entry->sequence[std::min<uint64_t>(n, entry->sequence.size() - 1)];
        ++n;
        for (const std::string& address : a ? step.ipv4 : step.ipv6) {
          add(address, query.qtype, 0);
        }
      } else {
        for (const AddressRecord& record : a ? entry->a : entry->aaaa) {
          add(record.address, query.qtype, record.ttl);
        }
      }
      return kNoError;
    }
    // The longest suffix under a wildcard: the first found from the left.
    for (size_t dot = name.find('.'); dot != std::string::npos;
         dot = name.find('.', dot + 1)) {
      const auto wildcard = wildcards_.find(name.substr(dot + 1));
      if (wildcard == wildcards_.end()) continue;
      if (query.qtype == kTypeA) {
        for (const std::string& address : wildcard->second) {
          add(address, kTypeA, 60);
        }
      }
      return kNoError;
    }
    return kNxDomain;
  }
}

uint64_t DnsServer::Impl::QueryCountLocked(const std::string& name,
                                           int qtype) const {
  if (name.empty()) {
    if (qtype == 0) return queries_;
    const auto found = type_counts_.find(qtype);
    return found == type_counts_.end() ? 0 : found->second;
  }
  const auto by_name = counts_.find(name);
  if (by_name == counts_.end()) return 0;
  uint64_t total = 0;
  for (const auto& [type, count] : by_name->second) {
    if (qtype == 0 || type == qtype) total += count;
  }
  return total;
}

void DnsServer::Impl::Watch(int fd, uint32_t events, uint64_t tag) {
  epoll_event event{};
  event.events = events;
  event.data.u64 = tag;
  if (epoll_ctl(epoll_.get(), EPOLL_CTL_ADD, fd, &event) != 0) {
    Die(absl::StrCat("epoll_ctl: ", strerror(errno)));
  }
}

void DnsServer::Impl::Run() {
  epoll_event events[64];
  for (;;) {
    int timeout_ms = -1;
    if (!delayed_.empty()) {
      // Rounded up: an answer is never sent before its time.
      const auto wait = std::chrono::ceil<std::chrono::milliseconds>(
          delayed_.begin()->first - Clock::now());
      timeout_ms = static_cast<int>(std::max<int64_t>(0, wait.count()));
    }
    const int ready = epoll_wait(epoll_.get(), events, 64, timeout_ms);
    if (ready < 0 && errno != EINTR) {
      Die(absl::StrCat("epoll_wait: ", strerror(errno)));
    }
    for (int i = 0; i < ready; ++i) {
      const uint64_t tag = events[i].data.u64;
      if (tag == kStopTag) return;
      if (tag == kUdpTag) {
        ReadDatagrams();
      } else if (tag == kListenerTag) {
        AcceptConnections();
      } else {
        ServeConnection(tag, events[i].events);
      }
    }
    SendDueAnswers();
  }
}

void DnsServer::Impl::ReadDatagrams() {
  std::string buffer(65536, '\0');
  for (int i = 0; i < kUdpBurst; ++i) {
    sockaddr_storage peer{};
    socklen_t peer_length = sizeof(peer);
    const ssize_t n =
        recvfrom(udp_.get(), buffer.data(), buffer.size(), MSG_DONTWAIT,
                 reinterpret_cast<sockaddr*>(&peer), &peer_length);
    if (n < 0) return;  // EAGAIN; or an ICMP error from an earlier send
    std::optional<Reply> reply =
        Answer(absl::string_view(buffer.data(), static_cast<size_t>(n)),
               /*tcp=*/false);
    if (!reply.has_value()) continue;
    if (reply->delay > absl::ZeroDuration()) {
      Delayed delayed;
      delayed.bytes = std::move(reply->bytes);
      delayed.peer = peer;
      delayed.peer_length = peer_length;
      delayed_.emplace(Clock::now() + absl::ToChronoNanoseconds(reply->delay),
                       std::move(delayed));
    } else {
      SendDatagram(reply->bytes, peer, peer_length);
    }
  }
}

void DnsServer::Impl::SendDatagram(absl::string_view bytes,
                                   const sockaddr_storage& peer,
                                   socklen_t peer_length) {
  // A full send buffer loses the answer, as the network may: the resolver
  // retries.
  (void)sendto(udp_.get(), bytes.data(), bytes.size(),
               MSG_DONTWAIT | MSG_NOSIGNAL,
               reinterpret_cast<const sockaddr*>(&peer), peer_length);
}

void DnsServer::Impl::AcceptConnections() {
  for (;;) {
    UniqueFd fd(accept4(listener_.get(), nullptr, nullptr,
                        SOCK_NONBLOCK | SOCK_CLOEXEC));
    if (!fd.valid()) return;
    if (connections_.size() >= kMaxConnections) continue;  // closed
    const uint64_t id = next_connection_id_++;
    Watch(fd.get(), EPOLLIN | EPOLLRDHUP, id);
    connections_[id].fd = std::move(fd);
  }
}

void DnsServer::Impl::ServeConnection(uint64_t id, uint32_t events) {
  const auto found = connections_.find(id);
  if (found == connections_.end()) return;
  Connection& connection = found->second;
  if ((events & EPOLLOUT) && !Flush(id, connection)) return;
  if (!(events & (EPOLLIN | EPOLLRDHUP | EPOLLHUP | EPOLLERR))) return;

  char buffer[16384];
  for (int i = 0; i < kTcpReadsPerWake; ++i) {
    const ssize_t n = recv(connection.fd.get(), buffer, sizeof(buffer), 0);
    if (n > 0) {
      connection.in.append(buffer, static_cast<size_t>(n));
      if (!AnswerFrames(id, connection)) return;
      continue;
    }
    if (n < 0 && errno == EINTR) continue;
    if (n < 0 && (errno == EAGAIN || errno == EWOULDBLOCK)) return;
    // EOF or a reset: the client is gone, or has said all it will.  What
    // is still unsent or delayed for it is dropped with the connection.
    connections_.erase(found);
    return;
  }
}

bool DnsServer::Impl::AnswerFrames(uint64_t id, Connection& connection) {
  // Each message: a 2-byte length, then the message (RFC 1035 4.2.2).
  size_t at = 0;
  while (connection.in.size() - at >= 2) {
    const size_t length = ReadU16(connection.in, at);
    if (connection.in.size() - at - 2 < length) break;
    std::optional<Reply> reply = Answer(
        absl::string_view(connection.in).substr(at + 2, length), /*tcp=*/true);
    at += 2 + length;
    if (!reply.has_value()) continue;
    if (reply->delay > absl::ZeroDuration()) {
      Delayed delayed;
      delayed.bytes = std::move(reply->bytes);
      delayed.tcp = true;
      delayed.connection = id;
      delayed_.emplace(Clock::now() + absl::ToChronoNanoseconds(reply->delay),
                       std::move(delayed));
    } else if (!SendOnConnection(id, connection, reply->bytes)) {
      return false;
    }
  }
  connection.in.erase(0, at);
  return true;
}

bool DnsServer::Impl::SendOnConnection(uint64_t id, Connection& connection,
                                       absl::string_view bytes) {
  const char length[2] = {static_cast<char>(bytes.size() >> 8),
                          static_cast<char>(bytes.size() & 0xFF)};
  connection.out.append(length, 2);
  connection.out.append(bytes.data(), bytes.size());
  if (connection.out.size() > kMaxQueuedBytes) {
    connections_.erase(id);  // a client that never reads
    return false;
  }
  return Flush(id, connection);
}

bool DnsServer::Impl::Flush(uint64_t id, Connection& connection) {
  size_t sent = 0;
  while (sent < connection.out.size()) {
    const ssize_t n =
        send(connection.fd.get(), connection.out.data() + sent,
             connection.out.size() - sent, MSG_DONTWAIT | MSG_NOSIGNAL);
    if (n > 0) {
      sent += static_cast<size_t>(n);
    } else if (n < 0 && errno == EINTR) {
      continue;
    } else if (n < 0 && (errno == EAGAIN || errno == EWOULDBLOCK)) {
      break;
    } else {
      connections_.erase(id);
      return false;
    }
  }
  connection.out.erase(0, sent);
  const bool want_out = !connection.out.empty();
  if (want_out != connection.watching_out) {
    epoll_event event{};
    event.events = EPOLLIN | EPOLLRDHUP | (want_out ? uint32_t{EPOLLOUT} : 0u);
    event.data.u64 = id;
    epoll_ctl(epoll_.get(), EPOLL_CTL_MOD, connection.fd.get(), &event);
    connection.watching_out = want_out;
  }
  return true;
}

void DnsServer::Impl::SendDueAnswers() {
  const Clock::time_point now = Clock::now();
  while (!delayed_.empty() && delayed_.begin()->first <= now) {
    Delayed delayed = std::move(delayed_.begin()->second);
    delayed_.erase(delayed_.begin());
    if (!delayed.tcp) {
      SendDatagram(delayed.bytes, delayed.peer, delayed.peer_length);
      continue;
    }
    const auto found = connections_.find(delayed.connection);
    if (found != connections_.end()) {
      SendOnConnection(delayed.connection, found->second, delayed.bytes);
    }
  }
}

// --- DnsServer.

absl::StatusOr<std::unique_ptr<DnsServer>> DnsServer::Start(Options options) {
  absl::StatusOr<std::unique_ptr<Impl>> impl = Impl::Bind(options);
  if (!impl.ok()) return impl.status();
  (*impl)->Start();
  return std::unique_ptr<DnsServer>(new DnsServer(*std::move(impl)));
}

DnsServer::DnsServer(std::unique_ptr<Impl> impl) : impl_(std::move(impl)) {}
DnsServer::~DnsServer() = default;

int DnsServer::port() const { return impl_->port(); }
std::string DnsServer::address() const { return impl_->address(); }

void DnsServer::AddA(absl::string_view name, absl::string_view ipv4,
                     uint32_t ttl) {
  std::optional<std::string> address = ParseIpv4(ipv4);
  if (!address) Die(absl::StrCat("AddA: not an IPv4 address: ", ipv4));
  impl_->Edit(name, [&](Impl::Entry& entry) {
    entry.a.push_back({*std::move(address), ttl});
  });
}

void DnsServer::AddAaaa(absl::string_view name, absl::string_view ipv6,
                        uint32_t ttl) {
  std::optional<std::string> address = ParseIpv6(ipv6);
  if (!address) Die(absl::StrCat("AddAaaa: not an IPv6 address: ", ipv6));
  impl_->Edit(name, [&](Impl::Entry& entry) {
    entry.aaaa.push_back({*std::move(address), ttl});
  });
}

void DnsServer::AddCname(absl::string_view name, absl::string_view target,
                         uint32_t ttl) {
  impl_->Edit(name, [&](Impl::Entry& entry) {
    entry.cname = NormalizeName(target);
    entry.cname_ttl = ttl;
  });
}

void DnsServer::AddWildcardA(absl::string_view suffix, absl::string_view ipv4) {
  std::optional<std::string> address = ParseIpv4(ipv4);
  if (!address) Die(absl::StrCat("AddWildcardA: not an IPv4 address: ", ipv4));
  impl_->AddWildcardA(suffix, *std::move(address));
}

void DnsServer::SetRcode(absl::string_view name, int rcode) {
  if (rcode < 0 || rcode > 15) Die(absl::StrCat("SetRcode: ", rcode));
  impl_->Edit(name, [&](Impl::Entry& entry) { entry.rcode = rcode; });
}

void DnsServer::SetDelay(absl::string_view name, absl::Duration delay) {
  impl_->Edit(name, [&](Impl::Entry& entry) { entry.delay = delay; });
}

void DnsServer::SetDrop(absl::string_view name, bool drop) {
  impl_->Edit(name, [&](Impl::Entry& entry) { entry.drop = drop; });
}

void DnsServer::SetTruncate(absl::string_view name, bool truncate) {
  impl_->Edit(name, [&](Impl::Entry& entry) { entry.truncate = truncate; });
}

void DnsServer::SetSequence(absl::string_view name,
                            std::vector<std::vector<std::string>> steps) {
  std::vector<Impl::Step> parsed;
  for (const std::vector<std::string>& step : steps) {
    Impl::Step& out = parsed.emplace_back();
    for (const std::string& literal : step) {
      if (std::optional<std::string> v4 = ParseIpv4(literal)) {
        out.ipv4.push_back(*std::move(v4));
      } else if (std::optional<std::string> v6 = ParseIpv6(literal)) {
        out.ipv6.push_back(*std::move(v6));
      } else {
        Die(absl::StrCat("SetSequence: not an IP address: ", literal));
      }
    }
  }
  impl_->Edit(name, [&](Impl::Entry& entry) {
    entry.sequence = std::move(parsed);
    entry.sequence_a_queries = 0;
    entry.sequence_aaaa_queries = 0;
  });
}

void DnsServer::Clear() { impl_->Clear(); }

uint64_t DnsServer::QueryCount(absl::string_view name, int qtype) const {
  return impl_->QueryCount(name, qtype);
}
uint64_t DnsServer::TcpQueryCount() const { return impl_->TcpQueryCount(); }
uint64_t DnsServer::MalformedCount() const { return impl_->MalformedCount(); }
bool DnsServer::WaitForQueries(uint64_t at_least, absl::Duration timeout,
                               absl::string_view name, int qtype) const {
  return impl_->WaitForQueries(at_least, timeout, name, qtype);
}
void DnsServer::ResetCounts() { impl_->ResetCounts(); }

absl::Status DnsServer::LoadZone(absl::string_view text) {
  // Every line becomes a change to apply once all have parsed.
  std::vector<std::function<void(DnsServer&)>> changes;
  int line_number = 0;
  for (absl::string_view line : absl::StrSplit(text, '\n')) {
    ++line_number;
    const absl::string_view content = line.substr(0, line.find('#'));
    const std::vector<absl::string_view> fields =
        absl::StrSplit(content, absl::ByAnyChar(" \t\r"), absl::SkipEmpty());
    if (fields.empty()) continue;
    const auto error = [&](absl::string_view why) {
      return absl::InvalidArgumentError(
          absl::StrCat("zone line ", line_number, ": ", why, ": \"",
                       absl::StripAsciiWhitespace(line), "\""));
    };
    if (fields.size() < 2) return error("expected a name and a type");
    const std::string name(fields[0]);
    const std::string type = absl::AsciiStrToUpper(fields[1]);
    const size_t values = fields.size() - 2;
    const bool wildcard = absl::StartsWith(name, "*.");
    if (wildcard && type != "A") return error("a wildcard takes only A");

    if (type == "A" || type == "AAAA") {
      if (values < 1 || values > 2) return error("expected an address [ttl]");
      const std::string literal(fields[2]);
      if (!(type == "A" ? ParseIpv4(literal) : ParseIpv6(literal))) {
        return error(
            absl::StrCat("not an IPv", type == "A" ? 4 : 6, " address"));
      }
      uint32_t ttl = 60;
      if (values == 2 && !absl::SimpleAtoi(fields[3], &ttl)) {
        return error("the TTL is not a number of seconds");
      }
      if (wildcard) {
        if (values == 2) return error("a wildcard takes no TTL");
        changes.push_back([=](DnsServer& s) { s.AddWildcardA(name, literal); });
      } else if (type == "A") {
        changes.push_back([=](DnsServer& s) { s.AddA(name, literal, ttl); });
      } else {
        changes.push_back([=](DnsServer& s) { s.AddAaaa(name, literal, ttl); });
      }
    } else if (type == "CNAME") {
      if (values != 1) return error("expected a target name");
      const std::string target(fields[2]);
      changes.push_back([=](DnsServer& s) { s.AddCname(name, target); });
    } else if (type == "RCODE") {
      int rcode = 0;
      if (values != 1 || !absl::SimpleAtoi(fields[2], &rcode) || rcode < 0 ||
          rcode > 15) {
        return error("expected an rcode from 0 to 15");
      }
      changes.push_back([=](DnsServer& s) { s.SetRcode(name, rcode); });
    } else if (type == "DELAY") {
      absl::Duration delay;
      if (values != 1 || !absl::ParseDuration(fields[2], &delay) ||
          delay < absl::ZeroDuration()) {
        return error("expected a duration such as 500ms");
      }
      changes.push_back([=](DnsServer& s) { s.SetDelay(name, delay); });
    } else if (type == "DROP" || type == "TRUNCATE") {
      if (values != 0) return error("expected nothing after the type");
      if (type == "DROP") {
        changes.push_back([=](DnsServer& s) { s.SetDrop(name); });
      } else {
        changes.push_back([=](DnsServer& s) { s.SetTruncate(name); });
      }
    } else if (type == "SEQUENCE") {
      if (values < 1) return error("expected one or more steps");
      std::vector<std::vector<std::string>> steps;
      for (size_t i = 2; i < fields.size(); ++i) {
        std::vector<std::string>& step = steps.emplace_back();
        for (absl::string_view literal : absl::StrSplit(fields[i], ',')) {
          if (!ParseIpv4(literal) && !ParseIpv6(literal)) {
            return error(absl::StrCat("not an IP address: ", literal));
          }
          step.emplace_back(literal);
        }
      }
      changes.push_back([=](DnsServer& s) { s.SetSequence(name, steps); });
    } else {
      return error(absl::StrCat("unknown type ", fields[1]));
    }
  }
  for (const auto& change : changes) change(*this);
  return absl::OkStatus();
}

}  // namespace fanprobe::testing
