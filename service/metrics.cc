#include "service/metrics.h"

#include <dirent.h>
#include <unistd.h>

#include <algorithm>
#include <charconv>
#include <cmath>
#include <cstdint>
#include <fstream>
#include <limits>
#include <memory>
#include <sstream>
#include <string>
#include <utility>
#include <vector>

#include "absl/status/status.h"
#include "absl/status/statusor.h"
#include "absl/strings/numbers.h"
#include "absl/strings/str_cat.h"
#include "absl/strings/str_split.h"
#include "absl/strings/string_view.h"
#include "absl/strings/strip.h"
#include "absl/synchronization/mutex.h"
#include "absl/time/time.h"

namespace fanprobe::service {
namespace {

// Probe and phase durations: from loopback (sub-millisecond) to the longest
// probe timeouts.
std::vector<double> DurationBuckets() {
  return {0.0005, 0.001, 0.0025, 0.005, 0.01, 0.025, 0.05, 0.1,
          0.25,   0.5,   1,      2.5,   5,    10,    30,   60};
}

// How long a result waits in a stream's queue: from no wait at all to a
// reader that stalls for seconds.
std::vector<double> QueueWaitBuckets() {
  return {0.0001, 0.0005, 0.001, 0.005, 0.01, 0.05, 0.1, 0.5, 1, 5, 10};
}

std::string FormatValue(double value) {
  if (std::isnan(value)) return "NaN";
  if (std::isinf(value)) return value > 0 ? "+Inf" : "-Inf";
  if (value == std::trunc(value) && std::fabs(value) < 1e15) {
    return absl::StrCat(static_cast<int64_t>(value));
  }
  char buffer[32];
  const std::to_chars_result result =
      std::to_chars(buffer, buffer + sizeof(buffer), value);
  return std::string(buffer, result.ptr);
}

void AppendEscapedLabelValue(absl::string_view value, std::string* out) {
  for (const char c : value) {
    switch (c) {
      case '\\':
        out->append("\\\\");
        break;
      case '"':
        out->append("\\\"");
        break;
      case '\n':
        out->append("\\n");
        break;
      default:
        out->push_back(c);
    }
  }
}

void AppendEscapedHelp(absl::string_view help, std::string* out) {
  for (const char c : help) {
    if (c == '\\') {
      out->append("\\\\");
    } else if (c == '\n') {
      out->append("\\n");
    } else {
      out->push_back(c);
    }
  }
}

absl::string_view ApiName(MetricsApi api) {
  return api == MetricsApi::kGrpc ? "grpc" : "http";
}

constexpr std::array<MetricsApi, 2> kAllApis = {MetricsApi::kGrpc,
                                                MetricsApi::kHttp};
constexpr std::array<ReturnWhen, 3> kAllReturnWhens = {
    ReturnWhen::kAllCompleted, ReturnWhen::kFirstCompleted,
    ReturnWhen::kFirstException};
constexpr std::array<EndReason, 5> kAllEndReasons = {
    EndReason::kAllCompleted, EndReason::kFirstCompleted,
    EndReason::kFirstException, EndReason::kTimeout, EndReason::kCancelled};
// The refusals either API makes; other codes appear once they happen.
constexpr std::array<absl::StatusCode, 3> kRejectionCodes = {
    absl::StatusCode::kInvalidArgument, absl::StatusCode::kResourceExhausted,
    absl::StatusCode::kUnavailable};
constexpr std::array<absl::string_view, 5> kPhaseNames = {
    "resolve", "connect", "tls", "processing", "transfer"};

absl::Duration NonNegative(absl::Duration d) {
  return std::max(d, absl::ZeroDuration());
}

absl::StatusOr<std::string> ReadFile(const std::string& path) {
  std::ifstream in(path);
  if (!in) return absl::NotFoundError(absl::StrCat("cannot read ", path));
  std::stringstream text;
  text << in.rdbuf();
  return text.str();
}

}  // namespace

void MetricsWriter::Family(absl::string_view name, absl::string_view type,
                           absl::string_view help) {
  absl::StrAppend(&text_, "# HELP ", name, " ");
  AppendEscapedHelp(help, &text_);
  absl::StrAppend(&text_, "\n# TYPE ", name, " ", type, "\n");
}

void MetricsWriter::Sample(absl::string_view name, const Labels& labels,
                           double value) {
  text_.append(name.data(), name.size());
  if (!labels.empty()) {
    text_.push_back('{');
    for (size_t i = 0; i < labels.size(); ++i) {
      if (i > 0) text_.push_back(',');
      absl::StrAppend(&text_, labels[i].first, "=\"");
      AppendEscapedLabelValue(labels[i].second, &text_);
      text_.push_back('"');
    }
    text_.push_back('}');
  }
  absl::StrAppend(&text_, " ", FormatValue(value), "\n");
}

Histogram::Histogram(std::vector<double> upper_bounds)
    : bounds_(std::move(upper_bounds)),
      counts_(new std::atomic<uint64_t>[bounds_.size() + 1]) {
  for (size_t i = 0; i <= bounds_.size(); ++i) counts_[i] = 0;
}

void Histogram::Observe(absl::Duration value) {
  const double seconds = absl::ToDoubleSeconds(value);
  const size_t bucket =
      std::lower_bound(bounds_.begin(), bounds_.end(), seconds) -
      bounds_.begin();
  counts_[bucket].fetch_add(1, std::memory_order_relaxed);
  sum_.fetch_add(seconds, std::memory_order_relaxed);
}

void Histogram::Write(MetricsWriter& out, absl::string_view name,
                      const MetricsWriter::Labels& labels) const {
  // The count is the buckets' total, so +Inf and _count always agree even
  // while observations land.
  uint64_t cumulative = 0;
  MetricsWriter::Labels with_le = labels;
  with_le.emplace_back("le", "");
  const std::string bucket_name = absl::StrCat(name, "_bucket");
  for (size_t i = 0; i <= bounds_.size(); ++i) {
    cumulative += counts_[i].load(std::memory_order_relaxed);
    with_le.back().second =
        i < bounds_.size() ? FormatValue(bounds_[i]) : std::string("+Inf");
    out.Sample(bucket_name, with_le, static_cast<double>(cumulative));
  }
  out.Sample(absl::StrCat(name, "_sum"), labels,
             sum_.load(std::memory_order_relaxed));
  out.Sample(absl::StrCat(name, "_count"), labels,
             static_cast<double>(cumulative));
}

absl::StatusOr<ProcessFigures> ReadProcessFigures(
    const std::string& proc_root) {
  ProcessFigures figures;
  absl::StatusOr<std::string> stat = ReadFile(proc_root + "/self/stat");
  if (!stat.ok()) return stat.status();
  // The command name (field 2) is in parentheses and may hold spaces; the
  // fields after its closing parenthesis start with field 3 (state).
  const size_t paren = stat->rfind(')');
  if (paren == std::string::npos) {
    return absl::DataLossError("unexpected format of /proc/self/stat");
  }
  std::vector<absl::string_view> fields = absl::StrSplit(
      absl::string_view(*stat).substr(paren + 1), ' ', absl::SkipEmpty());
  // Field n (1-based, as proc(5) numbers them) is fields[n - 3].
  auto field = [&fields](int n, uint64_t* value) {
    const size_t i = static_cast<size_t>(n - 3);
    return i < fields.size() &&
           absl::SimpleAtoi(absl::StripAsciiWhitespace(fields[i]), value);
  };
  uint64_t utime = 0, stime = 0, starttime = 0, vsize = 0, rss_pages = 0;
  if (!field(14, &utime) || !field(15, &stime) || !field(22, &starttime) ||
      !field(23, &vsize) || !field(24, &rss_pages)) {
    return absl::DataLossError("unexpected format of /proc/self/stat");
  }
  const double ticks = static_cast<double>(sysconf(_SC_CLK_TCK));
  figures.cpu_seconds = static_cast<double>(utime + stime) / ticks;
  figures.virtual_bytes = vsize;
  figures.resident_bytes =
      rss_pages * static_cast<uint64_t>(sysconf(_SC_PAGESIZE));

  absl::StatusOr<std::string> system_stat = ReadFile(proc_root + "/stat");
  if (!system_stat.ok()) return system_stat.status();
  uint64_t boot_time = 0;
  for (absl::string_view line : absl::StrSplit(*system_stat, '\n')) {
    if (absl::ConsumePrefix(&line, "btime ")) {
      (void)absl::SimpleAtoi(line, &boot_time);
    }
  }
  if (boot_time == 0) return absl::DataLossError("no btime in /proc/stat");
  figures.start_time_seconds =
      static_cast<double>(boot_time) + static_cast<double>(starttime) / ticks;

  absl::StatusOr<std::string> limits = ReadFile(proc_root + "/self/limits");
  if (!limits.ok()) return limits.status();
  for (absl::string_view line : absl::StrSplit(*limits, '\n')) {
    if (!absl::ConsumePrefix(&line, "Max open files")) continue;
    std::vector<absl::string_view> values =
        absl::StrSplit(line, ' ', absl::SkipEmpty());
    // "Max open files  <soft>  <hard>  files"; "unlimited" stays 0.
    if (!values.empty()) (void)absl::SimpleAtoi(values[0], &figures.max_fds);
  }

  const std::string fd_dir = proc_root + "/self/fd";
  std::unique_ptr<DIR, int (*)(DIR*)> dir(opendir(fd_dir.c_str()), closedir);
  if (dir == nullptr) return absl::NotFoundError("cannot list " + fd_dir);
  while (const dirent* entry = readdir(dir.get())) {
    if (entry->d_name[0] != '.') ++figures.open_fds;
  }
  // Like the Prometheus client libraries, this counts the descriptor that
  // lists the directory too.
  return figures;
}

PhaseDurations PhasesOf(const Timings& t) {
  PhaseDurations phases;
  phases.resolve = NonNegative(t.dns);
  if (t.connect > absl::ZeroDuration()) {
    phases.connect = NonNegative(t.connect - t.dns);
  }
  if (t.tls > absl::ZeroDuration()) {
    phases.tls = NonNegative(t.tls - t.connect);
  }
  if (t.first_byte > absl::ZeroDuration()) {
    phases.processing =
        NonNegative(t.first_byte - std::max({t.dns, t.connect, t.tls}));
    phases.transfer = NonNegative(t.total - t.first_byte);
  }
  return phases;
}

ServerMetrics::ServerMetrics()
    : probe_duration_(DurationBuckets()),
      stream_queue_wait_(QueueWaitBuckets()) {
  for (int i = 0; i < kPhases; ++i) {
    phases_.push_back(std::make_unique<Histogram>(DurationBuckets()));
  }
}

void ServerMetrics::ProbeCompleted(MetricsApi api, const ProbeResult& result) {
  const int outcome = static_cast<int>(result.outcome);
  if (outcome >= 0 && outcome < kOutcomes) {
    probes_[static_cast<int>(api) * kOutcomes + outcome].fetch_add(
        1, std::memory_order_relaxed);
  }
  const Timings& t = result.timings;
  const PhaseDurations phases = PhasesOf(t);
  // A phase is observed only when it happened, so an http:// probe does not
  // pile up zero-length TLS handshakes.
  if (t.dns > absl::ZeroDuration()) phases_[0]->Observe(phases.resolve);
  if (t.connect > absl::ZeroDuration()) phases_[1]->Observe(phases.connect);
  if (t.tls > absl::ZeroDuration()) phases_[2]->Observe(phases.tls);
  if (t.first_byte > absl::ZeroDuration()) {
    phases_[3]->Observe(phases.processing);
    phases_[4]->Observe(phases.transfer);
  }
  probe_duration_.Observe(t.total);
}

void ServerMetrics::BatchEnded(MetricsApi api, ReturnWhen return_when,
                               const BatchSummary& summary) {
  const int index =
      (static_cast<int>(api) * kReturnWhens + static_cast<int>(return_when)) *
          kEndReasons +
      static_cast<int>(summary.reason);
  batches_[index].fetch_add(1, std::memory_order_relaxed);
  probes_cancelled_[static_cast<int>(api)].fetch_add(summary.cancelled,
                                                     std::memory_order_relaxed);
}

void ServerMetrics::RequestRejected(MetricsApi api, absl::StatusCode code) {
  const int c = static_cast<int>(code);
  if (c <= 0 || c >= kStatusCodes) return;
  rejected_[static_cast<int>(api) * kStatusCodes + c].fetch_add(
      1, std::memory_order_relaxed);
}

void ServerMetrics::CallStarted(absl::string_view rpc) {
  if (rpc == "StreamProbes") {
    streams_active_.fetch_add(1, std::memory_order_relaxed);
  }
}

void ServerMetrics::CallEnded(absl::string_view rpc) {
  if (rpc == "StreamProbes") {
    streams_active_.fetch_sub(1, std::memory_order_relaxed);
  }
}

void ServerMetrics::CallRejected(absl::string_view rpc, absl::StatusCode code) {
  RequestRejected(MetricsApi::kGrpc, code);
}

void ServerMetrics::StreamQueueWait(absl::Duration wait) {
  stream_queue_wait_.Observe(wait);
}

void ServerMetrics::AddCollector(Collector collector) {
  absl::MutexLock lock(&mu_);
  collectors_.push_back(std::move(collector));
}

std::string ServerMetrics::Render() const {
  MetricsWriter out;

  out.Family("fanprobe_batches_total", "counter",
             "Batches that ended, by the API they came through, their "
             "return_when rule and the reason they ended.");
  for (const MetricsApi api : kAllApis) {
    for (const ReturnWhen rw : kAllReturnWhens) {
      for (const EndReason reason : kAllEndReasons) {
        const int index =
            (static_cast<int>(api) * kReturnWhens + static_cast<int>(rw)) *
                kEndReasons +
            static_cast<int>(reason);
        out.Sample("fanprobe_batches_total",
                   {{"api", std::string(ApiName(api))},
                    {"return_when", std::string(ReturnWhenName(rw))},
                    {"reason", std::string(EndReasonName(reason))}},
                   batches_[index].load(std::memory_order_relaxed));
      }
    }
  }

  out.Family("fanprobe_probes_total", "counter",
             "Probes that completed, by API and outcome.");
  for (const MetricsApi api : kAllApis) {
    for (int o = 0; o < kOutcomes; ++o) {
      out.Sample(
          "fanprobe_probes_total",
          {{"api", std::string(ApiName(api))},
           {"outcome", std::string(OutcomeName(static_cast<Outcome>(o)))}},
          probes_[static_cast<int>(api) * kOutcomes + o].load(
              std::memory_order_relaxed));
    }
  }

  out.Family("fanprobe_probes_cancelled_total", "counter",
             "Probes that had not completed when their batch ended "
             "(first completed/exception, timeout, cancel).");
  for (const MetricsApi api : kAllApis) {
    out.Sample("fanprobe_probes_cancelled_total",
               {{"api", std::string(ApiName(api))}},
               probes_cancelled_[static_cast<int>(api)].load(
                   std::memory_order_relaxed));
  }

  out.Family("fanprobe_requests_rejected_total", "counter",
             "Requests refused before a batch started, by API and the "
             "status code they got.");
  for (const MetricsApi api : kAllApis) {
    for (int c = 1; c < kStatusCodes; ++c) {
      const uint64_t n =
          rejected_[static_cast<int>(api) * kStatusCodes + c].load(
              std::memory_order_relaxed);
      const auto code = static_cast<absl::StatusCode>(c);
      const bool always =
          std::find(kRejectionCodes.begin(), kRejectionCodes.end(), code) !=
          kRejectionCodes.end();
      if (n == 0 && !always) continue;
      out.Sample("fanprobe_requests_rejected_total",
                 {{"api", std::string(ApiName(api))},
                  {"reason", absl::StatusCodeToString(code)}},
                 static_cast<double>(n));
    }
  }

  out.Family("fanprobe_probe_duration_seconds", "histogram",
             "Completed probes' whole duration (every redirect hop).");
  probe_duration_.Write(out, "fanprobe_probe_duration_seconds", {});

  out.Family("fanprobe_probe_phase_duration_seconds", "histogram",
             "Completed probes' phases, as blackbox_exporter splits them; a "
             "phase is observed only when it happened.");
  for (int i = 0; i < kPhases; ++i) {
    phases_[i]->Write(out, "fanprobe_probe_phase_duration_seconds",
                      {{"phase", std::string(kPhaseNames[i])}});
  }

  out.Family("fanprobe_stream_queue_wait_seconds", "histogram",
             "How long StreamProbes results waited in their stream's queue "
             "behind earlier writes.");
  stream_queue_wait_.Write(out, "fanprobe_stream_queue_wait_seconds", {});

  out.Family("fanprobe_streams_active", "gauge",
             "StreamProbes calls in progress.");
  out.Sample(
      "fanprobe_streams_active", {},
      static_cast<double>(streams_active_.load(std::memory_order_relaxed)));

  std::vector<Collector> collectors;
  {
    absl::MutexLock lock(&mu_);
    collectors = collectors_;
  }
  for (const Collector& collect : collectors) collect(out);
  return out.Release();
}

}  // namespace fanprobe::service
