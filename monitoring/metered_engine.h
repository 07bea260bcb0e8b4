// metered_engine.h: an Engine that counts what goes through another one.
// Every result and every batch end is recorded in ServerMetrics before it is
// handed on, so the gRPC service and the HTTP /probe handler each get a
// MeteredEngine (api = grpc / http) over the one real engine they share, and
// neither of them has to count anything itself.
//
// Example:
//   std::unique_ptr<Engine> engine = Engine::Create({}).value();
//   ServerMetrics metrics;
//   MeteredEngine grpc_engine(*engine, metrics, MetricsApi::kGrpc);
//   ProberService service(grpc_engine, options);
//
// Thread-safety: as Engine.  `engine` and `metrics` must outlive this object,
// and `metrics` must outlive every batch submitted through it (the engine's
// callbacks record into it until on_done).

#ifndef FANPROBE_MONITORING_METERED_ENGINE_H_
#define FANPROBE_MONITORING_METERED_ENGINE_H_

#include <memory>
#include <vector>

#include "monitoring/metrics.h"
#include "probe/engine.h"
#include "probe/probe.h"

namespace fanprobe::monitoring {

class MeteredEngine final : public Engine {
 public:
  MeteredEngine(Engine& engine, ServerMetrics& metrics, MetricsApi api)
      : engine_(engine), metrics_(metrics), api_(api) {}

  std::shared_ptr<Batch> Open(const BatchOptions& options,
                              BatchCallbacks callbacks) override;

  EngineStats Stats() const override { return engine_.Stats(); }
  absl::Status CheckOptions(const ProbeOptions& options) const override {
    return engine_.CheckOptions(options);
  }
  const ProbeLimits& Limits() const override { return engine_.Limits(); }

 private:
  // Constant after construction.
  Engine& engine_;
  ServerMetrics& metrics_;
  const MetricsApi api_;
};

}  // namespace fanprobe::monitoring

#endif  // FANPROBE_MONITORING_METERED_ENGINE_H_
