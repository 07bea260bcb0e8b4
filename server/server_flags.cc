#include "server/server_flags.h"

#include <algorithm>
#include <fstream>
#include <optional>
#include <sstream>
#include <string>
#include <utility>
#include <vector>

#include "absl/status/status.h"
#include "absl/status/statusor.h"
#include "absl/strings/ascii.h"
#include "absl/strings/match.h"
#include "absl/strings/str_cat.h"
#include "absl/strings/str_join.h"
#include "absl/strings/str_split.h"
#include "absl/strings/string_view.h"
#include "absl/strings/strip.h"
#include "log/json.h"

namespace fanprobe::server {
namespace {

// Flag files may name flag files; this bounds a file that names itself.
constexpr int kMaxFlagfileDepth = 10;

// One command-line argument seen as a flag: "--name=value", "-name value".
struct FlagArg {
  std::string name;
  std::optional<std::string> value;  // set when given with '='
};

std::optional<FlagArg> AsFlag(absl::string_view arg) {
  if (!absl::StartsWith(arg, "-") || arg == "-" || arg == "--") {
    return std::nullopt;
  }
  absl::ConsumePrefix(&arg, "-");
  absl::ConsumePrefix(&arg, "-");
  FlagArg flag;
  const size_t eq = arg.find('=');
  flag.name = std::string(arg.substr(0, eq));
  if (eq != absl::string_view::npos) {
    flag.value = std::string(arg.substr(eq + 1));
  }
  return flag;
}

absl::Status ExpandFlagfiles(const std::vector<std::string>& in, int depth,
                             std::vector<std::string>& out) {
  for (size_t i = 0; i < in.size(); ++i) {
    const std::optional<FlagArg> flag = AsFlag(in[i]);
    if (in[i] == "--") {
      // Everything after "--" is positional; copy it untouched.
      out.insert(out.end(), in.begin() + static_cast<std::ptrdiff_t>(i),
                 in.end());
      return absl::OkStatus();
    }
    if (!flag.has_value() || flag->name != "flagfile") {
      out.push_back(in[i]);
      continue;
    }
    std::string files;
    if (flag->value.has_value()) {
      files = *flag->value;
    } else if (i + 1 < in.size()) {
      files = in[++i];
    } else {
      return absl::InvalidArgumentError("--flagfile needs a value");
    }
    if (depth >= kMaxFlagfileDepth) {
      return absl::InvalidArgumentError(
          absl::StrCat("--flagfile=", files, ": flag files nest more than ",
                       kMaxFlagfileDepth, " deep"));
    }
    for (absl::string_view file :
         absl::StrSplit(files, ',', absl::SkipEmpty())) {
      std::ifstream stream{std::string(file)};
      if (!stream) {
        return absl::InvalidArgumentError(
            absl::StrCat("--flagfile=", file, ": cannot read the file"));
      }
      std::vector<std::string> lines;
      std::string line;
      while (std::getline(stream, line)) {
        const absl::string_view text = absl::StripAsciiWhitespace(line);
        if (text.empty() || absl::StartsWith(text, "#")) continue;
        lines.emplace_back(text);
      }
      if (absl::Status status = ExpandFlagfiles(lines, depth + 1, out);
          !status.ok()) {
        return status;
      }
    }
  }
  return absl::OkStatus();
}

}  // namespace

absl::StatusOr<std::vector<std::string>> ExpandCommandLine(
    std::vector<std::string> args, const std::vector<std::string>& list_flags) {
  if (args.empty()) return args;
  std::vector<std::string> expanded = {args.front()};
  args.erase(args.begin());
  if (absl::Status status = ExpandFlagfiles(args, 0, expanded); !status.ok()) {
    return status;
  }

  // Merge each list flag's occurrences into the first one.
  std::vector<std::string> out;
  std::vector<std::pair<std::string, size_t>> merged;  // name, index in out
  std::vector<std::vector<std::string>> values;
  bool flags_done = false;
  for (size_t i = 0; i < expanded.size(); ++i) {
    const std::string& arg = expanded[i];
    if (flags_done || i == 0) {
      out.push_back(arg);
      continue;
    }
    if (arg == "--") flags_done = true;
    const std::optional<FlagArg> flag = AsFlag(arg);
    if (!flag.has_value() || std::find(list_flags.begin(), list_flags.end(),
                                       flag->name) == list_flags.end()) {
      out.push_back(arg);
      continue;
    }
    std::string value;
    if (flag->value.has_value()) {
      value = *flag->value;
    } else if (i + 1 < expanded.size()) {
      value = expanded[++i];
    } else {
      return absl::InvalidArgumentError(
          absl::StrCat("--", flag->name, " needs a value"));
    }
    auto it = std::find_if(merged.begin(), merged.end(), [&](const auto& m) {
      return m.first == flag->name;
    });
    if (it == merged.end()) {
      merged.emplace_back(flag->name, out.size());
      values.push_back({});
      it = merged.end() - 1;
      out.emplace_back();  // filled in below
    }
    if (!value.empty()) values[it - merged.begin()].push_back(value);
  }
  for (size_t m = 0; m < merged.size(); ++m) {
    out[merged[m].second] =
        absl::StrCat("--", merged[m].first, "=", absl::StrJoin(values[m], ","));
  }
  return out;
}

std::string PolicyJson(const DestinationPolicy& policy) {
  const auto list = [](const std::vector<Cidr>& cidrs) {
    return absl::StrCat("[",
                        absl::StrJoin(cidrs, ",",
                                      [](std::string* out, const Cidr& cidr) {
                                        log::AppendJsonString(cidr.ToString(),
                                                              out);
                                      }),
                        "]");
  };
  return absl::StrCat(
      R"({"deny_private":)", policy.deny_private ? "true" : "false",
      R"(,"deny_loopback":)", policy.deny_loopback ? "true" : "false",
      R"(,"allow":)", list(policy.allow), R"(,"deny":)", list(policy.deny),
      "}");
}

std::vector<std::string> PolicyWarnings(const DestinationPolicy& policy) {
  std::vector<std::string> warnings;
  // The addresses an SSRF goes for first: instance metadata and credentials
  // (AWS, GCP, Azure, OpenStack: 169.254.169.254; AWS IPv6: fd00:ec2::254).
  // (fd00:ec2::254 is in fc00::/7, which the default allows as private:
  // only --deny_private or a --deny_cidr closes it; see deploy/README.md.)
  for (absl::string_view text : {"169.254.169.254", "fd00:ec2::254"}) {
    const IpAddress address = *IpAddress::Parse(text);
    if (!policy.Check(address).ok()) continue;
    for (const Cidr& cidr : policy.allow) {
      if (!cidr.Contains(address)) continue;
      warnings.push_back(absl::StrCat(
          "--allow_cidr=", cidr.ToString(),
          " lets probes reach the cloud metadata address ", text,
          ", where instance credentials live; add --deny_cidr=", text,
          " unless that is meant"));
      break;
    }
  }
  return warnings;
}

}  // namespace fanprobe::server
