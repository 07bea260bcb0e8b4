// fanprobe-demo-target: a small HTTP target to try fanprobe on, with no
// network.  The README's examples probe it; `make run` starts it beside the
// server and `make demo` starts it alone.
//
//   /                  lists these endpoints
//   /delay/<seconds>   200 after <seconds> (fractional, e.g. 0.25; at most 60)
//   /status/<code>     answers <code> (200-599)
//   /redirect/<n>      302 to /redirect/<n-1>; /redirect/0 answers 200
//   /bytes/<n>         200 with an n-byte body (at most 1 GiB)
//
// Every endpoint answers every method and ignores the query string, so
// `/status/503?env=staging` is a 503 that a `grep -v staging` can filter
// out.  Unknown paths answer 404.
//
// Usage: fanprobe-demo-target [--address=127.0.0.1:8081]
// Port 0 picks a free port.  The first line on stdout names the address it
// listens on.  SIGINT or SIGTERM stops it (exit 0); a bad flag or an
// address it cannot bind exits 2.
//
// Example:
//   $ build/fanprobe-demo-target &
//   fanprobe-demo-target: listening on http://127.0.0.1:8081/
//   $ build/fanprobe probe http://127.0.0.1:8081/delay/0.2

#include <pthread.h>
#include <signal.h>
#include <sys/socket.h>

#include <algorithm>
#include <cmath>
#include <cstdint>
#include <cstdio>
#include <string>
#include <thread>
#include <vector>

#include "absl/strings/match.h"
#include "absl/strings/numbers.h"
#include "absl/strings/str_cat.h"
#include "absl/strings/string_view.h"
#include "absl/synchronization/notification.h"
#include "absl/time/clock.h"
#include "absl/time/time.h"
#include "httplib.h"

namespace {

constexpr absl::string_view kDefaultAddress = "127.0.0.1:8081";
// Every request being answered holds a pool thread, a /delay for its whole
// delay: enough for a batch of a few hundred slow probes at once.
constexpr size_t kThreads = 256;
constexpr double kMaxDelaySeconds = 60;
constexpr uint64_t kMaxBytes = uint64_t{1} << 30;
constexpr int kMaxRedirects = 1000;

constexpr absl::string_view kIndex =
    "fanprobe-demo-target: a target to try fanprobe on.\n"
    "\n"
    "  /delay/<seconds>   200 after <seconds> (fractional, at most 60)\n"
    "  /status/<code>     answers <code> (200-599)\n"
    "  /redirect/<n>      302 to /redirect/<n-1>; /redirect/0 answers 200\n"
    "  /bytes/<n>         200 with an n-byte body\n"
    "\n"
    "Every endpoint answers every method and ignores the query string.\n";

constexpr absl::string_view kUsage =
    "Usage: fanprobe-demo-target [--address=HOST:PORT]\n"
    "\n"
    "  --address=HOST:PORT  where to listen (default 127.0.0.1:8081; port 0\n"
    "                       picks a free one, named on the first line)\n"
    "\n";

void Answer(httplib::Response& res, int status, absl::string_view body) {
  res.status = status;
  res.set_content(std::string(body), "text/plain");
}

// Registers `handler` for `pattern` under every method fanprobe can send
// (HEAD is answered as GET, without the body).
void Route(httplib::Server& server, const std::string& pattern,
           const httplib::Server::Handler& handler) {
  server.Get(pattern, handler);
  server.Post(pattern, handler);
  server.Put(pattern, handler);
  server.Patch(pattern, handler);
  server.Delete(pattern, handler);
  server.Options(pattern, handler);
}

void AddRoutes(httplib::Server& server, absl::Notification& stopping) {
  Route(server, "/", [](const httplib::Request&, httplib::Response& res) {
    Answer(res, 200, kIndex);
  });
  Route(server, R"(/delay/([0-9.]+))",
        [&stopping](const httplib::Request& req, httplib::Response& res) {
          double seconds = 0;
          if (!absl::SimpleAtod(req.matches[1].str(), &seconds) ||
              !std::isfinite(seconds) || seconds > kMaxDelaySeconds) {
            Answer(res, 400, "delay: want seconds from 0 to 60\n");
            return;
          }
          // Ends early when the target stops, so stopping never waits on
          // a long delay.
          stopping.WaitForNotificationWithTimeout(absl::Seconds(seconds));
          Answer(res, 200,
                 absl::StrCat("delayed ", req.matches[1].str(), " s\n"));
        });
  Route(server, R"(/status/([0-9]+))",
        [](const httplib::Request& req, httplib::Response& res) {
          int code = 0;
          if (!absl::SimpleAtoi(req.matches[1].str(), &code) || code < 200 ||
              code > 599) {
            Answer(res, 400, "status: want a code from 200 to 599\n");
            return;
          }
          // 204 and 304 carry no body.
          if (code == 204 || code == 304) {
            res.status = code;
            return;
          }
          Answer(res, code, absl::StrCat("status ", code, "\n"));
        });
  Route(server, R"(/redirect/([0-9]+))",
        [](const httplib::Request& req, httplib::Response& res) {
          int hops = 0;
          if (!absl::SimpleAtoi(req.matches[1].str(), &hops) ||
              hops > kMaxRedirects) {
            Answer(res, 400, "redirect: want hops from 0 to 1000\n");
            return;
          }
          if (hops == 0) {
            Answer(res, 200, "redirected\n");
            return;
          }
          res.set_redirect(absl::StrCat("/redirect/", hops - 1), 302);
        });
  Route(server, R"(/bytes/([0-9]+))",
        [](const httplib::Request& req, httplib::Response& res) {
          uint64_t size = 0;
          if (!absl::SimpleAtoi(req.matches[1].str(), &size) ||
              size > kMaxBytes) {
            Answer(res, 400, "bytes: want a size from 0 to 1073741824\n");
            return;
          }
          // Streamed in pieces, so a large body is not held in memory.
          res.set_content_provider(
              size, "application/octet-stream",
              [](size_t offset, size_t length, httplib::DataSink& sink) {
                static const std::string kPiece(64 * 1024, 'x');
                return sink.write(kPiece.data(),
                                  std::min(length, kPiece.size()));
              });
        });
  server.set_error_handler(
      [](const httplib::Request& req, httplib::Response& res) {
        if (res.status == 404) {
          Answer(res, 404, "not found: GET / lists the endpoints\n");
        }
      });
}

// Splits "host:port" or "[v6]:port".
bool SplitAddress(absl::string_view address, std::string* host, int* port) {
  const size_t colon = address.rfind(':');
  if (colon == absl::string_view::npos) return false;
  absl::string_view h = address.substr(0, colon);
  if (absl::StartsWith(h, "[") && absl::EndsWith(h, "]")) {
    h = h.substr(1, h.size() - 2);
  }
  *host = std::string(h);
  return !host->empty() && absl::SimpleAtoi(address.substr(colon + 1), port) &&
         *port >= 0 && *port <= 65535;
}

int UsageError(absl::string_view message) {
  std::fprintf(stderr, "fanprobe-demo-target: %s\n%s",
               std::string(message).c_str(), std::string(kUsage).c_str());
  return 2;
}

}  // namespace

int main(int argc, char** argv) {
  std::string address(kDefaultAddress);
  for (int i = 1; i < argc; ++i) {
    const absl::string_view arg = argv[i];
    if (arg == "--help" || arg == "-h" || arg == "help") {
      std::fputs(std::string(kUsage).c_str(), stdout);
      std::fputs(std::string(kIndex).c_str(), stdout);
      return 0;
    }
    if (absl::StartsWith(arg, "--address=")) {
      address = std::string(arg.substr(sizeof("--address=") - 1));
    } else if (arg == "--address" && i + 1 < argc) {
      address = argv[++i];
    } else {
      return UsageError(absl::StrCat("unknown argument ", arg));
    }
  }
  std::string host;
  int port = 0;
  if (!SplitAddress(address, &host, &port)) {
    return UsageError(absl::StrCat("--address: want HOST:PORT, got ", address));
  }

  // Block the stop signals before any thread starts, so every thread
  // inherits the mask and only sigwait() below receives them.  cpp-httplib
  // writes without MSG_NOSIGNAL: a client that gives up on a /delay (a
  // cancelled probe) must not kill the target.
  sigset_t stop_signals;
  sigemptyset(&stop_signals);
  sigaddset(&stop_signals, SIGTERM);
  sigaddset(&stop_signals, SIGINT);
  pthread_sigmask(SIG_BLOCK, &stop_signals, nullptr);
  signal(SIGPIPE, SIG_IGN);

  absl::Notification stopping;
  httplib::Server server;
  server.new_task_queue = [] { return new httplib::ThreadPool(kThreads); };
  int listen_fd = -1;
  server.set_socket_options([&listen_fd](int fd) {
    httplib::default_socket_options(fd);
    listen_fd = fd;
  });
  AddRoutes(server, stopping);
  if (port == 0) {
    port = server.bind_to_any_port(host);
  } else if (!server.bind_to_port(host, port)) {
    port = -1;
  }
  if (port <= 0 || listen_fd < 0) {
    std::fprintf(stderr, "fanprobe-demo-target: cannot listen on %s\n",
                 address.c_str());
    return 2;
  }
  // Debian's cpp-httplib listens with a backlog of 5, which a batch
  // connecting hundreds of probes at once overflows; on Linux, listen() on a
  // listening socket only changes its backlog.
  ::listen(listen_fd, SOMAXCONN);
  const bool v6 = absl::StrContains(host, ':');
  std::printf("fanprobe-demo-target: listening on http://%s%s%s:%d/\n",
              v6 ? "[" : "", host.c_str(), v6 ? "]" : "", port);
  std::fflush(stdout);

  std::thread serving([&server] { server.listen_after_bind(); });
  // stop() does nothing until the listen loop runs; httplib 0.11 has no
  // readiness hook, and the loop sets is_running() first thing.
  while (!server.is_running()) absl::SleepFor(absl::Milliseconds(1));
  int signal_number = 0;
  sigwait(&stop_signals, &signal_number);
  stopping.Notify();
  server.stop();
  serving.join();
  return 0;
}
