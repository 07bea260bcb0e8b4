// curl_probe.h: everything that turns a ProbeTarget into libcurl calls and a
// finished transfer back into a ProbeResult.  Internal to probe/.
//
// - ParseTargetUrl() and PrepareOptions() validate input before a probe
//   starts; their errors become kInvalidTarget results.
// - CurlProbe owns one easy handle and is reused for probe after probe by the
//   worker that owns it (curl handles are never shared between threads).
// - ClassifyTransfer() is the one place where a CURLcode becomes an Outcome.
//
// Thread-safety: ParseTargetUrl/PrepareOptions are thread-compatible free
// functions; a PreparedOptions is immutable and shared across workers; a
// CurlProbe is used by one thread at a time.

#ifndef FANPROBE_PROBE_INTERNAL_CURL_PROBE_H_
#define FANPROBE_PROBE_INTERNAL_CURL_PROBE_H_

#include <curl/curl.h>

#include <cstdint>
#include <memory>
#include <string>
#include <vector>

#include "absl/status/statusor.h"
#include "absl/strings/string_view.h"
#include "probe/destination_policy.h"
#include "probe/probe.h"
#include "re2/re2.h"

namespace fanprobe::internal {

struct CurlEasyDeleter {
  void operator()(CURL* easy) const { curl_easy_cleanup(easy); }
};
using CurlEasyPtr = std::unique_ptr<CURL, CurlEasyDeleter>;

struct CurlSlistDeleter {
  void operator()(curl_slist* list) const { curl_slist_free_all(list); }
};
using CurlSlistPtr = std::unique_ptr<curl_slist, CurlSlistDeleter>;

// A target URL that parsed, with the scheme made explicit.
struct ParsedUrl {
  std::string url;       // as given, with "http://" prepended if it had none
  std::string host_key;  // "scheme://host:port", the per-host limit's key
};

// Fails with kInvalidArgument, in words a user can act on, when the URL does
// not parse or its scheme is not http or https.  A URL without "://" is
// taken as http://, as blackbox_exporter and curl do.  `host_key` is filled
// only when asked for (it costs as much as the rest).
absl::StatusOr<ParsedUrl> ParseTargetUrl(absl::string_view url,
                                         bool with_host_key);

// Options checked and pre-built once per distinct ProbeOptions object, so a
// batch of 100,000 targets sharing options compiles its patterns once.
struct PreparedOptions {
  std::shared_ptr<const ProbeOptions> options;
  std::vector<std::unique_ptr<re2::RE2>> must_match;
  std::vector<std::unique_ptr<re2::RE2>> must_not_match;
  CurlSlistPtr headers;    // read-only once built; curl never modifies it
  bool keep_body = false;  // a pattern needs the body's text
};

// Fails with kInvalidArgument naming the offending option.  `options` null
// means the defaults.
absl::StatusOr<std::shared_ptr<const PreparedOptions>> PrepareOptions(
    std::shared_ptr<const ProbeOptions> options);

// One reusable easy handle and the per-transfer state its callbacks fill.
class CurlProbe {
 public:
  CurlProbe();
  CurlProbe(const CurlProbe&) = delete;
  CurlProbe& operator=(const CurlProbe&) = delete;

  // Sets the handle up for one probe.  `url` must outlive the transfer;
  // `policy` (may be null: no checks) must outlive the handle.  `owner` is
  // stored as CURLOPT_PRIVATE.  Fails (kInvalidArgument) if libcurl refuses
  // an option.  A handle whose last probe had the same `options` keeps its
  // settings and only gets the new URL: batches share options, and
  // resetting ~30 options per probe is measurable at 10,000 probes.
  absl::Status Setup(const ParsedUrl& url,
                     const std::shared_ptr<const PreparedOptions>& options,
                     const DestinationPolicy* policy, void* owner);

  // Reads the finished transfer into `result` (which already holds index,
  // id, labels and url) and classifies it.
  void Finish(CURLcode code, const PreparedOptions& options,
              ProbeResult* result);

  CURL* easy() const { return easy_.get(); }

 private:
  static size_t WriteCallback(char* data, size_t size, size_t count,
                              void* self);
  static curl_socket_t OpenSocketCallback(void* self, curlsocktype purpose,
                                          curl_sockaddr* address);

  CurlEasyPtr easy_;
  uint64_t max_body_bytes_ = 0;
  uint64_t body_bytes_ = 0;
  bool keep_body_ = false;
  bool body_too_large_ = false;
  std::string body_;
  const DestinationPolicy* policy_ = nullptr;
  // The options the handle is set up for; null after a failed setup.
  std::shared_ptr<const PreparedOptions> configured_for_;
  std::string denied_;  // why the policy refused a connection, if it did
  char error_[CURL_ERROR_SIZE];
};

// The earliest "Expire date" of a certificate chain as libcurl reports it
// (CURLINFO_CERTINFO); false if there is none.  Exposed for tests.
bool EarliestCertExpiry(const curl_certinfo* info, absl::Time* expiry);

}  // namespace fanprobe::internal

#endif  // FANPROBE_PROBE_INTERNAL_CURL_PROBE_H_
