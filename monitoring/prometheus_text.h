// prometheus_text.h: writes the Prometheus text exposition format (version
// 0.0.4) -- the writer behind /metrics (metrics.h) and /probe
// (blackbox_report.h).  It knows the format, not what is measured.
//
// Example:
//   MetricsWriter out;
//   out.Family("fanprobe_probes_in_flight", "gauge", "Probes running now.");
//   out.Sample("fanprobe_probes_in_flight", {}, 3);
//   out.Sample("probe_success", {{"target", url}}, 1);
//   response.set_content(out.Release(), ...);
//
// Thread-safety: a MetricsWriter is written by one thread.

#ifndef FANPROBE_MONITORING_PROMETHEUS_TEXT_H_
#define FANPROBE_MONITORING_PROMETHEUS_TEXT_H_

#include <string>
#include <utility>
#include <vector>

#include "absl/strings/string_view.h"

namespace fanprobe::monitoring {

// Appends Prometheus text format to a string.  A family is announced once
// with Family(), then its samples follow; label values are escaped here.
class MetricsWriter {
 public:
  using Labels = std::vector<std::pair<std::string, std::string>>;

  // "# HELP name help" and "# TYPE name type" (counter, gauge, histogram).
  void Family(absl::string_view name, absl::string_view type,
              absl::string_view help);
  // "name{k="v",...} value".  Integral values print without a fraction,
  // others in the shortest form that reads back the same; infinities as
  // +Inf / -Inf.
  void Sample(absl::string_view name, const Labels& labels, double value);
  // A gauge family with one unlabelled sample.
  void Gauge(absl::string_view name, absl::string_view help, double value);

  const std::string& text() const { return text_; }
  std::string Release() { return std::move(text_); }

 private:
  std::string text_;
};

// `value` as a sample value or an `le` bound prints it: integral values
// without a fraction, others in the shortest form that reads back the
// same, NaN, +Inf, -Inf.
std::string FormatSampleValue(double value);

}  // namespace fanprobe::monitoring

#endif  // FANPROBE_MONITORING_PROMETHEUS_TEXT_H_
