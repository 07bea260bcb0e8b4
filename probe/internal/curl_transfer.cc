#include "probe/internal/curl_transfer.h"

#include <sys/socket.h>

#include <algorithm>
#include <cstring>
#include <utility>

#include "absl/status/status.h"
#include "absl/strings/ascii.h"
#include "absl/strings/match.h"
#include "absl/strings/str_cat.h"
#include "absl/strings/str_join.h"
#include "probe/internal/tls.h"

namespace fanprobe::internal {
namespace {

// libcurl's receive buffer is allocated per handle (16 KiB by default);
// with 10,000 probes in flight it dominates memory, and probe bodies are
// small and capped anyway.
constexpr long kReceiveBufferBytes = 1024;
// A body kept for matching is given back after its probe beyond this.
constexpr size_t kKeptBodyBytes = 16 * 1024;

absl::Duration CurlMicros(CURL* easy, CURLINFO info) {
  curl_off_t us = 0;
  curl_easy_getinfo(easy, info, &us);
  return absl::Microseconds(us);
}

ResponseVersion ResponseVersionOf(long curl_version) {
  switch (curl_version) {
    case CURL_HTTP_VERSION_1_0:
      return ResponseVersion::kHttp1_0;
    case CURL_HTTP_VERSION_1_1:
      return ResponseVersion::kHttp1_1;
    case CURL_HTTP_VERSION_2_0:
      return ResponseVersion::kHttp2;
    case CURL_HTTP_VERSION_3:
      return ResponseVersion::kHttp3;
    default:
      return ResponseVersion::kNone;
  }
}

// The one place a CURLcode becomes an Outcome.
Outcome OutcomeForCurlCode(CURLcode code) {
  switch (code) {
    case CURLE_OK:
      return Outcome::kOk;
    case CURLE_COULDNT_RESOLVE_HOST:
      return Outcome::kDnsError;
    case CURLE_COULDNT_CONNECT:
      return Outcome::kConnectError;
    case CURLE_OPERATION_TIMEDOUT:
      return Outcome::kTimeout;
    case CURLE_TOO_MANY_REDIRECTS:
      return Outcome::kTooManyRedirects;
    case CURLE_FILESIZE_EXCEEDED:
      return Outcome::kBodyTooLarge;
    case CURLE_URL_MALFORMAT:
    case CURLE_INTERFACE_FAILED:  // the source address is not this host's
      return Outcome::kInvalidTarget;
    case CURLE_SSL_CONNECT_ERROR:
    case CURLE_PEER_FAILED_VERIFICATION:
    case CURLE_SSL_CERTPROBLEM:
    case CURLE_SSL_CIPHER:
    case CURLE_SSL_CACERT_BADFILE:
    case CURLE_SSL_ENGINE_NOTFOUND:
    case CURLE_SSL_ENGINE_SETFAILED:
    case CURLE_SSL_ENGINE_INITFAILED:
    case CURLE_SSL_SHUTDOWN_FAILED:
    case CURLE_SSL_CRL_BADFILE:
    case CURLE_SSL_ISSUER_ERROR:
    case CURLE_SSL_PINNEDPUBKEYNOTMATCH:
    case CURLE_SSL_INVALIDCERTSTATUS:
    case CURLE_SSL_CLIENTCERT:
    case CURLE_USE_SSL_FAILED:
      return Outcome::kTlsError;
    default:
      // Broken connections, replies that are not HTTP (libcurl's "Received
      // HTTP/0.9 when not allowed" is CURLE_UNSUPPORTED_PROTOCOL), partial
      // bodies, ...
      return Outcome::kIoError;
  }
}

std::string ResolveEntry(const ParsedUrl& url,
                         const std::vector<IpAddress>& addresses) {
  std::string entry = absl::StrCat(url.host, ":", url.port, ":");
  for (size_t i = 0; i < addresses.size(); ++i) {
    if (i > 0) entry.push_back(',');
    if (addresses[i].is_v4) {
      absl::StrAppend(&entry, addresses[i].ToString());
    } else {
      absl::StrAppend(&entry, "[", addresses[i].ToString(), "]");
    }
  }
  return entry;
}

long Millis(absl::Duration d) {
  return static_cast<long>(std::max<int64_t>(
      1, absl::ToInt64Milliseconds(absl::Ceil(d, absl::Milliseconds(1)))));
}

}  // namespace

size_t CurlTransfer::WriteCallback(char* data, size_t size, size_t count,
                                   void* self_ptr) {
  auto* self = static_cast<CurlTransfer*>(self_ptr);
  const size_t n = size * count;
  self->body_bytes_ += n;
  if (self->body_bytes_ > self->max_body_bytes_) {
    self->body_too_large_ = true;
    return 0;  // makes libcurl stop with CURLE_WRITE_ERROR
  }
  if (self->keep_body_) self->body_.append(data, n);
  return n;
}

size_t CurlTransfer::HeaderCallback(char* data, size_t size, size_t count,
                                    void* self_ptr) {
  auto* self = static_cast<CurlTransfer*>(self_ptr);
  const size_t n = size * count;
  absl::string_view line(data, n);
  while (!line.empty() && (line.back() == '\n' || line.back() == '\r')) {
    line.remove_suffix(1);
  }
  if (absl::StartsWith(line, "HTTP/")) {
    // A new response (after a 1xx, the final one): only its headers count.
    self->response_headers_.clear();
    self->response_header_bytes_ = 0;
    self->headers_ended_ = false;
    return n;
  }
  if (line.empty()) {
    self->headers_ended_ = true;
    return n;
  }
  if (self->headers_ended_) return n;  // a trailer: not the response's
  if (line.front() == ' ' || line.front() == '\t') {
    // An obsolete line folding continues the last value (RFC 9112 5.2).
    if (self->response_headers_.empty()) return n;
    line = absl::StripAsciiWhitespace(line);
    self->response_header_bytes_ += line.size() + 1;
    if (self->response_header_bytes_ > self->max_response_header_bytes_) {
      self->headers_too_large_ = true;
      return 0;  // makes libcurl stop with CURLE_WRITE_ERROR
    }
    absl::StrAppend(&self->response_headers_.back().second, " ", line);
    return n;
  }
  const size_t colon = line.find(':');
  if (colon == absl::string_view::npos) return n;  // not a header: libcurl's
  const absl::string_view name = line.substr(0, colon);
  const absl::string_view value =
      absl::StripAsciiWhitespace(line.substr(colon + 1));
  self->response_header_bytes_ += name.size() + value.size();
  if (self->response_headers_.size() >= self->max_response_headers_ ||
      self->response_header_bytes_ > self->max_response_header_bytes_) {
    self->headers_too_large_ = true;
    return 0;
  }
  self->response_headers_.emplace_back(std::string(name), std::string(value));
  return n;
}

curl_socket_t CurlTransfer::OpenSocketCallback(void* self_ptr,
                                               curlsocktype purpose,
                                               curl_sockaddr* address) {
  auto* self = static_cast<CurlTransfer*>(self_ptr);
  IpAddress ip;
  if (self->policy_ != nullptr &&
      IpAddress::FromSockaddr(&address->addr, &ip)) {
    absl::Status allowed = self->policy_->Check(ip);
    if (!allowed.ok()) {
      // No socket, so not a single packet goes to the address.
      self->denied_ = std::string(allowed.message());
      return CURL_SOCKET_BAD;
    }
  }
  return socket(address->family, address->socktype | SOCK_CLOEXEC,
                address->protocol);
}

int CurlTransfer::PrereqCallback(void* self_ptr, char* primary_ip,
                                 char* local_ip, int primary_port,
                                 int local_port) {
  // The connection (and its handshake) is up and the request not yet sent:
  // the one moment the session can be read, whatever happens next.
  auto* self = static_cast<CurlTransfer*>(self_ptr);
  if (self->https_) self->tls_ = ReadTlsInfo(self->easy_.get());
  if (self->on_connected_) self->on_connected_();
  return CURL_PREREQFUNC_OK;
}

void CurlTransfer::Discard() {
  easy_.reset();
  share_.reset();
  configured_for_ = nullptr;
  resolve_.reset();
  resolved_keys_.clear();
}

void CurlTransfer::Trim() {
  if (body_.capacity() > kKeptBodyBytes) std::string().swap(body_);
  Headers().swap(response_headers_);
}

absl::StatusOr<bool> CurlTransfer::Configure(
    const std::shared_ptr<const PreparedOptions>& prepared_ptr,
    const DestinationPolicy* policy, void* owner) {
  if (easy_ != nullptr && configured_for_ == prepared_ptr &&
      policy_ == policy) {
    return true;
  }
  Discard();
  easy_.reset(curl_easy_init());
  share_.reset(curl_share_init());
  if (easy_ == nullptr || share_ == nullptr) {
    Discard();
    return absl::ResourceExhaustedError("libcurl could not make a handle");
  }
  policy_ = policy;
  CURL* e = easy_.get();
  const PreparedOptions& prepared = *prepared_ptr;
  const ProbeOptions& o = *prepared.options;
  CURLcode rc = CURLE_OK;
  auto set = [&rc, e](CURLoption option, auto value) {
    if (rc == CURLE_OK) rc = curl_easy_setopt(e, option, value);
  };
  if (curl_share_setopt(share_.get(), CURLSHOPT_SHARE, CURL_LOCK_DATA_DNS) !=
      CURLSHE_OK) {
    Discard();
    return absl::ResourceExhaustedError("libcurl could not make a DNS cache");
  }
  // A DNS cache of this handle's own: the addresses the engine resolved for
  // this probe, and nobody else's.
  set(CURLOPT_SHARE, share_.get());
  set(CURLOPT_PRIVATE, owner);
  set(CURLOPT_NOSIGNAL, 1L);
  set(CURLOPT_ERRORBUFFER, error_);
  // Only http and https; the engine follows redirects itself; never a proxy
  // from the environment (Prepare() sets the options' own, or none), and a
  // proxy's headers go to the proxy only, a target's to the target only.
  set(CURLOPT_PROTOCOLS_STR, "http,https");
  set(CURLOPT_FOLLOWLOCATION, 0L);
  set(CURLOPT_PROXY, "");
  set(CURLOPT_NOPROXY, "");
  set(CURLOPT_HEADEROPT, CURLHEADER_SEPARATE);
  set(CURLOPT_OPENSOCKETFUNCTION, &CurlTransfer::OpenSocketCallback);
  set(CURLOPT_OPENSOCKETDATA, static_cast<void*>(this));
  set(CURLOPT_PREREQFUNCTION, &CurlTransfer::PrereqCallback);
  set(CURLOPT_PREREQDATA, static_cast<void*>(this));
  set(CURLOPT_BUFFERSIZE, kReceiveBufferBytes);
  set(CURLOPT_WRITEFUNCTION, &CurlTransfer::WriteCallback);
  set(CURLOPT_WRITEDATA, static_cast<void*>(this));
  // A declared Content-Length over the cap fails before any body is read.
  set(CURLOPT_MAXFILESIZE_LARGE, static_cast<curl_off_t>(o.max_body_bytes));
  set(CURLOPT_USERAGENT,
      o.user_agent.empty() ? DefaultUserAgent().data() : o.user_agent.c_str());
  if (prepared.watch_headers) {
    set(CURLOPT_HEADERFUNCTION, &CurlTransfer::HeaderCallback);
    set(CURLOPT_HEADERDATA, static_cast<void*>(this));
  }
  // libcurl parses Last-Modified itself (only when a response has one).
  set(CURLOPT_FILETIME, 1L);
  if (!o.accept_encoding.empty()) {
    // Sends the header and decodes what the response's Content-Encoding
    // names, before WriteCallback: the body cap applies to decoded bytes.
    set(CURLOPT_ACCEPT_ENCODING, o.accept_encoding.c_str());
  }
  // The floor and the ceiling (curl --tlsv1.3, --tls-max 1.2).
  const long tls_min = o.tls_min_version == TlsVersion::kTls1_3
                           ? CURL_SSLVERSION_TLSv1_3
                           : CURL_SSLVERSION_TLSv1_2;
  const long tls_max = o.tls_max_version == TlsVersion::kTls1_2
                           ? CURL_SSLVERSION_MAX_TLSv1_2
                           : CURL_SSLVERSION_MAX_TLSv1_3;
  set(CURLOPT_SSLVERSION, tls_min | tls_max);
  set(CURLOPT_SSL_VERIFYPEER, o.tls_verify ? 1L : 0L);
  set(CURLOPT_SSL_VERIFYHOST, o.tls_verify ? 2L : 0L);
  // No CA file or path for libcurl to parse per connection: the engine's
  // own store, parsed once, goes into each connection's context (and the
  // client certificate, parsed once, too).
  set(CURLOPT_CAINFO, static_cast<char*>(nullptr));
  set(CURLOPT_CAPATH, static_cast<char*>(nullptr));
  set(CURLOPT_CA_CACHE_TIMEOUT, 0L);
  if (o.tls_verify || prepared.identity != nullptr) {
    set(CURLOPT_SSL_CTX_FUNCTION, &SetUpSslContext);
    set(CURLOPT_SSL_CTX_DATA,
        const_cast<void*>(static_cast<const void*>(&prepared.ssl_setup)));
  }
  switch (o.http_version) {
    case HttpVersion::kHttp1_1:
      set(CURLOPT_HTTP_VERSION, static_cast<long>(CURL_HTTP_VERSION_1_1));
      break;
    case HttpVersion::kDefault:
    case HttpVersion::kHttp2:
      set(CURLOPT_HTTP_VERSION, static_cast<long>(CURL_HTTP_VERSION_2TLS));
      break;
  }
  if (prepared.source.has_value()) {
    // "host!": an address to bind to, never an interface name.
    const std::string bind_to =
        absl::StrCat("host!", prepared.source->ToString());
    set(CURLOPT_INTERFACE, bind_to.c_str());  // libcurl keeps a copy
  }
  switch (prepared.family) {
    case IpFamily::kAny:
      break;
    case IpFamily::kIpv4:
      set(CURLOPT_IPRESOLVE, static_cast<long>(CURL_IPRESOLVE_V4));
      break;
    case IpFamily::kIpv6:
      set(CURLOPT_IPRESOLVE, static_cast<long>(CURL_IPRESOLVE_V6));
      break;
  }
  if (!o.reuse_connections) {
    // A fresh probe pays what a new client pays: its own connection and a
    // full TLS handshake.
    set(CURLOPT_FRESH_CONNECT, 1L);
    set(CURLOPT_FORBID_REUSE, 1L);
    set(CURLOPT_SSL_SESSIONID_CACHE, 0L);
  }
  if (rc != CURLE_OK) {
    Discard();
    return absl::InvalidArgumentError(
        absl::StrCat("libcurl refused an option: ", curl_easy_strerror(rc)));
  }
  configured_for_ = prepared_ptr;
  return false;
}

absl::Status CurlTransfer::Prepare(const HopRequest& request) {
  CURL* e = easy_.get();
  const PreparedOptions& prepared = *configured_for_;
  const ProbeOptions& o = *prepared.options;
  const ParsedUrl& url = *request.url;
  https_ = url.https;
  body_bytes_ = 0;
  body_too_large_ = false;
  body_.clear();
  keep_body_ = prepared.keep_body;
  max_body_bytes_ = o.max_body_bytes;
  response_headers_.clear();
  response_header_bytes_ = 0;
  headers_ended_ = false;
  headers_too_large_ = false;
  max_response_headers_ = static_cast<size_t>(o.max_response_headers);
  max_response_header_bytes_ = o.max_response_header_bytes;
  error_[0] = '\0';
  denied_.clear();
  tls_.reset();

  CURLcode rc = CURLE_OK;
  auto set = [&rc, e](CURLoption option, auto value) {
    if (rc == CURLE_OK) rc = curl_easy_setopt(e, option, value);
  };
  // libcurl is given the request's URL, but for two cases:
  // - a TLS server name of the options' own, while the probe is on its
  //   target's host: the URL names it (libcurl sends it as SNI and verifies
  //   the certificate against it) and CURLOPT_CONNECT_TO dials the URL's
  //   own host, which also keeps such a connection from being reused for
  //   another target;
  // - a proxy, when the engine resolved the target: the proxy is asked for
  //   the address -- an https request's CONNECT names it (through
  //   CURLOPT_CONNECT_TO), an http request's absolute-form URL holds it.
  // Either way the Host header still names the target, unless the options'
  // headers name one.
  const bool proxied = request.proxy_addresses != nullptr;
  const bool to_address = proxied && !o.proxy->proxy_resolves &&
                          request.addresses != nullptr &&
                          !request.addresses->empty();
  const auto bracketed = [](const IpAddress& address) {
    return address.is_v4 ? address.ToString()
                         : absl::StrCat("[", address.ToString(), "]");
  };
  std::string url_host = url.host;
  std::string dial_host = url.address.has_value() && !url.address->is_v4
                              ? absl::StrCat("[", url.host, "]")
                              : url.host;
  if (to_address) dial_host = bracketed(request.addresses->front());
  if (url.https && !request.cross_host && !o.tls_server_name.empty() &&
      absl::AsciiStrToLower(o.tls_server_name) != url.host) {
    url_host = o.tls_server_name;
  } else if (to_address && !url.https) {
    url_host = dial_host;
  }
  swapped_url_.clear();
  connect_to_.reset();
  hop_headers_.reset();
  if (url_host != url.host) {
    absl::StatusOr<std::string> swapped = UrlWithHost(url, url_host);
    if (!swapped.ok()) return swapped.status();
    swapped_url_ = url.url;
    set(CURLOPT_URL, swapped->c_str());
    if (!prepared.has_host_header) {
      for (const curl_slist* h = request.cross_host
                                     ? prepared.cross_host_headers.get()
                                     : prepared.headers.get();
           h != nullptr; h = h->next) {
        if (!AppendLine(h->data, &hop_headers_)) {
          return absl::ResourceExhaustedError("out of memory");
        }
      }
      if (!AppendLine(absl::StrCat("Host: ", HostHeaderValue(url)),
                      &hop_headers_)) {
        return absl::ResourceExhaustedError("out of memory");
      }
    }
  } else {
    set(CURLOPT_URL, url.url.c_str());
  }
  if (url.https && (url_host != url.host || to_address)) {
    if (!AppendLine(absl::StrCat(url_host, ":", url.port, ":", dial_host, ":",
                                 url.port),
                    &connect_to_)) {
      return absl::ResourceExhaustedError("out of memory");
    }
  }
  set(CURLOPT_CONNECT_TO, connect_to_.get());
  set(CURLOPT_PROXY, proxied ? prepared.proxy->url.c_str() : "");
  // The CONNECT headers go with a tunnel's CONNECT only, as Go's
  // ProxyConnectHeader: an http request through the proxy does not carry
  // them (libcurl would send them to the proxy, which may pass them on).
  set(CURLOPT_PROXYHEADER,
      proxied && url.https ? prepared.proxy_headers.get() : nullptr);
  // The addresses libcurl would otherwise look up: the proxy's, or the
  // target's when it connects to the target itself.  The last request's
  // entries go first.
  resolve_.reset();
  std::vector<std::string> entries;
  for (const std::string& key : resolved_keys_) {
    entries.push_back(absl::StrCat("-", key));
  }
  resolved_keys_.clear();
  if (proxied) {
    if (!request.proxy_addresses->empty()) {
      entries.push_back(
          ResolveEntry(*prepared.proxy, *request.proxy_addresses));
      resolved_keys_.push_back(
          absl::StrCat(prepared.proxy->host, ":", prepared.proxy->port));
    }
  } else if (request.addresses != nullptr && !request.addresses->empty()) {
    entries.push_back(ResolveEntry(url, *request.addresses));
    resolved_keys_.push_back(absl::StrCat(url.host, ":", url.port));
  }
  for (const std::string& entry : entries) {
    if (!AppendLine(entry, &resolve_)) {
      return absl::ResourceExhaustedError("out of memory");
    }
  }
  set(CURLOPT_RESOLVE, resolve_.get());
  set(CURLOPT_TIMEOUT_MS, Millis(request.timeout));
  set(CURLOPT_CONNECTTIMEOUT_MS, request.connect_timeout > absl::ZeroDuration()
                                     ? Millis(request.connect_timeout)
                                     : 0L);
  const curl_slist* headers = hop_headers_ != nullptr ? hop_headers_.get()
                              : request.cross_host
                                  ? prepared.cross_host_headers.get()
                                  : prepared.headers.get();
  set(CURLOPT_HTTPHEADER, headers);
  // Back to a plain GET first: a previous request may have been anything.
  set(CURLOPT_HTTPGET, 1L);
  set(CURLOPT_CUSTOMREQUEST, static_cast<char*>(nullptr));
  const absl::string_view method = request.method;
  if (method == "HEAD") {
    set(CURLOPT_NOBODY, 1L);
  } else if (request.send_body && (!o.body.empty() || method == "POST" ||
                                   method == "PUT" || method == "PATCH")) {
    // Methods that carry a body send "Content-Length: 0" when it is empty,
    // else some servers wait for one.
    set(CURLOPT_POSTFIELDS, o.body.data());
    set(CURLOPT_POSTFIELDSIZE_LARGE, static_cast<curl_off_t>(o.body.size()));
    if (method != "POST") set(CURLOPT_CUSTOMREQUEST, method.data());
  } else if (method != "GET") {
    set(CURLOPT_CUSTOMREQUEST, method.data());
  }
  if (rc != CURLE_OK) {
    Discard();
    return absl::InvalidArgumentError(
        absl::StrCat("libcurl refused an option: ", curl_easy_strerror(rc)));
  }
  return absl::OkStatus();
}

void CurlTransfer::ReadResponse(CURLcode code, absl::Duration dns, Hop* hop,
                                ProbeResult* r) {
  CURL* e = easy_.get();
  long status = 0;
  curl_easy_getinfo(e, CURLINFO_RESPONSE_CODE, &status);
  hop->status_code = static_cast<int>(status);
  char* text = nullptr;
  if (curl_easy_getinfo(e, CURLINFO_PRIMARY_IP, &text) == CURLE_OK && text) {
    hop->remote_ip = text;
  }
  long port = 0;
  curl_easy_getinfo(e, CURLINFO_PRIMARY_PORT, &port);
  hop->remote_port = static_cast<int>(port);
  text = nullptr;
  if (!swapped_url_.empty()) {
    // libcurl resolved the Location against the URL it was given, whose
    // host is the TLS server name; the probe's own URL is the base.
    curl_header* location = nullptr;
    if (curl_easy_header(e, "Location", 0, CURLH_HEADER, -1, &location) ==
            CURLHE_OK &&
        location != nullptr && *location->value != '\0') {
      absl::StatusOr<std::string> resolved =
          ResolveReference(swapped_url_, location->value);
      hop->location = resolved.ok() ? *std::move(resolved) : location->value;
    }
  } else if (curl_easy_getinfo(e, CURLINFO_REDIRECT_URL, &text) == CURLE_OK &&
             text) {
    hop->location = text;
  }
  // libcurl measures from its own start, which follows the engine's lookup.
  auto after_dns = [dns](absl::Duration d) {
    return d > absl::ZeroDuration() ? dns + d : absl::ZeroDuration();
  };
  hop->timings.dns = dns;
  hop->timings.connect = after_dns(CurlMicros(e, CURLINFO_CONNECT_TIME_T));
  hop->timings.tls = after_dns(CurlMicros(e, CURLINFO_APPCONNECT_TIME_T));
  hop->timings.first_byte =
      after_dns(CurlMicros(e, CURLINFO_STARTTRANSFER_TIME_T));
  hop->timings.total = dns + CurlMicros(e, CURLINFO_TOTAL_TIME_T);

  r->status_code = hop->status_code;
  long version = 0;
  curl_easy_getinfo(e, CURLINFO_HTTP_VERSION, &version);
  r->http_version = ResponseVersionOf(version);
  r->remote_ip = hop->remote_ip;
  r->remote_port = hop->remote_port;
  r->decoded_body_bytes = body_bytes_;
  r->body_bytes = body_bytes_;
  if (!configured_for_->options->accept_encoding.empty()) {
    // WriteCallback saw the decoded body; libcurl counts what came in.
    curl_off_t wire = 0;
    if (curl_easy_getinfo(e, CURLINFO_SIZE_DOWNLOAD_T, &wire) == CURLE_OK) {
      r->body_bytes = static_cast<uint64_t>(std::max<curl_off_t>(wire, 0));
    }
  }
  curl_off_t length = -1;
  r->content_length.reset();
  if (hop->status_code > 0 &&
      curl_easy_getinfo(e, CURLINFO_CONTENT_LENGTH_DOWNLOAD_T, &length) ==
          CURLE_OK &&
      length >= 0) {
    r->content_length = static_cast<uint64_t>(length);
  }
  curl_off_t modified = -1;
  r->last_modified.reset();
  if (hop->status_code > 0 &&
      curl_easy_getinfo(e, CURLINFO_FILETIME_T, &modified) == CURLE_OK &&
      modified >= 0) {
    r->last_modified = absl::FromUnixSeconds(modified);
  }
  r->response_headers.clear();
  if (configured_for_->options->keep_response_headers && !headers_too_large_) {
    r->response_headers = response_headers_;
  }
  r->tls = std::move(tls_);
  tls_.reset();
  r->cert_expiry.reset();
  if (r->tls.has_value()) {
    for (const CertificateInfo& cert : r->tls->chain) {
      if (!r->cert_expiry.has_value() || cert.not_after < *r->cert_expiry) {
        r->cert_expiry = cert.not_after;
      }
    }
  }
}

std::vector<absl::string_view> CurlTransfer::HeaderValues(
    absl::string_view name) const {
  std::vector<absl::string_view> values;
  for (const auto& [header, value] : response_headers_) {
    if (absl::EqualsIgnoreCase(header, name)) values.push_back(value);
  }
  return values;
}

std::optional<std::string> CurlTransfer::HeaderMismatch() const {
  // As blackbox_exporter judges them: a missing header fails a rule of
  // either kind unless the rule allows it.
  const PreparedOptions& prepared = *configured_for_;
  for (const HeaderRule& rule : prepared.header_must_match) {
    const std::vector<absl::string_view> values = HeaderValues(rule.name);
    if (values.empty()) {
      if (rule.allow_missing) continue;
      return absl::StrCat("the response has no ", rule.name, " header");
    }
    if (std::none_of(values.begin(), values.end(),
                     [&rule](absl::string_view v) {
                       return re2::RE2::PartialMatch(
                           re2::StringPiece(v.data(), v.size()), *rule.re);
                     })) {
      return absl::StrCat("no value of the ", rule.name, " header matches \"",
                          rule.re->pattern(), "\"");
    }
  }
  for (const HeaderRule& rule : prepared.header_must_not_match) {
    const std::vector<absl::string_view> values = HeaderValues(rule.name);
    if (values.empty()) {
      if (rule.allow_missing) continue;
      return absl::StrCat("the response has no ", rule.name, " header");
    }
    if (std::any_of(values.begin(), values.end(), [&rule](absl::string_view v) {
          return re2::RE2::PartialMatch(re2::StringPiece(v.data(), v.size()),
                                        *rule.re);
        })) {
      return absl::StrCat("the ", rule.name, " header matches \"",
                          rule.re->pattern(), "\"");
    }
  }
  return std::nullopt;
}

void CurlTransfer::Judge(CURLcode code, ProbeResult* r) const {
  const PreparedOptions& prepared = *configured_for_;
  const ProbeOptions& o = *prepared.options;
  if (code == CURLE_WRITE_ERROR && body_too_large_) {
    r->outcome = Outcome::kBodyTooLarge;
    r->error = absl::StrCat(
        o.accept_encoding.empty() ? "the body" : "the decoded body",
        " exceeds max_body_bytes (", o.max_body_bytes, " bytes)");
    return;
  }
  if (code == CURLE_WRITE_ERROR && headers_too_large_) {
    r->outcome = Outcome::kIoError;
    r->error =
        absl::StrCat("the response headers exceed max_response_headers (",
                     o.max_response_headers, ") or max_response_header_bytes (",
                     o.max_response_header_bytes, " bytes)");
    return;
  }
  if (code != CURLE_OK && !denied_.empty()) {
    r->outcome = Outcome::kDenied;
    r->error = denied_;
    return;
  }
  long connect_code = 0;
  if (code != CURLE_OK &&
      curl_easy_getinfo(easy_.get(), CURLINFO_HTTP_CONNECTCODE,
                        &connect_code) == CURLE_OK &&
      connect_code >= 300) {
    // The proxy would not open the tunnel: the target was not reached.
    r->outcome = Outcome::kConnectError;
    r->error = absl::StrCat("the proxy answered CONNECT with ", connect_code);
    return;
  }
  if (code != CURLE_OK) {
    r->outcome = OutcomeForCurlCode(code);
    r->error = error_[0] != '\0' ? std::string(error_)
                                 : std::string(curl_easy_strerror(code));
    if (code == CURLE_FILESIZE_EXCEEDED) {
      r->error = absl::StrCat("the declared body exceeds max_body_bytes (",
                              o.max_body_bytes, " bytes)");
    }
    if (code == CURLE_INTERFACE_FAILED && prepared.source.has_value()) {
      r->error = absl::StrCat("source address ", prepared.source->ToString(),
                              " cannot be used: ", r->error);
    }
    return;
  }
  if (!StatusIsValid(r->status_code, o.valid_status)) {
    r->outcome = Outcome::kUnexpectedStatus;
    r->error =
        absl::StrCat("status ", r->status_code, " is not a valid status");
    return;
  }
  if (std::optional<std::string> mismatch = HeaderMismatch()) {
    r->outcome = Outcome::kHeaderMismatch;
    r->error = *std::move(mismatch);
    return;
  }
  for (const auto& re : prepared.must_match) {
    if (!re2::RE2::PartialMatch(body_, *re)) {
      r->outcome = Outcome::kBodyMismatch;
      r->error =
          absl::StrCat("the body does not match \"", re->pattern(), "\"");
      return;
    }
  }
  for (const auto& re : prepared.must_not_match) {
    if (re2::RE2::PartialMatch(body_, *re)) {
      r->outcome = Outcome::kBodyMismatch;
      r->error = absl::StrCat("the body matches \"", re->pattern(), "\"");
      return;
    }
  }
  r->outcome = Outcome::kOk;
  r->error.clear();
}

}  // namespace fanprobe::internal
