#include "server/memory_trimmer.h"

#include <malloc.h>

namespace fanprobe::server {

MemoryTrimmer::MemoryTrimmer(MemoryTrimmerOptions options)
    : options_(options), thread_([this] { Run(); }) {}

MemoryTrimmer::~MemoryTrimmer() {
  stop_.Notify();
  thread_.join();
}

void MemoryTrimmer::Run() {
  while (!stop_.WaitForNotificationWithTimeout(options_.interval)) {
    const struct mallinfo2 info = mallinfo2();
    // fordblks: free bytes inside the arenas (not counting mmapped
    // blocks, which are unmapped when freed).
    if (info.fordblks > options_.min_free_bytes) malloc_trim(0);
  }
}

}  // namespace fanprobe::server
