#include "cli/output.h"

#include <algorithm>
#include <cstdint>
#include <ostream>
#include <string>
#include <vector>

#include "absl/status/status.h"
#include "absl/status/statusor.h"
#include "absl/strings/str_cat.h"
#include "absl/strings/str_format.h"
#include "absl/strings/str_join.h"
#include "absl/strings/string_view.h"
#include "absl/strings/strip.h"
#include "absl/time/time.h"
#include "google/protobuf/util/json_util.h"
#include "google/protobuf/util/time_util.h"

namespace fanprobe::cli {
namespace {

// Pending indices listed in the table's summary; the rest are counted.
constexpr int kPendingShown = 20;

absl::Duration FromProto(const google::protobuf::Duration& d) {
  return absl::Nanoseconds(
      google::protobuf::util::TimeUtil::DurationToNanoseconds(d));
}

absl::string_view OutcomeLabel(v1::Outcome outcome) {
  absl::string_view name = v1::Outcome_Name(outcome);
  absl::ConsumePrefix(&name, "OUTCOME_");
  return name;
}

absl::string_view ReasonLabel(v1::EndReason reason) {
  absl::string_view name = v1::EndReason_Name(reason);
  absl::ConsumePrefix(&name, "END_REASON_");
  return name;
}

}  // namespace

absl::StatusOr<Format> ParseFormat(absl::string_view value) {
  if (value == "table") return Format::kTable;
  if (value == "jsonl") return Format::kJsonl;
  return absl::InvalidArgumentError(
      absl::StrCat("--format=", value, ": want table or jsonl"));
}

Printer::Printer(Format format, std::ostream& out)
    : format_(format), out_(out) {
  json_options_.add_whitespace = false;
  json_options_.always_print_primitive_fields = true;
  json_options_.preserve_proto_field_names = true;
}

void Printer::Print(const v1::ProbeEvent& event) {
  if (format_ == Format::kJsonl) {
    std::string json;
    // Cannot fail: the message holds no Any fields.
    (void)google::protobuf::util::MessageToJsonString(event, &json,
                                                      json_options_);
    out_ << json << "\n";
  } else if (event.has_result()) {
    PrintRow(event.result());
  } else {
    PrintSummary(event.summary());
  }
  out_.flush();
}

void Printer::PrintRow(const v1::ProbeResult& r) {
  if (!header_printed_) {
    header_printed_ = true;
    out_ << absl::StrFormat("%-6s %-18s %6s %10s  %s\n", "INDEX", "OUTCOME",
                            "STATUS", "TIME", "URL");
  }
  out_ << absl::StrFormat(
      "%-6d %-18s %6s %10s  %s", r.index(), OutcomeLabel(r.outcome()),
      r.status_code() == 0 ? "-" : absl::StrCat(r.status_code()),
      HumanDuration(FromProto(r.timings().total())), r.url());
  if (!r.error().empty()) out_ << "  (" << r.error() << ")";
  out_ << "\n";
}

void Printer::PrintSummary(const v1::BatchSummary& s) {
  out_ << absl::StrFormat(
      "\n%s in %s: %d probes, %d completed (%d ok, %d failed), %d "
      "cancelled\n",
      ReasonLabel(s.reason()), HumanDuration(FromProto(s.elapsed())), s.total(),
      s.completed(), s.succeeded(), s.failed(), s.cancelled());
  if (s.pending_indices().empty()) return;
  const int shown = std::min(kPendingShown, s.pending_indices().size());
  out_ << "pending: "
       << absl::StrJoin(s.pending_indices().begin(),
                        s.pending_indices().begin() + shown, ", ");
  if (s.pending_indices().size() > shown) {
    out_ << ", ... (" << s.pending_indices().size() - shown << " more)";
  }
  out_ << "\n";
}

std::string HumanDuration(absl::Duration d) {
  if (d < absl::Seconds(1)) {
    return absl::StrFormat("%.1fms", absl::ToDoubleMilliseconds(d));
  }
  return absl::StrFormat("%.3fs", absl::ToDoubleSeconds(d));
}

}  // namespace fanprobe::cli
