// listener.h: a listening TCP socket that fanprobe-server accepts on itself
// and never gives up on.  gRPC 1.51's own listener (tcp_server_posix.cc)
// abandons its socket for good after one accept4() fails with EMFILE:
// measured, a server run out of descriptors by 300 idle connections never
// accepted again after they closed, while it still looked healthy.  So the
// server binds its ports here and hands each accepted connection to gRPC
// (an ExternalConnectionAcceptor, see server.cc); gRPC serves it exactly as
// one it accepted itself, credentials included.
//
// When accept() fails for lack of descriptors or memory (EMFILE, ENFILE,
// ENOBUFS, ENOMEM) the listener is "exhausted": it logs one
// "listener_exhausted" line, says so through Accepting() and the
// state-change callback (the server turns health NOT_SERVING), and retries
// every retry_interval, accepting what it can.  Once `free_fds_to_resume`
// descriptors are free again it logs "listener_recovered" and says so
// again.  Any other failure is retried the same way; none stops the
// listener.
//
// With max_connections, the listener also bounds the connections it has
// handed on that are still open: one beyond the bound is closed at once
// (the client sees the connection end and retries later), the first of a
// run of them logged as "listener_full", the next one taken as
// "listener_has_room".  gRPC 1.51 has no such bound of its own.  Whether a
// connection handed on is still open is seen from its descriptor: the same
// number must still be the same socket (its inode, in /proc/self/fd),
// checked at each accept.
//
// Example (server.cc):
//   auto listener = Listener::Bind("127.0.0.1:0", {.name = "grpc"}).value();
//   ... build the gRPC server, get `acceptor` ...
//   listener->Start([&](int fd, int listen_fd) { hand fd to acceptor },
//                   [&] { UpdateServingStatus(); });
//   ... listener->Accepting() is OK or says why not ...
//   listener->Stop();  // before the gRPC server shuts down
//
// Thread-safety: Bind, Start and Stop from one thread (the owner's);
// Accepting(), Stats() and the accessors from any.  The callbacks run on
// the listener's own thread, one at a time; on_connection owns the
// descriptor it is given.  on_state_change may take the caller's locks but
// must not call Stop().

#ifndef FANPROBE_SERVER_LISTENER_H_
#define FANPROBE_SERVER_LISTENER_H_

#include <cstdint>
#include <functional>
#include <memory>
#include <string>
#include <thread>
#include <vector>

#include "absl/base/thread_annotations.h"
#include "absl/status/status.h"
#include "absl/status/statusor.h"
#include "absl/synchronization/mutex.h"
#include "absl/time/time.h"
#include "log/logger.h"

namespace fanprobe::server {

struct ListenerOptions {
  // What log lines and statuses call it ("grpc", "health").
  std::string name = "grpc";
  // Free descriptors the process needs before an exhausted listener says
  // it accepts again: enough for a few connections and what serving them
  // opens, so one freed descriptor does not flip the state back and forth.
  uint32_t free_fds_to_resume = 16;
  // How often an exhausted listener tries again.
  absl::Duration retry_interval = absl::Milliseconds(100);
  // Connections handed on and still open at once; 0: no bound.
  uint32_t max_connections = 0;
  // Where the exhausted/recovered lines go; null: stderr.
  log::Sink log;
};

struct ListenerStats {
  uint64_t accepted = 0;     // connections handed on, ever
  uint64_t exhaustions = 0;  // times accept() ran out of descriptors/memory
  uint64_t refused = 0;      // closed at once: max_connections were open
  uint64_t open = 0;         // handed on and still open (with a bound only)
};

class Listener {
 public:
  // Given each accepted connection (non-blocking, close-on-exec) and the
  // listening socket it came from; it owns `fd` from then on.
  using OnConnection = std::function<void(int fd, int listen_fd)>;
  // Called after Accepting() changed.
  using OnStateChange = std::function<void()>;

  // Binds every address `address` ("host:port", "[v6]:port"; port 0: a
  // free one, the same for all) resolves to and listens; at least one must
  // bind.  kInvalidArgument for a malformed address, kUnavailable when
  // nothing binds (in use, not local).  No SO_REUSEPORT: a second server
  // on the port fails instead of silently sharing it.
  static absl::StatusOr<std::unique_ptr<Listener>> Bind(
      const std::string& address, ListenerOptions options = {});

  Listener(const Listener&) = delete;
  Listener& operator=(const Listener&) = delete;
  // Stops (see Stop).
  ~Listener();

  // ListenerOptions::name.
  const std::string& name() const { return options_.name; }
  // The address with the port actually bound, and the port.
  const std::string& address() const { return address_; }
  int port() const { return port_; }

  // Starts accepting on the listener's thread.  Once.
  void Start(OnConnection on_connection, OnStateChange on_state_change);
  // Stops accepting, joins the thread and closes the listening sockets:
  // new connections are refused from then on.  Idempotent.
  void Stop();

  // OK while accept() works; kUnavailable saying why (and since when)
  // while the listener is exhausted.
  absl::Status Accepting() const;
  ListenerStats Stats() const;

 private:
  explicit Listener(ListenerOptions options);

  void Run();
  // Accepts what waits on `listen_fd`; false when accept() failed with
  // anything but "nothing waits" (the listener is then exhausted).
  bool AcceptAll(int listen_fd);
  void SetExhausted(int error);
  void SetRecovered();
  // Whether `fd`, just accepted, may be handed on (with a bound, it is then
  // counted open); false when max_connections are open.  Logs the changes.
  bool Admit(int fd);
  // Drops the connections handed on whose descriptor no longer is theirs.
  void PruneClosedLocked() ABSL_EXCLUSIVE_LOCKS_REQUIRED(mu_);

  // Constant after Bind().
  const ListenerOptions options_;
  const log::Logger logger_;
  std::vector<int> listen_fds_;  // owned; closed by Stop()
  int wake_fd_ = -1;             // an eventfd: Stop() wakes Run() with it
  std::string address_;
  int port_ = 0;
  // Set by Start(), used by the thread only.
  OnConnection on_connection_;
  OnStateChange on_state_change_;
  std::thread thread_;
  bool stopped_ = false;  // owner's thread only

  // State below is protected by mu_.
  mutable absl::Mutex mu_;
  int error_ ABSL_GUARDED_BY(mu_) = 0;  // errno while exhausted, else 0
  absl::Time exhausted_since_ ABSL_GUARDED_BY(mu_);
  uint64_t accepted_while_exhausted_ ABSL_GUARDED_BY(mu_) = 0;
  ListenerStats stats_ ABSL_GUARDED_BY(mu_);
  // With max_connections: each connection handed on, as (descriptor, its
  // socket's inode); refusing since the last one taken (a run logged once).
  std::vector<std::pair<int, uint64_t>> open_ ABSL_GUARDED_BY(mu_);
  bool full_ ABSL_GUARDED_BY(mu_) = false;
  uint64_t refused_in_run_ ABSL_GUARDED_BY(mu_) = 0;
};

}  // namespace fanprobe::server

#endif  // FANPROBE_SERVER_LISTENER_H_
