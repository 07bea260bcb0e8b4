#include "monitoring/blackbox_modules.h"

#include <cmath>
#include <cstdint>
#include <cstring>
#include <fstream>
#include <limits>
#include <map>
#include <optional>
#include <sstream>
#include <string>
#include <utility>
#include <vector>

#include "absl/status/status.h"
#include "absl/status/statusor.h"
#include "absl/strings/ascii.h"
#include "absl/strings/match.h"
#include "absl/strings/numbers.h"
#include "absl/strings/str_cat.h"
#include "absl/strings/str_join.h"
#include "absl/strings/string_view.h"
#include "absl/strings/strip.h"
#include "absl/time/time.h"
#include "re2/re2.h"
#include "yaml-cpp/yaml.h"

namespace fanprobe::monitoring {
namespace {

constexpr absl::string_view kSupportedModuleKeys = "prober, timeout, http";
constexpr absl::string_view kSupportedHttpKeys =
    "valid_status_codes, method, headers, body, follow_redirects, "
    "no_follow_redirects, fail_if_ssl, fail_if_not_ssl, "
    "fail_if_body_matches_regexp, fail_if_body_not_matches_regexp, "
    "tls_config.insecure_skip_verify, preferred_ip_protocol, "
    "ip_protocol_fallback";

// What the http prober's own defaults are where they differ from the
// engine's.
ProbeOptions BlackboxDefaults() {
  ProbeOptions options;
  options.valid_status = {{200, 299}};
  // blackbox_exporter reads bodies of any size (body_size_limit: 0).
  options.max_body_bytes =
      static_cast<uint64_t>(std::numeric_limits<int64_t>::max());
  return options;
}

absl::Status Invalid(absl::string_view path, absl::string_view message) {
  return absl::InvalidArgumentError(absl::StrCat(path, ": ", message));
}

// A Prometheus duration: [0-9]+ followed by y, w, d, h, m, s or ms, and
// several such in that order ("1m30s"), or "0".
absl::StatusOr<absl::Duration> ParsePrometheusDuration(absl::string_view text) {
  if (text == "0") return absl::ZeroDuration();
  static const std::vector<std::pair<absl::string_view, absl::Duration>>
      kUnits = {{"y", absl::Hours(24 * 365)},  {"w", absl::Hours(24 * 7)},
                {"d", absl::Hours(24)},        {"h", absl::Hours(1)},
                {"ms", absl::Milliseconds(1)}, {"m", absl::Minutes(1)},
                {"s", absl::Seconds(1)}};
  static const std::vector<absl::string_view> kOrder = {"y", "w", "d", "h",
                                                        "m", "s", "ms"};
  absl::Duration total = absl::ZeroDuration();
  size_t next_unit = 0;  // units must come in kOrder, each at most once
  absl::string_view rest = text;
  if (rest.empty()) return absl::InvalidArgumentError("empty duration");
  while (!rest.empty()) {
    size_t digits = 0;
    while (digits < rest.size() && absl::ascii_isdigit(rest[digits])) ++digits;
    int64_t number = 0;
    if (digits == 0 || !absl::SimpleAtoi(rest.substr(0, digits), &number)) {
      break;
    }
    rest.remove_prefix(digits);
    bool matched = false;
    for (const auto& [unit, length] : kUnits) {
      if (!absl::StartsWith(rest, unit)) continue;
      size_t position = next_unit;
      while (position < kOrder.size() && kOrder[position] != unit) ++position;
      if (position == kOrder.size()) break;  // out of order
      next_unit = position + 1;
      total += number * length;
      rest.remove_prefix(unit.size());
      matched = true;
      break;
    }
    if (!matched) {
      return absl::InvalidArgumentError(absl::StrCat(
          "not a duration: \"", text, "\" (want e.g. 5s, 1m30s, 500ms)"));
    }
  }
  if (!rest.empty()) {
    return absl::InvalidArgumentError(absl::StrCat(
        "not a duration: \"", text, "\" (want e.g. 5s, 1m30s, 500ms)"));
  }
  return total;
}

// yaml-cpp reports a wrong type by throwing; these turn it into a status.
absl::StatusOr<std::string> Scalar(const YAML::Node& node,
                                   absl::string_view path) {
  if (!node.IsScalar()) return Invalid(path, "want a single value");
  return node.Scalar();
}

absl::StatusOr<bool> Bool(const YAML::Node& node, absl::string_view path) {
  bool value = false;
  if (!node.IsScalar() || !YAML::convert<bool>::decode(node, value)) {
    return Invalid(path, "want true or false");
  }
  return value;
}

absl::StatusOr<std::vector<std::string>> Patterns(const YAML::Node& node,
                                                  absl::string_view path) {
  if (!node.IsSequence()) return Invalid(path, "want a list of regexps");
  std::vector<std::string> patterns;
  for (size_t i = 0; i < node.size(); ++i) {
    const std::string item_path = absl::StrCat(path, "[", i, "]");
    absl::StatusOr<std::string> pattern = Scalar(node[i], item_path);
    if (!pattern.ok()) return pattern.status();
    RE2 re(*pattern, RE2::Quiet);
    if (!re.ok()) {
      return Invalid(item_path,
                     absl::StrCat("not a valid regexp: ", re.error()));
    }
    patterns.push_back(*std::move(pattern));
  }
  return patterns;
}

absl::Status ParseTlsConfig(const YAML::Node& node, absl::string_view path,
                            ProbeOptions& options) {
  if (!node.IsMap()) return Invalid(path, "want a map");
  for (const auto& entry : node) {
    const std::string key = entry.first.Scalar();
    const std::string key_path = absl::StrCat(path, ".", key);
    if (key != "insecure_skip_verify") {
      return Invalid(key_path,
                     "not supported by fanprobe (supported in tls_config: "
                     "insecure_skip_verify)");
    }
    absl::StatusOr<bool> skip = Bool(entry.second, key_path);
    if (!skip.ok()) return skip.status();
    options.tls_verify = !*skip;
  }
  return absl::OkStatus();
}

absl::Status ParseHttp(const YAML::Node& node, absl::string_view path,
                       BlackboxModule& module) {
  if (node.IsNull()) return absl::OkStatus();
  if (!node.IsMap()) return Invalid(path, "want a map");
  ProbeOptions& options = module.options;
  std::string preferred_ip = "ip6";
  bool ip_fallback = true;
  std::optional<bool> follow, no_follow;
  for (const auto& entry : node) {
    const std::string key = entry.first.Scalar();
    const std::string key_path = absl::StrCat(path, ".", key);
    const YAML::Node& value = entry.second;
    if (key == "valid_status_codes") {
      if (!value.IsSequence()) return Invalid(key_path, "want a list of codes");
      options.valid_status.clear();
      for (size_t i = 0; i < value.size(); ++i) {
        int code = 0;
        if (!value[i].IsScalar() ||
            !absl::SimpleAtoi(value[i].Scalar(), &code) || code < 100 ||
            code > 999) {
          return Invalid(absl::StrCat(key_path, "[", i, "]"),
                         "want an HTTP status code, 100 to 999");
        }
        options.valid_status.push_back({code, code});
      }
      if (options.valid_status.empty()) {
        options.valid_status = BlackboxDefaults().valid_status;
      }
    } else if (key == "method") {
      absl::StatusOr<std::string> method = Scalar(value, key_path);
      if (!method.ok()) return method.status();
      if (method->empty()) return Invalid(key_path, "must not be empty");
      options.method = *std::move(method);
    } else if (key == "headers") {
      if (!value.IsMap()) return Invalid(key_path, "want a map of headers");
      for (const auto& header : value) {
        absl::StatusOr<std::string> text = Scalar(
            header.second, absl::StrCat(key_path, ".", header.first.Scalar()));
        if (!text.ok()) return text.status();
        options.headers.emplace_back(header.first.Scalar(), *std::move(text));
      }
    } else if (key == "body") {
      absl::StatusOr<std::string> body = Scalar(value, key_path);
      if (!body.ok()) return body.status();
      options.body = *std::move(body);
    } else if (key == "follow_redirects" || key == "no_follow_redirects") {
      absl::StatusOr<bool> flag = Bool(value, key_path);
      if (!flag.ok()) return flag.status();
      (key == "follow_redirects" ? follow : no_follow) = *flag;
    } else if (key == "fail_if_ssl" || key == "fail_if_not_ssl") {
      absl::StatusOr<bool> flag = Bool(value, key_path);
      if (!flag.ok()) return flag.status();
      (key == "fail_if_ssl" ? module.fail_if_ssl : module.fail_if_not_ssl) =
          *flag;
    } else if (key == "fail_if_body_matches_regexp" ||
               key == "fail_if_body_not_matches_regexp") {
      absl::StatusOr<std::vector<std::string>> patterns =
          Patterns(value, key_path);
      if (!patterns.ok()) return patterns.status();
      (key == "fail_if_body_matches_regexp" ? options.body_must_not_match
                                            : options.body_must_match) =
          *std::move(patterns);
    } else if (key == "tls_config") {
      if (absl::Status status = ParseTlsConfig(value, key_path, options);
          !status.ok()) {
        return status;
      }
    } else if (key == "preferred_ip_protocol") {
      absl::StatusOr<std::string> protocol = Scalar(value, key_path);
      if (!protocol.ok()) return protocol.status();
      if (*protocol != "ip4" && *protocol != "ip6" && !protocol->empty()) {
        return Invalid(key_path, "want ip4 or ip6");
      }
      if (!protocol->empty()) preferred_ip = *protocol;
    } else if (key == "ip_protocol_fallback") {
      absl::StatusOr<bool> flag = Bool(value, key_path);
      if (!flag.ok()) return flag.status();
      ip_fallback = *flag;
    } else {
      return Invalid(key_path,
                     absl::StrCat("not supported by fanprobe (supported http "
                                  "options: ",
                                  kSupportedHttpKeys, ")"));
    }
  }
  if (follow.has_value() && no_follow.has_value() && *follow == *no_follow) {
    return Invalid(path,
                   "follow_redirects and no_follow_redirects contradict "
                   "each other");
  }
  if (follow.has_value()) options.follow_redirects = *follow;
  if (no_follow.has_value()) options.follow_redirects = !*no_follow;
  // blackbox_exporter resolves the preferred family and, with the fallback,
  // the other one when the preferred has no address.  The engine's kAny is
  // curl's happy eyeballs, IPv6 first: the default ip6 with fallback.  An
  // ip4 preference connects over IPv4 only (the engine has no "IPv4 first").
  if (preferred_ip == "ip4") {
    options.ip_family = IpFamily::kIpv4;
  } else {
    options.ip_family = ip_fallback ? IpFamily::kAny : IpFamily::kIpv6;
  }
  return absl::OkStatus();
}

absl::StatusOr<BlackboxModule> ParseModule(const std::string& name,
                                           const YAML::Node& node) {
  const std::string path = absl::StrCat("modules.", name);
  if (!node.IsMap()) return Invalid(path, "want a map");
  BlackboxModule module;
  module.name = name;
  module.options = BlackboxDefaults();
  YAML::Emitter emitter;
  emitter << node;
  module.config_yaml = emitter.c_str();
  std::optional<std::string> prober;
  for (const auto& entry : node) {
    const std::string key = entry.first.Scalar();
    const std::string key_path = absl::StrCat(path, ".", key);
    if (key == "prober") {
      absl::StatusOr<std::string> value = Scalar(entry.second, key_path);
      if (!value.ok()) return value.status();
      prober = *value;
    } else if (key == "timeout") {
      absl::StatusOr<std::string> text = Scalar(entry.second, key_path);
      if (!text.ok()) return text.status();
      absl::StatusOr<absl::Duration> timeout = ParsePrometheusDuration(*text);
      if (!timeout.ok()) return Invalid(key_path, timeout.status().message());
      module.timeout = *timeout;
    } else if (key == "http") {
      if (absl::Status status = ParseHttp(entry.second, key_path, module);
          !status.ok()) {
        return status;
      }
    } else if (key == "tcp" || key == "dns" || key == "icmp" || key == "grpc") {
      return Invalid(key_path,
                     "not supported by fanprobe, which probes over HTTP only");
    } else {
      return Invalid(key_path,
                     absl::StrCat("not a module option fanprobe supports (",
                                  kSupportedModuleKeys, ")"));
    }
  }
  if (!prober.has_value()) {
    return Invalid(path, "prober is missing (fanprobe supports prober: http)");
  }
  if (*prober != "http") {
    return Invalid(absl::StrCat(path, ".prober"),
                   absl::StrCat("\"", *prober,
                                "\" is not supported by fanprobe, which "
                                "probes over HTTP only (prober: http)"));
  }
  return module;
}

absl::StatusOr<BlackboxModules> ParseRoot(const YAML::Node& root) {
  if (root.IsNull()) return Invalid("modules", "the file is empty");
  if (!root.IsMap()) return Invalid("(top level)", "want a map with modules");
  BlackboxModules modules;
  for (const auto& entry : root) {
    const std::string key = entry.first.Scalar();
    if (key != "modules") {
      return Invalid(key, "unknown key (a modules file has only `modules`)");
    }
    const YAML::Node& list = entry.second;
    if (list.IsNull()) continue;
    if (!list.IsMap()) return Invalid("modules", "want a map of modules");
    for (const auto& module_entry : list) {
      const std::string name = module_entry.first.Scalar();
      absl::StatusOr<BlackboxModule> module =
          ParseModule(name, module_entry.second);
      if (!module.ok()) return module.status();
      modules[name] = *std::move(module);
    }
  }
  return modules;
}

}  // namespace

BlackboxModules DefaultBlackboxModules() {
  BlackboxModule module;
  module.name = std::string(kDefaultModuleName);
  module.options = BlackboxDefaults();
  module.config_yaml = "prober: http\n";
  BlackboxModules modules;
  modules[module.name] = std::move(module);
  return modules;
}

absl::StatusOr<BlackboxModules> ParseBlackboxModules(absl::string_view yaml) {
  try {
    return ParseRoot(YAML::Load(std::string(yaml)));
  } catch (const YAML::Exception& e) {
    return absl::InvalidArgumentError(
        absl::StrCat("not valid YAML: ", e.what()));
  }
}

absl::StatusOr<BlackboxModules> LoadBlackboxModules(const std::string& path) {
  std::ifstream in(path);
  if (!in) return absl::NotFoundError(absl::StrCat(path, ": cannot read"));
  std::stringstream text;
  text << in.rdbuf();
  absl::StatusOr<BlackboxModules> modules = ParseBlackboxModules(text.str());
  if (!modules.ok()) {
    return absl::Status(modules.status().code(),
                        absl::StrCat(path, ": ", modules.status().message()));
  }
  return modules;
}

absl::StatusOr<absl::Duration> ProbeTimeout(absl::string_view header,
                                            absl::Duration module_timeout,
                                            absl::Duration offset,
                                            absl::Duration max_scrape_timeout) {
  double scrape_seconds = 0;
  if (!header.empty() && !absl::SimpleAtod(header, &scrape_seconds)) {
    return absl::InvalidArgumentError(absl::StrCat(
        "X-Prometheus-Scrape-Timeout-Seconds: not a number: \"", header, "\""));
  }
  // SimpleAtod takes "inf" and "nan", and turns "1e309" into infinity.
  if (!std::isfinite(scrape_seconds)) {
    return absl::InvalidArgumentError(
        absl::StrCat("X-Prometheus-Scrape-Timeout-Seconds: not a finite "
                     "number: \"",
                     header, "\""));
  }
  if (scrape_seconds < 0) {
    return absl::InvalidArgumentError(absl::StrCat(
        "X-Prometheus-Scrape-Timeout-Seconds: must be positive: \"", header,
        "\""));
  }
  // Held to the maximum while still a double: absl::Seconds(1e308) would
  // already be infinite.
  const double max_seconds = absl::ToDoubleSeconds(max_scrape_timeout);
  if (scrape_seconds == 0) scrape_seconds = 120;
  scrape_seconds = std::min(scrape_seconds, max_seconds);
  module_timeout = std::min(module_timeout, max_scrape_timeout);
  const absl::Duration most = absl::Seconds(scrape_seconds) - offset;
  if ((module_timeout > absl::ZeroDuration() && module_timeout < most) ||
      most < absl::ZeroDuration()) {
    return module_timeout;
  }
  return most;
}

}  // namespace fanprobe::monitoring
