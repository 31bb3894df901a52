// Report: where fsck.pagefs says what it found and what it does about it.
//
// Each inconsistency is a Problem: what is wrong, whom it concerns (an inode,
// printed as its path, or a place such as "tree node 1027"), and what fixing
// it means ("set it to 2"), with the class of the fix:
//
//   kPreen   safe and certain (a counter, a space-map bit): -p fixes it
//   kRepair  needs judgement (removing an entry, reconnecting a file): -y only
//   kNone    nothing to fix in the structure (a data page that fails its
//            checksum is reported and left)
//
// Problems are collected while the passes run and printed by flush(), once
// the directory structure is known, so that every message names a path:
//
//   fsck.pagefs: /docs/a.txt (inode 12): link count is 3, counted 2; set it to 2? yes
//
// "? yes" when the fix is applied, "? no" when it is not (-n, or -p meeting a
// problem that needs judgement). After kMaxPrintedErrors lines further
// problems are only counted ("... and N more"). Pass announcements go to
// stderr, and only when it is a terminal, so scripts and tests see clean
// output.
//
// Invariant: printed() <= kMaxPrintedErrors and printed() <= count().
// Thread-safety: none; fsck is single-threaded.
#pragma once

#include <cstdint>
#include <cstdio>
#include <functional>
#include <set>
#include <string>
#include <vector>

namespace pagefs::fsck {

enum class Fix : uint8_t {
  kNone,    // reported and left
  kPreen,   // safe and certain: fsck -p fixes it
  kRepair,  // needs judgement: only fsck -y fixes it
};

struct Problem {
  Fix fix = Fix::kNone;
  uint64_t ino = 0;    // the inode it concerns (printed as its path), or 0
  std::string entry;   // with ino: the entry of directory `ino` it concerns
  std::string where;   // otherwise the place: "tree node 1027", "superblock"
  std::string what;    // what is wrong
  std::string action;  // what fixing does; empty for Fix::kNone
};

class Report {
 public:
  static constexpr uint64_t kMaxPrintedErrors = 100;
  // The printable name of an inode (its path, or a description), or of the
  // entry `entry` of directory `ino` when `entry` is not empty.
  using PathOf = std::function<std::string(uint64_t ino, const std::string& entry)>;

  explicit Report(FILE* out = stdout, FILE* progress = stderr);
  // Problems already printed by an earlier check are not printed again (a
  // problem no repair can fix is found by every round): `printed` is shared
  // by the reports of one fsck run.
  void skip_printed(std::set<std::string>* printed) { already_ = printed; }

  // Records a problem concerning inode `ino`; printf-style `what`.
  void inode(Fix fix, uint64_t ino, std::string action, const char* fmt, ...)
      __attribute__((format(printf, 5, 6)));
  // Records a problem concerning the entry `name` of directory `dir`.
  void entry(Fix fix, uint64_t dir, std::string name, std::string action, const char* fmt, ...)
      __attribute__((format(printf, 6, 7)));
  // Records a problem at a place that is not an inode.
  void at(Fix fix, std::string where, std::string action, const char* fmt, ...)
      __attribute__((format(printf, 5, 6)));
  // Prints an informational line (verbose mode) on stdout, not counted.
  void info(const char* fmt, ...) __attribute__((format(printf, 2, 3)));
  // Announces the start of a pass on stderr when it is a terminal.
  void pass(const char* what);

  // Prints the problems recorded since the last flush. Fixes of classes
  // kPreen..`applied_up_to` are being made ("? yes"), others not ("? no").
  void flush(const PathOf& path_of, Fix applied_up_to);
  // Prints the "... and N more" line if problems were suppressed.
  void finish();

  uint64_t count() const { return count_; }
  uint64_t count(Fix fix) const { return by_fix_[size_t(fix)]; }
  uint64_t printed() const { return printed_; }
  FILE* out() const { return out_; }

 private:
  void add(Problem problem);

  FILE* out_;
  FILE* progress_;  // null when progress is not shown
  std::set<std::string>* already_ = nullptr;
  std::vector<Problem> pending_;
  uint64_t count_ = 0;
  uint64_t by_fix_[3] = {};
  uint64_t printed_ = 0;
};

}  // namespace pagefs::fsck
