#include "tests/monitoring/http_side.h"

#include <memory>
#include <utility>

#include "absl/status/statusor.h"

namespace fanprobe::testing {

HttpSide::HttpSide(monitoring::HttpServerOptions options,
                   EngineOptions engine) {
  engine_ = Engine::Create(std::move(engine)).value();
  metered_ = std::make_unique<monitoring::MeteredEngine>(
      *engine_, metrics_, monitoring::MetricsApi::kHttp);
  if (options.address.empty()) options.address = "127.0.0.1:0";
  http_ = monitoring::HttpServer::Start(std::move(options), *metered_, metrics_,
                                        nullptr)
              .value();
}

HttpSide::~HttpSide() {
  // Its /probe batches end before the engine and the metrics go.
  http_->Stop();
}

}  // namespace fanprobe::testing
