// engine_bench: the probe engine alone, without gRPC.  Submits one batch of
// N probes at concurrency C and reports throughput, CPU per probe, peak RSS
// and the time to the first result, so the engine's own cost can be told
// apart from the service's.
//
//   engine_bench --port=8080 --n=20000 --concurrency=100          # fresh
//   engine_bench --port=8080 --n=20000 --concurrency=100 --reuse  # keep-alive
//   engine_bench --urls_file=urls.txt --concurrency=10000 --json
//   engine_bench --urls_file=urls.txt --ca_file=ca.pem --timeout=2s
//                --outcomes_file=outcomes.txt --json
//
// Without --urls_file every probe targets http://127.0.0.1:PORT/d/DELAY, the
// bench target's sleep endpoint (bench/target/nginx.conf.in).  CPU is the
// whole process's user + system time during the batch (getrusage), so it
// includes the engine's worker threads and this driver's counting, nothing
// else.  --outcomes_file writes one line per probe, "<index> <OUTCOME>", and
// the JSON counts each outcome, so the bench can check every probe against
// the outcome its target was built to give.

#include <sys/resource.h>

#include <atomic>
#include <cstdint>
#include <cstdio>
#include <fstream>
#include <map>
#include <memory>
#include <sstream>
#include <string>
#include <utility>
#include <vector>

#include "absl/flags/flag.h"
#include "absl/flags/parse.h"
#include "absl/synchronization/notification.h"
#include "absl/time/clock.h"
#include "absl/time/time.h"
#include "probe/engine.h"
#include "probe/probe.h"

ABSL_FLAG(std::string, urls_file, "",
          "One URL per line; overrides --n, --port and --delay.");
ABSL_FLAG(int, port, 8080, "Port of the loopback target's /d/<seconds>.");
ABSL_FLAG(std::string, delay, "0", "Seconds each generated probe sleeps.");
ABSL_FLAG(int, n, 20000, "Probes in the batch when generating URLs.");
ABSL_FLAG(int, concurrency, 100, "The batch's max_concurrency.");
ABSL_FLAG(bool, reuse, false, "reuse_connections: keep-alive between probes.");
ABSL_FLAG(int, workers, 0, "Engine worker threads; 0 = one per core.");
ABSL_FLAG(absl::Duration, timeout, absl::Seconds(30), "Per-probe timeout.");
ABSL_FLAG(bool, json, false, "Print one JSON object instead of text.");
ABSL_FLAG(std::string, ca_file, "",
          "PEM file set as every probe's ca_pem (extra trusted CAs).");
ABSL_FLAG(std::vector<std::string>, dns_server, {},
          "DNS servers (ip[:port], comma-separated) the engine resolves "
          "through; empty: resolv.conf's.");
ABSL_FLAG(std::string, outcomes_file, "",
          "Writes one line per probe: its index and outcome name.");

namespace {

double CpuSeconds() {
  rusage usage{};
  getrusage(RUSAGE_SELF, &usage);
  auto seconds = [](const timeval& tv) {
    return static_cast<double>(tv.tv_sec) + tv.tv_usec / 1e6;
  };
  return seconds(usage.ru_utime) + seconds(usage.ru_stime);
}

// VmHWM rather than ru_maxrss: Linux folds the parent's peak at fork/exec
// into ru_maxrss, so a driver script's memory would be charged to us.
long PeakRssKb() {
  std::ifstream status("/proc/self/status");
  for (std::string line; std::getline(status, line);) {
    if (line.rfind("VmHWM:", 0) == 0) return std::stol(line.substr(6));
  }
  return 0;
}

std::vector<std::string> LoadUrls() {
  std::vector<std::string> urls;
  const std::string path = absl::GetFlag(FLAGS_urls_file);
  if (!path.empty()) {
    std::ifstream in(path);
    if (!in) {
      std::fprintf(stderr, "engine_bench: cannot read %s\n", path.c_str());
      return urls;
    }
    for (std::string line; std::getline(in, line);) {
      if (!line.empty()) urls.push_back(std::move(line));
    }
    return urls;
  }
  const std::string url =
      "http://127.0.0.1:" + std::to_string(absl::GetFlag(FLAGS_port)) + "/d/" +
      absl::GetFlag(FLAGS_delay);
  urls.assign(absl::GetFlag(FLAGS_n), url);
  return urls;
}

}  // namespace

int main(int argc, char** argv) {
  absl::ParseCommandLine(argc, argv);

  std::vector<std::string> urls = LoadUrls();
  if (urls.empty()) {
    std::fprintf(stderr, "engine_bench: no URLs\n");
    return 2;
  }

  auto options = std::make_shared<fanprobe::ProbeOptions>();
  options->timeout = absl::GetFlag(FLAGS_timeout);
  options->reuse_connections = absl::GetFlag(FLAGS_reuse);
  if (const std::string ca_file = absl::GetFlag(FLAGS_ca_file);
      !ca_file.empty()) {
    std::ifstream in(ca_file);
    std::stringstream pem;
    pem << in.rdbuf();
    if (!in || pem.str().empty()) {
      std::fprintf(stderr, "engine_bench: cannot read --ca_file\n");
      return 2;
    }
    options->ca_pem = pem.str();
  }
  std::vector<fanprobe::ProbeTarget> targets;
  targets.reserve(urls.size());
  for (std::string& url : urls) {
    targets.push_back({.url = std::move(url), .options = options});
  }
  const size_t n = targets.size();

  fanprobe::EngineOptions engine_options;
  engine_options.workers = absl::GetFlag(FLAGS_workers);
  engine_options.dns_servers = absl::GetFlag(FLAGS_dns_server);
  const uint32_t concurrency = absl::GetFlag(FLAGS_concurrency);
  if (concurrency > engine_options.max_in_flight) {
    engine_options.max_in_flight = concurrency;
  }
  absl::StatusOr<std::unique_ptr<fanprobe::Engine>> engine =
      fanprobe::Engine::Create(engine_options);
  if (!engine.ok()) {
    std::fprintf(stderr, "engine_bench: %s\n",
                 engine.status().ToString().c_str());
    return 1;
  }

  fanprobe::BatchOptions batch_options;
  batch_options.max_concurrency = concurrency;

  // Written by engine threads, read after `done` is notified.
  std::atomic<int64_t> first_result_ns{-1};
  std::atomic<uint64_t> ok{0};
  // One slot per probe, each written once by the engine thread that reports
  // it, read after `done`; -1 until then.
  std::vector<int> outcome_by_index(n, -1);
  fanprobe::BatchSummary summary;
  absl::Notification done;

  const double cpu_start = CpuSeconds();
  const absl::Time start = absl::Now();
  std::shared_ptr<fanprobe::Batch> batch = (*engine)->Submit(
      std::move(targets), batch_options,
      {.on_result =
           [&](fanprobe::ProbeResult result) {
             int64_t unset = -1;
             first_result_ns.compare_exchange_strong(
                 unset, absl::ToInt64Nanoseconds(absl::Now() - start));
             if (result.outcome == fanprobe::Outcome::kOk) {
               ok.fetch_add(1, std::memory_order_relaxed);
             }
             if (result.index < outcome_by_index.size()) {
               outcome_by_index[result.index] =
                   static_cast<int>(result.outcome);
             }
           },
       .on_done =
           [&](fanprobe::BatchSummary s) {
             summary = std::move(s);
             done.Notify();
           }});
  done.WaitForNotification();
  const double wall = absl::ToDoubleSeconds(absl::Now() - start);
  const double cpu = CpuSeconds() - cpu_start;
  engine->reset();  // joins the workers

  // "NONE" for a probe that never reported (the batch ended first).
  auto outcome_name = [](int outcome) -> std::string {
    return outcome < 0 ? "NONE"
                       : std::string(fanprobe::OutcomeName(
                             static_cast<fanprobe::Outcome>(outcome)));
  };
  std::map<std::string, uint64_t> counts;
  for (int outcome : outcome_by_index) ++counts[outcome_name(outcome)];
  if (const std::string path = absl::GetFlag(FLAGS_outcomes_file);
      !path.empty()) {
    std::ofstream out(path);
    for (size_t i = 0; i < n; ++i) {
      out << i << ' ' << outcome_name(outcome_by_index[i]) << '\n';
    }
    if (!out) {
      std::fprintf(stderr, "engine_bench: cannot write --outcomes_file\n");
      return 2;
    }
  }
  std::string counts_json;
  for (const auto& [name, count] : counts) {
    if (!counts_json.empty()) counts_json += ", ";
    counts_json += "\"" + name + "\": " + std::to_string(count);
  }

  const double rate = n / wall;
  const double cpu_us_per_probe = cpu * 1e6 / n;
  const double first_ms = first_result_ns.load() / 1e6;
  const double rss_mb = PeakRssKb() / 1024.0;
  if (absl::GetFlag(FLAGS_json)) {
    std::printf(
        "{\"tool\": \"engine_bench\", \"n\": %zu, \"ok\": %llu, "
        "\"completed\": %u, \"wall_s\": %.6f, \"first_s\": %.6f, "
        "\"cpu_s\": %.6f, \"maxrss_kb\": %ld, \"probes_per_s\": %.1f, "
        "\"cpu_us_per_probe\": %.2f, \"end_reason\": \"%s\", "
        "\"outcomes\": {%s}}\n",
        n, static_cast<unsigned long long>(ok.load()), summary.completed, wall,
        first_ms / 1e3, cpu, PeakRssKb(), rate, cpu_us_per_probe,
        std::string(fanprobe::EndReasonName(summary.reason)).c_str(),
        counts_json.c_str());
  } else {
    std::printf(
        "probes %zu (ok %llu, completed %u, %s) at concurrency %u, %s\n"
        "wall %.3f s, %.0f probes/s\n"
        "cpu %.3f s, %.1f us/probe\n"
        "peak RSS %.1f MB\n"
        "first result %.2f ms\n",
        n, static_cast<unsigned long long>(ok.load()), summary.completed,
        std::string(fanprobe::EndReasonName(summary.reason)).c_str(),
        concurrency,
        absl::GetFlag(FLAGS_reuse) ? "reused connections" : "fresh connections",
        wall, rate, cpu, cpu_us_per_probe, rss_mb, first_ms);
  }
  return ok.load() == n ? 0 : 1;
}
