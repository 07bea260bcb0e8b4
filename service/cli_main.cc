// fanprobe: the command-line client of fanprobe-server.
//
//   fanprobe probe [--server=ADDR[,ADDR...]]...
//                  [--return_when=all|first|first_exception]
//                  [--timeout=5s] [--probe_timeout=2s] [--concurrency=N]
//                  [--per_host=N] [--method=M] [--header='K: V']...
//                  [--expect=200-299] [--format=table|jsonl]
//                  URL... | --file=FILE
//   fanprobe health [--server=ADDR] [--timeout=5s]
//   (both also take --tls_ca, --tls_cert, --tls_key, --tls_server_name and
//   --auth_token_file to reach a server that wants TLS, a client
//   certificate or a token)
//
// `probe` streams one table row (or JSON line) per result as it arrives,
// then the summary; on a terminal, a large batch also gets a live progress
// line on stderr.  Given several servers, `probe` splits the batch into
// contiguous shares, one StreamProbes per server, run at once; the rows keep
// the index of the original request and one merged summary ends the output
// (see RunSplitProbe).  Exit status: 0 when every probe succeeded, 1 when any
// failed or was cancelled, 2 on a usage or RPC error.  `health` exits 0 when
// the server is SERVING, 1 when it answers otherwise, 2 when it cannot be
// asked.
//
// The flags are parsed here rather than with Abseil flags: they differ per
// subcommand, --header repeats (and its values hold commas), and a usage
// error must exit 2 where absl::ParseCommandLine exits 1.

#include <pthread.h>
#include <signal.h>
#include <unistd.h>

#include <algorithm>
#include <cstdint>
#include <cstdio>
#include <fstream>
#include <functional>
#include <iostream>
#include <memory>
#include <optional>
#include <sstream>
#include <string>
#include <thread>
#include <tuple>
#include <utility>
#include <vector>

#include "absl/status/status.h"
#include "absl/status/statusor.h"
#include "absl/strings/ascii.h"
#include "absl/strings/match.h"
#include "absl/strings/numbers.h"
#include "absl/strings/str_cat.h"
#include "absl/strings/str_format.h"
#include "absl/strings/str_join.h"
#include "absl/strings/str_split.h"
#include "absl/strings/string_view.h"
#include "absl/strings/strip.h"
#include "absl/synchronization/mutex.h"
#include "absl/time/clock.h"
#include "absl/time/time.h"
#include "fanprobe/v1/prober.grpc.pb.h"
#include "fanprobe/v1/prober.pb.h"
#include "google/protobuf/util/json_util.h"
#include "grpc/health/v1/health.grpc.pb.h"
#include "grpc/health/v1/health.pb.h"
#include "grpcpp/grpcpp.h"

namespace {

namespace v1 = ::fanprobe::v1;

constexpr int kExitOk = 0;
constexpr int kExitProbeFailed = 1;
constexpr int kExitUsage = 2;

// Batches at least this large get a progress line on a terminal.
constexpr int kProgressMinTargets = 20;

constexpr absl::string_view kUsage =
    R"(fanprobe: probe HTTP targets through a fanprobe server.

Usage:
  fanprobe probe [flags] URL...      probe the URLs given
  fanprobe probe [flags] --file=FILE probe one URL per line of FILE ('-' = stdin)
  fanprobe health [--server=ADDR] [--timeout=5s]
                                     exit 0 when the server is SERVING

probe flags:
  --server=ADDR          fanprobe-server address (default 127.0.0.1:50051);
                         repeat it or give a comma list to split the batch
                         across servers (contiguous shares, one merged output)
  --return_when=RULE     all (default), first, or first_exception
  --timeout=DURATION     end the whole batch after this, e.g. 5s, 500ms
                         (default: none)
  --probe_timeout=DUR    each probe's own timeout (default: the server's, 10s)
  --concurrency=N        probes of the batch running at once (default 0 = the
                         server's default, 100)
  --per_host=N           probes running at once per host (default 0 = no limit)
  --method=M             HTTP method (default GET)
  --header='K: V'        extra request header; repeat for more
  --expect=RANGES        valid status codes, e.g. 200-299,301 (default 200-399)
  --format=FORMAT        table (default) or jsonl (one ProbeEvent per line)
  --file=FILE            read URLs from FILE, one per line; '-' = stdin;
                         blank lines and lines starting with '#' are skipped

connection flags (probe and health):
  --tls_ca=FILE          use TLS, trusting the CA certificates in FILE (PEM)
  --tls_cert=FILE        client certificate for mutual TLS (PEM; implies TLS,
  --tls_key=FILE         with the system's CAs unless --tls_ca), and its key
  --tls_server_name=NAME the name the server's certificate must carry, when
                         it is not the --server host
  --auth_token_file=FILE send the first token in FILE as a bearer token

Exit status: 0 every probe succeeded, 1 a probe failed or was cancelled,
2 usage or RPC error.
)";

enum class Format { kTable, kJsonl };

// --- How to reach the server: TLS, a client certificate, a token. ---------

// The connection flags both subcommands take.
struct ConnectionFlags {
  std::string tls_ca;
  std::string tls_cert;
  std::string tls_key;
  std::string tls_server_name;
  std::string auth_token_file;
};

// --- The subcommands. ------------------------------------------------------

struct ProbeCommand {
  // One address: the batch goes to it as is.  More: RunSplitProbe.
  std::vector<std::string> servers;
  ConnectionFlags connection;
  v1::ProbeBatchRequest request;
  Format format = Format::kTable;
};

struct HealthCommand {
  std::string server = "127.0.0.1:50051";
  ConnectionFlags connection;
  absl::Duration timeout = absl::Seconds(5);
};

// A usage error: the message is printed with a hint, exit 2.
absl::Status UsageError(absl::string_view message) {
  return absl::InvalidArgumentError(message);
}

// --help anywhere: print the usage, exit 0.
absl::Status HelpWanted() { return absl::CancelledError("help"); }

// --- Connection flags, continued. ----------------------------------------

// Applies `flag` if it is a connection flag; false if it is not one.
bool ApplyConnectionFlag(const std::string& flag, const std::string& value,
                         ConnectionFlags& connection) {
  if (flag == "tls_ca") {
    connection.tls_ca = value;
  } else if (flag == "tls_cert") {
    connection.tls_cert = value;
  } else if (flag == "tls_key") {
    connection.tls_key = value;
  } else if (flag == "tls_server_name") {
    connection.tls_server_name = value;
  } else if (flag == "auth_token_file") {
    connection.auth_token_file = value;
  } else {
    return false;
  }
  return true;
}

absl::StatusOr<std::string> ReadWholeFile(absl::string_view flag,
                                          const std::string& path) {
  std::ifstream in(path, std::ios::binary);
  if (!in) return UsageError(absl::StrCat("cannot read --", flag, "=", path));
  std::ostringstream content;
  content << in.rdbuf();
  return content.str();
}

// What the connection flags resolve to: channel credentials and arguments,
// and the token to send with every call.
struct Connection {
  std::shared_ptr<grpc::ChannelCredentials> credentials;
  grpc::ChannelArguments arguments;
  std::string token;
};

absl::StatusOr<Connection> ResolveConnection(const ConnectionFlags& flags) {
  Connection connection;
  if (flags.tls_cert.empty() != flags.tls_key.empty()) {
    return UsageError("--tls_cert and --tls_key go together");
  }
  if (flags.tls_ca.empty() && flags.tls_cert.empty()) {
    if (!flags.tls_server_name.empty()) {
      return UsageError("--tls_server_name needs --tls_ca or --tls_cert");
    }
    connection.credentials = grpc::InsecureChannelCredentials();
  } else {
    grpc::SslCredentialsOptions ssl;
    for (auto [flag, path, out] :
         {std::tuple{"tls_ca", &flags.tls_ca, &ssl.pem_root_certs},
          std::tuple{"tls_cert", &flags.tls_cert, &ssl.pem_cert_chain},
          std::tuple{"tls_key", &flags.tls_key, &ssl.pem_private_key}}) {
      if (path->empty()) continue;
      absl::StatusOr<std::string> pem = ReadWholeFile(flag, *path);
      if (!pem.ok()) return pem.status();
      *out = *std::move(pem);
    }
    connection.credentials = grpc::SslCredentials(ssl);
    if (!flags.tls_server_name.empty()) {
      connection.arguments.SetSslTargetNameOverride(flags.tls_server_name);
    }
  }
  if (!flags.auth_token_file.empty()) {
    absl::StatusOr<std::string> content =
        ReadWholeFile("auth_token_file", flags.auth_token_file);
    if (!content.ok()) return content.status();
    for (absl::string_view line : absl::StrSplit(*content, '\n')) {
      line = absl::StripAsciiWhitespace(line);
      if (line.empty() || absl::StartsWith(line, "#")) continue;
      connection.token = std::string(line);
      break;
    }
    if (connection.token.empty()) {
      return UsageError(absl::StrCat("no token in --auth_token_file=",
                                     flags.auth_token_file));
    }
  }
  return connection;
}

std::shared_ptr<grpc::Channel> NewChannel(const std::string& server,
                                          const Connection& connection) {
  return grpc::CreateCustomChannel(server, connection.credentials,
                                   connection.arguments);
}

// A connection flag that cannot be used (an unreadable file): exit 2.
int ConnectionFailed(const absl::Status& status) {
  std::fprintf(stderr, "fanprobe: %s\n", std::string(status.message()).c_str());
  return kExitUsage;
}

void AddToken(const Connection& connection, grpc::ClientContext& context) {
  if (connection.token.empty()) return;
  context.AddMetadata("authorization",
                      absl::StrCat("Bearer ", connection.token));
}

// --- End of connection flags. ---------------------------------------------

// Walks the arguments of a subcommand: "--name=value", "--name value"
// (either dash count), positional arguments, and "--" ending the flags.
class ArgReader {
 public:
  explicit ArgReader(std::vector<std::string> args) : args_(std::move(args)) {}

  bool Done() const { return next_ >= args_.size(); }

  // Reads the next argument.  A flag sets `flag` (and `inline_value` when
  // it carried "=value"); anything else sets `positional` and clears `flag`.
  void Next(std::string& flag, std::optional<std::string>& inline_value,
            std::string& positional) {
    flag.clear();
    inline_value.reset();
    std::string arg = args_[next_++];
    if (!flags_done_ && arg == "--") {
      flags_done_ = true;
      if (Done()) return;
      arg = args_[next_++];
    }
    if (flags_done_ || !absl::StartsWith(arg, "-") || arg == "-") {
      positional = std::move(arg);
      return;
    }
    absl::string_view body = arg;
    absl::ConsumePrefix(&body, "-");
    absl::ConsumePrefix(&body, "-");
    const size_t eq = body.find('=');
    flag = std::string(body.substr(0, eq));
    if (eq != absl::string_view::npos) {
      inline_value = std::string(body.substr(eq + 1));
    }
  }

  // The value of `flag`: what followed '=', else the next argument.
  absl::StatusOr<std::string> Value(
      const std::string& flag, const std::optional<std::string>& inline_value) {
    if (inline_value.has_value()) return *inline_value;
    if (Done()) return UsageError(absl::StrCat("--", flag, " needs a value"));
    return args_[next_++];
  }

 private:
  std::vector<std::string> args_;
  size_t next_ = 0;
  bool flags_done_ = false;
};

absl::StatusOr<uint32_t> ParseCount(const std::string& flag,
                                    const std::string& value) {
  uint32_t n = 0;
  if (!absl::SimpleAtoi(value, &n)) {
    return UsageError(
        absl::StrCat("--", flag, "=", value, ": want a non-negative integer"));
  }
  return n;
}

absl::StatusOr<absl::Duration> ParseDurationFlag(const std::string& flag,
                                                 const std::string& value) {
  absl::Duration d;
  if (!absl::ParseDuration(value, &d) || d < absl::ZeroDuration() ||
      d == absl::InfiniteDuration()) {
    return UsageError(absl::StrCat("--", flag, "=", value,
                                   ": want a duration such as 5s or 250ms"));
  }
  return d;
}

void SetDuration(absl::Duration d, google::protobuf::Duration* proto) {
  const int64_t seconds = absl::IDivDuration(d, absl::Seconds(1), &d);
  proto->set_seconds(seconds);
  proto->set_nanos(static_cast<int32_t>(d / absl::Nanoseconds(1)));
}

// "200-299,301" -> two ranges.
absl::StatusOr<v1::StatusRanges> ParseExpect(const std::string& value) {
  const absl::Status error = UsageError(absl::StrCat(
      "--expect=", value, ": want status ranges such as 200-299,301"));
  v1::StatusRanges ranges;
  for (absl::string_view part : absl::StrSplit(value, ',', absl::SkipEmpty())) {
    std::pair<absl::string_view, absl::string_view> bounds =
        absl::StrSplit(part, absl::MaxSplits('-', 1));
    if (bounds.second.empty()) bounds.second = bounds.first;
    uint32_t min = 0;
    uint32_t max = 0;
    if (!absl::SimpleAtoi(bounds.first, &min) ||
        !absl::SimpleAtoi(bounds.second, &max) || min < 100 || max > 999 ||
        min > max) {
      return error;
    }
    v1::StatusRange* range = ranges.add_ranges();
    range->set_min(min);
    range->set_max(max);
  }
  if (ranges.ranges().empty()) return error;
  return ranges;
}

// "Name: value" -> a header.
absl::StatusOr<v1::Header> ParseHeader(const std::string& value) {
  const size_t colon = value.find(':');
  if (colon == std::string::npos || colon == 0) {
    return UsageError(absl::StrCat("--header=", value, ": want 'Name: value'"));
  }
  const absl::string_view text = value;
  v1::Header header;
  header.set_name(
      std::string(absl::StripAsciiWhitespace(text.substr(0, colon))));
  header.set_value(
      std::string(absl::StripAsciiWhitespace(text.substr(colon + 1))));
  return header;
}

absl::Status ReadUrls(const std::string& file, v1::ProbeBatchRequest& request) {
  std::ifstream stream;
  std::istream* in = &std::cin;
  if (file != "-") {
    stream.open(file);
    if (!stream) return UsageError(absl::StrCat("cannot read --file=", file));
    in = &stream;
  }
  std::string line;
  while (std::getline(*in, line)) {
    const absl::string_view url = absl::StripAsciiWhitespace(line);
    if (url.empty() || absl::StartsWith(url, "#")) continue;
    request.add_targets()->set_url(std::string(url));
  }
  return absl::OkStatus();
}

// Applies one probe flag to `command`.
absl::Status ApplyProbeFlag(const std::string& flag, const std::string& value,
                            ProbeCommand& command,
                            std::vector<std::string>& files) {
  v1::ProbeBatchRequest& request = command.request;
  v1::ProbeOptions& defaults = *request.mutable_defaults();
  if (flag == "server") {
    for (absl::string_view server :
         absl::StrSplit(value, ',', absl::SkipWhitespace())) {
      command.servers.push_back(
          std::string(absl::StripAsciiWhitespace(server)));
    }
    if (command.servers.empty()) return UsageError("--server= is empty");
  } else if (ApplyConnectionFlag(flag, value, command.connection)) {
  } else if (flag == "return_when") {
    if (value == "all") {
      request.set_return_when(v1::RETURN_WHEN_ALL_COMPLETED);
    } else if (value == "first") {
      request.set_return_when(v1::RETURN_WHEN_FIRST_COMPLETED);
    } else if (value == "first_exception") {
      request.set_return_when(v1::RETURN_WHEN_FIRST_EXCEPTION);
    } else {
      return UsageError(absl::StrCat("--return_when=", value,
                                     ": want all, first or first_exception"));
    }
  } else if (flag == "timeout" || flag == "probe_timeout") {
    absl::StatusOr<absl::Duration> timeout = ParseDurationFlag(flag, value);
    if (!timeout.ok()) return timeout.status();
    if (flag == "timeout") {
      SetDuration(*timeout, request.mutable_timeout());
    } else if (*timeout == absl::ZeroDuration()) {
      return UsageError("--probe_timeout must be positive");
    } else {
      SetDuration(*timeout, defaults.mutable_timeout());
    }
  } else if (flag == "concurrency" || flag == "per_host") {
    absl::StatusOr<uint32_t> count = ParseCount(flag, value);
    if (!count.ok()) return count.status();
    if (flag == "concurrency") {
      request.set_max_concurrency(*count);
    } else {
      request.set_max_per_host(*count);
    }
  } else if (flag == "method") {
    defaults.set_method(value);
  } else if (flag == "header") {
    absl::StatusOr<v1::Header> header = ParseHeader(value);
    if (!header.ok()) return header.status();
    *defaults.mutable_headers()->add_headers() = *std::move(header);
  } else if (flag == "expect") {
    absl::StatusOr<v1::StatusRanges> ranges = ParseExpect(value);
    if (!ranges.ok()) return ranges.status();
    *defaults.mutable_valid_status() = *std::move(ranges);
  } else if (flag == "format") {
    if (value == "table") {
      command.format = Format::kTable;
    } else if (value == "jsonl") {
      command.format = Format::kJsonl;
    } else {
      return UsageError(
          absl::StrCat("--format=", value, ": want table or jsonl"));
    }
  } else if (flag == "file") {
    files.push_back(value);
  } else {
    return UsageError(absl::StrCat("unknown flag --", flag));
  }
  return absl::OkStatus();
}

absl::StatusOr<ProbeCommand> ParseProbe(std::vector<std::string> args) {
  ProbeCommand command;
  std::vector<std::string> files;
  ArgReader reader(std::move(args));
  while (!reader.Done()) {
    std::string flag;
    std::optional<std::string> inline_value;
    std::string positional;
    reader.Next(flag, inline_value, positional);
    if (flag.empty()) {
      if (!positional.empty())
        command.request.add_targets()->set_url(positional);
      continue;
    }
    if (flag == "help" || flag == "h") return HelpWanted();
    absl::StatusOr<std::string> value = reader.Value(flag, inline_value);
    if (!value.ok()) return value.status();
    if (absl::Status status = ApplyProbeFlag(flag, *value, command, files);
        !status.ok()) {
      return status;
    }
  }
  for (const std::string& file : files) {
    if (absl::Status status = ReadUrls(file, command.request); !status.ok()) {
      return status;
    }
  }
  if (command.request.targets().empty()) {
    return UsageError("no targets: give URLs or --file=FILE");
  }
  if (command.servers.empty()) command.servers.push_back("127.0.0.1:50051");
  return command;
}

absl::StatusOr<HealthCommand> ParseHealth(std::vector<std::string> args) {
  HealthCommand command;
  ArgReader reader(std::move(args));
  while (!reader.Done()) {
    std::string flag;
    std::optional<std::string> inline_value;
    std::string positional;
    reader.Next(flag, inline_value, positional);
    if (flag.empty()) {
      return UsageError(absl::StrCat("unexpected argument '", positional, "'"));
    }
    if (flag == "help" || flag == "h") return HelpWanted();
    absl::StatusOr<std::string> value = reader.Value(flag, inline_value);
    if (!value.ok()) return value.status();
    if (flag == "server") {
      command.server = *value;
    } else if (ApplyConnectionFlag(flag, *value, command.connection)) {
    } else if (flag == "timeout") {
      absl::StatusOr<absl::Duration> timeout = ParseDurationFlag(flag, *value);
      if (!timeout.ok()) return timeout.status();
      command.timeout = *timeout;
    } else {
      return UsageError(absl::StrCat("unknown flag --", flag));
    }
  }
  return command;
}

void WriteStdout(absl::string_view text) {
  std::fwrite(text.data(), 1, text.size(), stdout);
  std::fflush(stdout);
}

absl::Duration FromProto(const google::protobuf::Duration& d) {
  return absl::Seconds(d.seconds()) + absl::Nanoseconds(d.nanos());
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

// "12.3ms" below a second, "1.234s" above.
std::string HumanDuration(absl::Duration d) {
  if (d < absl::Seconds(1)) {
    return absl::StrFormat("%.1fms", absl::ToDoubleMilliseconds(d));
  }
  return absl::StrFormat("%.3fs", absl::ToDoubleSeconds(d));
}

// Prints events as they arrive, in the chosen format.
class Printer {
 public:
  explicit Printer(Format format) : format_(format) {
    json_options_.add_whitespace = false;
    json_options_.always_print_primitive_fields = true;
    json_options_.preserve_proto_field_names = true;
  }

  void Print(const v1::ProbeEvent& event) {
    if (format_ == Format::kJsonl) {
      std::string json;
      // Cannot fail: the message holds no Any fields.
      (void)google::protobuf::util::MessageToJsonString(event, &json,
                                                        json_options_);
      WriteStdout(absl::StrCat(json, "\n"));
    } else if (event.has_result()) {
      if (!header_printed_) {
        header_printed_ = true;
        WriteStdout(absl::StrFormat("%-6s %-18s %6s %10s  %s\n", "INDEX",
                                    "OUTCOME", "STATUS", "TIME", "URL"));
      }
      const v1::ProbeResult& r = event.result();
      std::string row = absl::StrFormat(
          "%-6d %-18s %6s %10s  %s", r.index(), OutcomeLabel(r.outcome()),
          r.status_code() == 0 ? "-" : absl::StrCat(r.status_code()),
          HumanDuration(FromProto(r.timings().total())), r.url());
      if (!r.error().empty()) absl::StrAppend(&row, "  (", r.error(), ")");
      WriteStdout(absl::StrCat(row, "\n"));
    } else {
      const v1::BatchSummary& s = event.summary();
      std::string text = absl::StrFormat(
          "\n%s in %s: %d probes, %d completed (%d ok, %d failed), %d "
          "cancelled\n",
          ReasonLabel(s.reason()), HumanDuration(FromProto(s.elapsed())),
          s.total(), s.completed(), s.succeeded(), s.failed(), s.cancelled());
      if (!s.pending_indices().empty()) {
        constexpr int kShown = 20;
        std::vector<uint32_t> shown(
            s.pending_indices().begin(),
            s.pending_indices().begin() +
                std::min(kShown, s.pending_indices().size()));
        absl::StrAppend(&text, "pending: ", absl::StrJoin(shown, ", "));
        if (s.pending_indices().size() > kShown) {
          absl::StrAppend(&text, ", ... (", s.pending_indices().size() - kShown,
                          " more)");
        }
        absl::StrAppend(&text, "\n");
      }
      WriteStdout(text);
    }
  }

 private:
  const Format format_;
  google::protobuf::util::JsonPrintOptions json_options_;
  bool header_printed_ = false;
};

// The live "123/1000 done" line on stderr, redrawn at most every 100 ms and
// erased before anything else is printed, so it never mixes with the rows.
class Progress {
 public:
  Progress(bool enabled, int total) : enabled_(enabled), total_(total) {}

  void Clear() {
    if (shown_) std::fputs("\r\033[K", stderr);
    shown_ = false;
  }

  void Update(int done, int failed) {
    if (!enabled_) return;
    const absl::Time now = absl::Now();
    if (now - last_draw_ < absl::Milliseconds(100)) return;
    last_draw_ = now;
    std::fprintf(stderr, "\r\033[K%d/%d done, %d failed, %s", done, total_,
                 failed, HumanDuration(now - start_).c_str());
    std::fflush(stderr);
    shown_ = true;
  }

 private:
  const bool enabled_;
  const int total_;
  const absl::Time start_ = absl::Now();
  absl::Time last_draw_ = absl::InfinitePast();
  bool shown_ = false;
};

// "INVALID_ARGUMENT: targets: at least one target is required".
std::string Describe(const grpc::Status& status) {
  return absl::StrCat(absl::StatusCodeToString(
                          static_cast<absl::StatusCode>(status.error_code())),
                      ": ", status.error_message());
}

int RunProbe(const ProbeCommand& command) {
  absl::StatusOr<Connection> connection = ResolveConnection(command.connection);
  if (!connection.ok()) return ConnectionFailed(connection.status());
  const std::string& server = command.servers.front();
  std::unique_ptr<v1::Prober::Stub> stub =
      v1::Prober::NewStub(NewChannel(server, *connection));
  grpc::ClientContext context;
  AddToken(*connection, context);
  std::unique_ptr<grpc::ClientReader<v1::ProbeEvent>> reader =
      stub->StreamProbes(&context, command.request);

  const int total = command.request.targets_size();
  Printer printer(command.format);
  Progress progress(isatty(STDERR_FILENO) && total >= kProgressMinTargets,
                    total);
  v1::ProbeEvent event;
  std::optional<v1::BatchSummary> summary;
  int done = 0;
  int failed = 0;
  while (reader->Read(&event)) {
    progress.Clear();
    printer.Print(event);
    if (event.has_summary()) {
      summary = event.summary();
    } else {
      ++done;
      if (event.result().outcome() != v1::OUTCOME_OK) ++failed;
      progress.Update(done, failed);
    }
  }
  progress.Clear();
  const grpc::Status status = reader->Finish();
  if (!status.ok()) {
    std::fprintf(stderr, "fanprobe: StreamProbes on %s failed: %s\n",
                 server.c_str(), Describe(status).c_str());
    return kExitUsage;
  }
  if (!summary.has_value()) {
    std::fprintf(stderr, "fanprobe: %s ended the stream without a summary\n",
                 server.c_str());
    return kExitUsage;
  }
  return summary->succeeded() == summary->total() ? kExitOk : kExitProbeFailed;
}

// --- Splitting one batch across several servers. -------------------------

// Share k of a batch of `total` targets over `servers` servers: the
// original indices of its targets, contiguous and in order.  Shares differ
// in size by at most one; with more servers than targets some are empty.
std::vector<std::vector<uint32_t>> SplitContiguous(int total, int servers) {
  std::vector<std::vector<uint32_t>> shares(servers);
  for (int k = 0; k < servers; ++k) {
    const int begin = static_cast<int>(int64_t{total} * k / servers);
    const int end = static_cast<int>(int64_t{total} * (k + 1) / servers);
    for (int i = begin; i < end; ++i) shares[k].push_back(i);
  }
  return shares;
}

// Merges the streams of a split batch into one output and one summary.
// Each share's reader thread calls OnResult / OnSummary; the signal thread
// calls Interrupt.  The first event that ends the whole batch (a result that
// meets the return-when rule, an interrupt) cancels every other share's RPC;
// results arriving after that are dropped and their probes reported pending,
// as a single server would.  Thread-safe.
class SplitMerger {
 public:
  SplitMerger(Format format, v1::ReturnWhen rule, int total,
              std::vector<std::vector<uint32_t>> shares,
              std::vector<grpc::ClientContext*> contexts)
      : rule_(rule),
        total_(total),
        shares_(std::move(shares)),
        contexts_(std::move(contexts)),
        printer_(format),
        progress_(isatty(STDERR_FILENO) && total >= kProgressMinTargets, total),
        completed_(total, false) {}

  void OnResult(size_t share, v1::ProbeResult result) {
    absl::MutexLock lock(&mu_);
    if (cut_off_ || result.index() >= shares_[share].size()) return;
    const uint32_t index = shares_[share][result.index()];
    if (completed_[index]) return;
    completed_[index] = true;
    result.set_index(index);
    ++completed_count_;
    if (result.outcome() == v1::OUTCOME_OK) {
      ++succeeded_;
    }
    v1::ProbeEvent event;
    *event.mutable_result() = std::move(result);
    progress_.Clear();
    printer_.Print(event);
    progress_.Update(completed_count_, completed_count_ - succeeded_);
    const bool failed = event.result().outcome() != v1::OUTCOME_OK;
    if (rule_ == v1::RETURN_WHEN_FIRST_COMPLETED) {
      EndLocked(v1::END_REASON_FIRST_COMPLETED);
    } else if (rule_ == v1::RETURN_WHEN_FIRST_EXCEPTION && failed) {
      EndLocked(v1::END_REASON_FIRST_EXCEPTION);
    }
  }

  // A share's own summary.  Its timeout or cancellation is why the whole
  // ended unless something ended it earlier; the other shares are left to
  // end by themselves (they share the deadline).  Its other reasons follow
  // from results already seen.
  void OnSummary(const v1::BatchSummary& summary) {
    absl::MutexLock lock(&mu_);
    if (reason_.has_value()) return;
    if (summary.reason() == v1::END_REASON_TIMEOUT ||
        summary.reason() == v1::END_REASON_CANCELLED) {
      reason_ = summary.reason();
    }
  }

  // The user interrupted: cancel every share.
  void Interrupt() {
    absl::MutexLock lock(&mu_);
    EndLocked(v1::END_REASON_CANCELLED);
  }

  // Once every share's stream has ended: the merged summary, printed.
  v1::BatchSummary PrintSummary() {
    absl::MutexLock lock(&mu_);
    v1::BatchSummary summary;
    summary.set_reason(reason_.value_or(v1::END_REASON_ALL_COMPLETED));
    summary.set_total(total_);
    summary.set_completed(completed_count_);
    summary.set_succeeded(succeeded_);
    summary.set_failed(completed_count_ - succeeded_);
    summary.set_cancelled(total_ - completed_count_);
    for (int i = 0; i < total_; ++i) {
      if (!completed_[i]) summary.add_pending_indices(i);
    }
    SetDuration(absl::Now() - start_, summary.mutable_elapsed());
    v1::ProbeEvent event;
    *event.mutable_summary() = summary;
    progress_.Clear();
    printer_.Print(event);
    return summary;
  }

  // Whether the merger cancelled the shares' RPCs.
  bool CutOff() {
    absl::MutexLock lock(&mu_);
    return cut_off_;
  }

  // Clears the progress line before a message on stderr.
  void ClearProgress() {
    absl::MutexLock lock(&mu_);
    progress_.Clear();
  }

 private:
  void EndLocked(v1::EndReason reason) ABSL_EXCLUSIVE_LOCKS_REQUIRED(mu_) {
    if (!reason_.has_value()) reason_ = reason;
    if (cut_off_) return;
    cut_off_ = true;
    for (grpc::ClientContext* context : contexts_) context->TryCancel();
  }

  // Constant after construction.
  const v1::ReturnWhen rule_;
  const int total_;
  const std::vector<std::vector<uint32_t>> shares_;
  const std::vector<grpc::ClientContext*> contexts_;
  const absl::Time start_ = absl::Now();

  absl::Mutex mu_;
  Printer printer_ ABSL_GUARDED_BY(mu_);
  Progress progress_ ABSL_GUARDED_BY(mu_);
  std::vector<bool> completed_ ABSL_GUARDED_BY(mu_);  // by original index
  int completed_count_ ABSL_GUARDED_BY(mu_) = 0;
  int succeeded_ ABSL_GUARDED_BY(mu_) = 0;
  // Why the whole batch ended, once something ended it.
  std::optional<v1::EndReason> reason_ ABSL_GUARDED_BY(mu_);
  // Set when the rule or an interrupt ended the whole: every RPC is
  // cancelled and later results count as pending.
  bool cut_off_ ABSL_GUARDED_BY(mu_) = false;
};

// Waits for SIGINT or SIGTERM on its own thread and calls `on_signal`;
// Stop() ends the wait without one.  The constructor blocks both in the
// calling thread, so it must run before gRPC starts its threads (creating a
// ClientContext does), which then inherit the mask.
class InterruptWatcher {
 public:
  InterruptWatcher() {
    sigemptyset(&signals_);
    sigaddset(&signals_, SIGINT);
    sigaddset(&signals_, SIGTERM);
    sigaddset(&signals_, SIGUSR1);  // Stop()
    pthread_sigmask(SIG_BLOCK, &signals_, nullptr);
  }

  void Start(std::function<void()> on_signal) {
    thread_ = std::thread([this, on_signal = std::move(on_signal)] {
      int signal_number = 0;
      while (sigwait(&signals_, &signal_number) == 0) {
        if (signal_number == SIGUSR1) return;
        on_signal();
      }
    });
  }

  void Stop() {
    pthread_kill(thread_.native_handle(), SIGUSR1);
    thread_.join();
  }

 private:
  sigset_t signals_;
  std::thread thread_;
};

// `probe` with several servers: share k of the targets goes to servers[k]
// with the same options and timeout (the RPCs start together, so the
// shares share one deadline); results are printed as they arrive with their
// original index, then one merged summary.  An RPC error on one share is
// reported and its unfinished probes listed pending; the others carry on,
// and the exit status is 2.
int RunSplitProbe(const ProbeCommand& command) {
  InterruptWatcher watcher;
  absl::StatusOr<Connection> connection = ResolveConnection(command.connection);
  if (!connection.ok()) return ConnectionFailed(connection.status());
  const int total = command.request.targets_size();
  const size_t servers = command.servers.size();
  std::vector<std::vector<uint32_t>> shares =
      SplitContiguous(total, static_cast<int>(servers));
  std::vector<std::unique_ptr<grpc::ClientContext>> contexts;
  std::vector<grpc::ClientContext*> context_pointers;
  for (size_t k = 0; k < servers; ++k) {
    contexts.push_back(std::make_unique<grpc::ClientContext>());
    AddToken(*connection, *contexts.back());
    context_pointers.push_back(contexts.back().get());
  }
  SplitMerger merger(command.format, command.request.return_when(), total,
                     shares, context_pointers);
  watcher.Start([&merger] { merger.Interrupt(); });

  std::vector<bool> rpc_failed(servers, false);
  std::vector<std::thread> readers;
  for (size_t k = 0; k < servers; ++k) {
    if (shares[k].empty()) continue;
    readers.emplace_back([&, k] {
      v1::ProbeBatchRequest request = command.request;
      request.clear_targets();
      for (uint32_t index : shares[k]) {
        *request.add_targets() = command.request.targets(index);
      }
      const std::string& server = command.servers[k];
      std::unique_ptr<v1::Prober::Stub> stub =
          v1::Prober::NewStub(NewChannel(server, *connection));
      std::unique_ptr<grpc::ClientReader<v1::ProbeEvent>> reader =
          stub->StreamProbes(contexts[k].get(), request);
      v1::ProbeEvent event;
      bool summarized = false;
      while (reader->Read(&event)) {
        if (event.has_summary()) {
          summarized = true;
          merger.OnSummary(event.summary());
        } else {
          merger.OnResult(k, std::move(*event.mutable_result()));
        }
      }
      const grpc::Status status = reader->Finish();
      // Cancelled by the merger: not an error of this server's.
      if (status.error_code() == grpc::StatusCode::CANCELLED &&
          merger.CutOff()) {
        return;
      }
      if (!status.ok()) {
        merger.ClearProgress();
        std::fprintf(stderr, "fanprobe: StreamProbes on %s failed: %s\n",
                     server.c_str(), Describe(status).c_str());
        rpc_failed[k] = true;
      } else if (!summarized) {
        merger.ClearProgress();
        std::fprintf(stderr,
                     "fanprobe: %s ended the stream without a summary\n",
                     server.c_str());
        rpc_failed[k] = true;
      }
    });
  }
  for (std::thread& reader : readers) reader.join();
  watcher.Stop();
  const v1::BatchSummary summary = merger.PrintSummary();
  if (std::find(rpc_failed.begin(), rpc_failed.end(), true) !=
      rpc_failed.end()) {
    return kExitUsage;
  }
  return summary.succeeded() == summary.total() ? kExitOk : kExitProbeFailed;
}

int RunHealth(const HealthCommand& command) {
  absl::StatusOr<Connection> connection = ResolveConnection(command.connection);
  if (!connection.ok()) return ConnectionFailed(connection.status());
  std::unique_ptr<grpc::health::v1::Health::Stub> stub =
      grpc::health::v1::Health::NewStub(
          NewChannel(command.server, *connection));
  grpc::ClientContext context;
  AddToken(*connection, context);
  context.set_deadline(absl::ToChronoTime(absl::Now() + command.timeout));
  grpc::health::v1::HealthCheckResponse response;
  const grpc::Status status =
      stub->Check(&context, grpc::health::v1::HealthCheckRequest(), &response);
  if (!status.ok()) {
    std::fprintf(stderr, "fanprobe: health check of %s failed: %s\n",
                 command.server.c_str(), Describe(status).c_str());
    return kExitUsage;
  }
  const std::string name =
      grpc::health::v1::HealthCheckResponse::ServingStatus_Name(
          response.status());
  WriteStdout(absl::StrCat(name, "\n"));
  return response.status() == grpc::health::v1::HealthCheckResponse::SERVING
             ? kExitOk
             : kExitProbeFailed;
}

// A parse error: --help prints the usage (exit 0), anything else is a
// usage error (exit 2).
int ParseFailed(const absl::Status& status) {
  if (absl::IsCancelled(status)) {
    std::fputs(kUsage.data(), stdout);
    return kExitOk;
  }
  std::fprintf(stderr, "fanprobe: %s\nRun 'fanprobe help' for usage.\n",
               std::string(status.message()).c_str());
  return kExitUsage;
}

int Main(int argc, char** argv) {
  std::vector<std::string> args(argv + 1, argv + argc);
  if (args.empty()) {
    std::fputs(kUsage.data(), stderr);
    return kExitUsage;
  }
  const std::string command = args.front();
  args.erase(args.begin());
  if (command == "probe") {
    absl::StatusOr<ProbeCommand> probe = ParseProbe(std::move(args));
    if (!probe.ok()) return ParseFailed(probe.status());
    return probe->servers.size() == 1 ? RunProbe(*probe)
                                      : RunSplitProbe(*probe);
  }
  if (command == "health") {
    absl::StatusOr<HealthCommand> health = ParseHealth(std::move(args));
    return health.ok() ? RunHealth(*health) : ParseFailed(health.status());
  }
  if (command == "help" || command == "--help" || command == "-h") {
    return ParseFailed(HelpWanted());
  }
  if (command == "version" || command == "--version") {
    WriteStdout(absl::StrCat("fanprobe ", FANPROBE_VERSION, "\n"));
    return kExitOk;
  }
  return ParseFailed(UsageError(
      absl::StrCat("unknown command '", command, "': want probe or health")));
}

}  // namespace

int main(int argc, char** argv) { return Main(argc, argv); }
