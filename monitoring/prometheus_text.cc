#include "monitoring/prometheus_text.h"

#include <charconv>
#include <cmath>
#include <cstdint>
#include <string>

#include "absl/strings/str_cat.h"
#include "absl/strings/string_view.h"

namespace fanprobe::monitoring {
namespace {

void AppendEscapedLabelValue(absl::string_view value, std::string* out) {
  for (const char c : value) {
    switch (c) {
      case '\\':
        out->append("\\\\");
        break;
      case '"':
        out->append("\\\"");
        break;
      case '\n':
        out->append("\\n");
        break;
      default:
        out->push_back(c);
    }
  }
}

void AppendEscapedHelp(absl::string_view help, std::string* out) {
  for (const char c : help) {
    if (c == '\\') {
      out->append("\\\\");
    } else if (c == '\n') {
      out->append("\\n");
    } else {
      out->push_back(c);
    }
  }
}

}  // namespace

std::string FormatSampleValue(double value) {
  if (std::isnan(value)) return "NaN";
  if (std::isinf(value)) return value > 0 ? "+Inf" : "-Inf";
  if (value == std::trunc(value) && std::fabs(value) < 1e15) {
    return absl::StrCat(static_cast<int64_t>(value));
  }
  char buffer[32];
  const std::to_chars_result result =
      std::to_chars(buffer, buffer + sizeof(buffer), value);
  return std::string(buffer, result.ptr);
}

void MetricsWriter::Family(absl::string_view name, absl::string_view type,
                           absl::string_view help) {
  absl::StrAppend(&text_, "# HELP ", name, " ");
  AppendEscapedHelp(help, &text_);
  absl::StrAppend(&text_, "\n# TYPE ", name, " ", type, "\n");
}

void MetricsWriter::Sample(absl::string_view name, const Labels& labels,
                           double value) {
  text_.append(name.data(), name.size());
  if (!labels.empty()) {
    text_.push_back('{');
    for (size_t i = 0; i < labels.size(); ++i) {
      if (i > 0) text_.push_back(',');
      absl::StrAppend(&text_, labels[i].first, "=\"");
      AppendEscapedLabelValue(labels[i].second, &text_);
      text_.push_back('"');
    }
    text_.push_back('}');
  }
  absl::StrAppend(&text_, " ", FormatSampleValue(value), "\n");
}

void MetricsWriter::Gauge(absl::string_view name, absl::string_view help,
                          double value) {
  Family(name, "gauge", help);
  Sample(name, {}, value);
}

}  // namespace fanprobe::monitoring
