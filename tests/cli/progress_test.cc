// progress_test.cc: the progress line (cli/progress.h): when it is shown,
// what it says, how often it is redrawn, and that it is erased before
// anything else is printed.  Times are passed in, so nothing here waits.

#include "cli/progress.h"

#include <sstream>

#include "absl/time/time.h"
#include "gmock/gmock.h"
#include "gtest/gtest.h"

namespace fanprobe::cli {
namespace {

constexpr char kErase[] = "\r\033[K";
const absl::Time kStart = absl::FromUnixSeconds(1'000'000);

TEST(ShowProgressTest, OnlyATerminalWithALargeBatch) {
  EXPECT_TRUE(ShowProgress(true, kProgressMinTargets));
  EXPECT_FALSE(ShowProgress(true, kProgressMinTargets - 1));
  EXPECT_FALSE(ShowProgress(false, 1000));
}

TEST(ProgressTest, DrawsDoneFailedAndElapsedOverTheLastLine) {
  std::ostringstream err;
  Progress progress(true, 25, err, kStart);
  progress.Update(3, 1, kStart + absl::Milliseconds(1234));
  EXPECT_EQ(err.str(), std::string(kErase) + "3/25 done, 1 failed, 1.234s");
}

TEST(ProgressTest, RedrawsAtMostEveryHundredMilliseconds) {
  std::ostringstream err;
  Progress progress(true, 25, err, kStart);
  progress.Update(1, 0, kStart + absl::Milliseconds(10));
  progress.Update(2, 0, kStart + absl::Milliseconds(109));  // too soon
  progress.Update(3, 0, kStart + absl::Milliseconds(110));
  EXPECT_EQ(err.str(), std::string(kErase) + "1/25 done, 0 failed, 10.0ms" +
                           kErase + "3/25 done, 0 failed, 110.0ms");
}

TEST(ProgressTest, ClearErasesOnlyAShownLine) {
  std::ostringstream err;
  Progress progress(true, 25, err, kStart);
  progress.Clear();
  EXPECT_EQ(err.str(), "");
  progress.Update(1, 0, kStart);
  err.str("");
  progress.Clear();
  progress.Clear();
  EXPECT_EQ(err.str(), kErase);
}

TEST(ProgressTest, NoteErasesTheLineFirst) {
  std::ostringstream err;
  Progress progress(true, 25, err, kStart);
  progress.Update(1, 0, kStart);
  err.str("");
  progress.Note("fanprobe: something failed");
  EXPECT_EQ(err.str(), std::string(kErase) + "fanprobe: something failed\n");
}

TEST(ProgressTest, DisabledPrintsOnlyNotes) {
  std::ostringstream err;
  Progress progress(false, 25, err, kStart);
  progress.Update(1, 0, kStart);
  progress.Clear();
  progress.Note("note");
  EXPECT_EQ(err.str(), "note\n");
}

}  // namespace
}  // namespace fanprobe::cli
