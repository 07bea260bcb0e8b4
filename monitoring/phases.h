// phases.h: blackbox_exporter's phases of one probe, derived from the
// engine's timings.  One definition for the /probe report
// (probe_http_duration_seconds, blackbox_report.h) and for fanprobe's own
// phase histogram (fanprobe_probe_phase_duration_seconds, metrics.h).
//
// Example:
//   PhaseDurations phases = PhasesOf(result.timings);
//   out.Sample("probe_http_duration_seconds", {{"phase", "tls"}},
//              absl::ToDoubleSeconds(phases.tls));
//
// Thread-safety: a plain function of its argument.

#ifndef FANPROBE_MONITORING_PHASES_H_
#define FANPROBE_MONITORING_PHASES_H_

#include "absl/time/time.h"
#include "probe/probe.h"

namespace fanprobe::monitoring {

// Each phase a span (not a mark): resolve = name lookup, connect = TCP,
// tls = handshake, processing = request sent until the first response byte,
// transfer = first byte until done.  A phase that did not happen is zero;
// negative spans (curl's marks on a reused or redirected connection) are
// clamped to zero.
struct PhaseDurations {
  absl::Duration resolve = absl::ZeroDuration();
  absl::Duration connect = absl::ZeroDuration();
  absl::Duration tls = absl::ZeroDuration();
  absl::Duration processing = absl::ZeroDuration();
  absl::Duration transfer = absl::ZeroDuration();
};

PhaseDurations PhasesOf(const Timings& timings);

}  // namespace fanprobe::monitoring

#endif  // FANPROBE_MONITORING_PHASES_H_
