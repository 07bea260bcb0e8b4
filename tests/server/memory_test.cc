// memory_test.cc: memory comes back (issue 11, section 5).  fanprobe-server
// runs as a child process; batches that make it hold large buffers -- big
// bodies kept for pattern matching, requests with megabytes of headers it
// must refuse -- must not leave its resident set high once they are over:
// after them and a few ordinary batches, VmRSS is back within 20% of what
// it was after warming up.  Bounded: a few hundred probes of loopback
// targets, well under a minute.

#include <signal.h>
#include <sys/types.h>

#include <cstdint>
#include <cstdio>
#include <fstream>
#include <memory>
#include <optional>
#include <string>
#include <vector>

#include "absl/strings/match.h"
#include "absl/strings/numbers.h"
#include "absl/strings/str_cat.h"
#include "absl/strings/string_view.h"
#include "absl/time/time.h"
#include "fanprobe/v1/prober.grpc.pb.h"
#include "gmock/gmock.h"
#include "grpcpp/grpcpp.h"
#include "gtest/gtest.h"
#include "re2/re2.h"
#include "tests/support/batches.h"
#include "tests/support/subprocess.h"
#include "tests/support/target_server.h"
#include "tests/support/wait.h"

namespace fanprobe {
namespace {

using ::fanprobe::testing::BatchRequest;
using ::fanprobe::testing::kPatience;
using ::fanprobe::testing::Subprocess;
using ::fanprobe::testing::TargetServer;
using ::fanprobe::testing::WaitUntil;

// A line of /proc/<pid>/status, in bytes ("VmRSS:   24576 kB").
uint64_t StatusBytes(pid_t pid, absl::string_view field) {
  std::ifstream status(absl::StrCat("/proc/", pid, "/status"));
  std::string line;
  while (std::getline(status, line)) {
    if (!absl::StartsWith(line, absl::StrCat(field, ":"))) continue;
    uint64_t kib = 0;
    std::string number;
    if (RE2::PartialMatch(line, R"((\d+) kB)", &number) &&
        absl::SimpleAtoi(number, &kib)) {
      return kib * 1024;
    }
  }
  return 0;
}

class MemoryTest : public ::testing::Test {
 protected:
  void SetUp() override {
#if defined(__SANITIZE_ADDRESS__) || defined(__SANITIZE_THREAD__)
    GTEST_SKIP() << "a sanitizer's allocator keeps freed memory (ASan's "
                    "quarantine), so RSS says nothing about fanprobe's";
#elif defined(__has_feature)
#if __has_feature(address_sanitizer) || __has_feature(thread_sanitizer)
    GTEST_SKIP() << "a sanitizer's allocator keeps freed memory (ASan's "
                    "quarantine), so RSS says nothing about fanprobe's";
#endif
#endif
    server_ = std::make_unique<Subprocess>(std::vector<std::string>{
        FANPROBE_SERVER_BINARY, "--grpc_address=127.0.0.1:0",
        "--http_address=", "--workers=2"});
    const std::optional<std::string> listening = server_->WaitForStderrLine(
        [](absl::string_view line) {
          return absl::StrContains(line, R"("event":"listening")");
        },
        kPatience);
    ASSERT_TRUE(listening.has_value()) << server_->Stderr();
    std::string address;
    ASSERT_TRUE(
        RE2::PartialMatch(*listening, R"re("address":"([^"]+)")re", &address));
    stub_ = v1::Prober::NewStub(
        grpc::CreateChannel(address, grpc::InsecureChannelCredentials()));
  }

  void TearDown() override {
    if (server_ == nullptr) return;
    server_->Signal(SIGTERM);
    EXPECT_EQ(server_->Wait(kPatience).code, 0) << server_->Stderr();
  }

  // Runs `request` to its end; the RPC's status.
  grpc::Status Run(const v1::ProbeBatchRequest& request,
                   v1::ProbeBatchResponse* response = nullptr) {
    v1::ProbeBatchResponse ignored;
    grpc::ClientContext context;
    context.set_deadline(absl::ToChronoTime(absl::Now() + absl::Seconds(60)));
    return stub_->ProbeBatch(&context, request,
                             response != nullptr ? response : &ignored);
  }

  // 200 quick probes, as an ordinary batch.
  void OrdinaryBatch() {
    std::vector<std::string> urls(200, target_.url("/status/200"));
    v1::ProbeBatchRequest request = BatchRequest(urls);
    request.set_max_concurrency(50);
    v1::ProbeBatchResponse response;
    const grpc::Status status = Run(request, &response);
    ASSERT_TRUE(status.ok()) << status.error_message();
    ASSERT_EQ(response.summary().succeeded(), 200u);
  }

  uint64_t Rss() const { return StatusBytes(server_->pid(), "VmRSS"); }
  uint64_t PeakRss() const { return StatusBytes(server_->pid(), "VmHWM"); }

  TargetServer target_;
  std::unique_ptr<Subprocess> server_;
  std::unique_ptr<v1::Prober::Stub> stub_;
};

TEST_F(MemoryTest, RssComesBackAfterBigBodiesAndHugeRequests) {
  for (int i = 0; i < 3; ++i) OrdinaryBatch();
  const uint64_t warm = Rss();
  ASSERT_GT(warm, 0u);

  // Bodies kept whole for a pattern that never matches: each probe holds
  // 12 MiB (in a 16 MiB buffer) until it ends.
  constexpr int kBigProbes = 16;
  std::vector<std::string> urls(kBigProbes, target_.url("/chunked/12582912"));
  v1::ProbeBatchRequest big = BatchRequest(urls);
  big.set_max_concurrency(kBigProbes);
  big.mutable_defaults()->set_max_body_bytes(16 << 20);
  big.mutable_defaults()->mutable_body_must_match()->add_patterns(
      "never-in-the-body");
  for (int i = 0; i < 3; ++i) {
    v1::ProbeBatchResponse response;
    const grpc::Status status = Run(big, &response);
    ASSERT_TRUE(status.ok()) << status.error_message();
    ASSERT_EQ(response.done_size(), kBigProbes);
    EXPECT_EQ(response.done(0).outcome(), v1::OUTCOME_BODY_MISMATCH)
        << response.done(0).error();
    EXPECT_EQ(response.done(0).body_bytes(), 12582912u);
  }
  // Requests of 14 MB of headers, refused (above --max_request_header_bytes)
  // after the server has read and parsed them.
  v1::ProbeBatchRequest huge = BatchRequest({target_.url("/status/200")});
  v1::Header* header =
      huge.mutable_defaults()->mutable_headers()->add_headers();
  header->set_name("X-Huge");
  header->set_value(std::string(14 << 20, 'h'));
  for (int i = 0; i < 4; ++i) {
    EXPECT_EQ(Run(huge).error_code(), grpc::StatusCode::INVALID_ARGUMENT);
  }
  const uint64_t peak = PeakRss();
  // The batches did make the server hold what they asked for.
  EXPECT_GT(peak, warm + (100u << 20)) << "warm " << warm << " peak " << peak;

  for (int i = 0; i < 3; ++i) OrdinaryBatch();
  // Freed memory may go back a moment after the last reply.
  uint64_t after = Rss();
  WaitUntil([&] { return (after = Rss()) <= warm + warm / 5; },
            absl::Seconds(5));
  std::printf("VmRSS warm %llu KiB, peak %llu KiB, after %llu KiB\n",
              static_cast<unsigned long long>(warm >> 10),
              static_cast<unsigned long long>(peak >> 10),
              static_cast<unsigned long long>(after >> 10));
  EXPECT_LE(after, warm + warm / 5)
      << "warm " << warm << " peak " << peak << " after " << after;
}

}  // namespace
}  // namespace fanprobe
