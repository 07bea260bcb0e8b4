// fanprobe_soak: a bounded soak of a whole fanprobe server.  An in-process
// server (server/server.h) probes loopback targets -- the raw listener of
// tests/support/target_server.h and the fault target of
// tests/support/fault_server.h -- for several clients that send mixed
// batches (both RPCs, every return-when rule, sizes from 1 to 500, fast,
// slow and faulty targets) and cancel some of them at random moments.
// Every --sample it prints one line: open descriptors, RSS, results and
// batches so far.  At the end it fails (exit 1) unless, after the warm-up,
// RSS and descriptors stayed flat and everything returned to idle.
//
//   make soak                       # 10 minutes
//   make soak SOAK_SECONDS=120      # shorter
//   build/tests/soak/fanprobe_soak --seconds=60 --clients=8
//
// Not part of CI: its point is to run for minutes.

#include <dirent.h>
#include <malloc.h>
#include <unistd.h>

#include <algorithm>
#include <atomic>
#include <cstdint>
#include <cstdio>
#include <fstream>
#include <memory>
#include <random>
#include <string>
#include <thread>
#include <vector>

#include "absl/flags/flag.h"
#include "absl/flags/parse.h"
#include "absl/flags/usage.h"
#include "absl/strings/str_cat.h"
#include "absl/strings/string_view.h"
#include "absl/time/clock.h"
#include "absl/time/time.h"
#include "fanprobe/v1/prober.grpc.pb.h"
#include "fanprobe/v1/prober.pb.h"
#include "grpcpp/grpcpp.h"
#include "proto/duration.h"
#include "server/server.h"
#include "tests/support/fault_server.h"
#include "tests/support/target_server.h"

ABSL_FLAG(absl::Duration, duration, absl::Minutes(10), "How long to run.");
ABSL_FLAG(int, seconds, 0,
          "How long to run, in seconds (overrides --duration).");
ABSL_FLAG(absl::Duration, sample, absl::Seconds(10), "Report interval.");
ABSL_FLAG(double, warmup, 0.25,
          "Fraction of the run before RSS and descriptors must be flat.");
ABSL_FLAG(int, clients, 4, "Concurrent clients.");
ABSL_FLAG(double, tolerance, 0.10,
          "How much RSS may grow after the warm-up, as a fraction.");

namespace fanprobe {
namespace {

using ::fanprobe::testing::Fault;
using ::fanprobe::testing::FaultServer;
using ::fanprobe::testing::TargetServer;

int CountOpenFds() {
  int count = 0;
  DIR* dir = opendir("/proc/self/fd");
  while (dirent* entry = readdir(dir)) {
    if (entry->d_name[0] != '.') ++count;
  }
  closedir(dir);
  return count - 1;  // the DIR's own
}

int64_t ResidentBytes() {
  malloc_trim(0);  // what the process holds, not what malloc caches
  std::ifstream statm("/proc/self/statm");
  int64_t size = 0;
  int64_t resident = 0;
  statm >> size >> resident;
  return resident * sysconf(_SC_PAGESIZE);
}

struct Counters {
  std::atomic<uint64_t> batches{0};
  std::atomic<uint64_t> results{0};
  std::atomic<uint64_t> cancels{0};
  std::atomic<uint64_t> refused{0};     // RESOURCE_EXHAUSTED
  std::atomic<uint64_t> unexpected{0};  // any other failed status
};

// One client: a loop of random batches until told to stop.
class Client {
 public:
  Client(const std::string& address, const TargetServer& target,
         const FaultServer& faults, Counters& counters, uint32_t seed)
      : channel_(
            grpc::CreateChannel(address, grpc::InsecureChannelCredentials())),
        stub_(v1::Prober::NewStub(channel_)),
        target_(target),
        faults_(faults),
        counters_(counters),
        random_(seed) {
    // Connected before the idle baseline is taken: the connection's two
    // descriptors are not a leak.
    channel_->WaitForConnected(
        absl::ToChronoTime(absl::Now() + absl::Seconds(10)));
  }

  void Run(const std::atomic<bool>& stop) {
    while (!stop.load()) OneBatch();
  }

 private:
  std::string RandomUrl() {
    switch (std::uniform_int_distribution<int>(0, 9)(random_)) {
      case 0:
      case 1:
      case 2:
        return target_.raw_url("/status/200");
      case 3:
        return target_.raw_url("/status/503");
      case 4:
      case 5:
        return target_.raw_url(absl::StrCat(
            "/delay/", std::uniform_int_distribution<int>(10, 400)(random_)));
      default: {
        const int fault = std::uniform_int_distribution<int>(
            0, testing::kFaultCount - 1)(random_);
        return faults_.url(static_cast<Fault>(fault));
      }
    }
  }

  void OneBatch() {
    v1::ProbeBatchRequest request;
    const int size = std::uniform_int_distribution<int>(1, 500)(random_);
    for (int i = 0; i < size; ++i) request.add_targets()->set_url(RandomUrl());
    DurationToProto(absl::Milliseconds(
                        std::uniform_int_distribution<int>(300, 1500)(random_)),
                    request.mutable_defaults()->mutable_timeout());
    request.mutable_defaults()->set_max_redirects(3);
    // Well inside the RPC deadline below, so every call ends with a
    // summary or the client's own cancel; DEADLINE_EXCEEDED would be a bug.
    DurationToProto(
        absl::Seconds(std::uniform_int_distribution<int>(2, 10)(random_)),
        request.mutable_timeout());
    request.set_return_when(static_cast<v1::ReturnWhen>(
        std::uniform_int_distribution<int>(1, 3)(random_)));
    request.set_max_concurrency(
        std::uniform_int_distribution<uint32_t>(1, 200)(random_));
    const bool cancel = std::bernoulli_distribution(0.3)(random_);
    const int cancel_after =
        std::uniform_int_distribution<int>(0, std::max(1, size / 2))(random_);

    grpc::ClientContext context;
    context.set_deadline(absl::ToChronoTime(absl::Now() + absl::Seconds(30)));
    grpc::Status status;
    if (std::bernoulli_distribution(0.7)(random_)) {
      auto reader = stub_->StreamProbes(&context, request);
      v1::ProbeEvent event;
      int read = 0;
      while (reader->Read(&event)) {
        if (event.has_result()) counters_.results.fetch_add(1);
        if (cancel && ++read >= cancel_after) {
          context.TryCancel();
          counters_.cancels.fetch_add(1);
          break;
        }
      }
      while (reader->Read(&event)) {
      }
      status = reader->Finish();
    } else {
      if (cancel) {
        // A unary call cancelled from another thread, at a random moment.
        std::thread canceller([&context, delay = cancel_after] {
          absl::SleepFor(absl::Milliseconds(delay));
          context.TryCancel();
        });
        v1::ProbeBatchResponse response;
        status = stub_->ProbeBatch(&context, request, &response);
        canceller.join();
        counters_.cancels.fetch_add(1);
        counters_.results.fetch_add(response.done_size());
      } else {
        v1::ProbeBatchResponse response;
        status = stub_->ProbeBatch(&context, request, &response);
        counters_.results.fetch_add(response.done_size());
      }
    }
    counters_.batches.fetch_add(1);
    if (status.ok() || status.error_code() == grpc::StatusCode::CANCELLED) {
      return;
    }
    if (status.error_code() == grpc::StatusCode::RESOURCE_EXHAUSTED) {
      counters_.refused.fetch_add(1);
    } else {
      counters_.unexpected.fetch_add(1);
      std::fprintf(stderr, "unexpected status: %d %s (%d targets)\n",
                   status.error_code(), status.error_message().c_str(), size);
    }
  }

  std::shared_ptr<grpc::Channel> channel_;
  std::unique_ptr<v1::Prober::Stub> stub_;
  const TargetServer& target_;
  const FaultServer& faults_;
  Counters& counters_;
  std::mt19937 random_;
};

struct Sample {
  absl::Duration at;
  int fds = 0;
  // Descriptors not explained by the load of the moment: open descriptors
  // less probes in flight (a socket each) and the targets' open
  // connections.  Under a random load `fds` swings with the batches; this
  // stays level unless something leaks.
  int residual_fds = 0;
  int64_t rss = 0;
};

double Median(std::vector<double> values) {
  std::sort(values.begin(), values.end());
  return values.empty() ? 0 : values[values.size() / 2];
}

int Run() {
  absl::Duration duration = absl::GetFlag(FLAGS_duration);
  if (absl::GetFlag(FLAGS_seconds) > 0) {
    duration = absl::Seconds(absl::GetFlag(FLAGS_seconds));
  }
  const absl::Duration interval = absl::GetFlag(FLAGS_sample);
  const int clients = absl::GetFlag(FLAGS_clients);

  FaultServer faults;
  TargetServer target;
  uint64_t logged = 0;
  server::ServerOptions options;
  options.grpc_address = "127.0.0.1:0";
  options.shutdown_grace = absl::Seconds(5);
  std::atomic<uint64_t> log_lines{0};
  options.service.log = [&log_lines](absl::string_view) {
    log_lines.fetch_add(1, std::memory_order_relaxed);
  };
  absl::StatusOr<std::unique_ptr<server::Server>> server =
      server::Server::Start(options);
  if (!server.ok()) {
    std::fprintf(stderr, "cannot start: %s\n",
                 server.status().ToString().c_str());
    return 2;
  }

  Counters counters;
  std::vector<std::unique_ptr<Client>> client_objects;
  for (int i = 0; i < clients; ++i) {
    client_objects.push_back(std::make_unique<Client>(
        (*server)->address(), target, faults, counters, 1000 + i));
  }
  const int idle_fds_before = CountOpenFds();
  std::printf(
      "soak: %s, %d clients, sample every %s; idle fds %d, RSS %.1f MB\n",
      absl::FormatDuration(duration).c_str(), clients,
      absl::FormatDuration(interval).c_str(), idle_fds_before,
      ResidentBytes() / 1e6);
  std::printf("%8s %6s %8s %9s %9s %10s %8s %8s %8s\n", "t", "fds", "residual",
              "rss_mb", "batches", "results", "cancels", "refused",
              "in_flight");

  std::atomic<bool> stop{false};
  std::vector<std::thread> threads;
  for (auto& client : client_objects) {
    threads.emplace_back([&stop, c = client.get()] { c->Run(stop); });
  }
  const absl::Time start = absl::Now();
  std::vector<Sample> samples;
  while (absl::Now() - start < duration) {
    absl::SleepFor(std::min(interval, duration - (absl::Now() - start)));
    Sample sample;
    sample.at = absl::Now() - start;
    const uint64_t in_flight = (*server)->engine().Stats().probes_in_flight;
    const uint64_t target_open =
        faults.Stats().open_connections +
        static_cast<uint64_t>(target.Stats().raw.open_connections);
    sample.fds = CountOpenFds();
    sample.residual_fds = sample.fds - static_cast<int>(in_flight) -
                          static_cast<int>(target_open);
    sample.rss = ResidentBytes();
    samples.push_back(sample);
    std::printf("%7.0fs %6d %8d %9.1f %9llu %10llu %8llu %8llu %8llu\n",
                absl::ToDoubleSeconds(sample.at), sample.fds,
                sample.residual_fds, sample.rss / 1e6,
                static_cast<unsigned long long>(counters.batches.load()),
                static_cast<unsigned long long>(counters.results.load()),
                static_cast<unsigned long long>(counters.cancels.load()),
                static_cast<unsigned long long>(counters.refused.load()),
                static_cast<unsigned long long>(in_flight));
    std::fflush(stdout);
  }
  stop = true;
  for (std::thread& thread : threads) thread.join();

  // Back to idle: no call, no probe, no target connection, no descriptor
  // more than before the load.
  bool ok = true;
  const absl::Time idle_deadline = absl::Now() + absl::Seconds(30);
  while (((*server)->service().Stats().active_calls != 0 ||
          (*server)->engine().Stats().probes_in_flight != 0 ||
          CountOpenFds() > idle_fds_before) &&
         absl::Now() < idle_deadline) {
    absl::SleepFor(absl::Milliseconds(50));
  }
  faults.WaitForIdle(absl::Seconds(10));
  const int idle_fds_after = CountOpenFds();
  std::printf("idle again: fds %d (before the load %d), RSS %.1f MB\n",
              idle_fds_after, idle_fds_before, ResidentBytes() / 1e6);
  if (idle_fds_after > idle_fds_before) {
    std::printf("FAIL: %d descriptors more than before the load\n",
                idle_fds_after - idle_fds_before);
    ok = false;
  }

  // Flat after the warm-up: the median of the last third of the samples
  // against the median of the first third after the warm-up.
  const absl::Duration warmup = duration * absl::GetFlag(FLAGS_warmup);
  std::vector<Sample> steady;
  for (const Sample& sample : samples) {
    if (sample.at >= warmup) steady.push_back(sample);
  }
  if (steady.size() < 3) {
    std::printf("too few samples after the warm-up to judge flatness (%zu)\n",
                steady.size());
  } else {
    const size_t third = steady.size() / 3;
    std::vector<double> early_rss, late_rss, early_fds, late_fds;
    for (size_t i = 0; i < third; ++i) {
      early_rss.push_back(steady[i].rss);
      early_fds.push_back(steady[i].residual_fds);
      late_rss.push_back(steady[steady.size() - 1 - i].rss);
      late_fds.push_back(steady[steady.size() - 1 - i].residual_fds);
    }
    const double tolerance = absl::GetFlag(FLAGS_tolerance);
    const double rss_growth = Median(late_rss) / Median(early_rss) - 1;
    std::printf(
        "after warm-up: RSS %.1f -> %.1f MB (%+.1f%%), residual fds %.0f -> "
        "%.0f\n",
        Median(early_rss) / 1e6, Median(late_rss) / 1e6, rss_growth * 100,
        Median(early_fds), Median(late_fds));
    if (rss_growth > tolerance) {
      std::printf("FAIL: RSS grew more than %.0f%% after the warm-up\n",
                  tolerance * 100);
      ok = false;
    }
    // The residual is read in three steps that race the load, so it
    // jitters; a leak is a trend that outgrows that.
    if (Median(late_fds) > Median(early_fds) + 50) {
      std::printf("FAIL: descriptors grew after the warm-up\n");
      ok = false;
    }
  }
  if (counters.unexpected.load() != 0) {
    std::printf("FAIL: %llu calls ended with an unexpected status\n",
                static_cast<unsigned long long>(counters.unexpected.load()));
    ok = false;
  }
  if (counters.batches.load() == 0) {
    std::printf("FAIL: no batch completed\n");
    ok = false;
  }
  logged = log_lines.load();
  std::printf(
      "%s: %llu batches (%llu logged), %llu results, %llu cancelled, "
      "%llu refused\n",
      ok ? "PASS" : "FAIL",
      static_cast<unsigned long long>(counters.batches.load()),
      static_cast<unsigned long long>(logged),
      static_cast<unsigned long long>(counters.results.load()),
      static_cast<unsigned long long>(counters.cancels.load()),
      static_cast<unsigned long long>(counters.refused.load()));
  (*server)->Shutdown();
  return ok ? 0 : 1;
}

}  // namespace
}  // namespace fanprobe

int main(int argc, char** argv) {
  absl::SetProgramUsageMessage(
      "A bounded soak of fanprobe: mixed batches with random cancels.\n"
      "Usage: fanprobe_soak [--seconds=600] [--clients=4] [--sample=10s]");
  absl::ParseCommandLine(argc, argv);
  return fanprobe::Run();
}
