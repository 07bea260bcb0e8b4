// prom_text.h: a strict reader of the Prometheus text format (0.0.4) for the
// tests of /metrics and /probe, so they assert on parsed samples instead of
// substrings, and a malformed line fails the test; and Prometheus' own
// check of the format (promtool).
//
// Example:
//   Exposition metrics = ParseExposition(body).value();
//   EXPECT_EQ(metrics.Value("probe_success"), 1);
//   EXPECT_EQ(metrics.Value("probe_http_duration_seconds",
//                           {{"phase", "tls"}}), 0);
//
// Thread-safety: values; no shared state.

#ifndef FANPROBE_TESTS_SUPPORT_PROM_TEXT_H_
#define FANPROBE_TESTS_SUPPORT_PROM_TEXT_H_

#include <map>
#include <optional>
#include <set>
#include <string>
#include <vector>

#include "absl/status/status.h"
#include "absl/status/statusor.h"
#include "absl/strings/string_view.h"

namespace fanprobe::testing {

using LabelSet = std::map<std::string, std::string>;

struct Sample {
  std::string name;
  LabelSet labels;
  double value = 0;
};

struct Exposition {
  std::vector<Sample> samples;
  std::map<std::string, std::string> types;  // family -> counter, gauge, ...
  std::map<std::string, std::string> helps;  // family -> help text

  // The value of the sample named `name` whose labels are exactly
  // `labels`; nullopt when there is none.
  std::optional<double> Value(absl::string_view name,
                              const LabelSet& labels = {}) const;
  // The samples named `name`, whatever their labels.
  std::vector<Sample> Samples(absl::string_view name) const;
  // The families announced with # TYPE.
  std::set<std::string> FamilyNames() const;
};

// kInvalidArgument naming the line when a line is not a comment, a blank
// or "name{labels} value".
absl::StatusOr<Exposition> ParseExposition(absl::string_view text);

// ParseExposition for a test: a malformed `text` fails the current test
// (showing the text) and yields an empty Exposition.
Exposition ParseOrFail(absl::string_view text);

// `promtool check metrics` (Debian's prometheus package) on `text`: OK when
// it exits 0 and has nothing to say; kInvalidArgument with what it said
// otherwise; kFailedPrecondition when promtool is not installed.
absl::Status PromtoolCheckMetrics(absl::string_view text);

}  // namespace fanprobe::testing

#endif  // FANPROBE_TESTS_SUPPORT_PROM_TEXT_H_
