// The tests' DNS server, queried the way the engine will query it (c-ares,
// pointed at the server only) and, for the wire-level cases, with queries
// built by hand over UDP and TCP.  Every resolver here is guarded: a
// connect() to any address but the server's is refused and recorded, so a
// test that would reach the machine's resolver fails instead.

#include "tests/support/dns_server.h"

#include <ares.h>
#include <arpa/inet.h>
#include <netinet/in.h>
#include <poll.h>
#include <signal.h>
#include <sys/socket.h>
#include <sys/uio.h>
#include <unistd.h>

#include <atomic>
#include <cstdint>
#include <cstdio>
#include <fstream>
#include <functional>
#include <memory>
#include <optional>
#include <random>
#include <string>
#include <thread>
#include <utility>
#include <vector>

#include "absl/container/flat_hash_map.h"
#include "absl/status/status.h"
#include "absl/strings/match.h"
#include "absl/strings/numbers.h"
#include "absl/strings/str_cat.h"
#include "absl/strings/str_format.h"
#include "absl/strings/str_split.h"
#include "absl/strings/string_view.h"
#include "absl/time/clock.h"
#include "absl/time/time.h"
#include "gmock/gmock.h"
#include "gtest/gtest.h"
#include "tests/support/subprocess.h"

namespace fanprobe::testing {
namespace {

using ::testing::ElementsAre;
using ::testing::HasSubstr;
using ::testing::IsEmpty;
using ::testing::Not;
using ::testing::SizeIs;
using ::testing::StartsWith;
using ::testing::UnorderedElementsAre;

constexpr int kA = DnsServer::kTypeA;
constexpr int kAaaa = DnsServer::kTypeAaaa;

// ---------------------------------------------------------------------------
// The wire, by hand.

struct QueryOptions {
  bool edns = false;
  uint16_t edns_payload = 1232;
};

std::string U16(uint16_t value) {
  return {static_cast<char>(value >> 8), static_cast<char>(value & 0xFF)};
}

std::string EncodeName(absl::string_view name) {
  std::string out;
  for (absl::string_view label : absl::StrSplit(name, '.', absl::SkipEmpty())) {
    out += static_cast<char>(label.size());
    out.append(label.data(), label.size());
  }
  out += '\0';
  return out;
}

std::string Header(uint16_t id, uint16_t flags, uint16_t qd, uint16_t an,
                   uint16_t ns, uint16_t ar) {
  return U16(id) + U16(flags) + U16(qd) + U16(an) + U16(ns) + U16(ar);
}

std::string OptRecord(uint16_t payload) {
  return std::string(1, '\0') + U16(41) + U16(payload) + U16(0) + U16(0) +
         U16(0);
}

std::string MakeQuery(uint16_t id, absl::string_view name, uint16_t qtype,
                      QueryOptions options = {}) {
  return Header(id, 0x0100 /* RD */, 1, 0, 0, options.edns ? 1 : 0) +
         EncodeName(name) + U16(qtype) + U16(1) +
         (options.edns ? OptRecord(options.edns_payload) : "");
}

struct WireRecord {
  std::string name;
  int type = 0;
  uint32_t ttl = 0;
  std::string data;  // an address as text, a CNAME's target, else empty
};

struct WireResponse {
  uint16_t id = 0;
  uint16_t flags = 0;
  int rcode() const { return flags & 0xF; }
  bool qr() const { return flags & 0x8000; }
  bool aa() const { return flags & 0x0400; }
  bool tc() const { return flags & 0x0200; }
  bool rd() const { return flags & 0x0100; }
  bool ra() const { return flags & 0x0080; }
  int qdcount = 0;
  std::string question;  // the name as sent back, case kept
  int qtype = 0;
  std::vector<WireRecord> answers;
  std::vector<WireRecord> authority;
  std::vector<WireRecord> additional;
  std::vector<std::string> AnswerData() const {
    std::vector<std::string> out;
    for (const WireRecord& record : answers) out.push_back(record.data);
    return out;
  }
};

uint16_t Read16(absl::string_view bytes, size_t at) {
  return static_cast<uint16_t>(static_cast<uint8_t>(bytes[at]) << 8 |
                               static_cast<uint8_t>(bytes[at + 1]));
}

// Reads a name, following compression pointers (at most 64 hops).
bool ReadName(absl::string_view message, size_t& at, std::string& name) {
  name.clear();
  size_t position = at;
  bool jumped = false;
  for (int hops = 0; hops < 64; ++hops) {
    if (position >= message.size()) return false;
    const uint8_t length = static_cast<uint8_t>(message[position]);
    if ((length & 0xC0) == 0xC0) {
      if (position + 2 > message.size()) return false;
      if (!jumped) at = position + 2;
      jumped = true;
      position = Read16(message, position) & 0x3FFF;
      continue;
    }
    if (length == 0) {
      if (!jumped) at = position + 1;
      return true;
    }
    if (position + 1 + length > message.size()) return false;
    if (!name.empty()) name += '.';
    name.append(message.data() + position + 1, length);
    position += 1 + length;
  }
  return false;
}

std::optional<WireResponse> ParseResponse(absl::string_view message) {
  if (message.size() < 12) return std::nullopt;
  WireResponse response;
  response.id = Read16(message, 0);
  response.flags = Read16(message, 2);
  response.qdcount = Read16(message, 4);
  const int counts[3] = {Read16(message, 6), Read16(message, 8),
                         Read16(message, 10)};
  size_t at = 12;
  for (int i = 0; i < response.qdcount; ++i) {
    if (!ReadName(message, at, response.question) || at + 4 > message.size()) {
      return std::nullopt;
    }
    response.qtype = Read16(message, at);
    at += 4;
  }
  std::vector<WireRecord>* sections[3] = {
      &response.answers, &response.authority, &response.additional};
  for (int s = 0; s < 3; ++s) {
    for (int i = 0; i < counts[s]; ++i) {
      WireRecord record;
      if (!ReadName(message, at, record.name) || at + 10 > message.size()) {
        return std::nullopt;
      }
      record.type = Read16(message, at);
      record.ttl = static_cast<uint32_t>(Read16(message, at + 4)) << 16 |
                   Read16(message, at + 6);
      const size_t rdlength = Read16(message, at + 8);
      at += 10;
      if (at + rdlength > message.size()) return std::nullopt;
      char text[INET6_ADDRSTRLEN] = {};
      if (record.type == kA && rdlength == 4) {
        inet_ntop(AF_INET, message.data() + at, text, sizeof(text));
        record.data = text;
      } else if (record.type == kAaaa && rdlength == 16) {
        inet_ntop(AF_INET6, message.data() + at, text, sizeof(text));
        record.data = text;
      } else if (record.type == DnsServer::kTypeCname) {
        size_t target_at = at;
        if (!ReadName(message, target_at, record.data)) return std::nullopt;
      }
      at += rdlength;
      sections[s]->push_back(std::move(record));
    }
  }
  return response;
}

// A loopback socket to the server (IPv4 or IPv6 as the server listens).
int ConnectTo(const DnsServer& server, int type) {
  const bool v6 = absl::StartsWith(server.address(), "[");
  const int fd = socket(v6 ? AF_INET6 : AF_INET, type | SOCK_CLOEXEC, 0);
  sockaddr_storage address{};
  socklen_t length;
  if (v6) {
    auto* in6 = reinterpret_cast<sockaddr_in6*>(&address);
    in6->sin6_family = AF_INET6;
    in6->sin6_addr = in6addr_loopback;
    in6->sin6_port = htons(static_cast<uint16_t>(server.port()));
    length = sizeof(*in6);
  } else {
    auto* in = reinterpret_cast<sockaddr_in*>(&address);
    in->sin_family = AF_INET;
    in->sin_addr.s_addr = htonl(INADDR_LOOPBACK);
    in->sin_port = htons(static_cast<uint16_t>(server.port()));
    length = sizeof(*in);
  }
  if (type == SOCK_DGRAM) {
    // Room for the answers to a burst sent before any is read.
    const int buffer = 4 << 20;
    setsockopt(fd, SOL_SOCKET, SO_RCVBUF, &buffer, sizeof(buffer));
  }
  if (fd < 0 ||
      connect(fd, reinterpret_cast<sockaddr*>(&address), length) != 0) {
    ADD_FAILURE() << "connect to " << server.address() << ": "
                  << strerror(errno);
  }
  return fd;
}

bool Readable(int fd, absl::Duration timeout) {
  pollfd p = {fd, POLLIN, 0};
  return poll(&p, 1, static_cast<int>(absl::ToInt64Milliseconds(timeout))) == 1;
}

class UdpClient {
 public:
  explicit UdpClient(const DnsServer& server)
      : fd_(ConnectTo(server, SOCK_DGRAM)) {}
  ~UdpClient() { close(fd_); }

  void Send(absl::string_view bytes) {
    ASSERT_EQ(send(fd_, bytes.data(), bytes.size(), 0),
              static_cast<ssize_t>(bytes.size()));
  }
  // The next datagram, or nothing within `timeout`.
  std::optional<std::string> Receive(
      absl::Duration timeout = absl::Seconds(5)) {
    if (!Readable(fd_, timeout)) return std::nullopt;
    std::string buffer(65536, '\0');
    const ssize_t n = recv(fd_, buffer.data(), buffer.size(), 0);
    if (n < 0) return std::nullopt;
    buffer.resize(static_cast<size_t>(n));
    return buffer;
  }
  std::optional<WireResponse> Ask(absl::string_view query) {
    Send(query);
    std::optional<std::string> reply = Receive();
    if (!reply.has_value()) return std::nullopt;
    return ParseResponse(*reply);
  }

 private:
  int fd_;
};

class TcpClient {
 public:
  explicit TcpClient(const DnsServer& server)
      : fd_(ConnectTo(server, SOCK_STREAM)) {}
  ~TcpClient() {
    if (fd_ >= 0) close(fd_);
  }

  void SendRaw(absl::string_view bytes) {
    ASSERT_EQ(send(fd_, bytes.data(), bytes.size(), MSG_NOSIGNAL),
              static_cast<ssize_t>(bytes.size()));
  }
  static std::string Frame(absl::string_view message) {
    return U16(static_cast<uint16_t>(message.size())) + std::string(message);
  }
  // The next framed message; nothing on EOF or after `timeout`.
  std::optional<std::string> Receive(
      absl::Duration timeout = absl::Seconds(5)) {
    const absl::Time deadline = absl::Now() + timeout;
    for (;;) {
      if (buffer_.size() >= 2) {
        const size_t length = Read16(buffer_, 0);
        if (buffer_.size() >= 2 + length) {
          std::string message = buffer_.substr(2, length);
          buffer_.erase(0, 2 + length);
          return message;
        }
      }
      if (!Readable(fd_, deadline - absl::Now())) return std::nullopt;
      char chunk[4096];
      const ssize_t n = recv(fd_, chunk, sizeof(chunk), 0);
      if (n <= 0) return std::nullopt;
      buffer_.append(chunk, static_cast<size_t>(n));
    }
  }
  std::optional<WireResponse> ReceiveResponse() {
    std::optional<std::string> message = Receive();
    if (!message.has_value()) return std::nullopt;
    return ParseResponse(*message);
  }
  // True once the server has closed its side (recv returns 0).
  bool WaitForEof(absl::Duration timeout) {
    if (!Readable(fd_, timeout)) return false;
    char byte;
    return recv(fd_, &byte, 1, 0) == 0;
  }
  void Close() {
    close(fd_);
    fd_ = -1;
  }

 private:
  int fd_;
  std::string buffer_;
};

// ---------------------------------------------------------------------------
// c-ares, pointed at the server and nowhere else.

struct Lookup {
  bool done = false;
  int status = -1;
  std::vector<std::string> addresses;  // in the order c-ares gives them
  std::vector<std::string> cnames;     // "alias>name"
  std::string answer;                  // ares_query: the raw response
  absl::Time started;
  absl::Time finished;
};

struct ResolverOptions {
  absl::Duration timeout = absl::Seconds(2);
  int tries = 3;
  int extra_flags = 0;            // ARES_FLAG_*
  bool pass_error_rcodes = true;  // ARES_FLAG_NOCHECKRESP
  // Servers to give c-ares instead of the server's address; the guard
  // still lets only the server through.  For testing the guard.
  std::string servers_csv;
};

class Resolver {
 public:
  explicit Resolver(const DnsServer& server, ResolverOptions options = {})
      : Resolver(server.address(), options) {}
  // `server` as DnsServer::address() gives it: "127.0.0.1:PORT", "[::1]:PORT".
  explicit Resolver(const std::string& server, ResolverOptions options = {}) {
    server_v6_ = absl::StartsWith(server, "[");
    EXPECT_TRUE(
        absl::SimpleAtoi(server.substr(server.rfind(':') + 1), &server_port_))
        << server;

    ares_options o{};
    int mask = ARES_OPT_FLAGS | ARES_OPT_TIMEOUTMS | ARES_OPT_TRIES |
               ARES_OPT_LOOKUPS | ARES_OPT_DOMAINS | ARES_OPT_NDOTS |
               ARES_OPT_SOCK_STATE_CB;
    // No search list, no HOSTALIASES: only the name asked goes out.
    o.flags = ARES_FLAG_NOSEARCH | ARES_FLAG_NOALIASES | options.extra_flags;
    if (options.pass_error_rcodes) o.flags |= ARES_FLAG_NOCHECKRESP;
    o.timeout = static_cast<int>(absl::ToInt64Milliseconds(options.timeout));
    o.tries = options.tries;
    o.lookups = const_cast<char*>("b");  // DNS only, never /etc/hosts
    o.domains = nullptr;
    o.ndomains = 0;
    o.ndots = 1;
    o.sock_state_cb = &Resolver::OnSocketState;
    o.sock_state_cb_data = this;
    if (options.extra_flags & ARES_FLAG_EDNS) {
      mask |= ARES_OPT_EDNSPSZ;
      o.ednspsz = 1232;
    }
    EXPECT_EQ(ares_init_options(&channel_, &o, mask), ARES_SUCCESS);
    ares_set_socket_functions(channel_, &kSocketFunctions, this);
    // Before any query, so /etc/resolv.conf's servers are never used.
    const std::string& servers =
        options.servers_csv.empty() ? server : options.servers_csv;
    EXPECT_EQ(ares_set_servers_ports_csv(channel_, servers.c_str()),
              ARES_SUCCESS);
  }
  ~Resolver() { ares_destroy(channel_); }

  Resolver(const Resolver&) = delete;
  Resolver& operator=(const Resolver&) = delete;

  // Starts a lookup; `lookup` must stay put until it is done.
  void StartLookup(const std::string& name, int family, Lookup* lookup) {
    ++pending_;
    lookup->started = absl::Now();
    ares_addrinfo_hints hints{};
    hints.ai_family = family;
    hints.ai_flags = ARES_AI_NOSORT;  // keep the server's order
    ares_getaddrinfo(channel_, name.c_str(), nullptr, &hints,
                     &Resolver::OnAddrInfo, new Pending{this, lookup});
  }

  void StartQuery(const std::string& name, int type, Lookup* lookup) {
    ++pending_;
    lookup->started = absl::Now();
    ares_query(channel_, name.c_str(), /*dnsclass=*/1, type, &Resolver::OnQuery,
               new Pending{this, lookup});
  }

  // Drives the channel until nothing is pending, `until()` holds, or
  // `limit` passes.
  void Run(absl::Duration limit = absl::Seconds(30),
           const std::function<bool()>& until = nullptr) {
    const absl::Time deadline = absl::Now() + limit;
    while (pending_ > 0 && !(until && until())) {
      const absl::Duration left = deadline - absl::Now();
      if (left <= absl::ZeroDuration()) return;
      timeval cap = absl::ToTimeval(left);
      timeval wait;
      const timeval* next = ares_timeout(channel_, &cap, &wait);
      const int wait_ms = static_cast<int>(
          absl::ToInt64Milliseconds(absl::DurationFromTimeval(*next)) + 1);
      std::vector<pollfd> fds;
      for (const auto& [fd, events] : sockets_) {
        fds.push_back({fd, events, 0});
      }
      const int ready = poll(fds.data(), fds.size(), wait_ms);
      if (ready <= 0) {
        ares_process_fd(channel_, ARES_SOCKET_BAD, ARES_SOCKET_BAD);
        continue;
      }
      for (const pollfd& p : fds) {
        if (p.revents == 0) continue;
        ares_process_fd(
            channel_,
            (p.revents & (POLLIN | POLLERR | POLLHUP)) ? p.fd : ARES_SOCKET_BAD,
            (p.revents & POLLOUT) ? p.fd : ARES_SOCKET_BAD);
      }
    }
  }

  Lookup Resolve(const std::string& name, int family = AF_INET) {
    Lookup lookup;
    StartLookup(name, family, &lookup);
    Run();
    EXPECT_TRUE(lookup.done) << name;
    return lookup;
  }

  Lookup Query(const std::string& name, int type) {
    Lookup lookup;
    StartQuery(name, type, &lookup);
    Run();
    EXPECT_TRUE(lookup.done) << name;
    return lookup;
  }

  // Every connect() aimed anywhere but the server.
  const std::vector<std::string>& foreign_connects() const {
    return foreign_connects_;
  }

 private:
  struct Pending {
    Resolver* resolver;
    Lookup* lookup;
  };

  static void OnAddrInfo(void* arg, int status, int /*timeouts*/,
                         ares_addrinfo* result) {
    std::unique_ptr<Pending> pending(static_cast<Pending*>(arg));
    Lookup& lookup = *pending->lookup;
    lookup.status = status;
    if (result != nullptr) {
      for (ares_addrinfo_node* node = result->nodes; node != nullptr;
           node = node->ai_next) {
        char text[INET6_ADDRSTRLEN] = {};
        const void* address =
            node->ai_family == AF_INET
                ? static_cast<const void*>(
                      &reinterpret_cast<sockaddr_in*>(node->ai_addr)->sin_addr)
                : static_cast<const void*>(
                      &reinterpret_cast<sockaddr_in6*>(node->ai_addr)
                           ->sin6_addr);
        inet_ntop(node->ai_family, address, text, sizeof(text));
        lookup.addresses.push_back(text);
      }
      for (ares_addrinfo_cname* cname = result->cnames; cname != nullptr;
           cname = cname->next) {
        lookup.cnames.push_back(absl::StrCat(cname->alias, ">", cname->name));
      }
      ares_freeaddrinfo(result);
    }
    lookup.finished = absl::Now();
    lookup.done = true;
    --pending->resolver->pending_;
  }

  static void OnQuery(void* arg, int status, int /*timeouts*/,
                      unsigned char* answer, int length) {
    std::unique_ptr<Pending> pending(static_cast<Pending*>(arg));
    Lookup& lookup = *pending->lookup;
    lookup.status = status;
    if (answer != nullptr && length > 0) {
      lookup.answer.assign(reinterpret_cast<char*>(answer),
                           static_cast<size_t>(length));
      if (std::optional<WireResponse> parsed = ParseResponse(lookup.answer)) {
        for (const WireRecord& record : parsed->answers) {
          if (!record.data.empty() && record.type != DnsServer::kTypeCname) {
            lookup.addresses.push_back(record.data);
          }
        }
      }
    }
    lookup.finished = absl::Now();
    lookup.done = true;
    --pending->resolver->pending_;
  }

  static void OnSocketState(void* data, ares_socket_t fd, int readable,
                            int writable) {
    auto* self = static_cast<Resolver*>(data);
    if (!readable && !writable) {
      self->sockets_.erase(fd);
      return;
    }
    self->sockets_[fd] =
        static_cast<short>((readable ? POLLIN : 0) | (writable ? POLLOUT : 0));
  }

  // c-ares sets no socket options when it is given these: non-blocking
  // and the receive buffer are ours to set.
  static ares_socket_t Socket(int domain, int type, int protocol, void*) {
    const int fd =
        socket(domain, type | SOCK_NONBLOCK | SOCK_CLOEXEC, protocol);
    if (fd >= 0 && type == SOCK_DGRAM) {
      // Room for the answers to thousands of queries sent at once.
      const int buffer = 4 << 20;
      setsockopt(fd, SOL_SOCKET, SO_RCVBUF, &buffer, sizeof(buffer));
    }
    return fd;
  }
  static int Close(ares_socket_t fd, void*) { return close(fd); }
  static int Connect(ares_socket_t fd, const sockaddr* address,
                     ares_socklen_t length, void* data) {
    auto* self = static_cast<Resolver*>(data);
    if (!self->IsServer(address)) {
      char text[INET6_ADDRSTRLEN] = "?";
      if (address->sa_family == AF_INET) {
        inet_ntop(AF_INET,
                  &reinterpret_cast<const sockaddr_in*>(address)->sin_addr,
                  text, sizeof(text));
      } else if (address->sa_family == AF_INET6) {
        inet_ntop(AF_INET6,
                  &reinterpret_cast<const sockaddr_in6*>(address)->sin6_addr,
                  text, sizeof(text));
      }
      self->foreign_connects_.push_back(text);
      errno = ECONNREFUSED;
      return -1;
    }
    return connect(fd, address, length);
  }
  static ares_ssize_t ReceiveFrom(ares_socket_t fd, void* buffer, size_t length,
                                  int flags, sockaddr* from,
                                  ares_socklen_t* from_length, void*) {
    return recvfrom(fd, buffer, length, flags, from, from_length);
  }
  static ares_ssize_t SendVector(ares_socket_t fd, const iovec* vector,
                                 int count, void*) {
    msghdr message{};
    message.msg_iov = const_cast<iovec*>(vector);
    message.msg_iovlen = static_cast<size_t>(count);
    return sendmsg(fd, &message, MSG_NOSIGNAL);
  }
  static constexpr ares_socket_functions kSocketFunctions = {
      &Socket, &Close, &Connect, &ReceiveFrom, &SendVector};

  bool IsServer(const sockaddr* address) const {
    if (address->sa_family == AF_INET && !server_v6_) {
      const auto* in = reinterpret_cast<const sockaddr_in*>(address);
      return ntohl(in->sin_addr.s_addr) == INADDR_LOOPBACK &&
             ntohs(in->sin_port) == server_port_;
    }
    if (address->sa_family == AF_INET6 && server_v6_) {
      const auto* in6 = reinterpret_cast<const sockaddr_in6*>(address);
      return IN6_IS_ADDR_LOOPBACK(&in6->sin6_addr) &&
             ntohs(in6->sin6_port) == server_port_;
    }
    return false;
  }

  ares_channel channel_ = nullptr;
  int server_port_ = 0;
  bool server_v6_ = false;
  int pending_ = 0;
  absl::flat_hash_map<int, short> sockets_;
  std::vector<std::string> foreign_connects_;
};

class AresEnvironment : public ::testing::Environment {
 public:
  void SetUp() override { ASSERT_EQ(ares_library_init(ARES_LIB_INIT_ALL), 0); }
  void TearDown() override { ares_library_cleanup(); }
};
[[maybe_unused]] const auto* const kAresEnvironment =
    ::testing::AddGlobalTestEnvironment(new AresEnvironment);

// ---------------------------------------------------------------------------

class DnsServerTest : public ::testing::Test {
 protected:
  void SetUp() override {
    absl::StatusOr<std::unique_ptr<DnsServer>> started = DnsServer::Start();
    ASSERT_TRUE(started.ok()) << started.status();
    dns_ = *std::move(started);
  }

  // A resolver whose every connect() went to the server, checked at the end
  // of each test.
  Resolver& resolver(ResolverOptions options = {}) {
    resolvers_.push_back(std::make_unique<Resolver>(*dns_, options));
    return *resolvers_.back();
  }

  void TearDown() override {
    for (const auto& resolver : resolvers_) {
      EXPECT_THAT(resolver->foreign_connects(), IsEmpty());
    }
  }

  std::unique_ptr<DnsServer> dns_;
  std::vector<std::unique_ptr<Resolver>> resolvers_;
};

TEST_F(DnsServerTest, ListensOnLoopbackWithUdpAndTcpOnOnePort) {
  EXPECT_GT(dns_->port(), 0);
  EXPECT_EQ(dns_->address(), absl::StrCat("127.0.0.1:", dns_->port()));
  dns_->AddA("one.test", "10.0.0.1");
  UdpClient udp(*dns_);
  TcpClient tcp(*dns_);
  tcp.SendRaw(TcpClient::Frame(MakeQuery(7, "one.test", kA)));
  std::optional<WireResponse> over_udp = udp.Ask(MakeQuery(8, "one.test", kA));
  std::optional<WireResponse> over_tcp = tcp.ReceiveResponse();
  ASSERT_TRUE(over_udp.has_value());
  ASSERT_TRUE(over_tcp.has_value());
  EXPECT_THAT(over_udp->AnswerData(), ElementsAre("10.0.0.1"));
  EXPECT_THAT(over_tcp->AnswerData(), ElementsAre("10.0.0.1"));
  EXPECT_EQ(dns_->QueryCount(), 2);
  EXPECT_EQ(dns_->TcpQueryCount(), 1);
}

TEST_F(DnsServerTest, AnswersAThroughCares) {
  dns_->AddA("api.test", "10.1.2.3");
  const Lookup lookup = resolver().Resolve("api.test", AF_INET);
  EXPECT_EQ(lookup.status, ARES_SUCCESS) << ares_strerror(lookup.status);
  EXPECT_THAT(lookup.addresses, ElementsAre("10.1.2.3"));
  // Nothing else was asked: no search domains, no other server.
  EXPECT_EQ(dns_->QueryCount("api.test", kA), 1);
  EXPECT_EQ(dns_->QueryCount(), 1);
}

TEST_F(DnsServerTest, ResolverGuardStopsQueriesToAnyOtherAddress) {
  dns_->AddA("api.test", "10.1.2.3");
  ResolverOptions options;
  options.servers_csv = absl::StrCat("127.0.0.2:", dns_->port());
  options.tries = 1;
  Resolver stray(*dns_, options);
  const Lookup lookup = stray.Resolve("api.test");
  EXPECT_EQ(lookup.status, ARES_ECONNREFUSED) << ares_strerror(lookup.status);
  EXPECT_THAT(stray.foreign_connects(), ElementsAre("127.0.0.2"));
  EXPECT_EQ(dns_->QueryCount(), 0);
}

TEST_F(DnsServerTest, AnswersAaaaThroughCares) {
  dns_->AddAaaa("v6.test", "fd00::42");
  const Lookup lookup = resolver().Resolve("v6.test", AF_INET6);
  EXPECT_EQ(lookup.status, ARES_SUCCESS) << ares_strerror(lookup.status);
  EXPECT_THAT(lookup.addresses, ElementsAre("fd00::42"));
  EXPECT_EQ(dns_->QueryCount("v6.test", kAaaa), 1);
  EXPECT_EQ(dns_->QueryCount(), 1);
}

TEST_F(DnsServerTest, AnswersSeveralAddressesInTheOrderAdded) {
  dns_->AddA("multi.test", "10.0.0.3");
  dns_->AddA("multi.test", "10.0.0.1");
  dns_->AddA("multi.test", "10.0.0.2");
  dns_->AddAaaa("multi.test", "fd00::2");
  dns_->AddAaaa("multi.test", "fd00::1");
  Resolver& cares = resolver();
  EXPECT_THAT(cares.Resolve("multi.test", AF_INET).addresses,
              ElementsAre("10.0.0.3", "10.0.0.1", "10.0.0.2"));
  EXPECT_THAT(cares.Resolve("multi.test", AF_INET6).addresses,
              ElementsAre("fd00::2", "fd00::1"));
  const Lookup both = cares.Resolve("multi.test", AF_UNSPEC);
  EXPECT_EQ(both.status, ARES_SUCCESS);
  EXPECT_THAT(both.addresses,
              UnorderedElementsAre("10.0.0.3", "10.0.0.1", "10.0.0.2",
                                   "fd00::2", "fd00::1"));
  EXPECT_EQ(dns_->QueryCount("multi.test", kA), 2);
  EXPECT_EQ(dns_->QueryCount("multi.test", kAaaa), 2);
}

TEST_F(DnsServerTest, HeaderAndQuestionAreThoseOfTheQuery) {
  dns_->AddA("Mixed.Case.test", "10.0.0.9", /*ttl=*/123);
  UdpClient udp(*dns_);
  std::optional<WireResponse> response =
      udp.Ask(MakeQuery(0xBEEF, "mIxEd.CASE.test", kA));
  ASSERT_TRUE(response.has_value());
  EXPECT_EQ(response->id, 0xBEEF);
  EXPECT_TRUE(response->qr());
  EXPECT_TRUE(response->aa());
  EXPECT_TRUE(response->rd());  // copied from the query
  EXPECT_TRUE(response->ra());
  EXPECT_FALSE(response->tc());
  EXPECT_EQ(response->rcode(), DnsServer::kNoError);
  EXPECT_EQ(response->qdcount, 1);
  EXPECT_EQ(response->question, "mIxEd.CASE.test");  // echoed as sent
  EXPECT_EQ(response->qtype, kA);
  ASSERT_THAT(response->answers, SizeIs(1));
  EXPECT_EQ(response->answers[0].name, "mIxEd.CASE.test");  // a pointer to it
  EXPECT_EQ(response->answers[0].ttl, 123);
  EXPECT_EQ(response->answers[0].data, "10.0.0.9");
  EXPECT_EQ(dns_->QueryCount("MIXED.case.test.", kA), 1);
}

TEST_F(DnsServerTest, FollowsACnameChain) {
  dns_->AddCname("www.test", "edge.test");
  dns_->AddCname("edge.test", "origin.test");
  dns_->AddA("origin.test", "10.0.0.7");
  dns_->AddA("www.test", "10.6.6.6");  // hidden by the CNAME
  const Lookup lookup = resolver().Resolve("www.test", AF_INET);
  EXPECT_EQ(lookup.status, ARES_SUCCESS) << ares_strerror(lookup.status);
  EXPECT_THAT(lookup.addresses, ElementsAre("10.0.0.7"));
  EXPECT_THAT(lookup.cnames,
              ElementsAre("www.test>edge.test", "edge.test>origin.test"));
  // One query: the chain comes in the answer, as from a real server.
  EXPECT_EQ(dns_->QueryCount(), 1);

  UdpClient udp(*dns_);
  std::optional<WireResponse> response = udp.Ask(MakeQuery(1, "www.test", kA));
  ASSERT_TRUE(response.has_value());
  ASSERT_THAT(response->answers, SizeIs(3));
  EXPECT_EQ(response->answers[0].name, "www.test");
  EXPECT_EQ(response->answers[0].type, DnsServer::kTypeCname);
  EXPECT_EQ(response->answers[0].data, "edge.test");
  EXPECT_EQ(response->answers[1].name, "edge.test");
  EXPECT_EQ(response->answers[1].data, "origin.test");
  EXPECT_EQ(response->answers[2].name, "origin.test");
  EXPECT_EQ(response->answers[2].data, "10.0.0.7");

  // Asked for the CNAME itself: just the first link.
  response = udp.Ask(MakeQuery(2, "www.test", DnsServer::kTypeCname));
  ASSERT_TRUE(response.has_value());
  ASSERT_THAT(response->answers, SizeIs(1));
  EXPECT_EQ(response->answers[0].data, "edge.test");
}

TEST_F(DnsServerTest, CnameToNowhereIsNxdomainWithTheChainAndLoopIsServfail) {
  dns_->AddCname("dangling.test", "gone.test");
  dns_->AddCname("ping.test", "pong.test");
  dns_->AddCname("pong.test", "ping.test");
  UdpClient udp(*dns_);
  std::optional<WireResponse> response =
      udp.Ask(MakeQuery(1, "dangling.test", kA));
  ASSERT_TRUE(response.has_value());
  EXPECT_EQ(response->rcode(), DnsServer::kNxDomain);
  ASSERT_THAT(response->answers, SizeIs(1));
  EXPECT_EQ(response->answers[0].data, "gone.test");

  response = udp.Ask(MakeQuery(2, "ping.test", kA));
  ASSERT_TRUE(response.has_value());
  EXPECT_EQ(response->rcode(), DnsServer::kServFail);
  EXPECT_THAT(response->answers, IsEmpty());
}

TEST_F(DnsServerTest, WildcardAnswersEveryNameUnderItsSuffix) {
  dns_->AddWildcardA("bulk.test", "10.9.9.9");
  dns_->AddWildcardA("*.deep.bulk.test", "10.8.8.8");  // longer suffix wins
  dns_->AddA("own.bulk.test", "10.1.1.1");             // own records win
  Resolver& cares = resolver();
  EXPECT_THAT(cares.Resolve("a.bulk.test").addresses, ElementsAre("10.9.9.9"));
  EXPECT_THAT(cares.Resolve("H00042.Bulk.Test").addresses,
              ElementsAre("10.9.9.9"));
  EXPECT_THAT(cares.Resolve("x.y.bulk.test").addresses,
              ElementsAre("10.9.9.9"));
  EXPECT_THAT(cares.Resolve("x.deep.bulk.test").addresses,
              ElementsAre("10.8.8.8"));
  EXPECT_THAT(cares.Resolve("own.bulk.test").addresses,
              ElementsAre("10.1.1.1"));
  EXPECT_EQ(cares.Resolve("bulk.test").status, ARES_ENOTFOUND);
  EXPECT_EQ(cares.Resolve("a.bulk.test", AF_INET6).status, ARES_ENODATA);
}

TEST_F(DnsServerTest, AbsentNameIsNxdomainWithAnSoa) {
  const Lookup lookup = resolver().Resolve("nowhere.test");
  EXPECT_EQ(lookup.status, ARES_ENOTFOUND) << ares_strerror(lookup.status);
  EXPECT_EQ(dns_->QueryCount("nowhere.test"), 1);

  UdpClient udp(*dns_);
  std::optional<WireResponse> response =
      udp.Ask(MakeQuery(1, "nowhere.test", kA));
  ASSERT_TRUE(response.has_value());
  EXPECT_EQ(response->rcode(), DnsServer::kNxDomain);
  EXPECT_THAT(response->answers, IsEmpty());
  ASSERT_THAT(response->authority, SizeIs(1));
  EXPECT_EQ(response->authority[0].type, DnsServer::kTypeSoa);
  EXPECT_EQ(response->authority[0].name, "test");
}

TEST_F(DnsServerTest, NameWithoutRecordsOfTheTypeIsNodata) {
  dns_->AddAaaa("only6.test", "fd00::6");
  const Lookup lookup = resolver().Resolve("only6.test", AF_INET);
  EXPECT_EQ(lookup.status, ARES_ENODATA) << ares_strerror(lookup.status);

  UdpClient udp(*dns_);
  for (const int type : {kA, 15 /* MX */, 16 /* TXT */}) {
    std::optional<WireResponse> response =
        udp.Ask(MakeQuery(1, "only6.test", static_cast<uint16_t>(type)));
    ASSERT_TRUE(response.has_value());
    EXPECT_EQ(response->rcode(), DnsServer::kNoError) << type;
    EXPECT_THAT(response->answers, IsEmpty()) << type;
    ASSERT_THAT(response->authority, SizeIs(1)) << type;
    EXPECT_EQ(response->authority[0].type, DnsServer::kTypeSoa);
  }
  // ANY is not implemented; another class is refused.
  std::optional<WireResponse> any =
      udp.Ask(MakeQuery(2, "only6.test", DnsServer::kTypeAny));
  ASSERT_TRUE(any.has_value());
  EXPECT_EQ(any->rcode(), DnsServer::kNotImp);
  std::string chaos = MakeQuery(3, "only6.test", kAaaa);
  chaos[chaos.size() - 1] = 3;  // QCLASS CH
  std::optional<WireResponse> refused = udp.Ask(chaos);
  ASSERT_TRUE(refused.has_value());
  EXPECT_EQ(refused->rcode(), DnsServer::kRefused);
}

TEST_F(DnsServerTest, ServfailAndRefusedReachCaresAsTheirStatus) {
  dns_->AddA("broken.test", "10.0.0.1");  // the rcode wins over records
  dns_->SetRcode("broken.test", DnsServer::kServFail);
  dns_->SetRcode("closed.test", DnsServer::kRefused);
  dns_->SetRcode("absent.test", DnsServer::kNxDomain);
  Resolver& cares = resolver();
  EXPECT_EQ(cares.Query("broken.test", kA).status, ARES_ESERVFAIL);
  EXPECT_EQ(cares.Resolve("broken.test").status, ARES_ESERVFAIL);
  EXPECT_EQ(cares.Query("closed.test", kA).status, ARES_EREFUSED);
  EXPECT_EQ(cares.Resolve("closed.test").status, ARES_EREFUSED);
  EXPECT_EQ(cares.Resolve("absent.test").status, ARES_ENOTFOUND);
  // One query each: NOCHECKRESP hands the rcode over without retrying.
  EXPECT_EQ(dns_->QueryCount("broken.test"), 2);
  EXPECT_EQ(dns_->QueryCount("closed.test"), 2);

  dns_->SetRcode("broken.test", DnsServer::kNoError);
  EXPECT_THAT(cares.Resolve("broken.test").addresses, ElementsAre("10.0.0.1"));
}

// What the engine's resolver must know: without ARES_FLAG_NOCHECKRESP,
// c-ares 1.18 takes SERVFAIL as a broken server, asks again `tries` times,
// then reports ARES_ECONNREFUSED.
TEST_F(DnsServerTest, WithoutNocheckrespCaresRetriesServfail) {
  dns_->SetRcode("broken.test", DnsServer::kServFail);
  ResolverOptions options;
  options.tries = 3;
  options.pass_error_rcodes = false;
  const Lookup lookup = resolver(options).Query("broken.test", kA);
  EXPECT_EQ(lookup.status, ARES_ECONNREFUSED) << ares_strerror(lookup.status);
  EXPECT_EQ(dns_->QueryCount("broken.test", kA), 3);
}

TEST_F(DnsServerTest, DroppedNameTimesOut) {
  dns_->AddA("blackhole.test", "10.0.0.1");
  dns_->SetDrop("blackhole.test");
  ResolverOptions options;
  options.timeout = absl::Milliseconds(300);
  options.tries = 1;
  const Lookup lookup = resolver(options).Resolve("blackhole.test");
  EXPECT_EQ(lookup.status, ARES_ETIMEOUT) << ares_strerror(lookup.status);
  EXPECT_EQ(dns_->QueryCount("blackhole.test", kA), 1);

  dns_->SetDrop("blackhole.test", false);
  EXPECT_THAT(resolver().Resolve("blackhole.test").addresses,
              ElementsAre("10.0.0.1"));
}

TEST_F(DnsServerTest, DelayedAnswerDoesNotHoldUpOthers) {
  constexpr absl::Duration kDelay = absl::Milliseconds(1500);
  dns_->AddA("slow.test", "10.0.0.1");
  dns_->AddA("fast.test", "10.0.0.2");
  dns_->SetDelay("slow.test", kDelay);
  ResolverOptions options;
  options.timeout = absl::Seconds(10);  // longer than the delay: no resend
  options.tries = 1;
  Resolver& cares = resolver(options);
  Lookup slow;
  Lookup fast;
  cares.StartLookup("slow.test", AF_INET, &slow);
  ASSERT_TRUE(dns_->WaitForQueries(1, absl::Seconds(10), "slow.test"));
  cares.StartLookup("fast.test", AF_INET, &fast);
  cares.Run(absl::Seconds(30), [&] { return fast.done; });
  ASSERT_TRUE(fast.done);
  EXPECT_FALSE(slow.done);  // still held by the server
  EXPECT_THAT(fast.addresses, ElementsAre("10.0.0.2"));
  cares.Run();
  ASSERT_TRUE(slow.done);
  EXPECT_EQ(slow.status, ARES_SUCCESS) << ares_strerror(slow.status);
  EXPECT_THAT(slow.addresses, ElementsAre("10.0.0.1"));
  EXPECT_GE(slow.finished - slow.started, kDelay);
  EXPECT_EQ(dns_->QueryCount("slow.test"), 1);
}

TEST_F(DnsServerTest, DelayedAnswerOnTcpLetsLaterQueriesOvertake) {
  dns_->AddA("slow.test", "10.0.0.1");
  dns_->AddA("fast.test", "10.0.0.2");
  dns_->SetDelay("slow.test", absl::Milliseconds(300));
  TcpClient tcp(*dns_);
  tcp.SendRaw(TcpClient::Frame(MakeQuery(1, "slow.test", kA)) +
              TcpClient::Frame(MakeQuery(2, "fast.test", kA)));
  std::optional<WireResponse> first = tcp.ReceiveResponse();
  std::optional<WireResponse> second = tcp.ReceiveResponse();
  ASSERT_TRUE(first.has_value());
  ASSERT_TRUE(second.has_value());
  EXPECT_EQ(first->id, 2);
  EXPECT_EQ(second->id, 1);
  EXPECT_THAT(second->AnswerData(), ElementsAre("10.0.0.1"));
}

TEST_F(DnsServerTest, TruncatedUdpAnswerMakesCaresRetryOverTcp) {
  dns_->AddA("big.test", "10.0.0.1");
  dns_->AddA("big.test", "10.0.0.2");
  dns_->SetTruncate("big.test");
  const Lookup lookup = resolver().Resolve("big.test");
  EXPECT_EQ(lookup.status, ARES_SUCCESS) << ares_strerror(lookup.status);
  EXPECT_THAT(lookup.addresses, ElementsAre("10.0.0.1", "10.0.0.2"));
  EXPECT_EQ(dns_->QueryCount("big.test", kA), 2);  // UDP, then TCP
  EXPECT_EQ(dns_->TcpQueryCount(), 1);

  UdpClient udp(*dns_);
  std::optional<WireResponse> response = udp.Ask(MakeQuery(1, "big.test", kA));
  ASSERT_TRUE(response.has_value());
  EXPECT_TRUE(response->tc());
  EXPECT_EQ(response->rcode(), DnsServer::kNoError);
  EXPECT_EQ(response->qdcount, 1);
  EXPECT_THAT(response->answers, IsEmpty());
}

TEST_F(DnsServerTest, UdpAnswerLargerThanThePayloadIsTruncated) {
  // 40 A records: 12 + 14 + 40 * 16 = 666 bytes, over 512.
  for (int i = 0; i < 40; ++i) {
    dns_->AddA("many.test", absl::StrCat("10.0.1.", i));
  }
  UdpClient udp(*dns_);
  std::optional<WireResponse> plain = udp.Ask(MakeQuery(1, "many.test", kA));
  ASSERT_TRUE(plain.has_value());
  EXPECT_TRUE(plain->tc());
  EXPECT_THAT(plain->answers, IsEmpty());

  QueryOptions edns;
  edns.edns = true;
  edns.edns_payload = 4096;  // more than the server sends: it keeps to 1232
  std::optional<WireResponse> large =
      udp.Ask(MakeQuery(2, "many.test", kA, edns));
  ASSERT_TRUE(large.has_value());
  EXPECT_FALSE(large->tc());
  EXPECT_THAT(large->answers, SizeIs(40));

  const Lookup lookup = resolver().Resolve("many.test");
  EXPECT_EQ(lookup.status, ARES_SUCCESS) << ares_strerror(lookup.status);
  EXPECT_THAT(lookup.addresses, SizeIs(40));
  EXPECT_EQ(dns_->TcpQueryCount(), 1);
}

TEST_F(DnsServerTest, SequenceChangesTheAnswerBetweenLookups) {
  dns_->SetSequence("rebind.test", {{"10.0.0.1"}, {"127.0.0.1"}});
  Resolver& cares = resolver();
  EXPECT_THAT(cares.Resolve("rebind.test").addresses, ElementsAre("10.0.0.1"));
  EXPECT_THAT(cares.Resolve("rebind.test").addresses, ElementsAre("127.0.0.1"));
  EXPECT_THAT(cares.Resolve("rebind.test").addresses,
              ElementsAre("127.0.0.1"));  // the last step stays

  // A and AAAA are counted apart: a lookup of both families takes one step.
  dns_->SetSequence("dual.test",
                    {{"10.0.0.1", "fd00::1"}, {"127.0.0.1", "::1"}});
  EXPECT_THAT(cares.Resolve("dual.test", AF_UNSPEC).addresses,
              UnorderedElementsAre("10.0.0.1", "fd00::1"));
  EXPECT_THAT(cares.Resolve("dual.test", AF_UNSPEC).addresses,
              UnorderedElementsAre("127.0.0.1", "::1"));

  // TTL 0, so no cache keeps a step.
  UdpClient udp(*dns_);
  std::optional<WireResponse> response =
      udp.Ask(MakeQuery(1, "rebind.test", kA));
  ASSERT_TRUE(response.has_value());
  ASSERT_THAT(response->answers, SizeIs(1));
  EXPECT_EQ(response->answers[0].ttl, 0);
}

TEST_F(DnsServerTest, AcceptsEdns0AndEchoesAnOptRecord) {
  dns_->AddA("edns.test", "10.0.0.5");
  QueryOptions edns;
  edns.edns = true;
  UdpClient udp(*dns_);
  std::optional<WireResponse> response =
      udp.Ask(MakeQuery(1, "edns.test", kA, edns));
  ASSERT_TRUE(response.has_value());
  EXPECT_EQ(response->rcode(), DnsServer::kNoError);
  EXPECT_THAT(response->AnswerData(), ElementsAre("10.0.0.5"));
  ASSERT_THAT(response->additional, SizeIs(1));
  EXPECT_EQ(response->additional[0].type, DnsServer::kTypeOpt);
  EXPECT_EQ(response->additional[0].name, "");

  // c-ares with EDNS on: one query, no fallback to plain DNS (a FORMERR
  // would have made it ask again without the OPT record).
  ResolverOptions options;
  options.extra_flags = ARES_FLAG_EDNS;
  const Lookup lookup = resolver(options).Resolve("edns.test");
  EXPECT_EQ(lookup.status, ARES_SUCCESS) << ares_strerror(lookup.status);
  EXPECT_THAT(lookup.addresses, ElementsAre("10.0.0.5"));
  EXPECT_EQ(dns_->QueryCount("edns.test"), 2);
  EXPECT_EQ(dns_->MalformedCount(), 0);
}

TEST_F(DnsServerTest, MalformedQueriesAreIgnoredOrFormerrAndServingGoesOn) {
  dns_->AddA("ok.test", "10.0.0.1");
  const std::string question = EncodeName("ok.test") + U16(kA) + U16(1);
  const std::string too_long_name = [] {
    std::string name;
    for (int i = 0; i < 5; ++i)
      name += std::string(1, 63) + std::string(63, 'x');
    return name + '\0';
  }() + U16(kA) + U16(1);
  struct Case {
    std::string name;
    std::string bytes;
    int rcode;  // -1: no answer
  };
  const std::vector<Case> cases = {
      {"empty", "", -1},
      {"short header", "\x12\x34\x01", -1},
      {"a response", Header(10, 0x8180, 1, 0, 0, 0) + question, -1},
      {"no question", Header(11, 0x0100, 0, 0, 0, 0), DnsServer::kFormErr},
      {"two questions", Header(12, 0x0100, 2, 0, 0, 0) + question + question,
       DnsServer::kFormErr},
      {"pointer in question",
       Header(13, 0x0100, 1, 0, 0, 0) + std::string("\xC0\x0C", 2) + U16(kA) +
           U16(1),
       DnsServer::kFormErr},
      {"label past the end", Header(14, 0x0100, 1, 0, 0, 0) + "\x3Fshort",
       DnsServer::kFormErr},
      {"no type and class",
       Header(15, 0x0100, 1, 0, 0, 0) + EncodeName("ok.test"),
       DnsServer::kFormErr},
      {"name over 255 bytes", Header(16, 0x0100, 1, 0, 0, 0) + too_long_name,
       DnsServer::kFormErr},
      {"answers announced, none sent",
       Header(17, 0x0100, 1, 5, 0, 0) + question, DnsServer::kFormErr},
      {"two OPT records",
       Header(18, 0x0100, 1, 0, 0, 2) + question + OptRecord(1232) +
           OptRecord(1232),
       DnsServer::kFormErr},
      {"opcode STATUS", Header(19, 0x1100, 1, 0, 0, 0) + question,
       DnsServer::kNotImp},
  };
  UdpClient udp(*dns_);
  uint16_t id = 1000;
  for (const Case& c : cases) {
    SCOPED_TRACE(c.name);
    // The valid query after the bad one proves the server answered the bad
    // one (or not) first: one socket, one thread, in order.
    udp.Send(c.bytes);
    udp.Send(MakeQuery(++id, "ok.test", kA));
    std::optional<std::string> first = udp.Receive();
    ASSERT_TRUE(first.has_value());
    std::optional<WireResponse> response = ParseResponse(*first);
    ASSERT_TRUE(response.has_value());
    if (c.rcode >= 0) {
      EXPECT_EQ(response->id, Read16(c.bytes, 0));
      EXPECT_EQ(response->rcode(), c.rcode);
      EXPECT_EQ(response->qdcount, 0);
      response = ParseResponse(udp.Receive().value_or(""));
      ASSERT_TRUE(response.has_value());
    }
    EXPECT_EQ(response->id, id);
    EXPECT_THAT(response->AnswerData(), ElementsAre("10.0.0.1"));
  }
  EXPECT_EQ(dns_->MalformedCount(), cases.size());
  EXPECT_EQ(dns_->QueryCount(), cases.size());  // only the valid ones
}

TEST_F(DnsServerTest, SurvivesRandomDatagramsAndTcpGarbage) {
  dns_->AddA("ok.test", "10.0.0.1");
  std::mt19937 random(20240601);
  UdpClient udp(*dns_);
  constexpr int kDatagrams = 2000;
  for (int i = 0; i < kDatagrams; ++i) {
    std::string bytes(random() % 120, '\0');
    for (char& byte : bytes) byte = static_cast<char>(random());
    if (i % 2 == 0 && bytes.size() >= 12) {
      bytes[2] &= 0x07;  // a query header (QR 0, opcode 0), garbage after
      bytes[4] = 0;
      bytes[5] = 1;
    }
    udp.Send(bytes);
  }
  udp.Send(MakeQuery(0xABCD, "ok.test", kA));
  // Skip the FORMERRs; the valid query's answer comes last.
  std::optional<WireResponse> response;
  do {
    std::optional<std::string> reply = udp.Receive();
    ASSERT_TRUE(reply.has_value());
    response = ParseResponse(*reply);
    ASSERT_TRUE(response.has_value());
  } while (response->id != 0xABCD || response->rcode() != 0);
  EXPECT_THAT(response->AnswerData(), ElementsAre("10.0.0.1"));
  EXPECT_EQ(dns_->MalformedCount() + dns_->QueryCount(), kDatagrams + 1);

  // TCP: a garbage message gets FORMERR and the connection goes on; a
  // client that leaves mid-message costs nothing.
  {
    TcpClient half(*dns_);
    half.SendRaw(std::string("\x00\x40garbage", 9));
  }
  TcpClient tcp(*dns_);
  tcp.SendRaw(TcpClient::Frame("\x01\x02\x03\x04\x05\x06\x07\x08\x09\x0A\x0B"
                               "\x0C\x0D\x0E\x0F") +
              TcpClient::Frame(""));
  std::optional<WireResponse> formerr = tcp.ReceiveResponse();
  ASSERT_TRUE(formerr.has_value());
  EXPECT_EQ(formerr->id, 0x0102);
  EXPECT_EQ(formerr->rcode(), DnsServer::kFormErr);
  tcp.SendRaw(TcpClient::Frame(MakeQuery(5, "ok.test", kA)));
  std::optional<WireResponse> answer = tcp.ReceiveResponse();
  ASSERT_TRUE(answer.has_value());
  EXPECT_EQ(answer->id, 5);
  EXPECT_THAT(answer->AnswerData(), ElementsAre("10.0.0.1"));
}

TEST_F(DnsServerTest, TcpCarriesSeveralQueriesPerConnectionInAnySplit) {
  dns_->AddA("a.test", "10.0.0.1");
  dns_->AddAaaa("a.test", "fd00::1");
  TcpClient tcp(*dns_);
  // Three in one write.
  tcp.SendRaw(TcpClient::Frame(MakeQuery(1, "a.test", kA)) +
              TcpClient::Frame(MakeQuery(2, "a.test", kAaaa)) +
              TcpClient::Frame(MakeQuery(3, "b.test", kA)));
  for (const int id : {1, 2, 3}) {
    std::optional<WireResponse> response = tcp.ReceiveResponse();
    ASSERT_TRUE(response.has_value());
    EXPECT_EQ(response->id, id);
    EXPECT_EQ(response->rcode(),
              id == 3 ? DnsServer::kNxDomain : DnsServer::kNoError);
  }
  // One byte per write.
  const std::string framed = TcpClient::Frame(MakeQuery(4, "a.test", kA));
  for (const char byte : framed) tcp.SendRaw(std::string(1, byte));
  std::optional<WireResponse> response = tcp.ReceiveResponse();
  ASSERT_TRUE(response.has_value());
  EXPECT_EQ(response->id, 4);
  EXPECT_THAT(response->AnswerData(), ElementsAre("10.0.0.1"));
  EXPECT_EQ(dns_->TcpQueryCount(), 4);

  // The server closes its connections when it stops.
  dns_.reset();
  EXPECT_TRUE(tcp.WaitForEof(absl::Seconds(5)));
}

TEST_F(DnsServerTest, ClearEmptiesTheTableAndResetCountsTheCounts) {
  dns_->AddA("a.test", "10.0.0.1");
  dns_->AddWildcardA("w.test", "10.0.0.2");
  dns_->SetDrop("d.test");
  Resolver& cares = resolver();
  EXPECT_EQ(cares.Resolve("a.test").status, ARES_SUCCESS);
  dns_->Clear();
  EXPECT_EQ(cares.Resolve("a.test").status, ARES_ENOTFOUND);
  EXPECT_EQ(cares.Resolve("x.w.test").status, ARES_ENOTFOUND);
  EXPECT_EQ(cares.Resolve("d.test").status, ARES_ENOTFOUND);  // not dropped
  EXPECT_EQ(dns_->QueryCount(), 4);
  dns_->ResetCounts();
  EXPECT_EQ(dns_->QueryCount(), 0);
  EXPECT_EQ(dns_->QueryCount("a.test"), 0);
}

TEST_F(DnsServerTest, WaitForQueriesWaitsForTheCount) {
  dns_->SetDrop("quiet.test");
  EXPECT_FALSE(dns_->WaitForQueries(1, absl::Milliseconds(10)));
  UdpClient udp(*dns_);
  std::thread sender([&] {
    udp.Send(MakeQuery(1, "other.test", kA));
    udp.Send(MakeQuery(2, "quiet.test", kA));
  });
  EXPECT_TRUE(dns_->WaitForQueries(1, absl::Seconds(10), "quiet.test", kA));
  EXPECT_TRUE(dns_->WaitForQueries(2, absl::Seconds(10)));
  EXPECT_FALSE(
      dns_->WaitForQueries(1, absl::Milliseconds(10), "quiet.test", kAaaa));
  sender.join();
}

// The load the engine will put on it: 10,000 distinct names at once.
TEST_F(DnsServerTest, ResolvesTenThousandWildcardNamesConcurrently) {
  constexpr int kNames = 10000;
  dns_->AddWildcardA("bulk.test", "10.77.0.1");
  ResolverOptions options;
  options.timeout = absl::Seconds(2);
  options.tries = 4;
  Resolver& cares = resolver(options);
  std::vector<Lookup> lookups(kNames);
  const absl::Time start = absl::Now();
  for (int i = 0; i < kNames; ++i) {
    cares.StartLookup(absl::StrFormat("h%05d.bulk.test", i), AF_INET,
                      &lookups[i]);
  }
  cares.Run(absl::Seconds(30));
  const absl::Duration elapsed = absl::Now() - start;
  int answered = 0;
  for (int i = 0; i < kNames; ++i) {
    if (lookups[i].done && lookups[i].status == ARES_SUCCESS &&
        lookups[i].addresses == std::vector<std::string>{"10.77.0.1"}) {
      ++answered;
    }
  }
  EXPECT_EQ(answered, kNames);
  EXPECT_LT(elapsed, absl::Seconds(30));
  EXPECT_GE(dns_->QueryCount("", kA), kNames);
  EXPECT_GE(dns_->QueryCount("h00000.bulk.test", kA), 1);
  EXPECT_GE(dns_->QueryCount("h09999.bulk.test", kA), 1);
  std::printf("10000 names: %s, %llu queries (%llu resent)\n",
              absl::FormatDuration(elapsed).c_str(),
              static_cast<unsigned long long>(dns_->QueryCount()),
              static_cast<unsigned long long>(dns_->QueryCount() - kNames));
}

TEST(DnsServerStartTest, ServesOnIpv6Loopback) {
  DnsServer::Options options;
  options.address = "::1";
  absl::StatusOr<std::unique_ptr<DnsServer>> dns = DnsServer::Start(options);
  ASSERT_TRUE(dns.ok()) << dns.status();
  EXPECT_EQ((*dns)->address(), absl::StrCat("[::1]:", (*dns)->port()));
  (*dns)->AddA("v4.test", "10.0.0.4");
  Resolver cares(**dns);
  const Lookup lookup = cares.Resolve("v4.test");
  EXPECT_EQ(lookup.status, ARES_SUCCESS) << ares_strerror(lookup.status);
  EXPECT_THAT(lookup.addresses, ElementsAre("10.0.0.4"));
  EXPECT_THAT(cares.foreign_connects(), IsEmpty());
  TcpClient tcp(**dns);
  tcp.SendRaw(TcpClient::Frame(MakeQuery(1, "v4.test", kA)));
  std::optional<WireResponse> response = tcp.ReceiveResponse();
  ASSERT_TRUE(response.has_value());
  EXPECT_THAT(response->AnswerData(), ElementsAre("10.0.0.4"));
}

TEST(DnsServerStartTest, RefusesAddressesOffLoopbackAndPortsInUse) {
  DnsServer::Options options;
  options.address = "192.0.2.1";
  EXPECT_EQ(DnsServer::Start(options).status().code(),
            absl::StatusCode::kInvalidArgument);
  options.address = "localhost";
  EXPECT_EQ(DnsServer::Start(options).status().code(),
            absl::StatusCode::kInvalidArgument);

  absl::StatusOr<std::unique_ptr<DnsServer>> first = DnsServer::Start();
  ASSERT_TRUE(first.ok()) << first.status();
  options.address = "127.0.0.1";
  options.port = (*first)->port();
  const absl::Status taken = DnsServer::Start(options).status();
  EXPECT_EQ(taken.code(), absl::StatusCode::kUnavailable) << taken;
}

// ---------------------------------------------------------------------------
// The zone file and the program.

constexpr absl::string_view kZone = R"(# every kind of line
www.zone.test    A     10.0.0.1
www.zone.test    a     10.0.0.2   300   # lower-case type, a TTL
www.zone.test    AAAA  fd00::1
alias.zone.test. CNAME www.zone.test
*.bulk.zone.test A     10.0.0.3

gone.zone.test   A     10.0.0.4
gone.zone.test   RCODE 3
slow.zone.test   A     10.0.0.5
slow.zone.test   DELAY 200ms
dead.zone.test   DROP
big.zone.test    A     10.0.0.6
big.zone.test    TRUNCATE
flip.zone.test   SEQUENCE 10.0.0.7,fd00::7 127.0.0.1
)";

TEST_F(DnsServerTest, LoadsEveryKindOfZoneLine) {
  ASSERT_TRUE(dns_->LoadZone(kZone).ok());
  UdpClient udp(*dns_);
  std::optional<WireResponse> www = udp.Ask(MakeQuery(1, "www.zone.test", kA));
  ASSERT_TRUE(www.has_value());
  EXPECT_THAT(www->AnswerData(), ElementsAre("10.0.0.1", "10.0.0.2"));
  EXPECT_EQ(www->answers[0].ttl, 60);
  EXPECT_EQ(www->answers[1].ttl, 300);

  Resolver& cares = resolver();
  EXPECT_THAT(cares.Resolve("www.zone.test", AF_INET6).addresses,
              ElementsAre("fd00::1"));
  EXPECT_THAT(cares.Resolve("alias.zone.test").addresses,
              ElementsAre("10.0.0.1", "10.0.0.2"));
  EXPECT_THAT(cares.Resolve("x.bulk.zone.test").addresses,
              ElementsAre("10.0.0.3"));
  EXPECT_EQ(cares.Resolve("gone.zone.test").status, ARES_ENOTFOUND);
  const Lookup slow = cares.Resolve("slow.zone.test");
  EXPECT_EQ(slow.status, ARES_SUCCESS);
  EXPECT_GE(slow.finished - slow.started, absl::Milliseconds(200));
  std::optional<WireResponse> big = udp.Ask(MakeQuery(2, "big.zone.test", kA));
  ASSERT_TRUE(big.has_value());
  EXPECT_TRUE(big->tc());
  EXPECT_THAT(cares.Resolve("flip.zone.test", AF_UNSPEC).addresses,
              UnorderedElementsAre("10.0.0.7", "fd00::7"));
  EXPECT_THAT(cares.Resolve("flip.zone.test").addresses,
              ElementsAre("127.0.0.1"));
  udp.Send(MakeQuery(3, "dead.zone.test", kA));
  EXPECT_TRUE(dns_->WaitForQueries(1, absl::Seconds(10), "dead.zone.test"));
  EXPECT_EQ(dns_->MalformedCount(), 0);
}

TEST_F(DnsServerTest, RejectsABadZoneAndAppliesNoneOfIt) {
  struct Case {
    std::string line;
    std::string error;
  };
  const std::vector<Case> cases = {
      {"x.test A 300.1.1.1", "not an IPv4 address"},
      {"x.test AAAA 10.0.0.1", "not an IPv6 address"},
      {"x.test A", "expected an address"},
      {"x.test A 10.0.0.1 soon", "TTL"},
      {"x.test MX mail.test", "unknown type MX"},
      {"x.test", "expected a name and a type"},
      {"*.x.test AAAA ::1", "a wildcard takes only A"},
      {"x.test RCODE 16", "rcode"},
      {"x.test DELAY fast", "duration"},
      {"x.test DROP now", "nothing after"},
      {"x.test SEQUENCE 10.0.0.1,nope", "not an IP address: nope"},
      {"x.test CNAME", "target"},
  };
  for (const Case& c : cases) {
    SCOPED_TRACE(c.line);
    const absl::Status status =
        dns_->LoadZone(absl::StrCat("good.test A 10.0.0.1\n# note\n", c.line));
    EXPECT_EQ(status.code(), absl::StatusCode::kInvalidArgument);
    EXPECT_THAT(std::string(status.message()), HasSubstr("zone line 3"));
    EXPECT_THAT(std::string(status.message()), HasSubstr(c.error));
  }
  // The good first line was never applied.
  UdpClient udp(*dns_);
  std::optional<WireResponse> response = udp.Ask(MakeQuery(1, "good.test", kA));
  ASSERT_TRUE(response.has_value());
  EXPECT_EQ(response->rcode(), DnsServer::kNxDomain);
}

std::string WriteTempFile(absl::string_view contents) {
  static std::atomic<int> counter{0};
  const std::string path = absl::StrCat(::testing::TempDir(), "dns_zone_",
                                        getpid(), "_", counter++, ".txt");
  std::ofstream(path) << contents;
  return path;
}

TEST(DnsServerProgramTest, ServesAZoneFileUntilSignalled) {
  const std::string zone = WriteTempFile(kZone);
  for (const int signal_number : {SIGTERM, SIGINT}) {
    SCOPED_TRACE(signal_number);
    Subprocess program(
        {FANPROBE_TEST_DNS_BINARY, "--port=0", absl::StrCat("--zone=", zone)});
    const std::optional<std::string> line = program.WaitForStdoutLine(
        [](absl::string_view line) {
          return absl::StartsWith(line, "listening ");
        },
        absl::Seconds(30));
    ASSERT_TRUE(line.has_value()) << program.Stderr();
    const std::vector<std::string> host_port =
        absl::StrSplit(line->substr(strlen("listening ")), ':');
    ASSERT_THAT(host_port, SizeIs(2));
    EXPECT_EQ(host_port[0], "127.0.0.1");
    int port = 0;
    ASSERT_TRUE(absl::SimpleAtoi(host_port[1], &port));

    // The program's port, reached through c-ares.
    Resolver cares(line->substr(strlen("listening ")));
    const Lookup lookup = cares.Resolve("alias.zone.test");
    EXPECT_EQ(lookup.status, ARES_SUCCESS) << ares_strerror(lookup.status);
    EXPECT_THAT(lookup.addresses, ElementsAre("10.0.0.1", "10.0.0.2"));
    EXPECT_THAT(cares.foreign_connects(), IsEmpty());

    program.Signal(signal_number);
    const Subprocess::Exit exit = program.Wait(absl::Seconds(30));
    EXPECT_EQ(exit.code, 0);
    EXPECT_FALSE(exit.timed_out);
  }
  std::remove(zone.c_str());
}

TEST(DnsServerProgramTest, ExitsTwoOnABadZoneFile) {
  const std::string zone = WriteTempFile("ok.test A 10.0.0.1\nbad.test A x\n");
  const ProcessRun run =
      RunToExit({FANPROBE_TEST_DNS_BINARY, absl::StrCat("--zone=", zone)},
                absl::Seconds(30));
  EXPECT_EQ(run.code, 2);
  EXPECT_THAT(run.err, HasSubstr("zone line 2"));
  EXPECT_THAT(run.out, Not(HasSubstr("listening")));
  const ProcessRun missing =
      RunToExit({FANPROBE_TEST_DNS_BINARY, "--zone=/nonexistent/zone.txt"},
                absl::Seconds(30));
  EXPECT_EQ(missing.code, 2);
  EXPECT_THAT(missing.err, HasSubstr("cannot read"));
  std::remove(zone.c_str());
}

}  // namespace
}  // namespace fanprobe::testing
