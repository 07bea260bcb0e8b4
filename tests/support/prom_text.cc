#include "tests/support/prom_text.h"

#include <cmath>
#include <limits>
#include <optional>
#include <set>
#include <string>
#include <vector>

#include "absl/status/status.h"
#include "absl/status/statusor.h"
#include "absl/strings/ascii.h"
#include "absl/strings/match.h"
#include "absl/strings/numbers.h"
#include "absl/strings/str_cat.h"
#include "absl/strings/str_split.h"
#include "absl/strings/string_view.h"
#include "absl/strings/strip.h"
#include "absl/time/time.h"
#include "gtest/gtest.h"
#include "tests/support/subprocess.h"

namespace fanprobe::testing {
namespace {

bool IsNameChar(char c, bool first) {
  return absl::ascii_isalpha(c) || c == '_' || c == ':' ||
         (!first && absl::ascii_isdigit(c));
}

absl::Status Bad(size_t line_number, absl::string_view line,
                 absl::string_view why) {
  return absl::InvalidArgumentError(
      absl::StrCat("line ", line_number, ": ", why, ": ", line));
}

std::optional<double> ParseValue(absl::string_view text) {
  if (text == "+Inf") return std::numeric_limits<double>::infinity();
  if (text == "-Inf") return -std::numeric_limits<double>::infinity();
  if (text == "NaN") return std::numeric_limits<double>::quiet_NaN();
  double value = 0;
  if (!absl::SimpleAtod(text, &value)) return std::nullopt;
  return value;
}

}  // namespace

std::optional<double> Exposition::Value(absl::string_view name,
                                        const LabelSet& labels) const {
  for (const Sample& sample : samples) {
    if (sample.name == name && sample.labels == labels) return sample.value;
  }
  return std::nullopt;
}

std::vector<Sample> Exposition::Samples(absl::string_view name) const {
  std::vector<Sample> found;
  for (const Sample& sample : samples) {
    if (sample.name == name) found.push_back(sample);
  }
  return found;
}

std::set<std::string> Exposition::FamilyNames() const {
  std::set<std::string> names;
  for (const auto& [name, type] : types) names.insert(name);
  return names;
}

absl::StatusOr<Exposition> ParseExposition(absl::string_view text) {
  Exposition exposition;
  size_t line_number = 0;
  for (absl::string_view line : absl::StrSplit(text, '\n')) {
    ++line_number;
    if (line.empty()) continue;
    if (absl::ConsumePrefix(&line, "# ")) {
      std::vector<absl::string_view> parts =
          absl::StrSplit(line, absl::MaxSplits(' ', 2));
      if (parts.size() == 3 && parts[0] == "TYPE") {
        exposition.types[std::string(parts[1])] = std::string(parts[2]);
      } else if (parts.size() >= 2 && parts[0] == "HELP") {
        exposition.helps[std::string(parts[1])] =
            parts.size() == 3 ? std::string(parts[2]) : "";
      }
      continue;
    }
    Sample sample;
    size_t i = 0;
    while (i < line.size() && IsNameChar(line[i], i == 0)) ++i;
    if (i == 0) return Bad(line_number, line, "no metric name");
    sample.name = std::string(line.substr(0, i));
    if (i < line.size() && line[i] == '{') {
      ++i;
      while (i < line.size() && line[i] != '}') {
        size_t start = i;
        while (i < line.size() && IsNameChar(line[i], i == start)) ++i;
        const std::string label(line.substr(start, i - start));
        if (label.empty() || i + 1 >= line.size() || line[i] != '=' ||
            line[i + 1] != '"') {
          return Bad(line_number, line, "malformed label");
        }
        i += 2;
        std::string value;
        while (i < line.size() && line[i] != '"') {
          if (line[i] == '\\' && i + 1 < line.size()) {
            const char escaped = line[++i];
            value.push_back(escaped == 'n' ? '\n' : escaped);
          } else {
            value.push_back(line[i]);
          }
          ++i;
        }
        if (i >= line.size()) return Bad(line_number, line, "open quote");
        ++i;  // the closing quote
        if (!sample.labels.emplace(label, value).second) {
          return Bad(line_number, line, "repeated label");
        }
        if (i < line.size() && line[i] == ',') ++i;
      }
      if (i >= line.size()) return Bad(line_number, line, "open brace");
      ++i;  // the closing brace
    }
    if (i >= line.size() || line[i] != ' ') {
      return Bad(line_number, line, "no value");
    }
    std::vector<absl::string_view> rest =
        absl::StrSplit(line.substr(i + 1), ' ', absl::SkipEmpty());
    if (rest.empty() || rest.size() > 2) {
      return Bad(line_number, line, "want a value and an optional timestamp");
    }
    std::optional<double> value = ParseValue(rest[0]);
    if (!value.has_value()) return Bad(line_number, line, "bad value");
    sample.value = *value;
    exposition.samples.push_back(std::move(sample));
  }
  return exposition;
}

Exposition ParseOrFail(absl::string_view text) {
  absl::StatusOr<Exposition> parsed = ParseExposition(text);
  EXPECT_TRUE(parsed.ok()) << parsed.status() << "\n" << text;
  return parsed.value_or(Exposition{});
}

absl::Status PromtoolCheckMetrics(absl::string_view text) {
  const std::optional<std::string> promtool = FindTool("promtool");
  if (!promtool.has_value()) {
    return absl::FailedPreconditionError(
        "promtool is not installed: apt-get install prometheus");
  }
  const ProcessRun run =
      RunToExit({*promtool, "check", "metrics"}, absl::Seconds(60),
                {.stdin_data = std::string(text)});
  if (run.code != 0 || !run.out.empty() || !run.err.empty()) {
    return absl::InvalidArgumentError(absl::StrCat(
        "promtool check metrics exited ", run.code, ": ", run.out, run.err));
  }
  return absl::OkStatus();
}

}  // namespace fanprobe::testing
