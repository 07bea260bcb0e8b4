#include "tests/support/httplib_target.h"

#include <sys/socket.h>

#include <algorithm>
#include <cerrno>
#include <cstdint>
#include <cstdio>
#include <cstdlib>
#include <cstring>

#include "absl/strings/escaping.h"
#include "absl/strings/numbers.h"
#include "absl/strings/str_cat.h"
#include "absl/time/clock.h"
#include "absl/time/time.h"
#include "tests/support/target_server.h"
#include "zlib.h"

#ifdef FANPROBE_TEST_BROTLI
#include "brotli/encode.h"
#endif

namespace fanprobe::testing {
namespace {

constexpr uint64_t kMaxBytesBody = 64 << 20;

[[noreturn]] void Die(const char* what) {
  std::fprintf(stderr, "httplib_target: %s: %s\n", what, std::strerror(errno));
  std::abort();
}

// `data` compressed as Content-Encoding `coding` names it: "gzip" (RFC
// 1952), "deflate" (zlib, RFC 1950, as HTTP means it) or "br".
std::string Compress(absl::string_view coding, const std::string& data) {
  if (coding == "br") {
#ifdef FANPROBE_TEST_BROTLI
    size_t size = BrotliEncoderMaxCompressedSize(data.size());
    std::string out(size, '\0');
    if (BrotliEncoderCompress(
            BROTLI_DEFAULT_QUALITY, BROTLI_DEFAULT_WINDOW, BROTLI_MODE_GENERIC,
            data.size(), reinterpret_cast<const uint8_t*>(data.data()), &size,
            reinterpret_cast<uint8_t*>(out.data())) != BROTLI_TRUE) {
      Die("BrotliEncoderCompress");
    }
    out.resize(size);
    return out;
#else
    Die("built without brotli");
#endif
  }
  z_stream z{};
  const int window_bits = coding == "gzip" ? 15 + 16 : 15;
  if (deflateInit2(&z, 9, Z_DEFLATED, window_bits, 9, Z_DEFAULT_STRATEGY) !=
      Z_OK) {
    Die("deflateInit2");
  }
  std::string out(deflateBound(&z, data.size()), '\0');
  z.next_in = reinterpret_cast<Bytef*>(const_cast<char*>(data.data()));
  z.avail_in = static_cast<uInt>(data.size());
  z.next_out = reinterpret_cast<Bytef*>(out.data());
  z.avail_out = static_cast<uInt>(out.size());
  if (deflate(&z, Z_FINISH) != Z_STREAM_END) Die("deflate");
  out.resize(z.total_out);
  deflateEnd(&z);
  return out;
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
  route("/headers", [](const auto& req, auto& res) {
    for (const auto& [name, value] : req.params) res.set_header(name, value);
    res.set_content("headers\n", "text/plain");
  });
  route(R"(/many_headers/(\d+))", [](const auto& req, auto& res) {
    int n = 0;
    if (!absl::SimpleAtoi(req.matches[1].str(), &n) || n > 10000) {
      res.status = 400;
      return;
    }
    for (int i = 0; i < n; ++i) {
      res.set_header(absl::StrCat("X-Many-", i), "v");
    }
    res.set_content("many headers\n", "text/plain");
  });
  route(R"(/(gzip|deflate|br)/(\d+))", [](const auto& req, auto& res) {
    uint64_t n = 0;
    if (!absl::SimpleAtoi(req.matches[2].str(), &n) || n > kMaxBytesBody) {
      res.status = 400;
      return;
    }
    const std::string coding = req.matches[1].str();
    // Compressible, and recognisable once decoded.
    std::string body;
    while (body.size() < n) absl::StrAppend(&body, "fanprobe ");
    body.resize(n);
    res.set_header("Content-Encoding", coding);
    // Not text/*: cpp-httplib would compress that again itself for a
    // client that accepts gzip or br.
    res.set_content(Compress(coding, body), "application/octet-stream");
  });
  route(R"(/basic_auth/([^/]+)/([^/]+))", [](const auto& req, auto& res) {
    const std::string expected = absl::StrCat(
        "Basic ", absl::Base64Escape(absl::StrCat(req.matches[1].str(), ":",
                                                  req.matches[2].str())));
    if (req.get_header_value("Authorization") != expected) {
      res.status = 401;
      res.set_header("WWW-Authenticate", "Basic realm=\"fanprobe\"");
      return;
    }
    res.set_content(absl::StrCat("hello ", req.matches[1].str(), "\n"),
                    "text/plain");
  });
  route(R"(/bearer/([^/]+))", [](const auto& req, auto& res) {
    if (req.get_header_value("Authorization") !=
        absl::StrCat("Bearer ", req.matches[1].str())) {
      res.status = 401;
      res.set_header("WWW-Authenticate", "Bearer");
      return;
    }
    res.set_content("hello bearer\n", "text/plain");
  });
  route("/last_modified", [](const auto& req, auto& res) {
    res.set_header("Last-Modified", std::string(kLastModified));
    res.set_content("old news\n", "text/plain");
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
