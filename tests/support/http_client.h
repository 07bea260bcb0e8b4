// http_client.h: what the tests need to talk HTTP to loopback servers --
// fanprobe's HTTP side, Prometheus, blackbox_exporter: GETs, POSTs, query
// encoding, and a free port for a tool that cannot be given port 0.
//
// Example:
//   HttpReply reply = HttpGet(address, "/probe?target=" + UrlEncode(url));
//   EXPECT_EQ(reply.status, 200);
//
// Thread-safety: plain functions; each GET uses its own connection.

#ifndef FANPROBE_TESTS_SUPPORT_HTTP_CLIENT_H_
#define FANPROBE_TESTS_SUPPORT_HTTP_CLIENT_H_

#include <string>
#include <utility>
#include <vector>

#include "absl/strings/string_view.h"
#include "absl/time/time.h"

namespace fanprobe::testing {

struct HttpReply {
  int status = 0;  // 0 when the request failed (no connection)
  std::string body;
  std::string content_type;
  std::string www_authenticate;  // the WWW-Authenticate header, if any
};

// GET http://<host_port><path_and_query> with optional extra headers.
HttpReply HttpGet(
    const std::string& host_port, const std::string& path_and_query,
    const std::vector<std::pair<std::string, std::string>>& headers = {},
    absl::Duration timeout = absl::Seconds(10));

// POST http://<host_port><path> with an empty body (/-/reload).
HttpReply HttpPost(const std::string& host_port, const std::string& path,
                   absl::Duration timeout = absl::Seconds(10));

// Percent-encodes a query parameter value.
std::string UrlEncode(absl::string_view text);

// "/probe?target=<t1>&target=<t2>&...&module=<module>", each encoded; no
// module parameter when `module` is empty.
std::string ProbePath(const std::vector<std::string>& targets,
                      const std::string& module = "");

// A loopback TCP port nothing listens on right now.  Another process could
// take it before the caller binds it; the tools tested here cannot be
// handed a listening socket, and port 0 is not an option for them.
int FreePort();

}  // namespace fanprobe::testing

#endif  // FANPROBE_TESTS_SUPPORT_HTTP_CLIENT_H_
