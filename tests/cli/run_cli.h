// run_cli.h: what the tests of the fanprobe binary share -- running it as a
// child process, and reading its output.
//
// Example:
//   const CliRun run = RunCli({"probe", "--format=jsonl", url});
//   EXPECT_EQ(run.code, 0) << run.err;
//   const JsonlEvents events = ParseJsonl(run.out);
//
// Thread-safety: the functions may be called from any thread.

#ifndef FANPROBE_TESTS_CLI_RUN_CLI_H_
#define FANPROBE_TESTS_CLI_RUN_CLI_H_

#include <string>
#include <vector>

#include "fanprobe/v1/prober.pb.h"
#include "tests/support/subprocess.h"

namespace fanprobe::testing {

// The built fanprobe binary, for tests that drive a Subprocess themselves
// (signals).
const char* CliBinary();

using CliRun = ProcessRun;

// Runs `fanprobe args...` to its end (killed after kPatience) and returns
// its exit code and everything it printed.
CliRun RunCli(std::vector<std::string> args, SubprocessOptions options = {});

// The non-empty lines of `text`.
std::vector<std::string> Lines(const std::string& text);

// The jsonl output: the results, then the summary.
struct JsonlEvents {
  std::vector<v1::ProbeResult> results;
  v1::BatchSummary summary;
};

// Parses jsonl output; a line that is no ProbeEvent, or a summary that is
// not the last line, fails the calling test.
JsonlEvents ParseJsonl(const std::string& out);

}  // namespace fanprobe::testing

#endif  // FANPROBE_TESTS_CLI_RUN_CLI_H_
