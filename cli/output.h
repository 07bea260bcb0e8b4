// output.h: how `fanprobe probe` prints its events -- a table row per
// result and a summary paragraph; or one JSON line per ProbeEvent (the
// proto's JSON mapping with its field names: the contract scripts read, the
// same whether the engine ran in-process or on a server); or CSV, one row
// per result under a header row, for spreadsheets and data tools.
//
// Example:
//   Printer printer(Format::kCsv, std::cout, std::cerr);
//   printer.Print(event);  // the header row comes before the first event
//
// The jsonl mapping is protobuf's: durations are strings ("0.012300s"),
// 64-bit integers too (body_bytes), enums their full names
// ("OUTCOME_OK"), and every field is printed, set or not.  The CSV has
// durations as numbers of seconds and outcomes as the table shows them
// ("OK"); its summary, in the table's words, goes to `err` so that the CSV
// is results only.
//
// Every Print flushes, so each row appears the moment its result arrives,
// even on a pipe.
//
// Thread-safety: a Printer is not thread-safe; one owner at a time (the
// split run prints under its lock).

#ifndef FANPROBE_CLI_OUTPUT_H_
#define FANPROBE_CLI_OUTPUT_H_

#include <ostream>
#include <string>

#include "absl/status/statusor.h"
#include "absl/strings/string_view.h"
#include "absl/time/time.h"
#include "fanprobe/v1/prober.pb.h"
#include "google/protobuf/util/json_util.h"

namespace fanprobe::cli {

enum class Format {
  kTable,  // aligned columns, then the summary in words (the default)
  kJsonl,  // one ProbeEvent per line in the proto's JSON mapping
  kCsv,    // a header row, then one row per result (RFC 4180)
};

// "table" | "jsonl" | "csv"; the error names --format.
absl::StatusOr<Format> ParseFormat(absl::string_view value);

class Printer {
 public:
  // `out` gets the output; `err` only the CSV's summary.  Both must
  // outlive the printer.
  Printer(Format format, std::ostream& out, std::ostream& err);

  void Print(const v1::ProbeEvent& event);

 private:
  void PrintRow(const v1::ProbeResult& result);
  void PrintCsvRow(const v1::ProbeResult& result);
  // The summary in words, on `out`.
  static void PrintSummary(const v1::BatchSummary& summary, std::ostream& out);

  const Format format_;
  std::ostream& out_;
  std::ostream& err_;
  google::protobuf::util::JsonPrintOptions json_options_;
  bool header_printed_ = false;
};

// The CSV's header row, without its line end: the column names.
std::string CsvHeader();

// `field` as one CSV field: quoted, with quotes doubled, when it holds a
// comma, a quote, CR or LF.
std::string CsvField(absl::string_view field);

// "12.3ms" below a second, "1.234s" from there on.
std::string HumanDuration(absl::Duration d);

}  // namespace fanprobe::cli

#endif  // FANPROBE_CLI_OUTPUT_H_
