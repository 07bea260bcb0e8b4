#include "cli/flags.h"

#include <algorithm>
#include <cmath>
#include <cstdint>
#include <functional>
#include <initializer_list>
#include <memory>
#include <optional>
#include <string>
#include <utility>
#include <vector>

#include "CLI/CLI.hpp"
#include "absl/algorithm/container.h"
#include "absl/status/status.h"
#include "absl/status/statusor.h"
#include "absl/strings/ascii.h"
#include "absl/strings/match.h"
#include "absl/strings/numbers.h"
#include "absl/strings/str_cat.h"
#include "absl/strings/string_view.h"
#include "absl/time/time.h"

namespace fanprobe::cli {
namespace {

constexpr absl::string_view kDescription =
    "fanprobe: probe many HTTP targets at once, with the engine in-process\n"
    "or on fanprobe servers (--server).";

constexpr absl::string_view kExitStatus =
    "Exit status of probe: 0 every probe that completed succeeded; 1 a probe\n"
    "failed; 2 a usage error, or a server failed (RPC error); 124 the batch\n"
    "timed out (--timeout) with probes pending; 130 cancelled by SIGINT or\n"
    "SIGTERM.  When several apply, the first in this order: 2, 130, 124, 1.\n"
    "Of health: 0 SERVING, 1 the server answered otherwise, 2 no answer.";

// Where CLI11 stores what it parses, and the commands it knows.
struct Grammar {
  CLI::App app{std::string(kDescription), "fanprobe"};
  CLI::App* probe = nullptr;
  CLI::App* health = nullptr;
  CLI::App* help = nullptr;
  CLI::App* version = nullptr;
  bool version_flag = false;
  ProbeFlags probe_flags;
  HealthFlags health_flags;
};

// A flag with one value; given twice, the last one counts.
CLI::Option* AddValue(CLI::App* app, const std::string& names,
                      std::optional<std::string>* out, const std::string& type,
                      const std::string& help) {
  return app
      ->add_option_function<std::string>(
          names, [out](const std::string& value) { *out = value; }, help)
      ->multi_option_policy(CLI::MultiOptionPolicy::TakeLast)
      ->type_name(type);
}

CLI::Option* AddValue(CLI::App* app, const std::string& names, std::string* out,
                      const std::string& type, const std::string& help) {
  return app->add_option(names, *out, help)
      ->multi_option_policy(CLI::MultiOptionPolicy::TakeLast)
      ->type_name(type);
}

// A flag that may repeat, one value each time (a following argument is a
// URL, not another value).
CLI::Option* AddRepeated(CLI::App* app, const std::string& names,
                         std::vector<std::string>* out, const std::string& type,
                         const std::string& help) {
  return app->add_option(names, *out, help)
      ->allow_extra_args(false)
      ->type_name(type);
}

// A flag without a value whose every occurrence runs `on_seen` the moment
// it is parsed: of two flags that contradict each other, the later wins.
CLI::Option* AddOrderedFlag(CLI::App* app, const std::string& names,
                            std::function<void()> on_seen,
                            const std::string& help) {
  return app->add_flag_callback(names, std::move(on_seen), help)
      ->trigger_on_parse()
      ->multi_option_policy(CLI::MultiOptionPolicy::TakeLast);
}

// A repeatable value flag whose every occurrence runs `on_value` the moment
// it is parsed, so values of several such flags keep their order.
CLI::Option* AddOrderedValue(CLI::App* app, const std::string& names,
                             std::function<void(const std::string&)> on_value,
                             const std::string& type, const std::string& help) {
  return app->add_option_function<std::string>(names, std::move(on_value), help)
      ->trigger_on_parse()
      ->multi_option_policy(CLI::MultiOptionPolicy::TakeLast)
      ->allow_extra_args(false)
      ->type_name(type);
}

// A command: its flags, stray arguments and --help are checked by
// ParseCommandLine.
CLI::App* AddCommand(CLI::App& app, const std::string& name,
                     const std::string& help) {
  CLI::App* command = app.add_subcommand(name, help);
  command->group("Commands")->allow_extras();
  // The help flag is copied from the parent, without its group.
  command->get_help_ptr()->group("Flags");
  return command;
}

void AddConnectionFlags(CLI::App* app, ConnectionFlags* flags,
                        const std::string& group) {
  AddValue(app, "--tls_ca", &flags->tls_ca, "FILE",
           "use TLS, trusting the CA certificates in FILE\n"
           "(PEM)")
      ->group(group);
  AddValue(app, "--tls_cert", &flags->tls_cert, "FILE",
           "client certificate for mutual TLS (PEM; implies\n"
           "TLS, with the system's CAs unless --tls_ca)")
      ->group(group);
  AddValue(app, "--tls_key", &flags->tls_key, "FILE",
           "the client certificate's key (PEM)")
      ->group(group);
  AddValue(app, "--tls_server_name", &flags->tls_server_name, "NAME",
           "the name the server's certificate must carry,\n"
           "when it is not the --server host")
      ->group(group);
  AddValue(app, "--auth_token_file", &flags->auth_token_file, "FILE",
           "send the first token in FILE as a bearer\n"
           "token")
      ->group(group);
}

void AddBatchFlags(CLI::App* probe, ProbeFlags& f) {
  const std::string group = "The batch";
  AddRepeated(probe, "--server", &f.servers, "ADDR",
              "run the batch on this fanprobe-server instead\n"
              "of in-process; repeat it or give a comma list\n"
              "to split the batch across servers (contiguous\n"
              "shares, one merged output)")
      ->group(group);
  AddValue(probe, "--return_when", &f.return_when, "RULE",
           "all (default), first, or first_exception")
      ->group(group);
  AddValue(probe, "--timeout", &f.timeout, "DURATION",
           "end the whole batch after this, e.g. 5s, 500ms\n"
           "(default: none)")
      ->group(group);
  AddValue(probe, "--concurrency", &f.concurrency, "N",
           "probes of the batch running at once (default 0\n"
           "= 100)")
      ->group(group);
  AddValue(probe, "--per_host", &f.per_host, "N",
           "probes running at once per host (default 0 = no\n"
           "limit)")
      ->group(group);
}

void AddProbeOptionFlags(CLI::App* probe, ProbeFlags& f) {
  const std::string group =
      "Each probe (a target's own options in a JSON line win)";
  AddValue(probe, "-X,--request,--method", &f.method, "METHOD",
           "HTTP method (default GET; POST with -d)")
      ->group(group);
  // Runs as it is parsed, and -X's value is stored after the parse: -X
  // wins over -I wherever each stands, as in curl.
  AddOrderedFlag(
      probe, "-I,--head", [&f] { f.method = "HEAD"; },
      "HEAD: the status and headers only (-X wins)")
      ->group(group);
  AddRepeated(probe, "-H,--header", &f.headers, "'K: V'",
              "extra request header; repeat for more")
      ->group(group);
  auto data = [&f](DataFlag::Kind kind) {
    return [&f, kind](const std::string& value) {
      f.data.push_back({kind, value});
    };
  };
  AddOrderedValue(probe, "-d,--data", data(DataFlag::Kind::kData), "DATA",
                  "request body; @FILE reads FILE without its\n"
                  "newlines; repeated, joined with '&'; makes the\n"
                  "method POST unless -X")
      ->group(group);
  AddOrderedValue(probe, "--data-binary", data(DataFlag::Kind::kBinary), "DATA",
                  "as -d, but @FILE is sent as it is")
      ->group(group);
  AddOrderedValue(probe, "--data-raw", data(DataFlag::Kind::kRaw), "DATA",
                  "as -d, but @ is not special")
      ->group(group);
  AddValue(probe, "-m,--max-time,--probe_timeout", &f.max_time, "SECONDS",
           "each probe's own timeout: seconds (2.5) or a\n"
           "duration (2500ms); default 10s")
      ->group(group);
  AddValue(probe, "--connect-timeout", &f.connect_timeout, "SECONDS",
           "limit for each connect (resolve, TCP, TLS);\n"
           "default: only --max-time")
      ->group(group);
  AddOrderedFlag(
      probe, "-L,--location", [&f] { f.follow_redirects = true; },
      "follow redirects: the default (unlike curl, as\n"
      "blackbox_exporter); accepted for curl habits")
      ->group(group);
  AddOrderedFlag(
      probe, "--no-location,--no-follow", [&f] { f.follow_redirects = false; },
      "do not follow redirects: a 3xx is the answer")
      ->group(group);
  AddValue(probe, "--max-redirs", &f.max_redirs, "N",
           "follow at most N redirects, more is\n"
           "TOO_MANY_REDIRECTS (default 10)")
      ->group(group);
  AddValue(probe, "--retry", &f.retry, "N",
           "try a failed probe up to N more times, as curl:\n"
           "after DNS, connect, timeout and I/O errors, within\n"
           "--max-time; every attempt is reported (default 0)")
      ->group(group);
  AddValue(probe, "--retry-delay", &f.retry_delay, "SECONDS",
           "wait this long before each retry (default: 1 s,\n"
           "doubling each time)")
      ->group(group);
  probe
      ->add_flag("--retry-all-errors", f.retry_all_errors,
                 "with --retry: retry every failure, also a status,\n"
                 "body, header or TLS failure")
      ->group(group);
  probe
      ->add_flag("-k,--insecure", f.insecure,
                 "do not verify the target's certificate")
      ->group(group);
  AddValue(probe, "--cacert", &f.cacert, "FILE",
           "verify targets against the CA certificates in\n"
           "FILE (PEM)")
      ->group(group);
  AddValue(probe, "--interface", &f.interface, "ADDRESS",
           "connect from this local IP address (not an\n"
           "interface name); a server allows it only within\n"
           "its --allow_source_cidr")
      ->group(group);
  AddValue(probe, "-x,--proxy", &f.proxy, "URL",
           "go through this HTTP proxy:\n"
           "http://[user:password@]host[:port]")
      ->group(group);
  AddRepeated(probe, "--proxy-header", &f.proxy_headers, "'K: V'",
              "a header for the proxy's CONNECT; repeat for\n"
              "more")
      ->group(group);
  AddValue(probe, "--noproxy", &f.noproxy, "LIST",
           "hosts reached without the proxy: comma-separated\n"
           "domains, addresses, CIDR blocks, or *")
      ->group(group);
  probe
      ->add_flag("--proxy-resolves", f.proxy_resolves,
                 "let the proxy resolve names (curl's way); by\n"
                 "default the server resolves them and asks the\n"
                 "proxy for the address (blackbox_exporter's)")
      ->group(group);
  AddOrderedFlag(
      probe, "--tlsv1.2", [&f] { f.tls_min = "1.2"; },
      "use TLS 1.2 or later: the default (nothing older\n"
      "is offered)")
      ->group(group);
  AddOrderedFlag(
      probe, "--tlsv1.3", [&f] { f.tls_min = "1.3"; }, "use TLS 1.3 or later")
      ->group(group);
  AddValue(probe, "--tls-max", &f.tls_max, "VERSION",
           "use at most this TLS version: 1.2, 1.3 or\n"
           "default (1.3)")
      ->group(group);
  AddOrderedFlag(
      probe, "--http1.1", [&f] { f.http_version = "1.1"; }, "use HTTP/1.1 only")
      ->group(group);
  AddOrderedFlag(
      probe, "--http2", [&f] { f.http_version = "2"; },
      "use HTTP/2 over TLS where the server offers it\n"
      "(the default too)")
      ->group(group);
  AddOrderedFlag(
      probe, "-4,--ipv4", [&f] { f.ip_family = "4"; }, "connect over IPv4 only")
      ->group(group);
  AddOrderedFlag(
      probe, "-6,--ipv6", [&f] { f.ip_family = "6"; }, "connect over IPv6 only")
      ->group(group);
  AddValue(probe, "-A,--user-agent", &f.user_agent, "NAME",
           "the User-Agent (default fanprobe/VERSION)")
      ->group(group);
  AddValue(probe, "--max-filesize,--max_body_bytes", &f.max_filesize, "BYTES",
           "a larger body is BODY_TOO_LARGE (default 64k;\n"
           "k, M, G suffixes)")
      ->group(group);
  AddValue(probe, "--expect", &f.expect, "RANGES",
           "valid status codes, e.g. 200-299,301 (default\n"
           "200-399)")
      ->group(group);
  AddRepeated(probe, "--body_must_match", &f.body_must_match, "RE2",
              "the body must match this pattern; repeatable")
      ->group(group);
  AddRepeated(probe, "--body_must_not_match", &f.body_must_not_match, "RE2",
              "the body must not match this pattern;\n"
              "repeatable")
      ->group(group);
  probe
      ->add_flag("--reuse_connections", f.reuse_connections,
                 "keep connections and reuse them between probes\n"
                 "to the same host (default: a fresh one each)")
      ->group(group);
}

void AddInputOutputFlags(CLI::App* probe, ProbeFlags& f) {
  const std::string group = "Input and output";
  AddRepeated(probe, "--file", &f.files, "FILE",
              "read targets from FILE ('-' = stdin), one per\n"
              "line: a URL, or a ProbeTarget in JSON\n"
              "({\"url\": ..., \"options\": {...}}); blank lines\n"
              "and '#' comments are skipped")
      ->group(group);
  AddValue(probe, "--format", &f.format, "FORMAT",
           "table (default); jsonl: one ProbeEvent per line\n"
           "in protobuf's JSON mapping (durations are\n"
           "strings such as \"0.0123s\", so are 64-bit\n"
           "numbers); csv: a header, then one row per\n"
           "result, durations in seconds as numbers (the\n"
           "summary goes to stderr)")
      ->group(group);
  AddValue(probe, "-o,--output", &f.output, "FILE",
           "write the output to FILE instead of stdout\n"
           "('-' = stdout)")
      ->group(group);
}

void AddEngineFlags(CLI::App* probe, ProbeFlags& f) {
  const std::string group =
      "The in-process engine (a server has its own policy and resolver)";
  probe
      ->add_flag("--deny_private", f.deny_private,
                 "deny private ranges (10/8, 172.16/12,\n"
                 "192.168/16, 100.64/10, fc00::/7)")
      ->group(group);
  probe
      ->add_flag("--deny_loopback", f.deny_loopback,
                 "deny loopback (127/8, ::1)")
      ->group(group);
  AddRepeated(probe, "--allow_cidr", &f.allow_cidrs, "CIDRS",
              "allow these even where a rule above denies\n"
              "them; a comma list, repeatable")
      ->group(group);
  AddRepeated(probe, "--deny_cidr", &f.deny_cidrs, "CIDRS",
              "never connect to these (checked first); a comma\n"
              "list, repeatable")
      ->group(group);
  AddRepeated(probe, "--dns-servers", &f.dns_servers, "ADDRS",
              "ask these DNS servers (IP, IP:PORT or\n"
              "[IPv6]:PORT; a comma list, repeatable) instead\n"
              "of resolv.conf's; the hosts file is read first")
      ->group(group);
}

void AddProbe(Grammar& g) {
  g.probe = AddCommand(g.app, "probe",
                       "probe the URLs given, those in --file, or stdin's;\n"
                       "stream one row per result as it arrives, then the\n"
                       "summary");
  ProbeFlags& f = g.probe_flags;
  AddBatchFlags(g.probe, f);
  AddProbeOptionFlags(g.probe, f);
  AddInputOutputFlags(g.probe, f);
  AddEngineFlags(g.probe, f);
  AddConnectionFlags(g.probe, &f.connection, "Connection to --server");
  g.probe->add_option("URL", f.urls, "the targets; '-' = stdin")->type_name("");
}

void AddHealth(Grammar& g) {
  g.health = AddCommand(g.app, "health", "exit 0 when the server is SERVING");
  HealthFlags& f = g.health_flags;
  AddValue(g.health, "--server", &f.server, "ADDR",
           "fanprobe-server address (default\n"
           "127.0.0.1:50051)");
  AddValue(g.health, "--timeout", &f.timeout, "DURATION",
           "the check's deadline (default 5s)");
  AddConnectionFlags(g.health, &f.connection, "Connection");
}

// Builds the grammar into `g` (which must not move afterwards: CLI11 keeps
// pointers into it).
void Build(Grammar& g) {
  // Words a reader of the README knows: commands and flags.
  auto formatter = std::make_shared<CLI::Formatter>();
  formatter->label("SUBCOMMAND", "COMMAND");
  formatter->label("OPTIONS", "flags");
  formatter->label("Positionals", "Arguments");
  formatter->column_width(26);
  g.app.formatter(formatter);
  g.app.option_defaults()->group("Flags");  // commands inherit it
  g.app.set_help_flag("-h,--help", "print this help and exit");
  g.app.add_flag("--version", g.version_flag, "print the version and exit");
  g.app.footer(std::string(kExitStatus));
  // One command per run: another command's name after it is an argument
  // (a URL named "health"), not a second command.
  g.app.require_subcommand(0, 1);
  g.app.allow_extras();
  AddProbe(g);
  AddHealth(g);
  g.help = AddCommand(g.app, "help", "print this help");
  g.version = AddCommand(g.app, "version", "print the version");
}

absl::Status UsageError(absl::string_view message) {
  return absl::InvalidArgumentError(message);
}

// "--bogus=1" -> "--bogus": the flag as the user typed it, without a value.
absl::string_view FlagName(absl::string_view arg) {
  return arg.substr(0, arg.find('='));
}

bool IsFlag(absl::string_view arg) {
  return absl::StartsWith(arg, "-") && arg != "-";
}

// What CLI11 left unparsed in `app` (its extras), as an error; OK if
// nothing.  Extras that are not flags are fine where `positionals_ok`.
absl::Status CheckExtras(const CLI::App& app, bool positionals_ok) {
  for (const std::string& extra : app.remaining()) {
    if (extra == "--") continue;
    if (IsFlag(extra)) {
      return UsageError(absl::StrCat("unknown flag ", FlagName(extra)));
    }
    if (!positionals_ok) {
      return UsageError(absl::StrCat("unexpected argument '", extra, "'"));
    }
  }
  return absl::OkStatus();
}

// Whether `name` ("--server", "-X") is a flag of some command that takes a
// value; nullopt when no command knows it.
std::optional<bool> TakesValue(const Grammar& g, const std::string& name) {
  for (const CLI::App* command : {g.probe, g.health}) {
    if (const CLI::Option* option = command->get_option_no_throw(name)) {
      return option->get_items_expected_max() > 0;
    }
  }
  return std::nullopt;
}

// How many arguments the flag at args[i] spans: 2 when its value is the
// next argument, else 1 ("--name=value", "-Xvalue", a flag, "-k4").
// nullopt when it is no flag any command knows.
std::optional<size_t> FlagSpan(const Grammar& g,
                               const std::vector<std::string>& args, size_t i) {
  const absl::string_view arg = args[i];
  if (absl::StartsWith(arg, "--")) {
    if (absl::StrContains(arg, "=")) {
      if (!TakesValue(g, std::string(FlagName(arg))).has_value()) {
        return std::nullopt;
      }
      return 1;
    }
    std::optional<bool> takes_value = TakesValue(g, std::string(arg));
    if (!takes_value.has_value()) return std::nullopt;
    return *takes_value ? 2 : 1;
  }
  // A group of single-letter flags; the first that takes a value takes the
  // rest of the group, or the next argument.
  for (size_t c = 1; c < arg.size(); ++c) {
    std::optional<bool> takes_value =
        TakesValue(g, absl::StrCat("-", arg.substr(c, 1)));
    if (!takes_value.has_value()) return std::nullopt;
    if (*takes_value) return c + 1 < arg.size() ? 1 : 2;
  }
  return 1;
}

// "fanprobe -k --server A probe URL" is "fanprobe probe -k --server A URL":
// moves the command ahead of the flags before it, so they are that
// command's.  Leaves `args` as they are when no known command follows the
// leading flags (the parser then says what is wrong).
void MoveCommandFirst(const Grammar& g, std::vector<std::string>& args) {
  size_t i = 0;
  while (i < args.size() && IsFlag(args[i])) {
    std::optional<size_t> span = FlagSpan(g, args, i);
    if (!span.has_value()) return;
    i += *span;
  }
  if (i == 0 || i >= args.size()) return;
  const bool is_command = absl::c_any_of(
      std::initializer_list<const CLI::App*>{g.probe, g.health, g.help,
                                             g.version},
      [&](const CLI::App* command) { return command->get_name() == args[i]; });
  if (!is_command) return;
  std::rotate(args.begin(), args.begin() + i, args.begin() + i + 1);
}

}  // namespace

absl::StatusOr<Command> ParseCommandLine(std::vector<std::string> args) {
  if (args.empty()) return UsageError("no command: want probe or health");
  // CLI11 2.1 drops the arguments after "--" once a positional argument was
  // seen, so the arguments after it are set aside here and appended as URLs.
  std::vector<std::string> after_dashes;
  if (auto dashes = std::find(args.begin(), args.end(), "--");
      dashes != args.end()) {
    after_dashes.assign(dashes + 1, args.end());
    args.erase(dashes, args.end());
  }
  auto g = std::make_unique<Grammar>();
  Build(*g);
  MoveCommandFirst(*g, args);
  try {
    std::vector<std::string> reversed(args.rbegin(), args.rend());
    g->app.parse(reversed);
  } catch (const CLI::CallForHelp&) {
    // "fanprobe probe --help": that command's; "fanprobe --help": all.
    if (g->app.get_subcommands().empty()) return HelpRequest{Usage()};
    return HelpRequest{g->app.help()};
  } catch (const CLI::ArgumentMismatch& e) {
    // A value-taking flag last, with nothing after it (the only way to run
    // short of values: a flag's value is the next argument, whatever it is).
    if (!args.empty() && IsFlag(args.back()) &&
        !absl::StrContains(args.back(), "=")) {
      return UsageError(absl::StrCat(args.back(), " needs a value"));
    }
    return UsageError(e.what());
  } catch (const CLI::ParseError& e) {
    return UsageError(e.what());
  }

  if (g->version_flag) return VersionRequest{};
  if (g->app.get_subcommands().empty()) {
    for (const std::string& extra : g->app.remaining()) {
      if (IsFlag(extra)) break;
      return UsageError(
          absl::StrCat("unknown command '", extra, "': want probe or health"));
    }
    if (absl::Status extras = CheckExtras(g->app, false); !extras.ok()) {
      return extras;
    }
    return UsageError("no command: want probe or health");
  }
  // Flags before the command that no command knows.
  for (const std::string& extra : g->app.remaining()) {
    if (extra == "--") continue;
    if (IsFlag(extra)) {
      return UsageError(absl::StrCat("unknown flag ", FlagName(extra)));
    }
    return UsageError(absl::StrCat("unexpected argument '", extra, "'"));
  }
  const CLI::App* command = g->app.get_subcommands().front();
  if (command == g->help) return HelpRequest{Usage()};
  if (command == g->version) return VersionRequest{};
  if (command == g->probe) {
    if (absl::Status extras = CheckExtras(*g->probe, true); !extras.ok()) {
      return extras;
    }
    ProbeFlags flags = std::move(g->probe_flags);
    // Positional arguments CLI11 could not place are URLs too.
    for (const std::string& extra : g->probe->remaining()) {
      if (extra != "--") flags.urls.push_back(extra);
    }
    flags.urls.insert(flags.urls.end(), after_dashes.begin(),
                      after_dashes.end());
    return flags;
  }
  if (absl::Status extras = CheckExtras(*g->health, false); !extras.ok()) {
    return extras;
  }
  if (!after_dashes.empty()) {
    return UsageError(
        absl::StrCat("unexpected argument '", after_dashes.front(), "'"));
  }
  return std::move(g->health_flags);
}

std::string Usage() {
  auto g = std::make_unique<Grammar>();
  Build(*g);
  return g->app.help("", CLI::AppFormatMode::All);
}

absl::StatusOr<absl::Duration> ParseDurationFlag(absl::string_view flag,
                                                 absl::string_view value) {
  absl::Duration d;
  double seconds = 0;
  // A bare number is seconds, as curl takes them; absl's parser refuses
  // one (but "0").
  if (absl::SimpleAtod(value, &seconds) && std::isfinite(seconds) &&
      seconds >= 0 && seconds < 1e12) {
    return absl::Seconds(seconds);
  }
  if (!absl::ParseDuration(value, &d) || d < absl::ZeroDuration() ||
      d == absl::InfiniteDuration()) {
    return UsageError(
        absl::StrCat("--", flag, "=", value,
                     ": want a duration such as 5s, 250ms or 2.5 (seconds)"));
  }
  return d;
}

absl::StatusOr<uint32_t> ParseCountFlag(absl::string_view flag,
                                        absl::string_view value) {
  uint32_t n = 0;
  if (!absl::SimpleAtoi(value, &n)) {
    return UsageError(
        absl::StrCat("--", flag, "=", value, ": want a non-negative integer"));
  }
  return n;
}

absl::StatusOr<uint64_t> ParseBytesFlag(absl::string_view flag,
                                        absl::string_view value) {
  const absl::Status error = UsageError(absl::StrCat(
      "--", flag, "=", value, ": want a byte count such as 65536 or 64k"));
  absl::string_view digits = value;
  int shift = 0;
  if (!digits.empty()) {
    switch (digits.back()) {
      case 'k':
      case 'K':
        shift = 10;
        break;
      case 'm':
      case 'M':
        shift = 20;
        break;
      case 'g':
      case 'G':
        shift = 30;
        break;
    }
    if (shift != 0) digits.remove_suffix(1);
  }
  uint64_t n = 0;
  if (digits.empty() || !absl::ascii_isdigit(digits.front()) ||
      !absl::SimpleAtoi(digits, &n) || n > (UINT64_MAX >> shift)) {
    return error;
  }
  return n << shift;
}

}  // namespace fanprobe::cli
