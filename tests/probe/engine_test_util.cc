#include "tests/probe/engine_test_util.h"

#include <unistd.h>

#include <cstdio>
#include <fstream>

#include "absl/strings/str_cat.h"

namespace fanprobe::testing {

BatchRun RunBatch(Engine& engine, std::vector<ProbeTarget> targets,
                  const BatchOptions& options, absl::Duration patience) {
  BatchRecorder recorder;
  std::shared_ptr<Batch> batch =
      engine.Submit(std::move(targets), options, recorder.Callbacks());
  std::optional<BatchSummary> summary = recorder.WaitDone(patience);
  if (!summary) {
    ADD_FAILURE() << "the batch did not end within " << patience;
    batch->Cancel();
    summary = recorder.WaitDone();
  }
  EXPECT_EQ(recorder.violations(), 0) << "callback guarantees broken";
  return {summary.value_or(BatchSummary{}), recorder.Results()};
}

void ExpectConsistent(const BatchRun& run) {
  const BatchSummary& s = run.summary;
  EXPECT_EQ(s.completed + s.cancelled, s.total);
  EXPECT_EQ(s.succeeded + s.failed, s.completed);
  EXPECT_EQ(run.results.size(), s.completed);
  EXPECT_EQ(s.pending_indices.size(), s.cancelled);
  EXPECT_TRUE(
      std::is_sorted(s.pending_indices.begin(), s.pending_indices.end()));
  uint32_t succeeded = 0;
  std::vector<int> seen(s.total, 0);
  for (const ProbeResult& r : run.results) {
    if (r.outcome == Outcome::kOk) ++succeeded;
    ASSERT_LT(r.index, s.total);
    ++seen[r.index];
  }
  for (uint32_t i : s.pending_indices) {
    ASSERT_LT(i, s.total);
    ++seen[i];
  }
  EXPECT_EQ(succeeded, s.succeeded);
  for (uint32_t i = 0; i < s.total; ++i) {
    EXPECT_EQ(seen[i], 1) << "index " << i;
  }
}

std::unique_ptr<Engine> MakeEngine(EngineOptions options) {
  absl::StatusOr<std::unique_ptr<Engine>> engine = Engine::Create(options);
  EXPECT_TRUE(engine.ok()) << engine.status();
  return engine.ok() ? *std::move(engine) : nullptr;
}

void ResolveOnlyThrough(const std::string& address, EngineOptions* options) {
  // One file per test process, removed when it exits.
  struct ResolvConf {
    ResolvConf()
        : path(absl::StrCat("/tmp/fanprobe-test-resolv-", getpid(), ".conf")) {
      std::ofstream(path) << "options ndots:1\n";
    }
    ~ResolvConf() { std::remove(path.c_str()); }
    const std::string path;
  };
  static const ResolvConf resolv_conf;
  options->dns_servers = {address};
  options->resolv_conf = resolv_conf.path;
  options->hosts_file = "";
}

}  // namespace fanprobe::testing
