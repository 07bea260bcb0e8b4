// prometheus.h: a real Prometheus (Debian's prometheus package) for tests
// -- started on a free loopback port over a config the test wrote, and
// asked through its HTTP API (instant queries, rules, alerts) -- so a test
// asserts on what Prometheus stored, not on what was served.
//
// Example:
//   TempDir dir;
//   dir.Write("prometheus.yml", config);   // scrape configs, rule_files
//   std::unique_ptr<Prometheus> prometheus =
//       Prometheus::Start(*FindTool("prometheus"), dir, absl::Seconds(45));
//   ASSERT_NE(prometheus, nullptr);
//   ASSERT_TRUE(WaitUntil([&] {
//     return Prometheus::ValueWith(
//                prometheus->Query("probe_success").value_or({}),
//                {{"instance", url}}) == 1;
//   }, absl::Seconds(45), absl::Milliseconds(50)));
//
// Thread-safety: the methods may be called from any thread; one Prometheus
// is one child process, killed (and its storage left in the TempDir) when
// the object goes.

#ifndef FANPROBE_TESTS_SUPPORT_PROMETHEUS_H_
#define FANPROBE_TESTS_SUPPORT_PROMETHEUS_H_

#include <memory>
#include <optional>
#include <string>
#include <vector>

#include "google/protobuf/struct.pb.h"
#include "tests/support/prom_text.h"
#include "tests/support/subprocess.h"
#include "tests/support/temp_dir.h"

namespace fanprobe::testing {

class Prometheus {
 public:
  // One series of an instant query's answer.
  struct Series {
    LabelSet labels;
    double value = 0;
  };

  // Starts `binary` with dir/prometheus.yml, storage in dir/data and its
  // log in dir/prometheus.log, on a free loopback port, and waits until it
  // answers /-/ready.  Null, with the current test failed and the log
  // shown, when it exits or is not ready within `patience`.  A port taken
  // by another process between choosing and binding it makes Prometheus
  // exit at once; then another is tried (three in all).
  static std::unique_ptr<Prometheus> Start(const std::string& binary,
                                           const TempDir& dir,
                                           absl::Duration patience);

  // host:port of its HTTP API.
  const std::string& address() const { return address_; }
  // What it logged so far (for failure messages).
  std::string Log() const { return process_->OutputFile(); }

  // The instant query `promql` (/api/v1/query); nullopt unless Prometheus
  // answered with status "success" and a vector.
  std::optional<std::vector<Series>> Query(const std::string& promql) const;
  // GET `path` (e.g. "/api/v1/rules"): the "data" member of a "success"
  // answer, else nullopt.
  std::optional<google::protobuf::Value> Data(const std::string& path) const;

  // The value of the one series in `series` whose labels include `want`;
  // nullopt when none or several do.
  static std::optional<double> ValueWith(const std::vector<Series>& series,
                                         const LabelSet& want);

 private:
  Prometheus(std::unique_ptr<Subprocess> process, std::string address)
      : process_(std::move(process)), address_(std::move(address)) {}

  std::unique_ptr<Subprocess> process_;
  std::string address_;
};

}  // namespace fanprobe::testing

#endif  // FANPROBE_TESTS_SUPPORT_PROMETHEUS_H_
