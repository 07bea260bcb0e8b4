// service_observer.h: what the Prober service reports about its RPCs as they
// happen, for metrics (server/service_monitoring.h implements it).  The
// service calls these hooks; it never depends on what an observer does with
// them.
//
// Example:
//   ServiceOptions options;
//   options.observer = std::make_shared<MyObserver>();
//   ProberService service(engine, options);
//
// Thread-safety: the hooks run on gRPC and engine threads, often under the
// calling RPC's lock, and concurrently with each other.  An implementation
// must be thread-safe and must not block (atomics, no I/O).

#ifndef FANPROBE_SERVICE_SERVICE_OBSERVER_H_
#define FANPROBE_SERVICE_SERVICE_OBSERVER_H_

#include "absl/status/status.h"
#include "absl/strings/string_view.h"
#include "absl/time/time.h"

namespace fanprobe::service {

class ServiceObserver {
 public:
  virtual ~ServiceObserver() = default;

  // An RPC ("StreamProbes", "ProbeBatch") began, and ended: it is active
  // from the first call to the second, whatever its status.
  virtual void CallStarted(absl::string_view rpc) = 0;
  virtual void CallEnded(absl::string_view rpc) = 0;

  // An RPC was refused before its batch started: `code` is the status it
  // ends with (kInvalidArgument, kResourceExhausted, kUnavailable).
  virtual void CallRejected(absl::string_view rpc, absl::StatusCode code) = 0;

  // A StreamProbes result left the stream's queue for the wire after
  // waiting `wait` behind earlier writes.
  virtual void StreamQueueWait(absl::Duration wait) = 0;
};

}  // namespace fanprobe::service

#endif  // FANPROBE_SERVICE_SERVICE_OBSERVER_H_
