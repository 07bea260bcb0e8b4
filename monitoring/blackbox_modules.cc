#include "monitoring/blackbox_modules.h"

#include <algorithm>
#include <cmath>
#include <cstdint>
#include <cstdlib>
#include <cstring>
#include <fstream>
#include <initializer_list>
#include <iterator>
#include <limits>
#include <map>
#include <memory>
#include <optional>
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
#include "absl/strings/str_split.h"
#include "absl/strings/string_view.h"
#include "absl/strings/strip.h"
#include "absl/synchronization/mutex.h"
#include "absl/time/clock.h"
#include "absl/time/time.h"
#include "re2/re2.h"
#include "yaml-cpp/yaml.h"

namespace fanprobe::monitoring {
namespace {

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

// Every problem of a file, each with its YAML path, so a user fixes them
// in one round.
class Problems {
 public:
  void Add(absl::string_view path, absl::string_view message) {
    lines_.push_back(absl::StrCat(path, ": ", message));
  }
  bool empty() const { return lines_.empty(); }
  size_t size() const { return lines_.size(); }
  absl::Status ToStatus() const {
    if (lines_.size() == 1) return absl::InvalidArgumentError(lines_[0]);
    return absl::InvalidArgumentError(absl::StrCat(
        lines_.size(), " problems:\n  ", absl::StrJoin(lines_, "\n  ")));
  }

 private:
  std::vector<std::string> lines_;
};

std::string KeyOf(const YAML::Node& key) {
  return key.IsScalar() ? key.Scalar() : std::string("(not a name)");
}

std::optional<std::string> Scalar(const YAML::Node& node,
                                  absl::string_view path, Problems& problems) {
  if (!node.IsScalar()) {
    problems.Add(path, "want a single value");
    return std::nullopt;
  }
  return node.Scalar();
}

std::optional<bool> Bool(const YAML::Node& node, absl::string_view path,
                         Problems& problems) {
  bool value = false;
  if (!node.IsScalar() || !YAML::convert<bool>::decode(node, value)) {
    problems.Add(path, "want true or false");
    return std::nullopt;
  }
  return value;
}

bool CheckRegexp(const std::string& pattern, absl::string_view path,
                 Problems& problems) {
  RE2 re(pattern, RE2::Quiet);
  if (re.ok()) return true;
  problems.Add(path, absl::StrCat("not a valid regexp: ", re.error()));
  return false;
}

std::vector<std::string> Patterns(const YAML::Node& node,
                                  absl::string_view path, Problems& problems) {
  std::vector<std::string> patterns;
  if (node.IsNull()) return patterns;
  if (!node.IsSequence()) {
    problems.Add(path, "want a list of regexps");
    return patterns;
  }
  for (size_t i = 0; i < node.size(); ++i) {
    const std::string item_path = absl::StrCat(path, "[", i, "]");
    std::optional<std::string> pattern = Scalar(node[i], item_path, problems);
    if (pattern.has_value() && CheckRegexp(*pattern, item_path, problems)) {
      patterns.push_back(*std::move(pattern));
    }
  }
  return patterns;
}

// The whole file, or nullopt when it cannot be read or holds more than
// kMaxFileBytes (a CA bundle or a request body, never /dev/zero).  Read at
// load (and reload), as blackbox_exporter reads them when it builds a
// probe's client.
constexpr size_t kMaxFileBytes = 16 << 20;

std::optional<std::string> ReadWholeFile(const std::string& path) {
  std::ifstream in(path, std::ios::binary);
  if (!in) return std::nullopt;
  std::string text;
  char buffer[64 * 1024];
  while (in.read(buffer, sizeof(buffer)) || in.gcount() > 0) {
    text.append(buffer, static_cast<size_t>(in.gcount()));
    if (text.size() > kMaxFileBytes) return std::nullopt;
  }
  if (in.bad()) return std::nullopt;
  return text;
}

// A size as blackbox_exporter's body_size_limit takes it: a number of bytes
// or one with a unit, B, KB, MB, GB, TB, PB, EB (powers of 1024, as Go's
// units.Base2Bytes; KiB, MiB, ... too).
std::optional<uint64_t> ParseSize(absl::string_view text) {
  size_t digits = 0;
  while (digits < text.size() && absl::ascii_isdigit(text[digits])) ++digits;
  uint64_t number = 0;
  if (digits == 0 || !absl::SimpleAtoi(text.substr(0, digits), &number)) {
    return std::nullopt;
  }
  std::string unit = absl::AsciiStrToUpper(text.substr(digits));
  if (absl::EndsWith(unit, "IB")) unit.erase(unit.size() - 2, 1);  // KiB
  static const std::vector<std::pair<absl::string_view, int>> kUnits = {
      {"", 0},   {"B", 0},  {"KB", 1}, {"MB", 2},
      {"GB", 3}, {"TB", 4}, {"PB", 5}, {"EB", 6}};
  for (const auto& [name, power] : kUnits) {
    if (unit != name) continue;
    uint64_t bytes = number;
    for (int i = 0; i < power; ++i) {
      if (bytes > std::numeric_limits<uint64_t>::max() / 1024) {
        return std::nullopt;
      }
      bytes *= 1024;
    }
    return bytes;
  }
  return std::nullopt;
}

// Checks a map's keys against `allowed`; each other key is a problem.
void CheckKeys(const YAML::Node& node, absl::string_view path,
               const std::vector<absl::string_view>& allowed,
               Problems& problems) {
  for (const auto& entry : node) {
    const std::string key = KeyOf(entry.first);
    bool known = false;
    for (absl::string_view name : allowed) known = known || key == name;
    if (!known) {
      problems.Add(absl::StrCat(path, ".", key),
                   absl::StrCat("unknown key (want one of: ",
                                absl::StrJoin(allowed, ", "), ")"));
    }
  }
}

// An option the engine cannot honour yet: the module loads, its probes fail
// naming it.
void Unsupported(absl::string_view path, absl::string_view what,
                 BlackboxModule& module) {
  module.unsupported.push_back(
      absl::StrCat(path, ": ", what, " is not supported by fanprobe yet"));
}

// The client certificate and key, inline (cert, key) or as files
// (cert_file, key_file): both or neither, as prometheus/common's TLS
// config wants.  Files are read at load (and reload), as ca_file is.
void ApplyClientCertificate(const std::map<std::string, std::string>& given,
                            absl::string_view path, BlackboxModule& module,
                            Problems& problems) {
  const auto value_of = [&given](const std::string& key) {
    const auto it = given.find(key);
    return it == given.end() ? std::string() : it->second;
  };
  bool complete = true;
  for (const auto& [inline_key, file_key] :
       {std::pair<std::string, std::string>{"ca", "ca_file"},
        {"cert", "cert_file"},
        {"key", "key_file"}}) {
    if (!value_of(inline_key).empty() && !value_of(file_key).empty()) {
      problems.Add(path, absl::StrCat("at most one of ", inline_key, " & ",
                                      file_key, " must be configured"));
      complete = false;
    }
  }
  const bool has_cert =
      !value_of("cert").empty() || !value_of("cert_file").empty();
  const bool has_key =
      !value_of("key").empty() || !value_of("key_file").empty();
  if (has_cert != has_key) {
    problems.Add(path, has_cert ? "a client certificate (cert or cert_file) "
                                  "needs its key (key or key_file)"
                                : "a client key (key or key_file) needs its "
                                  "certificate (cert or cert_file)");
    complete = false;
  }
  if (!complete || !has_cert) return;
  // Each PEM as given, or the file's content; a file that cannot be read
  // fails the module's probes, as an unreadable ca_file does.
  const auto pem =
      [&](const std::string& inline_key,
          const std::string& file_key) -> std::optional<std::string> {
    if (!value_of(inline_key).empty()) return value_of(inline_key);
    const std::string file = value_of(file_key);
    std::optional<std::string> text = ReadWholeFile(file);
    if (!text.has_value()) {
      module.unsupported.push_back(
          absl::StrCat(path, ".", file_key, ": cannot read \"", file,
                       "\" (missing, unreadable or over 16 MiB)"));
    }
    return text;
  };
  std::optional<std::string> cert = pem("cert", "cert_file");
  std::optional<std::string> key = pem("key", "key_file");
  if (cert.has_value() && key.has_value()) {
    // Whether they parse and match is the engine's check
    // (CheckModulesWithEngine), which refuses the file as blackbox_exporter
    // refuses one whose key does not load.
    module.options.client_certificate = ClientCertificate{
        .cert_pem = *std::move(cert), .key_pem = *std::move(key)};
  }
}

void ParseTlsConfig(const YAML::Node& node, absl::string_view path,
                    BlackboxModule& module, Problems& problems) {
  if (node.IsNull()) return;
  if (!node.IsMap()) {
    problems.Add(path, "want a map");
    return;
  }
  CheckKeys(node, path,
            {"insecure_skip_verify", "ca_file", "ca", "cert_file", "cert",
             "key_file", "key", "server_name", "min_version", "max_version"},
            problems);
  // ca, cert, key and their *_file keys as given, judged together below.
  std::map<std::string, std::string> given;
  for (const auto& entry : node) {
    const std::string key = KeyOf(entry.first);
    const std::string key_path = absl::StrCat(path, ".", key);
    if (key == "insecure_skip_verify") {
      if (std::optional<bool> skip = Bool(entry.second, key_path, problems)) {
        module.options.tls_verify = !*skip;
      }
    } else if (key == "ca_file" || key == "ca") {
      std::optional<std::string> value =
          Scalar(entry.second, key_path, problems);
      if (!value.has_value() || value->empty()) continue;
      given[key] = *value;
      if (key == "ca") {
        module.options.ca_pem = *value;
      } else if (std::optional<std::string> pem = ReadWholeFile(*value)) {
        module.options.ca_pem = *std::move(pem);
      } else {
        module.unsupported.push_back(
            absl::StrCat(key_path, ": cannot read \"", *value,
                         "\" (missing, unreadable or over 16 MiB)"));
      }
    } else if (key == "cert_file" || key == "cert" || key == "key_file" ||
               key == "key") {
      if (std::optional<std::string> value =
              Scalar(entry.second, key_path, problems)) {
        given[key] = *std::move(value);
      }
    } else if (key == "min_version" || key == "max_version") {
      std::optional<std::string> value =
          Scalar(entry.second, key_path, problems);
      if (!value.has_value()) continue;
      if (*value != "TLS10" && *value != "TLS11" && *value != "TLS12" &&
          *value != "TLS13") {
        problems.Add(key_path, "want TLS10, TLS11, TLS12 or TLS13");
      } else if (key == "min_version") {
        // The engine never offers less than TLS 1.2 (OpenSSL 3 refuses
        // older versions at its default security level), so TLS10 and
        // TLS11 floors are TLS 1.2 here.
        module.options.tls_min_version =
            *value == "TLS13" ? TlsVersion::kTls1_3 : TlsVersion::kTls1_2;
      } else if (*value == "TLS12" || *value == "TLS13") {
        module.options.tls_max_version =
            *value == "TLS13" ? TlsVersion::kTls1_3 : TlsVersion::kTls1_2;
      } else {
        Unsupported(key_path, "a TLS version cap below TLS 1.2", module);
      }
    } else if (key == "server_name") {
      // The engine checks that it is a host name (CheckModulesWithEngine).
      if (std::optional<std::string> name =
              Scalar(entry.second, key_path, problems)) {
        module.options.tls_server_name = *std::move(name);
      }
    }
  }
  ApplyClientCertificate(given, path, module, problems);
}

// fail_if_header_matches / fail_if_header_not_matches: the engine's header
// rules, with blackbox_exporter's meaning (a missing header fails either
// kind unless allow_missing).  Whether a name is an HTTP token is the
// engine's check.
std::vector<HeaderPattern> ParseHeaderMatches(const YAML::Node& node,
                                              absl::string_view path,
                                              Problems& problems) {
  std::vector<HeaderPattern> rules;
  if (node.IsNull()) return rules;
  if (!node.IsSequence()) {
    problems.Add(path, "want a list of {header, regexp, allow_missing}");
    return rules;
  }
  for (size_t i = 0; i < node.size(); ++i) {
    const std::string item_path = absl::StrCat(path, "[", i, "]");
    const YAML::Node& item = node[i];
    if (!item.IsMap()) {
      problems.Add(item_path, "want a map {header, regexp, allow_missing}");
      continue;
    }
    CheckKeys(item, item_path, {"header", "regexp", "allow_missing"}, problems);
    HeaderPattern rule;
    for (const auto& entry : item) {
      const std::string key = KeyOf(entry.first);
      const std::string key_path = absl::StrCat(item_path, ".", key);
      if (key == "allow_missing") {
        rule.allow_missing =
            Bool(entry.second, key_path, problems).value_or(false);
      } else if (key == "header" || key == "regexp") {
        if (std::optional<std::string> v =
                Scalar(entry.second, key_path, problems)) {
          (key == "header" ? rule.name : rule.pattern) = *v;
        }
      }
    }
    bool valid = true;
    if (rule.name.empty()) {
      problems.Add(item_path, "header name must be set");
      valid = false;
    }
    if (rule.pattern.empty()) {
      problems.Add(item_path, "regexp must be set");
      valid = false;
    } else {
      valid = CheckRegexp(rule.pattern, absl::StrCat(item_path, ".regexp"),
                          problems) &&
              valid;
    }
    if (valid) rules.push_back(std::move(rule));
  }
  return rules;
}

// An auth or proxy option of prometheus/common's HTTP client config: checked
// for shape, then unsupported.
void ParseUnsupportedMap(const YAML::Node& node, absl::string_view path,
                         const std::vector<absl::string_view>& keys,
                         absl::string_view what, BlackboxModule& module,
                         Problems& problems) {
  if (node.IsNull()) return;
  if (!node.IsMap()) {
    problems.Add(path, "want a map");
    return;
  }
  CheckKeys(node, path, keys, problems);
  Unsupported(path, what, module);
}

// A credential of prometheus/common's HTTP client config: inline (e.g.
// password) or the path of a file holding it (password_file).
struct Credential {
  std::string value;
  std::string file;
  std::string file_path;  // the *_file key's YAML path, for messages
  bool set() const { return !value.empty() || !file.empty(); }
};

// The auth options of a module, gathered before they are judged together.
struct AuthOptions {
  bool basic_auth = false;
  Credential username;
  Credential password;
  Credential bearer_token;  // bearer_token or bearer_token_file
  bool authorization = false;
  std::string authorization_type;
  Credential credentials;
  bool oauth2 = false;
};

// Reads `name` and `name_file` of a map into `out`; both set is a problem,
// as prometheus/common says.
void ParseCredential(const YAML::Node& node, absl::string_view path,
                     absl::string_view name, Credential& out,
                     Problems& problems) {
  const std::string file_key = absl::StrCat(name, "_file");
  for (const auto& entry : node) {
    const std::string key = KeyOf(entry.first);
    if (key != name && key != file_key) continue;
    const std::string key_path = absl::StrCat(path, ".", key);
    std::optional<std::string> text = Scalar(entry.second, key_path, problems);
    if (!text.has_value()) continue;
    if (key == name) {
      out.value = *std::move(text);
    } else {
      out.file = *std::move(text);
      out.file_path = key_path;
    }
  }
  if (!out.value.empty() && !out.file.empty()) {
    problems.Add(path, absl::StrCat("at most one of ", name, " & ", file_key,
                                    " must be configured"));
  }
}

// The credential's text: as written, or the file's content less the
// whitespace around it (as prometheus/common reads a *_file).  Read at
// load and reload; prometheus/common reads the file for every request, so
// here a rotated secret takes a reload.  nullopt when the file cannot be
// read: the module's probes then fail naming it, as with ca_file.
std::optional<std::string> ResolveCredential(const Credential& credential,
                                             BlackboxModule& module) {
  if (credential.file.empty()) return credential.value;
  std::optional<std::string> text = ReadWholeFile(credential.file);
  if (!text.has_value()) {
    module.unsupported.push_back(
        absl::StrCat(credential.file_path, ": cannot read \"", credential.file,
                     "\" (missing, unreadable or over 16 MiB)"));
    return std::nullopt;
  }
  return std::string(absl::StripAsciiWhitespace(*text));
}

// The headers prometheus/common's http_headers may not set: they change the
// connection, or the client sets them itself.
constexpr absl::string_view kReservedHeaders[] = {
    "Authorization",
    "Host",
    "Content-Encoding",
    "Content-Length",
    "Content-Type",
    "User-Agent",
    "Connection",
    "Keep-Alive",
    "Proxy-Authenticate",
    "Proxy-Authorization",
    "Www-Authenticate",
    "Accept-Encoding",
    "X-Prometheus-Remote-Write-Version",
    "X-Prometheus-Remote-Read-Version",
    "X-Prometheus-Scrape-Timeout-Seconds",
    "X-Amz-Date",
    "X-Amz-Security-Token",
    "X-Amz-Content-Sha256",
};

// http_headers (prometheus/common): for each header, `values`, `secrets`
// and `files` (each file's content less the whitespace around it), every
// one sent as a header line of its own after the module's `headers`.
// Files are read at load and reload, as the credential files are.
void ParseHttpHeaders(const YAML::Node& node, absl::string_view path,
                      BlackboxModule& module, Problems& problems) {
  if (node.IsNull()) return;
  if (!node.IsMap()) {
    problems.Add(path, "want a map of headers");
    return;
  }
  for (const auto& header : node) {
    const std::string name = KeyOf(header.first);
    const std::string header_path = absl::StrCat(path, ".", name);
    bool reserved = false;
    for (absl::string_view other : kReservedHeaders) {
      reserved = reserved || absl::EqualsIgnoreCase(name, other);
    }
    if (reserved) {
      problems.Add(header_path, absl::StrCat("setting header \"", name,
                                             "\" is not allowed"));
      continue;
    }
    if (header.second.IsNull()) continue;
    if (!header.second.IsMap()) {
      problems.Add(header_path, "want a map of values, secrets and files");
      continue;
    }
    CheckKeys(header.second, header_path, {"values", "secrets", "files"},
              problems);
    for (absl::string_view kind : {"values", "secrets", "files"}) {
      const YAML::Node list = header.second[std::string(kind)];
      if (!list.IsDefined() || list.IsNull()) continue;
      const std::string list_path = absl::StrCat(header_path, ".", kind);
      if (!list.IsSequence()) {
        problems.Add(list_path, "want a list");
        continue;
      }
      for (size_t i = 0; i < list.size(); ++i) {
        const std::string item_path = absl::StrCat(list_path, "[", i, "]");
        std::optional<std::string> text = Scalar(list[i], item_path, problems);
        if (!text.has_value()) continue;
        if (kind == "files") {
          text = ResolveCredential(
              Credential{.file = *std::move(text), .file_path = item_path},
              module);
          if (!text.has_value()) continue;
        }
        module.options.headers.emplace_back(name, *std::move(text));
      }
    }
  }
}

bool HasHeader(const Headers& headers, absl::string_view name) {
  return std::any_of(headers.begin(), headers.end(), [name](const auto& h) {
    return absl::EqualsIgnoreCase(h.first, name);
  });
}

// basic_auth, bearer_token(_file) and authorization onto the engine's
// basic_auth, bearer_token or an Authorization header.  Combinations
// prometheus/common refuses are problems (blackbox_exporter refuses such a
// file).  The engine's checks (no CR/LF, no ':' in a username) run when the
// file is loaded (CheckModulesWithEngine); their messages name the field,
// never the value.
// The proxy options of a module, gathered before they are judged together.
struct ProxyConfig {
  std::string url;       // proxy_url
  std::string no_proxy;  // comma-separated
  bool from_environment = false;
  Headers connect_headers;  // proxy_connect_header, a line per value
  bool skip_resolve = false;
};

// The first of the environment variables `names` that is set, or "".
std::string Environment(std::initializer_list<const char*> names) {
  for (const char* name : names) {
    if (const char* value = std::getenv(name)) return value;
  }
  return "";
}

// prometheus/common's rules, then the engine's proxy: one for http and
// https targets alike (its proxy_url), with no_proxy's hosts reached
// directly.  proxy_from_environment takes HTTP_PROXY, HTTPS_PROXY and
// NO_PROXY (or their lower-case forms) of this process at load; Go uses a
// different proxy for each scheme, which the engine cannot, so one of them
// unset, or the two different, is unsupported.
void ApplyProxy(const ProxyConfig& proxy, absl::string_view path,
                BlackboxModule& module, Problems& problems) {
  if (!proxy.connect_headers.empty() && !proxy.from_environment &&
      proxy.url.empty()) {
    problems.Add(path,
                 "if proxy_connect_header is configured, proxy_url or "
                 "proxy_from_environment must also be configured");
  }
  if (proxy.from_environment && !proxy.url.empty()) {
    problems.Add(path,
                 "if proxy_from_environment is configured, proxy_url must "
                 "not be configured");
  }
  if (proxy.from_environment && !proxy.no_proxy.empty()) {
    problems.Add(path,
                 "if proxy_from_environment is configured, no_proxy must "
                 "not be configured");
  }
  if (proxy.url.empty() && !proxy.no_proxy.empty()) {
    problems.Add(path,
                 "if no_proxy is configured, proxy_url must also be "
                 "configured");
  }
  ProxyOptions options;
  std::string no_proxy = proxy.no_proxy;
  options.url = proxy.url;
  if (proxy.from_environment) {
    const std::string http = Environment({"HTTP_PROXY", "http_proxy"});
    const std::string https = Environment({"HTTPS_PROXY", "https_proxy"});
    if (http.empty() && https.empty()) return;  // no proxy, as in Go
    if (http != https) {
      Unsupported(absl::StrCat(path, ".proxy_from_environment"),
                  "a proxy for one of http and https only, or a different "
                  "one for each",
                  module);
      return;
    }
    options.url = http;
    no_proxy = Environment({"NO_PROXY", "no_proxy"});
  }
  if (options.url.empty()) return;
  if (!absl::StartsWithIgnoreCase(options.url, "http://")) {
    Unsupported(
        absl::StrCat(path, proxy.from_environment ? ".proxy_from_environment"
                                                  : ".proxy_url"),
        "a proxy other than http:// (https, SOCKS)", module);
    return;
  }
  for (absl::string_view entry : absl::StrSplit(no_proxy, ',')) {
    entry = absl::StripAsciiWhitespace(entry);
    if (!entry.empty()) options.no_proxy.emplace_back(entry);
  }
  options.connect_headers = proxy.connect_headers;
  options.proxy_resolves = proxy.skip_resolve;
  module.options.proxy = std::move(options);
}

void ApplyAuth(const AuthOptions& auth, absl::string_view path,
               BlackboxModule& module, Problems& problems) {
  const size_t problems_before = problems.size();
  if ((auth.basic_auth || auth.oauth2) && auth.bearer_token.set()) {
    problems.Add(path,
                 "at most one of basic_auth, oauth2, bearer_token & "
                 "bearer_token_file must be configured");
  }
  if (auth.authorization) {
    if (auth.bearer_token.set()) {
      problems.Add(path,
                   "authorization is not compatible with bearer_token & "
                   "bearer_token_file");
    }
    if (auth.basic_auth || auth.oauth2) {
      problems.Add(path,
                   "at most one of basic_auth, oauth2 & authorization must be "
                   "configured");
    }
    if (absl::EqualsIgnoreCase(auth.authorization_type, "basic")) {
      problems.Add(absl::StrCat(path, ".authorization.type"),
                   "cannot be \"basic\", use basic_auth instead");
    }
  } else if (auth.oauth2 && auth.basic_auth) {
    problems.Add(path,
                 "at most one of basic_auth, oauth2 & authorization must be "
                 "configured");
  }
  if (problems.size() != problems_before) return;
  // prometheus/common adds its credentials only to a request that has no
  // Authorization header: a module's own header wins.
  if (HasHeader(module.options.headers, "Authorization")) return;
  ProbeOptions& options = module.options;
  if (auth.basic_auth) {
    std::optional<std::string> username =
        ResolveCredential(auth.username, module);
    std::optional<std::string> password =
        ResolveCredential(auth.password, module);
    if (username.has_value() && password.has_value()) {
      options.basic_auth = BasicAuth{.username = *std::move(username),
                                     .password = *std::move(password)};
    }
  } else if (auth.bearer_token.set()) {
    if (std::optional<std::string> token =
            ResolveCredential(auth.bearer_token, module)) {
      options.bearer_token = *std::move(token);
    }
  } else if (auth.authorization) {
    std::optional<std::string> credentials =
        ResolveCredential(auth.credentials, module);
    if (!credentials.has_value()) return;
    // "<type> <credentials>", the type "Bearer" unless the file says.
    const std::string type =
        auth.authorization_type.empty() ? "Bearer" : auth.authorization_type;
    if (type == "Bearer" && !credentials->empty()) {
      options.bearer_token = *std::move(credentials);
    } else {
      options.headers.emplace_back("Authorization",
                                   absl::StrCat(type, " ", *credentials));
    }
  }
}

// One entry of an Accept-Encoding header: "gzip", "br;q=0.9".
struct AcceptedCoding {
  std::string coding;
  double quality = 1;  // a q-value that does not parse counts as 0
};

// Parsed as blackbox_exporter parses it.
std::vector<AcceptedCoding> ParseAcceptEncoding(absl::string_view header) {
  std::vector<AcceptedCoding> entries;
  for (absl::string_view part : absl::StrSplit(header, ',')) {
    AcceptedCoding entry;
    const size_t semicolon = part.rfind(';');
    entry.coding =
        std::string(absl::StripAsciiWhitespace(part.substr(0, semicolon)));
    if (semicolon != absl::string_view::npos) {
      absl::string_view q =
          absl::StripAsciiWhitespace(part.substr(semicolon + 1));
      absl::ConsumePrefix(&q, "q=");
      if (!absl::SimpleAtod(q, &entry.quality)) entry.quality = 0;
    }
    entries.push_back(std::move(entry));
  }
  return entries;
}

// blackbox_exporter's check of `compression` against the module's
// Accept-Encoding header: among the entries, most preferred first, the
// first that names the coding (or "*") must accept it (q > 0).
bool CompressionAcceptable(absl::string_view compression,
                           std::vector<AcceptedCoding> entries) {
  std::stable_sort(entries.begin(), entries.end(),
                   [](const AcceptedCoding& a, const AcceptedCoding& b) {
                     return a.quality > b.quality;
                   });
  for (const AcceptedCoding& entry : entries) {
    if (entry.coding == compression || entry.coding == "*") {
      return entry.quality > 0;
    }
  }
  return false;
}

// compression onto the engine's accept_encoding: the coding is asked for
// and the body decoded before the body patterns see it.  With the module's
// own Accept-Encoding header, that header's codings (q > 0, without their
// q-values) become accept_encoding, as the engine sets the header itself.
void ApplyCompression(const std::string& compression, absl::string_view path,
                      BlackboxModule& module, Problems& problems) {
  if (compression.empty()) return;
  ProbeOptions& options = module.options;
  const auto header = std::find_if(
      options.headers.begin(), options.headers.end(), [](const auto& h) {
        return absl::EqualsIgnoreCase(h.first, "Accept-Encoding");
      });
  std::vector<AcceptedCoding> entries;
  if (header != options.headers.end()) {
    entries = ParseAcceptEncoding(header->second);
    if (!CompressionAcceptable(compression, entries)) {
      problems.Add(path, absl::StrCat("\"", compression,
                                      "\" is not acceptable to the module's "
                                      "Accept-Encoding header \"",
                                      header->second, "\""));
      return;
    }
  }
  // identity decodes nothing: the module's header, if any, goes as it is.
  if (compression == "identity") return;
  const std::vector<std::string>& decodable = SupportedEncodings();
  const auto decodes = [&decodable](absl::string_view coding) {
    return std::any_of(decodable.begin(), decodable.end(),
                       [coding](const std::string& known) {
                         return absl::EqualsIgnoreCase(known, coding);
                       });
  };
  if (header == options.headers.end()) {
    if (!decodes(compression)) {
      Unsupported(path,
                  absl::StrCat("decoding ", compression,
                               " (this build's libcurl cannot)"),
                  module);
      return;
    }
    options.accept_encoding = compression;
    return;
  }
  std::vector<std::string> codings;
  for (const AcceptedCoding& entry : entries) {
    // "Not acceptable" is not asked for; an empty entry is nothing.
    if (entry.quality <= 0 || entry.coding.empty()) continue;
    if (!decodes(entry.coding)) {
      Unsupported(path,
                  absl::StrCat("compression with Accept-Encoding \"",
                               header->second, "\" (\"", entry.coding,
                               "\" is not a coding fanprobe decodes)"),
                  module);
      return;
    }
    codings.push_back(entry.coding);
  }
  options.headers.erase(header);
  options.accept_encoding = absl::StrJoin(codings, ", ");
}

constexpr absl::string_view kHttpKeys[] = {
    "valid_status_codes",
    "valid_http_versions",
    "method",
    "headers",
    "body",
    "body_file",
    "body_size_limit",
    "compression",
    "follow_redirects",
    "no_follow_redirects",
    "fail_if_ssl",
    "fail_if_not_ssl",
    "fail_if_body_matches_regexp",
    "fail_if_body_not_matches_regexp",
    "fail_if_body_json_matches_cel",
    "fail_if_body_json_not_matches_cel",
    "fail_if_header_matches",
    "fail_if_header_not_matches",
    "tls_config",
    "basic_auth",
    "authorization",
    "bearer_token",
    "bearer_token_file",
    "oauth2",
    "proxy_url",
    "no_proxy",
    "proxy_from_environment",
    "proxy_connect_header",
    "skip_resolve_phase_with_proxy",
    "enable_http2",
    "http_headers",
    "preferred_ip_protocol",
    "ip_protocol_fallback",
};

void ParseHttp(const YAML::Node& node, absl::string_view path,
               BlackboxModule& module, Problems& problems) {
  if (node.IsNull()) return;
  if (!node.IsMap()) {
    problems.Add(path, "want a map");
    return;
  }
  CheckKeys(node, path,
            std::vector<absl::string_view>(std::begin(kHttpKeys),
                                           std::end(kHttpKeys)),
            problems);
  ProbeOptions& options = module.options;
  std::string preferred_ip = "ip6";
  bool ip_fallback = true;
  bool has_body = false, has_body_file = false;
  std::optional<bool> follow, no_follow;
  AuthOptions auth;
  ProxyConfig proxy;
  std::string compression;
  for (const auto& entry : node) {
    const std::string key = KeyOf(entry.first);
    const std::string key_path = absl::StrCat(path, ".", key);
    const YAML::Node& value = entry.second;
    if (key == "valid_status_codes") {
      if (value.IsNull()) continue;
      if (!value.IsSequence()) {
        problems.Add(key_path, "want a list of codes");
        continue;
      }
      options.valid_status.clear();
      for (size_t i = 0; i < value.size(); ++i) {
        int code = 0;
        if (!value[i].IsScalar() ||
            !absl::SimpleAtoi(value[i].Scalar(), &code) || code < 100 ||
            code > 999) {
          problems.Add(absl::StrCat(key_path, "[", i, "]"),
                       "want an HTTP status code, 100 to 999");
          continue;
        }
        options.valid_status.push_back({code, code});
      }
      if (options.valid_status.empty()) {
        options.valid_status = BlackboxDefaults().valid_status;
      }
    } else if (key == "valid_http_versions") {
      if (value.IsNull()) continue;
      if (!value.IsSequence()) {
        problems.Add(key_path, "want a list of versions, e.g. [HTTP/1.1]");
        continue;
      }
      for (size_t i = 0; i < value.size(); ++i) {
        if (std::optional<std::string> version = Scalar(
                value[i], absl::StrCat(key_path, "[", i, "]"), problems)) {
          module.valid_http_versions.push_back(*std::move(version));
        }
      }
    } else if (key == "method") {
      std::optional<std::string> method = Scalar(value, key_path, problems);
      if (method.has_value() && !method->empty()) {
        options.method = *std::move(method);
      }
    } else if (key == "headers") {
      if (value.IsNull()) continue;
      if (!value.IsMap()) {
        problems.Add(key_path, "want a map of headers");
        continue;
      }
      for (const auto& header : value) {
        const std::string name = KeyOf(header.first);
        if (std::optional<std::string> text = Scalar(
                header.second, absl::StrCat(key_path, ".", name), problems)) {
          options.headers.emplace_back(name, *std::move(text));
        }
      }
    } else if (key == "body") {
      if (std::optional<std::string> body = Scalar(value, key_path, problems)) {
        options.body = *std::move(body);
        has_body = !options.body.empty();
      }
    } else if (key == "body_file") {
      std::optional<std::string> file = Scalar(value, key_path, problems);
      if (!file.has_value() || file->empty()) continue;
      has_body_file = true;
      if (std::optional<std::string> body = ReadWholeFile(*file)) {
        options.body = *std::move(body);
      } else {
        module.unsupported.push_back(
            absl::StrCat(key_path, ": cannot read \"", *file,
                         "\" (missing, unreadable or over 16 MiB)"));
      }
    } else if (key == "body_size_limit") {
      std::optional<std::string> text = Scalar(value, key_path, problems);
      if (!text.has_value()) continue;
      std::optional<uint64_t> bytes = ParseSize(*text);
      if (!bytes.has_value()) {
        problems.Add(key_path, "want a size, e.g. 10MB or 1024");
      } else if (*bytes > 0) {
        options.max_body_bytes = *bytes;
      }
    } else if (key == "compression") {
      std::optional<std::string> text = Scalar(value, key_path, problems);
      if (!text.has_value()) continue;
      if (*text == "gzip" || *text == "br" || *text == "deflate" ||
          *text == "identity" || text->empty()) {
        compression = *std::move(text);
      } else {
        problems.Add(key_path, "want gzip, br, deflate or identity");
      }
    } else if (key == "follow_redirects" || key == "no_follow_redirects") {
      if (std::optional<bool> flag = Bool(value, key_path, problems)) {
        (key == "follow_redirects" ? follow : no_follow) = *flag;
      }
    } else if (key == "fail_if_ssl" || key == "fail_if_not_ssl") {
      if (std::optional<bool> flag = Bool(value, key_path, problems)) {
        (key == "fail_if_ssl" ? module.fail_if_ssl : module.fail_if_not_ssl) =
            *flag;
      }
    } else if (key == "fail_if_body_matches_regexp" ||
               key == "fail_if_body_not_matches_regexp") {
      (key == "fail_if_body_matches_regexp" ? options.body_must_not_match
                                            : options.body_must_match) =
          Patterns(value, key_path, problems);
    } else if (key == "fail_if_body_json_matches_cel" ||
               key == "fail_if_body_json_not_matches_cel") {
      if (Scalar(value, key_path, problems).has_value()) {
        Unsupported(key_path, "CEL matching (no CEL library)", module);
      }
    } else if (key == "fail_if_header_matches" ||
               key == "fail_if_header_not_matches") {
      (key == "fail_if_header_matches" ? options.header_must_not_match
                                       : options.header_must_match) =
          ParseHeaderMatches(value, key_path, problems);
    } else if (key == "tls_config") {
      ParseTlsConfig(value, key_path, module, problems);
    } else if (key == "basic_auth") {
      if (value.IsNull()) continue;
      if (!value.IsMap()) {
        problems.Add(key_path, "want a map");
        continue;
      }
      CheckKeys(value, key_path,
                {"username", "username_file", "password", "password_file"},
                problems);
      auth.basic_auth = true;
      ParseCredential(value, key_path, "username", auth.username, problems);
      ParseCredential(value, key_path, "password", auth.password, problems);
    } else if (key == "authorization") {
      if (value.IsNull()) continue;
      if (!value.IsMap()) {
        problems.Add(key_path, "want a map");
        continue;
      }
      CheckKeys(value, key_path, {"type", "credentials", "credentials_file"},
                problems);
      auth.authorization = true;
      if (const YAML::Node type = value["type"]) {
        auth.authorization_type = std::string(absl::StripAsciiWhitespace(
            Scalar(type, absl::StrCat(key_path, ".type"), problems)
                .value_or("")));
      }
      ParseCredential(value, key_path, "credentials", auth.credentials,
                      problems);
    } else if (key == "oauth2") {
      if (!value.IsNull()) auth.oauth2 = true;
      ParseUnsupportedMap(
          value, key_path,
          {"client_id", "client_secret", "client_secret_file", "scopes",
           "token_url", "endpoint_params", "tls_config", "proxy_url",
           "no_proxy", "proxy_from_environment", "proxy_connect_header"},
          "OAuth 2.0", module, problems);
    } else if (key == "bearer_token" || key == "bearer_token_file") {
      std::optional<std::string> text = Scalar(value, key_path, problems);
      if (!text.has_value()) continue;
      if (key == "bearer_token") {
        auth.bearer_token.value = *std::move(text);
      } else {
        auth.bearer_token.file = *std::move(text);
        auth.bearer_token.file_path = key_path;
      }
    } else if (key == "proxy_url" || key == "no_proxy") {
      std::optional<std::string> text = Scalar(value, key_path, problems);
      if (text.has_value()) {
        (key == "proxy_url" ? proxy.url : proxy.no_proxy) = *std::move(text);
      }
    } else if (key == "proxy_from_environment") {
      proxy.from_environment = Bool(value, key_path, problems).value_or(false);
    } else if (key == "http_headers") {
      ParseHttpHeaders(value, key_path, module, problems);
    } else if (key == "proxy_connect_header") {
      if (value.IsNull()) continue;
      if (!value.IsMap()) {
        problems.Add(key_path, "want a map of header names to lists of values");
        continue;
      }
      for (const auto& header : value) {
        const std::string name = KeyOf(header.first);
        const std::string header_path = absl::StrCat(key_path, ".", name);
        if (!header.second.IsSequence()) {
          problems.Add(header_path, "want a list of values");
          continue;
        }
        for (size_t i = 0; i < header.second.size(); ++i) {
          if (std::optional<std::string> text =
                  Scalar(header.second[i],
                         absl::StrCat(header_path, "[", i, "]"), problems)) {
            proxy.connect_headers.emplace_back(name, *std::move(text));
          }
        }
      }
    } else if (key == "skip_resolve_phase_with_proxy" ||
               key == "enable_http2") {
      std::optional<bool> flag = Bool(value, key_path, problems);
      if (key == "enable_http2" && flag.has_value()) {
        options.http_version =
            *flag ? HttpVersion::kDefault : HttpVersion::kHttp1_1;
      }
      if (key == "skip_resolve_phase_with_proxy") {
        proxy.skip_resolve = flag.value_or(false);
      }
    } else if (key == "preferred_ip_protocol") {
      std::optional<std::string> protocol = Scalar(value, key_path, problems);
      if (!protocol.has_value()) continue;
      if (*protocol != "ip4" && *protocol != "ip6" && !protocol->empty()) {
        problems.Add(key_path, "want ip4 or ip6");
      } else if (!protocol->empty()) {
        preferred_ip = *protocol;
      }
    } else if (key == "ip_protocol_fallback") {
      if (std::optional<bool> flag = Bool(value, key_path, problems)) {
        ip_fallback = *flag;
      }
    }
  }
  if (has_body && has_body_file) {
    problems.Add(path, "body and body_file are mutually exclusive");
  }
  if (auth.bearer_token.set() && !auth.bearer_token.value.empty() &&
      !auth.bearer_token.file.empty()) {
    problems.Add(path,
                 "at most one of bearer_token & bearer_token_file must be "
                 "configured");
  }
  ApplyAuth(auth, path, module, problems);
  ApplyProxy(proxy, path, module, problems);
  ApplyCompression(compression, absl::StrCat(path, ".compression"), module,
                   problems);
  if (follow.has_value() && no_follow.has_value() && *follow == *no_follow) {
    problems.Add(path,
                 "follow_redirects and no_follow_redirects contradict "
                 "each other");
  }
  if (follow.has_value()) options.follow_redirects = *follow;
  if (no_follow.has_value()) options.follow_redirects = !*no_follow;
  // Without a server_name, blackbox_exporter's handshake names the Host
  // header's host, if the module sets one.
  if (options.tls_server_name.empty()) {
    for (const auto& [name, value] : options.headers) {
      if (absl::EqualsIgnoreCase(name, "Host")) {
        options.tls_server_name = ServerNameOfHost(value);
      }
    }
  }
  // blackbox_exporter resolves the preferred family and, with the fallback,
  // the other one when the preferred has no address.  The engine's kAny is
  // curl's happy eyeballs, IPv6 first: the default ip6 with fallback.  An
  // ip4 preference connects over IPv4 only (the engine has no "IPv4 first").
  if (preferred_ip == "ip4") {
    options.ip_family = IpFamily::kIpv4;
  } else {
    options.ip_family = ip_fallback ? IpFamily::kAny : IpFamily::kIpv6;
  }
}

// What debug=true shows of a module: the file's text with every secret
// (prometheus/common's Secret fields, credentials in headers, a proxy
// URL's user info) shown as blackbox_exporter shows them, "<secret>".
constexpr absl::string_view kSecret = "<secret>";

bool IsSecretKey(absl::string_view key) {
  for (absl::string_view secret :
       {"password", "credentials", "bearer_token", "client_secret", "key",
        "secrets", "proxy_connect_header", "Authorization",
        "Proxy-Authorization", "Cookie"}) {
    if (absl::EqualsIgnoreCase(key, secret)) return true;
  }
  return false;
}

void RedactAll(YAML::Node node) {
  if (node.IsScalar()) {
    node = std::string(kSecret);
    return;
  }
  for (auto entry : node) {
    RedactAll(node.IsMap() ? entry.second : YAML::Node(entry));
  }
}

void RedactSecrets(YAML::Node node) {
  if (node.IsSequence()) {
    for (YAML::Node item : node) RedactSecrets(item);
    return;
  }
  if (!node.IsMap()) return;
  for (auto entry : node) {
    const std::string key = KeyOf(entry.first);
    YAML::Node value = entry.second;
    if (IsSecretKey(key)) {
      RedactAll(value);
    } else if (key == "proxy_url" && value.IsScalar()) {
      // scheme://user:password@host: the user info goes.
      const std::string url = value.Scalar();
      const size_t at = url.rfind('@');
      const size_t scheme = url.find("://");
      if (at != std::string::npos) {
        value = absl::StrCat(
            scheme == std::string::npos ? "" : url.substr(0, scheme + 3),
            kSecret, url.substr(at));
      }
    } else {
      RedactSecrets(value);
    }
  }
}

std::string RedactedYaml(const YAML::Node& node) {
  YAML::Node copy = YAML::Clone(node);
  RedactSecrets(copy);
  YAML::Emitter emitter;
  emitter << copy;
  return emitter.c_str();
}

// blackbox_exporter's probers but http, each with its section of the
// same name.
constexpr absl::string_view kOtherProbers[] = {"tcp",  "icmp", "dns",
                                               "grpc", "unix", "websocket"};

bool IsOtherProber(absl::string_view prober) {
  for (absl::string_view other : kOtherProbers) {
    if (prober == other) return true;
  }
  return false;
}

// "want http, tcp, icmp, dns, grpc, unix or websocket".
std::string WantProbers() {
  std::string want = "want http";
  for (size_t i = 0; i < std::size(kOtherProbers); ++i) {
    absl::StrAppend(&want, i + 1 == std::size(kOtherProbers) ? " or " : ", ",
                    kOtherProbers[i]);
  }
  return want;
}

std::optional<BlackboxModule> ParseModule(const std::string& name,
                                          const YAML::Node& node,
                                          Problems& problems,
                                          std::vector<std::string>& warnings) {
  const std::string path = absl::StrCat("modules.", name);
  if (!node.IsMap()) {
    problems.Add(path, "want a map");
    return std::nullopt;
  }
  const size_t problems_before = problems.size();
  BlackboxModule module;
  module.name = name;
  module.options = BlackboxDefaults();
  module.config_yaml = RedactedYaml(node);
  std::vector<absl::string_view> keys = {"prober", "timeout", "http"};
  keys.insert(keys.end(), std::begin(kOtherProbers), std::end(kOtherProbers));
  CheckKeys(node, path, keys, problems);
  std::optional<std::string> prober;
  if (node["prober"]) {
    prober = Scalar(node["prober"], absl::StrCat(path, ".prober"), problems);
  } else {
    problems.Add(path, absl::StrCat("prober is missing (", WantProbers(), ")"));
  }
  if (const YAML::Node timeout_node = node["timeout"]) {
    const std::string key_path = absl::StrCat(path, ".timeout");
    if (std::optional<std::string> text =
            Scalar(timeout_node, key_path, problems)) {
      absl::StatusOr<absl::Duration> timeout = ParsePrometheusDuration(*text);
      if (timeout.ok()) {
        module.timeout = *timeout;
      } else {
        problems.Add(key_path, timeout.status().message());
      }
    }
  }
  if (prober.has_value()) {
    module.prober = *prober;
    if (*prober == "http") {
      if (const YAML::Node http = node["http"]) {
        ParseHttp(http, absl::StrCat(path, ".http"), module, problems);
      }
    } else if (IsOtherProber(*prober)) {
      // Its own section is blackbox_exporter's to check; fanprobe only
      // says it will not run it.
      warnings.push_back(absl::StrCat(
          path, ": prober \"", *prober,
          "\" is not supported by fanprobe, which probes over HTTP only; "
          "/probe with this module answers 400"));
    } else {
      problems.Add(absl::StrCat(path, ".prober"),
                   absl::StrCat("unknown prober \"", *prober, "\" (",
                                WantProbers(), ")"));
    }
  }
  if (problems.size() != problems_before) return std::nullopt;
  return module;
}

absl::StatusOr<BlackboxConfig> ParseRoot(const YAML::Node& root) {
  if (root.IsNull()) return Invalid("modules", "the file is empty");
  if (!root.IsMap()) return Invalid("(top level)", "want a map with modules");
  BlackboxConfig config;
  Problems problems;
  for (const auto& entry : root) {
    const std::string key = KeyOf(entry.first);
    if (key != "modules") {
      problems.Add(key, "unknown key (a modules file has only `modules`)");
      continue;
    }
    const YAML::Node& list = entry.second;
    if (list.IsNull()) continue;
    if (!list.IsMap()) {
      problems.Add("modules", "want a map of modules");
      continue;
    }
    for (const auto& module_entry : list) {
      const std::string name = KeyOf(module_entry.first);
      std::optional<BlackboxModule> module =
          ParseModule(name, module_entry.second, problems, config.warnings);
      if (module.has_value()) config.modules[name] = *std::move(module);
    }
  }
  if (!problems.empty()) return problems.ToStatus();
  return config;
}

absl::Status Prefixed(const std::string& path, const absl::Status& status) {
  return absl::Status(status.code(),
                      absl::StrCat(path, ": ", status.message()));
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

absl::StatusOr<BlackboxConfig> ParseBlackboxConfig(absl::string_view yaml) {
  try {
    return ParseRoot(YAML::Load(std::string(yaml)));
  } catch (const YAML::Exception& e) {
    return absl::InvalidArgumentError(
        absl::StrCat("not valid YAML: ", e.what()));
  }
}

absl::StatusOr<BlackboxConfig> LoadBlackboxConfig(const std::string& path) {
  std::optional<std::string> text = ReadWholeFile(path);
  if (!text.has_value()) {
    return absl::NotFoundError(absl::StrCat(path, ": cannot read"));
  }
  absl::StatusOr<BlackboxConfig> config = ParseBlackboxConfig(*text);
  if (!config.ok()) return Prefixed(path, config.status());
  for (std::string& warning : config->warnings) {
    warning = absl::StrCat(path, ": ", warning);
  }
  return config;
}

absl::StatusOr<BlackboxModules> ParseBlackboxModules(absl::string_view yaml) {
  absl::StatusOr<BlackboxConfig> config = ParseBlackboxConfig(yaml);
  if (!config.ok()) return config.status();
  return std::move(config->modules);
}

absl::StatusOr<BlackboxModules> LoadBlackboxModules(const std::string& path) {
  absl::StatusOr<BlackboxConfig> config = LoadBlackboxConfig(path);
  if (!config.ok()) return config.status();
  return std::move(config->modules);
}

BlackboxModulesStore::BlackboxModulesStore(std::string path,
                                           BlackboxModules modules)
    : path_(std::move(path)),
      modules_(std::make_shared<const BlackboxModules>(std::move(modules))),
      state_{.last_successful = true, .last_success = absl::Now()} {}

std::shared_ptr<const BlackboxModules> BlackboxModulesStore::Get() const {
  absl::MutexLock lock(&mu_);
  return modules_;
}

absl::StatusOr<std::vector<std::string>> BlackboxModulesStore::Reload() {
  absl::MutexLock reload_lock(&reload_mu_);
  if (path_.empty()) {
    absl::MutexLock lock(&mu_);
    state_ = {.last_successful = true, .last_success = absl::Now()};
    return std::vector<std::string>();
  }
  // Parsed and checked outside mu_: /probe keeps reading the old modules
  // meanwhile.
  absl::StatusOr<BlackboxConfig> config = LoadBlackboxConfig(path_);
  if (config.ok() && check_) {
    if (absl::Status checked = check_(config->modules); !checked.ok()) {
      config = Prefixed(path_, checked);
    }
  }
  auto fresh =
      config.ok()
          ? std::make_shared<const BlackboxModules>(std::move(config->modules))
          : nullptr;
  absl::MutexLock lock(&mu_);
  if (!config.ok()) {
    state_.last_successful = false;
    return config.status();
  }
  modules_ = std::move(fresh);
  state_ = {.last_successful = true, .last_success = absl::Now()};
  return std::move(config->warnings);
}

absl::Status BlackboxModulesStore::SetCheck(Check check) {
  absl::MutexLock reload_lock(&reload_mu_);
  if (check) {
    // modules_ changes only under reload_mu_, which is held: no copy needed.
    if (absl::Status status = check(*Get()); !status.ok()) return status;
  }
  check_ = std::move(check);
  return absl::OkStatus();
}

BlackboxModulesStore::ReloadState BlackboxModulesStore::State() const {
  absl::MutexLock lock(&mu_);
  return state_;
}

void BlackboxModulesStore::CountUnsupported(const BlackboxModule& module) {
  if (module.unsupported.empty()) return;
  const std::string& line = module.unsupported.front();
  const std::string option = line.substr(0, line.find(": "));
  absl::MutexLock lock(&mu_);
  ++unsupported_[{module.name, option}];
}

std::map<std::pair<std::string, std::string>, uint64_t>
BlackboxModulesStore::UnsupportedCounts() const {
  absl::MutexLock lock(&mu_);
  return unsupported_;
}

std::string ServerNameOfHost(absl::string_view host) {
  // "name" or "name:port"; a bracketed IPv6 literal, or anything that is not
  // a plain name or IPv4 address, names no server.
  if (const size_t colon = host.rfind(':'); colon != absl::string_view::npos) {
    int port = 0;
    if (!absl::SimpleAtoi(host.substr(colon + 1), &port)) return "";
    host = host.substr(0, colon);
  }
  const bool plain =
      !host.empty() && std::all_of(host.begin(), host.end(), [](char c) {
        return absl::ascii_isalnum(static_cast<unsigned char>(c)) || c == '.' ||
               c == '-' || c == '_';
      });
  return plain ? std::string(host) : "";
}

ProbeOptions ModuleProbeOptions(const BlackboxModule& module,
                                const Engine& engine) {
  ProbeOptions options = module.options;
  options.max_body_bytes =
      std::min(options.max_body_bytes, engine.Limits().max_body_bytes);
  options.max_redirects =
      std::min(options.max_redirects, engine.Limits().max_redirects);
  // blackbox_exporter matches headers of any number; the server's limits
  // (--max_response_headers, --max_response_header_bytes) are the most.
  options.max_response_headers = engine.Limits().max_response_headers;
  options.max_response_header_bytes = engine.Limits().max_response_header_bytes;
  return options;
}

absl::Status CheckModulesWithEngine(const BlackboxModules& modules,
                                    const Engine& engine) {
  std::vector<std::string> problems;
  for (const auto& [name, module] : modules) {
    if (module.prober != "http") continue;
    ProbeOptions checked = ModuleProbeOptions(module, engine);
    checked.timeout = absl::Seconds(1);  // set per /probe
    if (absl::Status status = engine.CheckOptions(checked); !status.ok()) {
      problems.push_back(
          absl::StrCat("module \"", name, "\": ", status.message()));
    }
  }
  if (problems.empty()) return absl::OkStatus();
  if (problems.size() == 1) return absl::InvalidArgumentError(problems[0]);
  return absl::InvalidArgumentError(
      absl::StrCat(problems.size(), " modules the engine refuses:\n  ",
                   absl::StrJoin(problems, "\n  ")));
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
