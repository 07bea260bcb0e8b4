#include "monitoring/blackbox_report.h"

#include <algorithm>
#include <cstdint>
#include <optional>
#include <string>
#include <utility>
#include <vector>

#include "absl/status/statusor.h"
#include "absl/strings/numbers.h"
#include "absl/strings/str_cat.h"
#include "absl/strings/str_join.h"
#include "absl/strings/string_view.h"
#include "absl/time/time.h"
#include "monitoring/phases.h"
#include "monitoring/prometheus_text.h"
#include "probe/destination_policy.h"

namespace fanprobe::monitoring {
namespace {

// FNV-1a, 32 bits, of the address bytes (4 for IPv4, 16 for IPv6): what
// blackbox_exporter's probe_ip_addr_hash holds.
uint32_t AddressHash(const IpAddress& address) {
  const size_t first = address.is_v4 ? 12 : 0;  // IPv4 is held IPv4-mapped
  uint32_t hash = 2166136261u;
  for (size_t i = first; i < address.bytes.size(); ++i) {
    hash ^= address.bytes[i];
    hash *= 16777619u;
  }
  return hash;
}

// blackbox_exporter's probe_http_version: 1.1, 2, ...; 0 without a response.
double HttpVersionNumber(ResponseVersion version) {
  switch (version) {
    case ResponseVersion::kNone:
      return 0;
    case ResponseVersion::kHttp1_0:
      return 1.0;
    case ResponseVersion::kHttp1_1:
      return 1.1;
    case ResponseVersion::kHttp2:
      return 2;
    case ResponseVersion::kHttp3:
      return 3;
  }
  return 0;
}

// Go's Response.ContentLength, which blackbox_exporter reports: what the
// final response announced, as net/http reads it.
double GoContentLength(const std::string& method, const ProbeResult& result) {
  const int status = result.status_code;
  if (status == 0) return 0;  // no response: an empty http.Response
  const double announced = result.content_length.has_value()
                               ? static_cast<double>(*result.content_length)
                               : -1;
  if (method == "HEAD") return announced;
  if (status / 100 == 1 || status == 204 || status == 304) return 0;
  return announced;
}

bool IsRedirectStatus(int status) {
  return status == 301 || status == 302 || status == 303 || status == 307 ||
         status == 308;
}

// crypto/tls's names of the protocol versions, which blackbox_exporter's
// probe_tls_version_info uses, from OpenSSL's.
std::string GoTlsVersion(absl::string_view openssl) {
  if (openssl == "TLSv1.3") return "TLS 1.3";
  if (openssl == "TLSv1.2") return "TLS 1.2";
  if (openssl == "TLSv1.1") return "TLS 1.1";
  if (openssl == "TLSv1") return "TLS 1.0";
  return "unknown";
}

}  // namespace

ProbeReport ReportProbe(const BlackboxModule& module, std::string target,
                        const ProbeResult& result) {
  ProbeReport report;
  report.target = std::move(target);
  report.outcome = std::string(OutcomeName(result.outcome));
  report.success = result.outcome == Outcome::kOk;
  report.error = result.error;
  report.duration = result.timings.total;
  report.attempts = 1;
  if (!result.attempts.empty()) {
    const Attempt& last = result.attempts.back();
    report.duration = last.start + last.timings.total;
    report.attempts = static_cast<int>(result.attempts.size());
  }
  report.status_code = result.status_code;
  report.body_bytes = result.body_bytes;
  report.content_length = GoContentLength(module.options.method, result);
  report.uncompressed_body_bytes = result.decoded_body_bytes;
  report.last_modified = result.last_modified;
  report.redirects = result.redirects;
  report.ssl = result.status_code > 0 && result.tls.has_value();
  report.http_version = HttpVersionNumber(result.http_version);
  report.phases = PhasesOf(result.timings);
  report.dns_lookup = result.timings.dns;
  // blackbox_exporter sets it for its header rules as for its body ones.
  report.failed_due_to_regex = result.outcome == Outcome::kBodyMismatch ||
                               result.outcome == Outcome::kHeaderMismatch;
  // blackbox_exporter reports the address it resolved, even when the
  // connection then failed: the one connected to, else the first the
  // first request could have (the engine lists the preferred family's
  // first, as blackbox_exporter picks them).
  std::string connected = result.remote_ip;
  if (connected.empty() && !result.hops.empty() &&
      !result.hops.front().addresses.empty()) {
    connected = result.hops.front().addresses.front();
  }
  if (absl::StatusOr<IpAddress> address = IpAddress::Parse(connected);
      address.ok()) {
    report.ip_protocol = address->is_v4 ? 4 : 6;
    report.ip_addr_hash = AddressHash(*address);
  }
  // A redirect the probe did not follow (the module says not to, or it was
  // one too many) still counts, as in blackbox_exporter, which counts it
  // before refusing to follow it -- and then reads no body.  A 3xx without
  // Location is no redirect to Go's client: counted in neither.
  const bool unfollowed_redirect =
      IsRedirectStatus(result.status_code) && !result.hops.empty() &&
      !result.hops.back().location.empty() &&
      (!module.options.follow_redirects ||
       result.outcome == Outcome::kTooManyRedirects);
  if (unfollowed_redirect) {
    if (!module.options.follow_redirects && report.redirects == 0) {
      report.redirects = 1;
    }
    report.uncompressed_body_bytes = 0;
  }
  // blackbox_exporter writes the TLS series only for a response that came
  // over TLS: not for a handshake that completed before the request failed
  // (a server that wanted a client certificate and got none).
  if (report.ssl) report.cert_expiry = result.cert_expiry;
  if (report.ssl && !result.tls->chain.empty()) {
    report.tls_version = GoTlsVersion(result.tls->version);
    report.tls_cipher = result.tls->cipher;
    report.leaf_certificate = result.tls->chain.front();
    if (module.options.tls_verify) {
      absl::Time earliest = absl::InfiniteFuture();
      for (const CertificateInfo& certificate : result.tls->chain) {
        earliest = std::min(earliest, certificate.not_after);
      }
      report.last_chain_expiry = earliest;
    }
  }
  report.final_url = result.final_url;
  report.remote_ip = result.remote_ip;
  report.remote_port = result.remote_port;
  if (report.success && !module.valid_http_versions.empty()) {
    // blackbox_exporter compares Go's Proto, which spells HTTP/2 "HTTP/2.0".
    const std::string proto =
        result.http_version == ResponseVersion::kHttp2 ? "HTTP/2.0"
        : result.http_version == ResponseVersion::kHttp3
            ? "HTTP/3.0"
            : std::string(ResponseVersionName(result.http_version));
    if (std::find(module.valid_http_versions.begin(),
                  module.valid_http_versions.end(),
                  proto) == module.valid_http_versions.end()) {
      report.success = false;
      report.outcome = "INVALID_HTTP_VERSION";
      report.error = absl::StrCat("the response's version ", proto,
                                  " is not in valid_http_versions");
    }
  }
  if (report.success && module.fail_if_ssl && report.ssl) {
    report.success = false;
    report.outcome = "FAIL_IF_SSL";
    report.error = "the final response came over TLS (fail_if_ssl)";
  } else if (report.success && module.fail_if_not_ssl && !report.ssl) {
    report.success = false;
    report.outcome = "FAIL_IF_NOT_SSL";
    report.error = "the final response did not come over TLS (fail_if_not_ssl)";
  }
  return report;
}

ProbeReport ReportUnfinished(std::string target, absl::string_view outcome,
                             absl::string_view error, absl::Duration elapsed) {
  ProbeReport report;
  report.target = std::move(target);
  report.outcome = std::string(outcome);
  report.error = std::string(error);
  report.duration = elapsed;
  return report;
}

void WriteProbeMetrics(const std::vector<ProbeReport>& reports,
                       bool target_labels, MetricsWriter& out) {
  auto labels = [target_labels](const ProbeReport& report,
                                MetricsWriter::Labels extra = {}) {
    MetricsWriter::Labels all;
    if (target_labels) all.emplace_back("target", report.target);
    for (auto& label : extra) all.push_back(std::move(label));
    return all;
  };
  // One family at a time, each with every target's sample, in
  // blackbox_exporter's (alphabetical) order.
  auto gauge = [&](absl::string_view name, absl::string_view help,
                   auto value_of) {
    out.Family(name, "gauge", help);
    for (const ProbeReport& report : reports) {
      out.Sample(name, labels(report), value_of(report));
    }
  };
  // A family only some reports have a sample in, written only when one
  // does: blackbox_exporter registers such a gauge (Last-Modified, a
  // certificate's expiry, the TLS facts) only when it has a value.
  // `sample_of` gives a report's extra labels and value, or nullopt.
  using OptionalSample =
      std::optional<std::pair<MetricsWriter::Labels, double>>;
  auto optional_gauge = [&](absl::string_view name, absl::string_view help,
                            auto sample_of) {
    std::vector<std::pair<const ProbeReport*, OptionalSample>> samples;
    for (const ProbeReport& report : reports) {
      OptionalSample sample = sample_of(report);
      if (sample.has_value()) samples.emplace_back(&report, std::move(sample));
    }
    if (samples.empty()) return;
    out.Family(name, "gauge", help);
    for (auto& [report, sample] : samples) {
      out.Sample(name, labels(*report, std::move(sample->first)),
                 sample->second);
    }
  };
  // A time, as Unix seconds.
  auto timestamp_gauge = [&](absl::string_view name, absl::string_view help,
                             auto time_of) {
    optional_gauge(name, help, [&](const ProbeReport& r) -> OptionalSample {
      const std::optional<absl::Time> time = time_of(r);
      if (!time.has_value()) return std::nullopt;
      return std::pair(MetricsWriter::Labels{},
                       static_cast<double>(absl::ToUnixSeconds(*time)));
    });
  };
  // An info series: value 1, the facts in its labels.
  auto info_gauge = [&](absl::string_view name, absl::string_view help,
                        auto labels_of) {
    optional_gauge(name, help, [&](const ProbeReport& r) -> OptionalSample {
      std::optional<MetricsWriter::Labels> extra = labels_of(r);
      if (!extra.has_value()) return std::nullopt;
      return std::pair(*std::move(extra), 1.0);
    });
  };
  gauge(
      "probe_dns_lookup_time_seconds",
      "Returns the time taken for probe dns lookup in seconds",
      [](const ProbeReport& r) { return absl::ToDoubleSeconds(r.dns_lookup); });
  gauge("probe_duration_seconds",
        "Returns how long the probe took to complete in seconds",
        [](const ProbeReport& r) { return absl::ToDoubleSeconds(r.duration); });
  gauge("probe_failed_due_to_regex", "Indicates if probe failed due to regex",
        [](const ProbeReport& r) { return r.failed_due_to_regex ? 1.0 : 0.0; });

  gauge("probe_fanprobe_attempts",
        "Attempts fanprobe made of the probe, retries included (the "
        "attempts parameter allows retries); 0 when it did not complete",
        [](const ProbeReport& r) { return static_cast<double>(r.attempts); });
  out.Family("probe_fanprobe_outcome_info", "gauge",
             "fanprobe's outcome of the probe (OK, UNEXPECTED_STATUS, "
             "CONNECT_ERROR, TIMEOUT, ...), the reason probe_success is 0");
  for (const ProbeReport& report : reports) {
    out.Sample("probe_fanprobe_outcome_info",
               labels(report, {{"outcome", report.outcome}}), 1);
  }

  gauge("probe_http_content_length", "Length of http content response",
        [](const ProbeReport& r) { return r.content_length; });

  out.Family("probe_http_duration_seconds", "gauge",
             "Duration of http request by phase, summed over all redirects");
  for (const ProbeReport& report : reports) {
    const PhaseDurations& p = report.phases;
    for (const auto& [phase, duration] :
         {std::pair<absl::string_view, absl::Duration>{"connect", p.connect},
          {"processing", p.processing},
          {"resolve", p.resolve},
          {"tls", p.tls},
          {"transfer", p.transfer}}) {
      out.Sample("probe_http_duration_seconds",
                 labels(report, {{"phase", std::string(phase)}}),
                 absl::ToDoubleSeconds(duration));
    }
  }

  timestamp_gauge("probe_http_last_modified_timestamp_seconds",
                  "Returns the Last-Modified HTTP response header in unixtime",
                  [](const ProbeReport& r) { return r.last_modified; });

  gauge("probe_http_redirects", "The number of redirects",
        [](const ProbeReport& r) { return static_cast<double>(r.redirects); });
  gauge("probe_http_ssl", "Indicates if SSL was used for the final redirect",
        [](const ProbeReport& r) { return r.ssl ? 1.0 : 0.0; });
  gauge(
      "probe_http_status_code", "Response HTTP status code",
      [](const ProbeReport& r) { return static_cast<double>(r.status_code); });
  gauge("probe_http_uncompressed_body_length",
        "Length of uncompressed response body", [](const ProbeReport& r) {
          return static_cast<double>(r.uncompressed_body_bytes);
        });
  gauge("probe_http_version",
        "Returns the version of HTTP of the probe response",
        [](const ProbeReport& r) { return r.http_version; });
  gauge(
      "probe_ip_addr_hash",
      "Specifies the hash of IP address. It's useful to detect if the IP "
      "address changes.",
      [](const ProbeReport& r) { return static_cast<double>(r.ip_addr_hash); });
  gauge(
      "probe_ip_protocol", "Specifies whether probe ip protocol is IP4 or IP6",
      [](const ProbeReport& r) { return static_cast<double>(r.ip_protocol); });

  timestamp_gauge("probe_ssl_earliest_cert_expiry",
                  "Returns earliest SSL cert expiry in unixtime",
                  [](const ProbeReport& r) { return r.cert_expiry; });
  timestamp_gauge("probe_ssl_last_chain_expiry_timestamp_seconds",
                  "Returns last SSL chain expiry in timestamp",
                  [](const ProbeReport& r) { return r.last_chain_expiry; });
  info_gauge("probe_ssl_last_chain_info",
             "Contains SSL leaf certificate information",
             [](const ProbeReport& r) -> std::optional<MetricsWriter::Labels> {
               if (!r.leaf_certificate.has_value()) return std::nullopt;
               const CertificateInfo& leaf = *r.leaf_certificate;
               return MetricsWriter::Labels{
                   {"fingerprint_sha256", leaf.sha256_fingerprint},
                   {"issuer", leaf.issuer},
                   {"serialnumber", leaf.serial},
                   {"subject", leaf.subject},
                   {"subjectalternative", absl::StrJoin(leaf.dns_names, ",")}};
             });

  gauge("probe_success", "Displays whether or not the probe was a success",
        [](const ProbeReport& r) { return r.success ? 1.0 : 0.0; });

  info_gauge("probe_tls_cipher_info",
             "Returns the TLS cipher negotiated during handshake",
             [](const ProbeReport& r) -> std::optional<MetricsWriter::Labels> {
               if (!r.leaf_certificate.has_value()) return std::nullopt;
               return MetricsWriter::Labels{{"cipher", r.tls_cipher}};
             });
  info_gauge("probe_tls_version_info",
             "Returns the TLS version used or NaN when unknown",
             [](const ProbeReport& r) -> std::optional<MetricsWriter::Labels> {
               if (!r.leaf_certificate.has_value()) return std::nullopt;
               return MetricsWriter::Labels{{"version", r.tls_version}};
             });
}

std::string ProbeDebugText(const BlackboxModule& module,
                           const std::vector<ProbeReport>& reports,
                           absl::Duration timeout,
                           absl::string_view metrics_text) {
  std::string text = "Logs for the probe:\n";
  absl::StrAppend(&text, "module=", module.name,
                  " timeout_seconds=", absl::ToDoubleSeconds(timeout), "\n");
  for (const ProbeReport& r : reports) {
    absl::StrAppend(&text, "target=", r.target, " outcome=", r.outcome,
                    " success=", r.success ? "true" : "false",
                    " status_code=", r.status_code);
    if (!r.error.empty()) absl::StrAppend(&text, " error=\"", r.error, "\"");
    if (!r.remote_ip.empty()) {
      absl::StrAppend(&text, " remote=", r.remote_ip, ":", r.remote_port);
    }
    if (!r.final_url.empty())
      absl::StrAppend(&text, " final_url=", r.final_url);
    absl::StrAppend(&text, " redirects=", r.redirects,
                    " body_bytes=", r.body_bytes,
                    " resolve=", absl::FormatDuration(r.phases.resolve),
                    " connect=", absl::FormatDuration(r.phases.connect),
                    " tls=", absl::FormatDuration(r.phases.tls),
                    " processing=", absl::FormatDuration(r.phases.processing),
                    " transfer=", absl::FormatDuration(r.phases.transfer),
                    " duration=", absl::FormatDuration(r.duration));
    if (r.attempts > 1) absl::StrAppend(&text, " attempts=", r.attempts);
    absl::StrAppend(&text, "\n");
  }
  absl::StrAppend(&text, "\n\n\nMetrics that would have been returned:\n",
                  metrics_text, "\n\n\nModule configuration:\n",
                  module.config_yaml, "\n");
  return text;
}

}  // namespace fanprobe::monitoring
