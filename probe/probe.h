// probe.h: what one probe is (ProbeTarget + ProbeOptions) and what it yields
// (ProbeResult).  Plain value types, no behaviour; the engine (engine.h) runs
// them.  A "probe" is one HTTP check of one target; a "batch" is a set of
// probes submitted together.
//
// Example:
//   auto options = std::make_shared<fanprobe::ProbeOptions>();
//   options->timeout = absl::Seconds(2);
//   options->valid_status = {{200, 299}};
//   fanprobe::ProbeTarget target{.url = "http://127.0.0.1:8080/healthz",
//                                .id = "web-1",
//                                .options = options};
//
// Thread-safety: these are values; share them read-only or copy them.

#ifndef FANPROBE_PROBE_PROBE_H_
#define FANPROBE_PROBE_PROBE_H_

#include <cstdint>
#include <map>
#include <memory>
#include <optional>
#include <string>
#include <utility>
#include <vector>

#include "absl/strings/string_view.h"
#include "absl/time/time.h"

namespace fanprobe {

// The user agent every probe sends unless its options say otherwise.
absl::string_view DefaultUserAgent();  // "fanprobe/<version>"

// The version of the HTTP transport probes run on, e.g. "7.88.1" (libcurl),
// for build information (/metrics' fanprobe_build_info).
absl::string_view TransportVersion();

// Why a probe ended.  Every probe that completes has exactly one outcome; a
// probe that a batch cancels before it completes has no result at all and is
// listed in the batch summary's pending indices instead.
enum class Outcome {
  kOk,                // status valid and body expectations met
  kUnexpectedStatus,  // an HTTP response whose status is not a valid one
  kBodyMismatch,      // the body failed a must / must-not match pattern
  kDnsError,          // the host name did not resolve
  kConnectError,      // TCP connect refused, unreachable, ...
  kTlsError,          // handshake or certificate verification failed
  kTimeout,           // the probe's own timeout (or connect timeout) expired
  kIoError,           // the connection broke, or the reply was not HTTP
  kTooManyRedirects,  // more redirects than max_redirects
  kBodyTooLarge,      // the body exceeded max_body_bytes
  kDenied,            // the destination address is forbidden by policy
  kInvalidTarget,     // the URL or the options are unusable (nothing was
                      // sent), or a redirect led to a scheme other than
                      // http or https (not followed)
  kHeaderMismatch,    // a response header rule failed (added last: the
                      // values above are counted by number)
};
inline constexpr int kNumOutcomes =
    static_cast<int>(Outcome::kHeaderMismatch) + 1;

// "OK", "UNEXPECTED_STATUS", ..., the names the proto enum uses without its
// "OUTCOME_" prefix.
absl::string_view OutcomeName(Outcome outcome);

// An inclusive range of HTTP status codes, e.g. {200, 299}.
struct StatusRange {
  int min = 0;
  int max = 0;
};

// The statuses a probe accepts when its options name none.
inline constexpr StatusRange kDefaultValidStatus{200, 399};

// Whether `status` is inside one of `ranges`; empty `ranges` means
// kDefaultValidStatus.
bool StatusIsValid(int status, const std::vector<StatusRange>& ranges);

// How a name lookup failed (the outcome is then kDnsError).
enum class DnsFailure {
  kNone,      // resolved, or nothing to resolve (the host is an address)
  kNxDomain,  // the name does not exist (NXDOMAIN)
  kNoData,    // it exists but has no address of the family asked for
  kServFail,  // the DNS server failed (SERVFAIL)
  kRefused,   // the DNS server refused to answer (REFUSED)
  kTimeout,   // no answer within the DNS timeout
  kOther,     // anything else: a name that is not valid, no server reachable
};
absl::string_view DnsFailureName(DnsFailure failure);  // "NXDOMAIN", ...

enum class HttpVersion {
  kDefault,  // HTTP/2 over TLS when the server offers it, else HTTP/1.1
  kHttp1_1,  // only HTTP/1.1
  kHttp2,    // HTTP/2 over TLS (ALPN), HTTP/1.1 for plain http:// targets
};

// The HTTP version a response came in.
enum class ResponseVersion {
  kNone,  // no response
  kHttp1_0,
  kHttp1_1,
  kHttp2,
  kHttp3,
};
// "HTTP/1.0", "HTTP/1.1", "HTTP/2", "HTTP/3"; "" for kNone.
absl::string_view ResponseVersionName(ResponseVersion version);

// A TLS protocol version: a probe's floor and ceiling.  Nothing older than
// TLS 1.2 is offered (OpenSSL 3 refuses it at its default security level).
enum class TlsVersion {
  kTls1_2,
  kTls1_3,
};
// "TLSv1.2", "TLSv1.3": OpenSSL's names, as TlsInfo::version has them.
absl::string_view TlsVersionName(TlsVersion version);

enum class IpFamily {
  kAny,   // whatever the resolver returns, happy-eyeballs style
  kIpv4,  // only IPv4 addresses
  kIpv6,  // only IPv6 addresses
};

using Headers = std::vector<std::pair<std::string, std::string>>;
using Labels = std::map<std::string, std::string>;

// A rule on one response header (blackbox_exporter's
// fail_if_header_matches / fail_if_header_not_matches entries).
struct HeaderPattern {
  std::string name;     // compared without regard to case; an HTTP token
  std::string pattern;  // RE2, matched anywhere in a value
  // A response without the header passes the rule (true) or fails it
  // (false, in either list, as blackbox_exporter does).
  bool allow_missing = false;
};

// HTTP basic authentication (RFC 7617).
struct BasicAuth {
  std::string username;  // no ':'
  std::string password;
};

// A client certificate for mutual TLS, as PEM text.
struct ClientCertificate {
  std::string cert_pem;  // the certificate, then any intermediates
  std::string key_pem;   // its private key (unencrypted)
};

// An HTTP forward proxy a probe goes through, as curl's --proxy and
// blackbox_exporter's proxy_url.  https targets are reached through a
// CONNECT tunnel, http targets with absolute-form requests.
struct ProxyOptions {
  // "http://[user:password@]host[:port]" (port 80 when none); the user
  // information, if any, is sent as Proxy-Authorization (basic).  The
  // destination policy applies to the proxy's addresses as to a target's.
  std::string url;
  // Sent to the proxy with each CONNECT (e.g. Proxy-Authorization), never
  // to a target.
  Headers connect_headers;
  // Hosts reached directly, as Go's and curl's NO_PROXY: "*" (every host),
  // a domain ("example.com" is it and its subdomains, ".example.com" its
  // subdomains only), an IP address or a CIDR block (for targets named by
  // address), each optionally with ":port".
  std::vector<std::string> no_proxy;
  // Off (blackbox_exporter's default): the engine resolves the target
  // itself -- the DNS phase is timed, a name that does not resolve is
  // kDnsError, the policy checks its addresses -- and asks the proxy for
  // the address.  On (skip_resolve_phase_with_proxy): the proxy is asked
  // for the name and resolves it; the policy then sees only the proxy's
  // address and targets named by address.
  bool proxy_resolves = false;
};

// When and how often a failed probe is tried again (ProbeOptions::retry),
// after gRPC's retry policy: attempt n + 1 begins backoff(n) after attempt n
// ended, backoff(1) = initial_backoff and each next one `multiplier` times
// the last, at most max_backoff, each moved at random by up to a fifth
// either way so that probes which fail together do not retry together.
// The probe's timeout counts across every attempt: an attempt that could
// not begin before it expires is not made, and the probe ends with the
// attempt before.  Each attempt is a fresh start (lookup, connection,
// redirects); the result is the last attempt's and lists every attempt
// (ProbeResult::attempts), so a retry never hides a failure.
struct RetryPolicy {
  // Attempts in all, the first included; 1 means no retry.  At most
  // ProbeLimits::max_attempts.
  int max_attempts = 1;
  absl::Duration initial_backoff = absl::Seconds(1);
  absl::Duration max_backoff = absl::Seconds(30);
  double backoff_multiplier = 2.0;  // at least 1
  // The outcomes that are tried again.  By default the failures to get an
  // answer, which a moment may cure; not the verdicts on an answer (status,
  // body, headers, certificate), which a retry would only repeat.  kOk,
  // kInvalidTarget and kDenied may not be listed.
  std::vector<Outcome> retry_on = {Outcome::kDnsError, Outcome::kConnectError,
                                   Outcome::kTimeout, Outcome::kIoError};
};

// How to probe a target.  Every field has the default a user of a mature
// prober expects (blackbox_exporter's http module, curl).
struct ProbeOptions {
  // The request method.  HEAD sends no body and reads none.
  std::string method = "GET";
  // Extra request headers.  A name or value holding CR or LF makes the probe
  // an kInvalidTarget.
  Headers headers;
  // The request body; sent when non-empty.
  std::string body;
  // The whole probe (resolve, connect, TLS, request, body, every redirect hop)
  // must finish within this.  Its clock starts when the probe starts, not
  // while it waits in the batch's queue.  Must be positive.
  absl::Duration timeout = absl::Seconds(10);
  // Limit for the connect phase (resolve + TCP + TLS) of each hop; zero means
  // only `timeout` bounds it.
  absl::Duration connect_timeout = absl::ZeroDuration();
  // Follow 3xx responses with a Location header, at most max_redirects times.
  bool follow_redirects = true;
  int max_redirects = 10;
  // A final status inside any of these ranges is valid.  Empty means the
  // default, kDefaultValidStatus.
  std::vector<StatusRange> valid_status = {kDefaultValidStatus};
  // RE2 patterns.  The body must match every "must" pattern and no
  // "must not" pattern, else kBodyMismatch.  A pattern that does not compile
  // makes the probe kInvalidTarget.
  std::vector<std::string> body_must_match;
  std::vector<std::string> body_must_not_match;
  // Bodies larger than this fail as kBodyTooLarge; the transfer stops there.
  uint64_t max_body_bytes = 64 * 1024;
  // Verify the server certificate chain and host name.
  bool tls_verify = true;
  // The CA certificates (PEM) to verify against instead of the system's, as
  // curl --cacert and blackbox_exporter's ca_file do.  Empty: the system's.
  std::string ca_pem;
  // The lowest and highest TLS versions a handshake may agree on, as curl's
  // --tlsv1.3 and --tls-max.  A server outside them fails the probe as
  // kTlsError; a floor above the ceiling makes it kInvalidTarget.
  TlsVersion tls_min_version = TlsVersion::kTls1_2;
  TlsVersion tls_max_version = TlsVersion::kTls1_3;
  // The name an https probe's handshake sends (SNI) and verifies the
  // certificate against, instead of the URL's host, while the probe stays
  // on that host (a redirect to another host uses its own name).  The
  // connection still goes to the URL's host, and the Host header still
  // names it unless `headers` has one.  Empty: the URL's host.  A host
  // name or an IP address; anything else makes the probe kInvalidTarget.
  std::string tls_server_name;
  HttpVersion http_version = HttpVersion::kDefault;
  IpFamily ip_family = IpFamily::kAny;
  // The local address the probe connects from, as curl --interface with an
  // address: an IPv4 or IPv6 address, which also picks the family the
  // target is reached over.  It must lie within the engine's
  // EngineOptions::allowed_sources, and be an address of this host;
  // otherwise the probe is kInvalidTarget, naming it.  Empty: the kernel
  // chooses.
  std::string source_address;
  // Off (default): each probe opens its own connection and does a full TLS
  // handshake (no session resumption), so connect and TLS timings are what
  // a new client pays, as blackbox_exporter's are.  On: connections are
  // kept and reused between probes to the same host, and TLS sessions may
  // be resumed.
  bool reuse_connections = false;
  // Sent as User-Agent; empty means DefaultUserAgent().
  std::string user_agent;
  // Rules on the final response's headers, judged after the status and
  // before the body patterns; a failed rule is kHeaderMismatch.  "must":
  // the header has a value that matches; "must not": none of its values
  // matches.  A header sent on several lines has one value per line.
  std::vector<HeaderPattern> header_must_match;
  std::vector<HeaderPattern> header_must_not_match;
  // Return the final response's headers in ProbeResult::response_headers.
  // Off by default so that results stay small.
  bool keep_response_headers = false;
  // When headers are kept or matched: a final response with more header
  // lines, or more bytes of names and values, fails as kIoError and the
  // transfer stops there.
  int max_response_headers = 100;
  uint64_t max_response_header_bytes = 64 * 1024;
  // Sends "Authorization: Basic ...".  Not with bearer_token, nor with an
  // Authorization header in `headers`.  Credentials (these, and an
  // Authorization or Cookie header) are not sent past a redirect to another
  // host, and never appear in a result or an error.
  std::optional<BasicAuth> basic_auth;
  // Sends "Authorization: Bearer <token>" when non-empty.
  std::string bearer_token;
  // Sent as Accept-Encoding when non-empty: a comma-separated list of gzip,
  // deflate, br, zstd and identity, each one the transport can decode
  // (SupportedEncodings()).  The body is then decoded per the response's
  // Content-Encoding before patterns see it, and max_body_bytes bounds the
  // decoded body.  Not with an Accept-Encoding header in `headers`.
  std::string accept_encoding;
  // Presented to https targets that ask for a client certificate.
  std::optional<ClientCertificate> client_certificate;
  // The proxy to go through; none by default (and never one from the
  // environment).
  std::optional<ProxyOptions> proxy;
  // Tries again after a failure; off by default (one attempt).
  RetryPolicy retry;
};

// The content codings this build's transport decodes, e.g.
// {"identity", "gzip", "deflate", "br", "zstd"}.
const std::vector<std::string>& SupportedEncodings();

// What a server lets a probe ask for (EngineOptions::limits); a probe whose
// options ask for more is kInvalidTarget, and Engine::CheckOptions() says
// so before a batch is submitted.
struct ProbeLimits {
  // ProbeOptions::max_body_bytes at most: what one probe may read, and
  // keep in memory when it matches patterns against the body.
  uint64_t max_body_bytes = 16 * 1024 * 1024;
  // The request headers a probe sends (names, values, method, user agent),
  // in bytes.
  uint64_t max_request_header_bytes = 64 * 1024;
  // The request body, in bytes.
  uint64_t max_request_body_bytes = 1024 * 1024;
  // ProbeOptions::max_redirects at most.
  int max_redirects = 30;
  // ProbeOptions::max_response_headers and max_response_header_bytes at
  // most.
  int max_response_headers = 1000;
  uint64_t max_response_header_bytes = 256 * 1024;
  // ProbeOptions::retry.max_attempts at most.
  int max_attempts = 10;
};

// One probe of a batch: the URL plus options.  `id` and `labels` are echoed
// back in the result untouched.  A URL without a scheme is taken as http://;
// any scheme other than http and https makes the probe kInvalidTarget.
struct ProbeTarget {
  std::string url;
  std::string id;
  Labels labels;
  // Shared so a batch of 100,000 targets with the same options holds one
  // copy; null means ProbeOptions{}.
  std::shared_ptr<const ProbeOptions> options;
};

// Phase timings.  In a ProbeResult each is measured from the start of the
// probe, as curl does (so dns <= connect <= tls <= first_byte <= total), and
// the phases are the last request's, after `redirect`; in a Hop they are
// measured from the start of that request.  A phase that did not happen (no
// lookup for an address, no TLS on http://, a reused connection) is zero.
struct Timings {
  absl::Duration dns = absl::ZeroDuration();         // name resolved
  absl::Duration connect = absl::ZeroDuration();     // TCP connected
  absl::Duration tls = absl::ZeroDuration();         // TLS handshake done
  absl::Duration first_byte = absl::ZeroDuration();  // first response byte
  absl::Duration total = absl::ZeroDuration();       // probe finished
  absl::Duration redirect = absl::ZeroDuration();    // spent on redirect hops
};

// One request of a probe: the first, or one a redirect led to.
struct Hop {
  std::string url;
  int status_code = 0;    // 0 when no response came
  std::string location;   // the redirect this response asked for, if any
  std::string remote_ip;  // the address connected to; empty when none
  int remote_port = 0;
  // What the hop could connect to: what the lookup found, or the URL's
  // own address; empty when the lookup failed.
  std::vector<std::string> addresses;
  Timings timings;  // from the start of this request
};

// A certificate as the server presented it.
struct CertificateInfo {
  std::string subject;  // RFC 2253, e.g. "CN=web.test,O=Example"
  std::string issuer;
  std::string serial;              // lower-case hex
  std::string sha256_fingerprint;  // lower-case hex of the DER
  absl::Time not_before;
  absl::Time not_after;
  // The DNS names among its subject alternative names, in certificate order.
  std::vector<std::string> dns_names;
};

// The TLS session of the last request.
struct TlsInfo {
  std::string version;   // "TLSv1.3", "TLSv1.2", ...
  std::string cipher;    // as IANA names it, e.g. "TLS_AES_256_GCM_SHA384"
  bool resumed = false;  // an earlier session was resumed (no full handshake)
  // The chain that verified, leaf first; the chain the server sent when
  // verification is off.
  std::vector<CertificateInfo> chain;
};

// One attempt of a probe whose options allow retries: how it ended.
struct Attempt {
  Outcome outcome = Outcome::kOk;
  int status_code = 0;  // the final HTTP status; 0 when no response came
  std::string error;    // as ProbeResult::error
  DnsFailure dns_failure = DnsFailure::kNone;
  std::string remote_ip;  // the address its last hop connected to
  int remote_port = 0;
  absl::Duration start;  // when it began, from the first attempt's start
  Timings timings;       // from its own start
};

// What one completed probe found.
struct ProbeResult {
  uint32_t index = 0;     // the probe's position in its batch
  std::string id;         // echoed from the target
  Labels labels;          // echoed from the target
  std::string url;        // as given in the target
  std::string final_url;  // after redirects
  Outcome outcome = Outcome::kOk;
  int status_code = 0;  // the final HTTP status; 0 when no response came
  ResponseVersion http_version = ResponseVersion::kNone;
  std::string remote_ip;  // the address the last hop connected to
  int remote_port = 0;
  // Why the outcome is not kOk, in words: curl's error text, the status that
  // was not valid, the pattern that failed.  Empty for kOk.
  std::string error;
  Timings timings;
  // Body bytes received over the wire (before any cut-off, and before a
  // Content-Encoding is decoded).
  uint64_t body_bytes = 0;
  // The body's length once decoded (ProbeOptions::accept_encoding), as far
  // as it was read; equal to body_bytes when nothing was decoded.
  uint64_t decoded_body_bytes = 0;
  // The final response's Content-Length, when it sent one.
  std::optional<uint64_t> content_length;
  // The final response's Last-Modified, when it sent one that parses.
  std::optional<absl::Time> last_modified;
  // The final response's headers, in order, names as sent; only with
  // ProbeOptions::keep_response_headers.
  Headers response_headers;
  int redirects = 0;  // redirects followed
  // https only: the earliest notAfter of the certificate chain presented.
  std::optional<absl::Time> cert_expiry;
  // kDnsError only: how the lookup failed.
  DnsFailure dns_failure = DnsFailure::kNone;
  // Every request made, in order: the redirect chain.  Empty when none was
  // made (an invalid target, a denied or unresolvable first host).
  std::vector<Hop> hops;
  // https only, once a handshake completed: on the last hop, so whether the
  // final response came over TLS is tls.has_value() && status_code > 0.
  std::optional<TlsInfo> tls;
  // The longest event-loop turn of the prober while this probe ran, when it
  // was 5 ms or more (else zero): for that long the prober could not see
  // this probe's events.  Timings much longer than the target's own are
  // then the prober's doing, not the target's.
  absl::Duration prober_lag = absl::ZeroDuration();
  // When the options allow retries (retry.max_attempts > 1): every attempt
  // made, in order, the last one being what the fields above describe
  // (their timings are measured from its start).  Empty otherwise.
  std::vector<Attempt> attempts;
};

}  // namespace fanprobe

#endif  // FANPROBE_PROBE_PROBE_H_
