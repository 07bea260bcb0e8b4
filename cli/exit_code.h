// exit_code.h: what the fanprobe command's exit status means, in one place
// (the README's "Exit status" paragraphs document the same values).
//
// Example:
//   return summary.succeeded() == summary.total() ? kExitOk
//                                                 : kExitProbeFailed;
//
// Thread-safety: constants only.

#ifndef FANPROBE_CLI_EXIT_CODE_H_
#define FANPROBE_CLI_EXIT_CODE_H_

namespace fanprobe::cli {

// `probe`: every probe succeeded.  `health`: the server is SERVING.
inline constexpr int kExitOk = 0;
// `probe`: a probe failed or was cancelled.  `health`: the server answered,
// but not SERVING.
inline constexpr int kExitProbeFailed = 1;
// A usage error, an unusable connection flag, or an RPC that failed.
inline constexpr int kExitUsage = 2;

}  // namespace fanprobe::cli

#endif  // FANPROBE_CLI_EXIT_CODE_H_
