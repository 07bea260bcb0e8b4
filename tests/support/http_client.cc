#include "tests/support/http_client.h"

#include <arpa/inet.h>
#include <netinet/in.h>
#include <sys/socket.h>
#include <unistd.h>

#include <cctype>
#include <cstdio>
#include <cstdlib>
#include <string>
#include <utility>
#include <vector>

#include "absl/strings/str_cat.h"
#include "absl/strings/string_view.h"
#include "absl/time/time.h"
#include "httplib.h"

namespace fanprobe::testing {

HttpReply HttpGet(
    const std::string& host_port, const std::string& path_and_query,
    const std::vector<std::pair<std::string, std::string>>& headers,
    absl::Duration timeout) {
  const size_t colon = host_port.rfind(':');
  httplib::Client client(host_port.substr(0, colon),
                         std::stoi(host_port.substr(colon + 1)));
  const auto seconds = absl::ToChronoSeconds(timeout);
  client.set_connection_timeout(seconds);
  client.set_read_timeout(seconds);
  httplib::Headers request_headers;
  for (const auto& [name, value] : headers) {
    request_headers.emplace(name, value);
  }
  httplib::Result result = client.Get(path_and_query, request_headers);
  HttpReply reply;
  if (!result) return reply;
  reply.status = result->status;
  reply.body = result->body;
  reply.content_type = result->get_header_value("Content-Type");
  reply.www_authenticate = result->get_header_value("WWW-Authenticate");
  return reply;
}

HttpReply HttpPost(const std::string& host_port, const std::string& path,
                   absl::Duration timeout) {
  const size_t colon = host_port.rfind(':');
  httplib::Client client(host_port.substr(0, colon),
                         std::stoi(host_port.substr(colon + 1)));
  const auto seconds = absl::ToChronoSeconds(timeout);
  client.set_connection_timeout(seconds);
  client.set_read_timeout(seconds);
  httplib::Result result = client.Post(path, "", "text/plain");
  HttpReply reply;
  if (!result) return reply;
  reply.status = result->status;
  reply.body = result->body;
  reply.content_type = result->get_header_value("Content-Type");
  return reply;
}

std::string UrlEncode(absl::string_view text) {
  static constexpr char kHex[] = "0123456789ABCDEF";
  std::string out;
  for (const unsigned char c : text) {
    if (std::isalnum(c) || c == '-' || c == '_' || c == '.' || c == '~') {
      out.push_back(static_cast<char>(c));
    } else {
      out.push_back('%');
      out.push_back(kHex[c >> 4]);
      out.push_back(kHex[c & 15]);
    }
  }
  return out;
}

std::string ProbePath(const std::vector<std::string>& targets,
                      const std::string& module) {
  std::string path = "/probe?";
  for (const std::string& target : targets) {
    absl::StrAppend(&path, "target=", UrlEncode(target), "&");
  }
  if (!module.empty()) absl::StrAppend(&path, "module=", module);
  return path;
}

int FreePort() {
  const int fd = socket(AF_INET, SOCK_STREAM | SOCK_CLOEXEC, 0);
  sockaddr_in address = {};
  address.sin_family = AF_INET;
  address.sin_addr.s_addr = htonl(INADDR_LOOPBACK);
  socklen_t size = sizeof(address);
  if (fd < 0 || bind(fd, reinterpret_cast<sockaddr*>(&address), size) != 0 ||
      getsockname(fd, reinterpret_cast<sockaddr*>(&address), &size) != 0) {
    std::perror("FreePort");
    std::abort();
  }
  close(fd);
  return ntohs(address.sin_port);
}

}  // namespace fanprobe::testing
