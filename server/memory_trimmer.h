// memory_trimmer.h: gives freed heap memory back to the OS.  glibc keeps
// the pages of freed blocks in its arenas (one per thread that allocated)
// until the top of an arena is free, and a server that once held large
// buffers -- bodies kept for pattern matching, requests of megabytes --
// would keep a resident set sized for its worst minute.  A MemoryTrimmer
// looks every `interval` at how much the arenas hold free and, past
// `min_free_bytes`, calls malloc_trim(0), which returns every whole free
// page on the free lists of every arena (the free top of a thread's arena
// glibc trims itself, on free).  It cannot return blocks still in use, not
// even the unwritten part of a buffer whose pages malloc took, still dirty,
// from blocks freed a moment before: hence gRPC's small read buffers
// (server_main.cc, KeepGrpcReadBuffersSmall).  Together with those and a
// fixed mmap threshold (server_main.cc) this brings RSS back within 20% of
// its level before such batches (tests/server/memory_test.cc).
//
// Example:
//   MemoryTrimmer trimmer({.interval = absl::Seconds(1)});
//   ... serve ...
//   // The destructor stops and joins its thread.
//
// Thread-safety: construct and destroy from one thread; it runs its own.

#ifndef FANPROBE_SERVER_MEMORY_TRIMMER_H_
#define FANPROBE_SERVER_MEMORY_TRIMMER_H_

#include <cstdint>
#include <thread>

#include "absl/synchronization/notification.h"
#include "absl/time/time.h"

namespace fanprobe::server {

struct MemoryTrimmerOptions {
  // How often the arenas are looked at (a mallinfo2 walk: microseconds).
  absl::Duration interval = absl::Seconds(1);
  // Trim when the arenas hold more than this free.
  uint64_t min_free_bytes = 4 << 20;
};

class MemoryTrimmer {
 public:
  explicit MemoryTrimmer(MemoryTrimmerOptions options = {});
  ~MemoryTrimmer();

  MemoryTrimmer(const MemoryTrimmer&) = delete;
  MemoryTrimmer& operator=(const MemoryTrimmer&) = delete;

 private:
  void Run();

  // Constant after construction.
  const MemoryTrimmerOptions options_;
  absl::Notification stop_;
  std::thread thread_;
};

}  // namespace fanprobe::server

#endif  // FANPROBE_SERVER_MEMORY_TRIMMER_H_
