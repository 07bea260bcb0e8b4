#include "tests/support/prometheus.h"

#include <memory>
#include <optional>
#include <string>
#include <utility>
#include <vector>

#include "absl/strings/match.h"
#include "absl/strings/str_cat.h"
#include "absl/time/time.h"
#include "google/protobuf/util/json_util.h"
#include "gtest/gtest.h"
#include "tests/support/http_client.h"
#include "tests/support/wait.h"

namespace fanprobe::testing {

std::unique_ptr<Prometheus> Prometheus::Start(const std::string& binary,
                                              const TempDir& dir,
                                              absl::Duration patience) {
  for (int attempt = 0; attempt < 3; ++attempt) {
    std::string address = absl::StrCat("127.0.0.1:", FreePort());
    auto process = std::make_unique<Subprocess>(
        std::vector<std::string>{
            binary, "--config.file=" + dir.File("prometheus.yml"),
            "--storage.tsdb.path=" + dir.File("data"),
            "--web.listen-address=" + address, "--log.level=warn"},
        SubprocessOptions{.output_file = dir.File("prometheus.log")});
    bool exited = false;
    const bool settled = WaitUntil(
        [&] {
          exited = process->TryWait(absl::ZeroDuration()).has_value();
          return exited || HttpGet(address, "/-/ready").status == 200;
        },
        patience, absl::Milliseconds(50));
    if (!settled) {
      ADD_FAILURE() << "Prometheus not ready within " << patience << ":\n"
                    << process->OutputFile();
      return nullptr;
    }
    if (!exited) {
      return std::unique_ptr<Prometheus>(
          new Prometheus(std::move(process), std::move(address)));
    }
    if (!absl::StrContains(process->OutputFile(), "address already in use")) {
      ADD_FAILURE() << "Prometheus exited:\n" << process->OutputFile();
      return nullptr;
    }
  }
  ADD_FAILURE() << "no free port for Prometheus in three tries";
  return nullptr;
}

std::optional<google::protobuf::Value> Prometheus::Data(
    const std::string& path) const {
  const HttpReply reply = HttpGet(address_, path);
  if (reply.status != 200) return std::nullopt;
  google::protobuf::Struct json;
  if (!google::protobuf::util::JsonStringToMessage(reply.body, &json).ok()) {
    return std::nullopt;
  }
  const auto& fields = json.fields();
  if (!fields.contains("status") ||
      fields.at("status").string_value() != "success" ||
      !fields.contains("data")) {
    return std::nullopt;
  }
  return fields.at("data");
}

std::optional<std::vector<Prometheus::Series>> Prometheus::Query(
    const std::string& promql) const {
  std::optional<google::protobuf::Value> data =
      Data("/api/v1/query?query=" + UrlEncode(promql));
  if (!data.has_value()) return std::nullopt;
  const auto& fields = data->struct_value().fields();
  if (!fields.contains("resultType") ||
      fields.at("resultType").string_value() != "vector") {
    return std::nullopt;
  }
  std::vector<Series> series;
  for (const auto& item : fields.at("result").list_value().values()) {
    const auto& result = item.struct_value().fields();
    Series s;
    for (const auto& [name, value] :
         result.at("metric").struct_value().fields()) {
      s.labels[name] = value.string_value();
    }
    // "value": [<unix time>, "<value as a string>"]
    s.value =
        std::stod(result.at("value").list_value().values(1).string_value());
    series.push_back(std::move(s));
  }
  return series;
}

std::optional<double> Prometheus::ValueWith(const std::vector<Series>& series,
                                            const LabelSet& want) {
  std::optional<double> found;
  for (const Series& s : series) {
    bool match = true;
    for (const auto& [name, value] : want) {
      auto it = s.labels.find(name);
      match = match && it != s.labels.end() && it->second == value;
    }
    if (match) {
      if (found.has_value()) return std::nullopt;  // ambiguous
      found = s.value;
    }
  }
  return found;
}

}  // namespace fanprobe::testing
