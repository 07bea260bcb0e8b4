#include "cli/output.h"

#include <algorithm>
#include <cstdint>
#include <map>
#include <ostream>
#include <string>
#include <vector>

#include "absl/status/status.h"
#include "absl/status/statusor.h"
#include "absl/strings/str_cat.h"
#include "absl/strings/str_format.h"
#include "absl/strings/str_join.h"
#include "absl/strings/str_replace.h"
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
  if (value == "csv") return Format::kCsv;
  return absl::InvalidArgumentError(
      absl::StrCat("--format=", value, ": want table, jsonl or csv"));
}

std::string CsvHeader() {
  return "index,id,url,outcome,status_code,error,total_seconds,dns_seconds,"
         "connect_seconds,tls_seconds,first_byte_seconds,redirect_seconds,"
         "final_url,http_version,remote_ip,remote_port,body_bytes,redirects,"
         "cert_expiry,labels,attempts";
}

std::string CsvField(absl::string_view field) {
  if (field.find_first_of(",\"\r\n") == absl::string_view::npos) {
    return std::string(field);
  }
  return absl::StrCat("\"", absl::StrReplaceAll(field, {{"\"", "\"\""}}), "\"");
}

Printer::Printer(Format format, std::ostream& out, std::ostream& err)
    : format_(format), out_(out), err_(err) {
  json_options_.add_whitespace = false;
  json_options_.always_print_primitive_fields = true;
  json_options_.preserve_proto_field_names = true;
}

void Printer::Print(const v1::ProbeEvent& event) {
  switch (format_) {
    case Format::kJsonl: {
      std::string json;
      // Cannot fail: the message holds no Any fields.
      (void)google::protobuf::util::MessageToJsonString(event, &json,
                                                        json_options_);
      out_ << json << "\n";
      break;
    }
    case Format::kCsv:
      if (!header_printed_) {
        header_printed_ = true;
        out_ << CsvHeader() << "\n";
      }
      if (event.has_result()) {
        PrintCsvRow(event.result());
      } else {
        PrintSummary(event.summary(), err_);
        err_.flush();
      }
      break;
    case Format::kTable:
      if (event.has_result()) {
        PrintRow(event.result());
      } else {
        PrintSummary(event.summary(), out_);
      }
      break;
  }
  out_.flush();
}

void Printer::PrintCsvRow(const v1::ProbeResult& r) {
  auto seconds = [](const google::protobuf::Duration& d) {
    return absl::StrFormat("%.6f", absl::ToDoubleSeconds(FromProto(d)));
  };
  const v1::Timings& t = r.timings();
  std::string expiry;
  if (r.has_cert_expiry()) {
    expiry = absl::FormatTime("%Y-%m-%dT%H:%M:%SZ",
                              absl::FromUnixSeconds(r.cert_expiry().seconds()) +
                                  absl::Nanoseconds(r.cert_expiry().nanos()),
                              absl::UTCTimeZone());
  }
  // Sorted by name, so a row does not depend on the map's order.
  const std::map<std::string, std::string> labels(r.labels().begin(),
                                                  r.labels().end());
  const std::string label_text =
      absl::StrJoin(labels, ";", absl::PairFormatter("="));
  out_ << absl::StrJoin({absl::StrCat(r.index()),
                         CsvField(r.id()),
                         CsvField(r.url()),
                         std::string(OutcomeLabel(r.outcome())),
                         absl::StrCat(r.status_code()),
                         CsvField(r.error()),
                         seconds(t.total()),
                         seconds(t.dns()),
                         seconds(t.connect()),
                         seconds(t.tls()),
                         seconds(t.first_byte()),
                         seconds(t.redirect()),
                         CsvField(r.final_url()),
                         CsvField(r.http_version()),
                         CsvField(r.remote_ip()),
                         absl::StrCat(r.remote_port()),
                         absl::StrCat(r.body_bytes()),
                         absl::StrCat(r.redirects()),
                         expiry,
                         CsvField(label_text),
                         absl::StrCat(std::max(r.attempts_size(), 1))},
                        ",")
       << "\n";
}

void Printer::PrintRow(const v1::ProbeResult& r) {
  if (!header_printed_) {
    header_printed_ = true;
    out_ << absl::StrFormat("%-6s %-18s %6s %10s  %s\n", "INDEX", "OUTCOME",
                            "STATUS", "TIME", "URL");
  }
  // With retries, the time from the first attempt's start.
  absl::Duration time = FromProto(r.timings().total());
  if (r.attempts_size() > 0) {
    const v1::Attempt& last = r.attempts(r.attempts_size() - 1);
    time = FromProto(last.start()) + FromProto(last.timings().total());
  }
  out_ << absl::StrFormat(
      "%-6d %-18s %6s %10s  %s", r.index(), OutcomeLabel(r.outcome()),
      r.status_code() == 0 ? "-" : absl::StrCat(r.status_code()),
      HumanDuration(time), r.url());
  if (!r.error().empty()) out_ << "  (" << r.error() << ")";
  if (r.attempts_size() > 1) {
    out_ << "  [attempts: "
         << absl::StrJoin(r.attempts(), ", ",
                          [](std::string* text, const v1::Attempt& a) {
                            absl::StrAppend(text, OutcomeLabel(a.outcome()));
                          })
         << "]";
  }
  out_ << "\n";
}

void Printer::PrintSummary(const v1::BatchSummary& s, std::ostream& out) {
  out << absl::StrFormat(
      "\n%s in %s: %d probes, %d completed (%d ok, %d failed), %d "
      "cancelled\n",
      ReasonLabel(s.reason()), HumanDuration(FromProto(s.elapsed())), s.total(),
      s.completed(), s.succeeded(), s.failed(), s.cancelled());
  if (s.pending_indices().empty()) return;
  const int shown = std::min(kPendingShown, s.pending_indices().size());
  out << "pending: "
      << absl::StrJoin(s.pending_indices().begin(),
                       s.pending_indices().begin() + shown, ", ");
  if (s.pending_indices().size() > shown) {
    out << ", ... (" << s.pending_indices().size() - shown << " more)";
  }
  out << "\n";
}

std::string HumanDuration(absl::Duration d) {
  if (d < absl::Seconds(1)) {
    return absl::StrFormat("%.1fms", absl::ToDoubleMilliseconds(d));
  }
  return absl::StrFormat("%.3fs", absl::ToDoubleSeconds(d));
}

}  // namespace fanprobe::cli
