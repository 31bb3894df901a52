// Channel: how the check of one image reports to the fuzzer's parent process.
//
// The check runs in a forked child that may die at any instant (an abort, a
// sanitizer report, the watchdog's alarm), so everything is sent as soon as
// it is known, one line per write(2): the mutations before any check starts,
// then each phase as it begins, each finding, the outcome, and "done" last. A
// child that ends without "done" crashed or hung in the last phase it named.
//
// Lines are tab-separated, with tabs and newlines in free text replaced by
// spaces:
//   mutation <class> <0|1 lie> <description>
//   phase <name>
//   finding <class> <detail>
//   outcome <key>=<value> ...
//   done
//
// Without a file descriptor (one image run in-process), the lines go to
// stderr in readable form instead.
//
// Thread-safety: used by the one thread that checks the image.
#pragma once

#include <cstdint>
#include <string>
#include <vector>

#include "tests/fuzz/mutator.h"

namespace pagefs::fuzz {

// What the check of one image saw.
struct ImageOutcome {
  int fsck_before = -1;         // fsck -n's exit code before the mount; -1: not run
  bool overlay_failed = false;  // fsck -n could not lay the journal over the device
  int mount_error = -1;         // 0: mounted; else the errno; -1: not tried
  bool mount_only = false;      // mounted and unmounted, nothing read or written
  uint64_t read_errors = 0;     // calls that failed while reading the tree
  uint64_t lies = 0;            // wrong bytes explained by a lie mutation
  uint64_t files = 0;           // regular files read
  uint64_t write_errors = 0;    // changing operations that failed
  int unmount_error = -1;       // 0: unmounted; -1: not mounted
  int fsck_after = -1;          // fsck -n's exit code after the unmount
};

struct Finding {
  std::string cls;  // "wrong-bytes", "fsck-clean-mount-refused", ... or "crash", "hang"
  std::string detail;
};

class Channel {
 public:
  explicit Channel(int fd = -1) : fd_(fd) {}

  void mutation(const Mutation& m);
  void phase(const std::string& name);
  void finding(const std::string& cls, const std::string& detail);
  void outcome(const ImageOutcome& o);
  void done();

 private:
  void send(const std::string& line);

  int fd_;
};

// What the parent learns from the lines of one child.
struct ChannelLog {
  std::vector<Mutation> mutations;
  std::string phase;  // the last phase named
  std::vector<Finding> findings;
  ImageOutcome outcome;
  bool done = false;
};

// Parses the lines a child sent.
ChannelLog parse_channel(const std::string& text);

}  // namespace pagefs::fuzz
