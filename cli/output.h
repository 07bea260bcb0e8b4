// output.h: how `fanprobe probe` prints its events on stdout -- a table row
// per result and a summary paragraph, or one JSON line per ProbeEvent (the
// proto's JSON mapping with its field names: the contract scripts read).
//
// Example:
//   Printer printer(Format::kTable, std::cout);
//   printer.Print(event);  // the header row comes before the first result
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
};

// "table" | "jsonl"; the error names --format.
absl::StatusOr<Format> ParseFormat(absl::string_view value);

class Printer {
 public:
  Printer(Format format, std::ostream& out);

  void Print(const v1::ProbeEvent& event);

 private:
  void PrintRow(const v1::ProbeResult& result);
  void PrintSummary(const v1::BatchSummary& summary);

  const Format format_;
  std::ostream& out_;
  google::protobuf::util::JsonPrintOptions json_options_;
  bool header_printed_ = false;
};

// "12.3ms" below a second, "1.234s" from there on.
std::string HumanDuration(absl::Duration d);

}  // namespace fanprobe::cli

#endif  // FANPROBE_CLI_OUTPUT_H_
