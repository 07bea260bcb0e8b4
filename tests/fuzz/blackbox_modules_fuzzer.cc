// blackbox_modules_fuzzer.cc: libFuzzer target for the blackbox_exporter
// modules file parser (monitoring/blackbox_modules.h), which fanprobe-server
// reads at start (--modules_file): arbitrary text must parse into modules or
// fail with kInvalidArgument naming what is wrong -- never crash, never hang.
// A module that parses must be one the engine can run: a name, a method,
// sane status ranges and redirect limits, a non-negative timeout.
//
// Run: make fuzz (FUZZ_SECONDS per target), or by hand:
//   build-fuzz/tests/fuzz/blackbox_modules_fuzzer \
//     tests/fuzz/corpus/blackbox_modules

#include <cstddef>
#include <cstdint>
#include <cstdlib>

#include "absl/status/status.h"
#include "absl/status/statusor.h"
#include "absl/strings/string_view.h"
#include "absl/time/time.h"
#include "monitoring/blackbox_modules.h"

namespace {

void Check(bool condition) {
  if (!condition) std::abort();
}

}  // namespace

extern "C" int LLVMFuzzerTestOneInput(const uint8_t* data, size_t size) {
  const absl::string_view yaml(reinterpret_cast<const char*>(data), size);
  const absl::StatusOr<fanprobe::monitoring::BlackboxModules> modules =
      fanprobe::monitoring::ParseBlackboxModules(yaml);
  if (!modules.ok()) {
    Check(modules.status().code() == absl::StatusCode::kInvalidArgument);
    Check(!modules.status().message().empty());
    return 0;
  }
  for (const auto& [name, module] : *modules) {
    Check(name == module.name);
    Check(!module.options.method.empty());
    Check(module.timeout >= absl::ZeroDuration());
    Check(module.options.max_redirects >= 0);
    for (const fanprobe::StatusRange& range : module.options.valid_status) {
      Check(range.min <= range.max);
    }
  }
  return 0;
}
