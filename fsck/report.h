// Report: where fsck.pagefs says what it found.
//
// Every inconsistency is one line "fsck.pagefs: <what>" on stdout. After
// kMaxPrintedErrors lines further errors are only counted, and finish() prints
// "... and N more". Progress ("Pass 2: walking the tree") goes to stderr, and
// only when stderr is a terminal, so scripts and tests see clean output.
//
// Invariant: printed() <= kMaxPrintedErrors and printed() <= count().
// Thread-safety: none; fsck is single-threaded.
#pragma once

#include <cstdint>
#include <cstdio>
#include <string>

namespace pagefs::fsck {

class Report {
 public:
  static constexpr uint64_t kMaxPrintedErrors = 100;

  explicit Report(FILE* out = stdout, FILE* progress = stderr);

  // Records one inconsistency; printf-style.
  void error(const char* fmt, ...) __attribute__((format(printf, 2, 3)));
  // Prints an informational line (verbose mode) on stdout, not counted.
  void info(const char* fmt, ...) __attribute__((format(printf, 2, 3)));
  // Announces the start of a pass on stderr when it is a terminal.
  void pass(const char* what);
  // Prints the "... and N more" line if errors were suppressed.
  void finish();

  uint64_t count() const { return count_; }
  uint64_t printed() const { return printed_; }

 private:
  FILE* out_;
  FILE* progress_;  // null when progress is not shown
  uint64_t count_ = 0;
  uint64_t printed_ = 0;
};

}  // namespace pagefs::fsck
