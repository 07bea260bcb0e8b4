// temp_dir.h: the tests' one temporary directory, removed with everything in
// it when the object goes.
//
// Example:
//   TempDir dir;
//   const std::string modules = dir.Write("modules.yml", "modules: {}\n");
//   const std::string missing = dir.File("not-written");
//
// Thread-safety: const methods may be called from any thread; the files are
// the caller's business.

#ifndef FANPROBE_TESTS_SUPPORT_TEMP_DIR_H_
#define FANPROBE_TESTS_SUPPORT_TEMP_DIR_H_

#include <string>

#include "absl/strings/string_view.h"

namespace fanprobe::testing {

class TempDir {
 public:
  // A fresh directory under $TMPDIR (or /tmp).  Aborts the test binary if
  // it cannot be made.
  TempDir();
  ~TempDir();
  TempDir(const TempDir&) = delete;
  TempDir& operator=(const TempDir&) = delete;

  const std::string& path() const { return path_; }
  // path()/name, whether or not it exists.
  std::string File(absl::string_view name) const;
  // Writes `content` to path()/name (creating subdirectories) and returns
  // the file's path.  Aborts the test binary on failure.
  std::string Write(absl::string_view name, absl::string_view content) const;

 private:
  std::string path_;
};

}  // namespace fanprobe::testing

#endif  // FANPROBE_TESTS_SUPPORT_TEMP_DIR_H_
