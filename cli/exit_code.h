// exit_code.h: what the fanprobe command's exit status means, in one place
// (the README's "Exit status" paragraphs and `fanprobe help` document the
// same values).  The two codes beyond 2 follow shell conventions a script
// writer knows: 124 is what timeout(1) exits with when time ran out, 130
// what a shell reports for a command ended by Ctrl-C (128 + SIGINT).
//
// Example:
//   return ProbeExitStatus(outcome);  // probe_command.h picks among these
//
// Thread-safety: constants only.

#ifndef FANPROBE_CLI_EXIT_CODE_H_
#define FANPROBE_CLI_EXIT_CODE_H_

namespace fanprobe::cli {

// `probe`: every probe that completed succeeded (probes the return-when
// rule cancelled, as --return_when=first does, are not failures).
// `health`: the server is SERVING.
inline constexpr int kExitOk = 0;
// `probe`: a probe completed with an outcome other than OK.  `health`: the
// server answered, but not SERVING.
inline constexpr int kExitProbeFailed = 1;
// A usage error, an unusable flag or input line, or an RPC that failed.
inline constexpr int kExitUsage = 2;
// `probe`: the batch timeout (--timeout) ended the batch with probes still
// pending.
inline constexpr int kExitTimedOut = 124;
// `probe`: SIGINT or SIGTERM cancelled the batch.
inline constexpr int kExitCancelled = 130;

}  // namespace fanprobe::cli

#endif  // FANPROBE_CLI_EXIT_CODE_H_
