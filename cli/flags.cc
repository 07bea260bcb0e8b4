#include "cli/flags.h"

#include <algorithm>
#include <memory>
#include <optional>
#include <string>
#include <utility>
#include <vector>

#include "CLI/CLI.hpp"
#include "absl/status/status.h"
#include "absl/status/statusor.h"
#include "absl/strings/match.h"
#include "absl/strings/numbers.h"
#include "absl/strings/str_cat.h"
#include "absl/strings/string_view.h"
#include "absl/time/time.h"

namespace fanprobe::cli {
namespace {

constexpr absl::string_view kDescription =
    "fanprobe: probe HTTP targets through a fanprobe server.";

constexpr absl::string_view kExitStatus =
    "Exit status: 0 every probe succeeded (health: SERVING), 1 a probe\n"
    "failed or was cancelled (health: not SERVING), 2 usage or RPC error.";

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
CLI::Option* AddValue(CLI::App* app, const std::string& name,
                      std::optional<std::string>* out, const std::string& type,
                      const std::string& help) {
  return app
      ->add_option_function<std::string>(
          name, [out](const std::string& value) { *out = value; }, help)
      ->multi_option_policy(CLI::MultiOptionPolicy::TakeLast)
      ->type_name(type);
}

CLI::Option* AddValue(CLI::App* app, const std::string& name, std::string* out,
                      const std::string& type, const std::string& help) {
  return app->add_option(name, *out, help)
      ->multi_option_policy(CLI::MultiOptionPolicy::TakeLast)
      ->type_name(type);
}

// A flag that may repeat, one value each time (a following argument is a
// URL, not another value).
CLI::Option* AddRepeated(CLI::App* app, const std::string& name,
                         std::vector<std::string>* out, const std::string& type,
                         const std::string& help) {
  return app->add_option(name, *out, help)
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

void AddConnectionFlags(CLI::App* app, ConnectionFlags* flags) {
  constexpr const char* kGroup = "Connection (probe and health)";
  AddValue(app, "--tls_ca", &flags->tls_ca, "FILE",
           "use TLS, trusting the CA certificates in FILE\n"
           "(PEM)")
      ->group(kGroup);
  AddValue(app, "--tls_cert", &flags->tls_cert, "FILE",
           "client certificate for mutual TLS (PEM; implies\n"
           "TLS, with the system's CAs unless --tls_ca)")
      ->group(kGroup);
  AddValue(app, "--tls_key", &flags->tls_key, "FILE",
           "the client certificate's key (PEM)")
      ->group(kGroup);
  AddValue(app, "--tls_server_name", &flags->tls_server_name, "NAME",
           "the name the server's certificate must carry,\n"
           "when it is not the --server host")
      ->group(kGroup);
  AddValue(app, "--auth_token_file", &flags->auth_token_file, "FILE",
           "send the first token in FILE as a bearer\n"
           "token")
      ->group(kGroup);
}

void AddProbe(Grammar& g) {
  g.probe = AddCommand(
      g.app, "probe",
      "probe the URLs given, and those in --file; stream one row per\n"
      "result as it arrives, then the summary");
  ProbeFlags& f = g.probe_flags;
  AddRepeated(g.probe, "--server", &f.servers, "ADDR",
              "fanprobe-server address (default\n"
              "127.0.0.1:50051); repeat it or give a comma list\n"
              "to split the batch across servers (contiguous\n"
              "shares, one merged output)");
  AddValue(g.probe, "--return_when", &f.return_when, "RULE",
           "all (default), first, or first_exception");
  AddValue(g.probe, "--timeout", &f.timeout, "DURATION",
           "end the whole batch after this, e.g. 5s, 500ms\n"
           "(default: none)");
  AddValue(g.probe, "--probe_timeout", &f.probe_timeout, "DURATION",
           "each probe's own timeout (default: the\n"
           "server's, 10s)");
  AddValue(g.probe, "--concurrency", &f.concurrency, "N",
           "probes of the batch running at once (default 0\n"
           "= the server's default, 100)");
  AddValue(g.probe, "--per_host", &f.per_host, "N",
           "probes running at once per host (default 0 = no\n"
           "limit)");
  AddValue(g.probe, "--method", &f.method, "M", "HTTP method (default GET)");
  AddRepeated(g.probe, "--header", &f.headers, "'K: V'",
              "extra request header; repeat for more");
  AddValue(g.probe, "--expect", &f.expect, "RANGES",
           "valid status codes, e.g. 200-299,301 (default\n"
           "200-399)");
  AddValue(g.probe, "--format", &f.format, "FORMAT",
           "table (default) or jsonl (one ProbeEvent per\n"
           "line)");
  AddRepeated(g.probe, "--file", &f.files, "FILE",
              "read URLs from FILE, one per line; '-' = stdin;\n"
              "blank lines and lines starting with '#' are\n"
              "skipped");
  AddConnectionFlags(g.probe, &f.connection);
  g.probe->add_option("URL", f.urls, "the targets")->type_name("");
}

void AddHealth(Grammar& g) {
  g.health = AddCommand(g.app, "health", "exit 0 when the server is SERVING");
  HealthFlags& f = g.health_flags;
  AddValue(g.health, "--server", &f.server, "ADDR",
           "fanprobe-server address (default\n"
           "127.0.0.1:50051)");
  AddValue(g.health, "--timeout", &f.timeout, "DURATION",
           "the check's deadline (default 5s)");
  AddConnectionFlags(g.health, &f.connection);
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
  // Flags before the command belong to no command.
  for (const std::string& extra : g->app.remaining()) {
    if (extra == "--") continue;
    if (IsFlag(extra)) {
      return UsageError(absl::StrCat("unknown flag ", FlagName(extra),
                                     " before the command; flags follow it"));
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
  if (!absl::ParseDuration(value, &d) || d < absl::ZeroDuration() ||
      d == absl::InfiniteDuration()) {
    return UsageError(absl::StrCat("--", flag, "=", value,
                                   ": want a duration such as 5s or 250ms"));
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

}  // namespace fanprobe::cli
