#include "tests/support/httplib_target.h"

#include <sys/socket.h>

#include <algorithm>
#include <cerrno>
#include <cstdint>
#include <cstdio>
#include <cstdlib>
#include <cstring>

#include "absl/strings/numbers.h"
#include "absl/strings/str_cat.h"
#include "absl/time/clock.h"
#include "absl/time/time.h"
#include "tests/support/target_server.h"

namespace fanprobe::testing {
namespace {

constexpr uint64_t kMaxBytesBody = 64 << 20;

[[noreturn]] void Die(const char* what) {
  std::fprintf(stderr, "httplib_target: %s: %s\n", what, std::strerror(errno));
  std::abort();
}

}  // namespace

bool StatusHasBody(int status) {
  return status >= 200 && status != 204 && status != 304;
}

std::vector<std::pair<std::string, std::string>> SentHeaders(
    const httplib::Request& req) {
  std::vector<std::pair<std::string, std::string>> headers;
  for (const auto& [name, value] : req.headers) {
    if (name == "REMOTE_ADDR" || name == "REMOTE_PORT" ||
        name == "LOCAL_ADDR" || name == "LOCAL_PORT") {
      continue;
    }
    headers.emplace_back(name, value);
  }
  return headers;
}

void AddTargetRoutes(httplib::Server& server,
                     const absl::Notification& stopping,
                     const RouteAround& around) {
  auto route = [&server, &around](const std::string& pattern,
                                  RouteHandler handler) {
    auto wrapped = [around, handler = std::move(handler)](
                       const httplib::Request& req, httplib::Response& res) {
      around(req, res, handler);
    };
    server.Get(pattern, wrapped);
    server.Post(pattern, wrapped);
    server.Put(pattern, wrapped);
    server.Patch(pattern, wrapped);
    server.Delete(pattern, wrapped);
    server.Options(pattern, wrapped);
  };
  route(R"(/status/(\d+))", [](const auto& req, auto& res) {
    int status = 0;
    if (!absl::SimpleAtoi(req.matches[1].str(), &status) || status < 100 ||
        status > 999) {
      res.status = 400;
      return;
    }
    res.status = status;
    if (StatusHasBody(status)) {
      res.set_content(absl::StrCat("status ", status, "\n"), "text/plain");
    }
  });
  route(R"(/delay/(\d+))", [&stopping](const auto& req, auto& res) {
    int64_t ms = 0;
    int status = 200;
    if (!absl::SimpleAtoi(req.matches[1].str(), &ms) ||
        (req.has_param("status") &&
         !absl::SimpleAtoi(req.get_param_value("status"), &status))) {
      res.status = 400;
      return;
    }
    stopping.WaitForNotificationWithTimeout(absl::Milliseconds(ms));
    res.status = status;
    if (StatusHasBody(status)) res.set_content("delayed\n", "text/plain");
  });
  route(R"(/bytes/(\d+))", [](const auto& req, auto& res) {
    uint64_t n = 0;
    if (!absl::SimpleAtoi(req.matches[1].str(), &n) || n > kMaxBytesBody) {
      res.status = 400;
      return;
    }
    res.set_content(std::string(n, 'x'), "application/octet-stream");
  });
  route(R"(/chunked/(\d+))", [](const auto& req, auto& res) {
    uint64_t n = 0;
    if (!absl::SimpleAtoi(req.matches[1].str(), &n) || n > kMaxBytesBody) {
      res.status = 400;
      return;
    }
    res.set_chunked_content_provider(
        "application/octet-stream",
        [n, sent = uint64_t{0}](size_t, httplib::DataSink& sink) mutable {
          if (sent == n) {
            sink.done();
            return true;
          }
          std::string chunk(std::min<uint64_t>(n - sent, 4096), 'x');
          sent += chunk.size();
          return sink.write(chunk.data(), chunk.size());
        });
  });
  route(R"(/redirect/(\d+))", [](const auto& req, auto& res) {
    int n = 0;
    if (!absl::SimpleAtoi(req.matches[1].str(), &n)) {
      res.status = 400;
      return;
    }
    if (n == 0) {
      res.set_content("no redirect\n", "text/plain");
    } else if (n == 1) {
      res.set_redirect("/status/200");
    } else {
      res.set_redirect(absl::StrCat("/redirect/", n - 1));
    }
  });
  route("/loop", [](const auto& req, auto& res) { res.set_redirect("/loop"); });
  route("/redirect_to", [](const auto& req, auto& res) {
    if (!req.has_param("url")) {
      res.status = 400;
      return;
    }
    res.set_redirect(req.get_param_value("url"));
  });
  route(R"(/body/(.*))", [](const auto& req, auto& res) {
    res.set_content(req.matches[1].str(), "text/plain");
  });
  route("/match", [](const auto& req, auto& res) {
    res.set_content(std::string(kMatchBody), "text/plain");
  });
  route("/echo_headers", [](const auto& req, auto& res) {
    std::string body = absl::StrCat(req.method, " ", req.path, "\n");
    for (const auto& [name, value] : SentHeaders(req)) {
      absl::StrAppend(&body, name, ": ", value, "\n");
    }
    absl::StrAppend(&body, "\n", req.body);
    res.set_content(body, "text/plain");
  });
}

HttplibRunner::HttplibRunner(httplib::Server& server) : server_(server) {
  server_.set_socket_options([this](int sock) {
    httplib::default_socket_options(sock);
    listen_fd_ = sock;
  });
  port_ = server_.bind_to_any_port("127.0.0.1");
  if (port_ <= 0 || listen_fd_ < 0) Die("httplib bind_to_any_port");
  // Debian's libcpp-httplib is compiled with a listen backlog of 5; a batch
  // connecting hundreds of probes at once would overflow it and see SYN
  // retransmits.  On Linux, listen() on a listening socket only changes its
  // backlog.
  if (::listen(listen_fd_, SOMAXCONN) != 0) Die("listen (backlog)");
  thread_ = std::thread([this] { server_.listen_after_bind(); });
  // stop() is a no-op until the listen loop runs, so a server destroyed
  // right away would never stop.  httplib 0.11.4 has no readiness hook
  // (wait_until_ready came later): poll is_running(), which the loop sets
  // first thing.
  while (!server_.is_running()) absl::SleepFor(absl::Microseconds(50));
}

HttplibRunner::~HttplibRunner() {
  server_.stop();  // the listen loop shuts its task queue down (joins it)
  thread_.join();
}

}  // namespace fanprobe::testing
