#include "monitoring/metered_engine.h"

#include <memory>
#include <utility>
#include <vector>

namespace fanprobe::monitoring {

std::shared_ptr<Batch> MeteredEngine::Open(const BatchOptions& options,
                                           BatchCallbacks callbacks) {
  ServerMetrics* metrics = &metrics_;
  const MetricsApi api = api_;
  const ReturnWhen return_when = options.return_when;
  BatchCallbacks metered{
      .on_start = std::move(callbacks.on_start),
      .on_result =
          [metrics, api,
           on_result = std::move(callbacks.on_result)](ProbeResult result) {
            metrics->ProbeCompleted(api, result);
            if (on_result) on_result(std::move(result));
          },
      .on_done =
          [metrics, api, return_when,
           on_done = std::move(callbacks.on_done)](BatchSummary summary) {
            metrics->BatchEnded(api, return_when, summary);
            if (on_done) on_done(std::move(summary));
          },
  };
  return engine_.Open(options, std::move(metered));
}

}  // namespace fanprobe::monitoring
