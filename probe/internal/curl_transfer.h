// curl_transfer.h: one libcurl easy handle, set up for one request of a
// probe at a time (the first, or a redirect hop), and read back when the
// request ends.  Internal to probe/.
//
// The engine follows redirects itself and resolves every name itself, so a
// request here is always one HTTP exchange with an address already known:
// libcurl gets the addresses through CURLOPT_RESOLVE in a DNS cache private
// to this handle (a share object of its own), so it never resolves and one
// probe's answers never reach another.
//
// A handle is reused for probe after probe while they share options (a
// batch's targets do; resetting ~30 options per probe is measurable at
// 10,000 probes).  For other options it is replaced by a fresh one, never
// curl_easy_reset(): libcurl 7.88 keeps per-transfer state across a reset
// (a receive buffer left over by a failed lookup made CURLOPT_BUFFERSIZE
// fail on every later probe of that handle), and a handle whose set-up fails
// is discarded the same way.
//
// Example (the worker):
//   CurlTransfer transfer;
//   absl::Status s = transfer.Configure(prepared, &policy, owner);
//   s = transfer.Prepare({.url = &url, .method = "GET", ...});
//   curl_multi_add_handle(multi, transfer.easy());
//   ... CURLMSG_DONE with `code` ...
//   transfer.ReadResponse(code, dns_time, &hop, &result);
//
// Thread-safety: used by one thread at a time (its worker's).

#ifndef FANPROBE_PROBE_INTERNAL_CURL_TRANSFER_H_
#define FANPROBE_PROBE_INTERNAL_CURL_TRANSFER_H_

#include <curl/curl.h>

#include <cstdint>
#include <functional>
#include <memory>
#include <optional>
#include <string>
#include <vector>

#include "absl/status/status.h"
#include "absl/strings/string_view.h"
#include "absl/time/time.h"
#include "probe/destination_policy.h"
#include "probe/internal/prepared_options.h"
#include "probe/internal/target_url.h"
#include "probe/probe.h"

namespace fanprobe::internal {

struct CurlEasyDeleter {
  void operator()(CURL* easy) const { curl_easy_cleanup(easy); }
};
using CurlEasyPtr = std::unique_ptr<CURL, CurlEasyDeleter>;

struct CurlShareDeleter {
  void operator()(CURLSH* share) const { curl_share_cleanup(share); }
};
using CurlSharePtr = std::unique_ptr<CURLSH, CurlShareDeleter>;

// One request of a probe.
struct HopRequest {
  const ParsedUrl* url = nullptr;
  absl::string_view method;  // may differ from the options' after a 303
  bool send_body = true;     // false after a redirect that drops the body
  bool cross_host = false;   // past a redirect to another host: no
                             // credentials
  // Where to connect; empty when url->address is set, or when a proxy
  // resolves the target.
  const std::vector<IpAddress>* addresses = nullptr;
  // Set when the request goes through the options' proxy: the proxy's
  // addresses (empty when its URL names an address).
  const std::vector<IpAddress>* proxy_addresses = nullptr;
  absl::Duration timeout;                                 // what remains
  absl::Duration connect_timeout = absl::ZeroDuration();  // zero: none
};

class CurlTransfer {
 public:
  CurlTransfer() = default;
  CurlTransfer(const CurlTransfer&) = delete;
  CurlTransfer& operator=(const CurlTransfer&) = delete;

  // Readies the handle for a probe with `options`: keeps it when its last
  // probe had the same options (and policy), else builds a fresh one.
  // `policy` (may be null: no checks) must outlive the handle; `owner` is
  // stored as CURLOPT_PRIVATE.  Returns whether the handle was kept.
  // Fails (kInvalidArgument) when libcurl refuses an option; the handle is
  // then discarded.
  absl::StatusOr<bool> Configure(
      const std::shared_ptr<const PreparedOptions>& options,
      const DestinationPolicy* policy, void* owner);

  // Sets up the next request.  Fails (kInvalidArgument) when libcurl
  // refuses an option; the handle is then discarded.
  absl::Status Prepare(const HopRequest& request);

  // Reads the ended request: fills `hop` (status, location, remote address,
  // timings after `dns`) and the response fields of `result` (status,
  // version, remote address, body bytes, TLS).
  void ReadResponse(CURLcode code, absl::Duration dns, Hop* hop,
                    ProbeResult* result);

  // The outcome of a probe that ends with the request just read: sets
  // result->outcome and result->error (curl's error, the status, the body
  // patterns).
  void Judge(CURLcode code, ProbeResult* result) const;

  // Called (on the worker's thread) when a request's connection is up --
  // connected, and for https its handshake done -- before it is sent.
  void set_on_connected(std::function<void()> on_connected) {
    on_connected_ = std::move(on_connected);
  }

  // Drops the handle; the next Configure() builds a fresh one.
  void Discard();

  // Releases what the last probe made the handle keep beyond a small
  // buffer (a large body kept for matching).
  void Trim();

  CURL* easy() const { return easy_.get(); }

 private:
  static size_t WriteCallback(char* data, size_t size, size_t count,
                              void* self);
  static size_t HeaderCallback(char* data, size_t size, size_t count,
                               void* self);
  // The values of the response header `name` (any case), in order.
  std::vector<absl::string_view> HeaderValues(absl::string_view name) const;
  // Why the response fails the header rules, if it does.
  std::optional<std::string> HeaderMismatch() const;
  static curl_socket_t OpenSocketCallback(void* self, curlsocktype purpose,
                                          curl_sockaddr* address);
  static int PrereqCallback(void* self, char* primary_ip, char* local_ip,
                            int primary_port, int local_port);

  // Declared before easy_: the handle must go first.
  CurlSharePtr share_;
  CurlEasyPtr easy_;
  // The options the handle is set up for; null when it has none.
  std::shared_ptr<const PreparedOptions> configured_for_;
  const DestinationPolicy* policy_ = nullptr;
  CurlSlistPtr resolve_;  // this request's CURLOPT_RESOLVE entries
  // When libcurl is given another URL than the request's (a TLS server
  // name, or a proxy asked for an address): the request's own URL, the
  // CURLOPT_CONNECT_TO entry, and the headers with Host; else empty.
  std::string swapped_url_;
  CurlSlistPtr connect_to_;
  CurlSlistPtr hop_headers_;
  // "host:port" of each entry in the DNS cache.
  std::vector<std::string> resolved_keys_;

  // Per request.
  uint64_t max_body_bytes_ = 0;
  uint64_t body_bytes_ = 0;
  bool keep_body_ = false;
  bool body_too_large_ = false;
  bool https_ = false;
  std::string body_;
  // The response headers, when the options watch them.
  Headers response_headers_;
  uint64_t response_header_bytes_ = 0;
  size_t max_response_headers_ = 0;
  uint64_t max_response_header_bytes_ = 0;
  bool headers_ended_ = false;      // past the blank line: trailers follow
  bool headers_too_large_ = false;  // past a cap: the transfer was stopped
  std::string denied_;  // why the policy refused a connection, if it did
  std::optional<TlsInfo> tls_;
  std::function<void()> on_connected_;
  char error_[CURL_ERROR_SIZE];
};

}  // namespace fanprobe::internal

#endif  // FANPROBE_PROBE_INTERNAL_CURL_TRANSFER_H_
