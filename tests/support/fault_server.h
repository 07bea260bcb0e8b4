// fault_server.h: a loopback target that misbehaves on purpose, for the
// tests that a prober survives the servers it exists to meet.  Each fault
// has its own listening port on 127.0.0.1 (some faults strike before a
// request could say which one is wanted), and one thread serves them all
// from epoll with non-blocking sockets, so it holds thousands of
// connections at once.
//
// Example:
//   fanprobe::testing::FaultServer faults;
//   std::string url = faults.url(Fault::kNeverAnswer);
//   ... probe it with a 1 s timeout: OUTCOME_TIMEOUT ...
//   EXPECT_TRUE(faults.WaitForIdle(absl::Seconds(5)));  // all closed
//
// Thread-safety: all methods may be called from any thread.

#ifndef FANPROBE_TESTS_SUPPORT_FAULT_SERVER_H_
#define FANPROBE_TESTS_SUPPORT_FAULT_SERVER_H_

#include <array>
#include <cstdint>
#include <memory>
#include <string>
#include <thread>

#include "absl/base/thread_annotations.h"
#include "absl/strings/string_view.h"
#include "absl/synchronization/mutex.h"
#include "absl/time/time.h"

namespace fanprobe::testing {

enum class Fault {
  // Resets the connection (RST) as soon as it is accepted.
  kResetAfterAccept,
  // Accepts and reads, never answers; the client must give up.
  kNeverAnswer,
  // A valid 200 response, sent one byte a second.
  kOneBytePerSecond,
  // Answers the request with bytes that are not HTTP, then closes.
  kGarbage,
  // A 200 whose body never ends (no length, no end).
  kEndlessBody,
  // A 200 with "Content-Encoding: gzip" and a small body (gzip_bomb_size()
  // bytes) that inflates to gzip_bomb_inflated_size() bytes.
  kGzipBomb,
  // A 302 to itself, forever.
  kRedirectLoop,
  // A 302 to the cloud metadata address http://169.254.169.254/.
  kRedirectToMetadata,
  // A 200 announcing Content-Length 1000, then 500 bytes and a close.
  kCloseMidBody,
};
inline constexpr int kFaultCount = 9;
absl::string_view FaultName(Fault fault);  // "reset_after_accept", ...

struct FaultStats {
  std::array<uint64_t, kFaultCount> accepted{};  // connections, per fault
  std::array<uint64_t, kFaultCount> requests{};  // requests read, per fault
  uint64_t open_connections = 0;                 // accepted and not yet closed
};

class FaultServer {
 public:
  // Binds one port per fault and starts the serving thread; aborts the
  // test binary if the loopback interface refuses.
  FaultServer();
  // Closes every connection and listener and joins the thread.
  ~FaultServer();

  FaultServer(const FaultServer&) = delete;
  FaultServer& operator=(const FaultServer&) = delete;

  int port(Fault fault) const;
  // "http://127.0.0.1:<port(fault)>/fault".
  std::string url(Fault fault) const;

  size_t gzip_bomb_size() const;
  uint64_t gzip_bomb_inflated_size() const;

  FaultStats Stats() const;
  // Blocks until no connection is open or `timeout` passes; true if idle.
  bool WaitForIdle(absl::Duration timeout) const;

 private:
  class Loop;
  std::unique_ptr<Loop> loop_;
};

}  // namespace fanprobe::testing

#endif  // FANPROBE_TESTS_SUPPORT_FAULT_SERVER_H_
