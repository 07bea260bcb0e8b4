// file_watcher.h: re-reads a few small files every `interval` and, when
// the content of any of them changed, hands all their contents to a
// callback -- how the HTTP side's certificate, key and client CA
// (--http_tls_cert, --http_tls_key, --http_client_ca) are renewed without a
// restart, as the gRPC side's are.  Contents are compared, not times, so a
// file rewritten within one clock tick is still seen.  A callback that
// refuses what it gets (a certificate renewed before its key: they do not
// match yet) is logged, and called again at the next change; what it had
// stays in use meanwhile.
//
// Example:
//   FileWatcher watcher({cert_path, key_path}, absl::Seconds(10),
//       [&](const std::vector<std::string>& contents) {
//         return http.ReloadTls(contents[0], contents[1], "");
//       },
//       {.changed = "http_tls_reloaded", .refused = "http_tls_reload_failed"},
//       log);
//   // The destructor stops and joins its thread.
//
// Thread-safety: construct and destroy from one thread; the callback runs
// on the watcher's own.

#ifndef FANPROBE_SERVER_FILE_WATCHER_H_
#define FANPROBE_SERVER_FILE_WATCHER_H_

#include <functional>
#include <string>
#include <thread>
#include <vector>

#include "absl/status/status.h"
#include "absl/synchronization/notification.h"
#include "absl/time/time.h"
#include "log/logger.h"

namespace fanprobe::server {

class FileWatcher {
 public:
  using Callback =
      std::function<absl::Status(const std::vector<std::string>& contents)>;
  // The log lines' events.
  struct Events {
    std::string changed;  // the callback took the new contents
    std::string refused;  // it did not, or a file could not be read
  };

  // Reads `paths` now (what the callback already has), then watches them.
  FileWatcher(std::vector<std::string> paths, absl::Duration interval,
              Callback callback, Events events, log::Sink log);
  FileWatcher(const FileWatcher&) = delete;
  FileWatcher& operator=(const FileWatcher&) = delete;
  ~FileWatcher();

 private:
  // Each file's content; empty when one cannot be read (`error` says
  // which).
  std::vector<std::string> ReadAll(std::string* error) const;
  void Run();

  // Constant after construction.
  const std::vector<std::string> paths_;
  const absl::Duration interval_;
  const Callback callback_;
  const Events events_;
  const log::Logger logger_;

  // The watcher thread's only.
  std::vector<std::string> seen_;

  absl::Notification stop_;
  std::thread thread_;
};

}  // namespace fanprobe::server

#endif  // FANPROBE_SERVER_FILE_WATCHER_H_
