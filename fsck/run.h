// run_fsck: what fsck.pagefs does with a device once it is open, as a
// library function so that tests run it in-process on any Device.
//
// Journal first. With -n nothing is written: the journal's whole
// transactions are laid over the device in memory (OverlayDevice), so the
// check sees what a mount would see after recovery. With -p and -y the
// journal is replayed onto the device, as a mount would.
//
// Then checks and repairs alternate, e2fsck's way: a check finds the
// problems and plans their fixes, the Repairer applies them (each repair
// ends in a consistent filesystem, see writer.h), and the filesystem is
// checked again, until a check finds nothing to fix (or kMaxPasses). Damage
// to the tree takes two rounds: the first rewrites the tree from what
// survives, the second repairs what the lost items leave inconsistent.
// -p stops, changing nothing more, at the first problem that needs judgement.
//
// A cleanly unmounted filesystem is not checked by -p or a plain run unless
// `force` (-f); -n and -y always check.
//
// Thread-safety: none; one call at a time per device.
#pragma once

#include <cstdio>
#include <string>

#include "engine/device.h"
#include "fsck/checker.h"

namespace pagefs::fsck {

struct RunOptions {
  Mode mode = Mode::kCheck;
  bool explicit_check = true;  // -n given (a plain run may skip a clean filesystem)
  bool force = false;          // -f
  bool zero_bad_data = false;  // -E zero_bad_data
  bool verbose = false;        // -v
  int progress_fd = -1;        // -C fd; -1: none
  FILE* out = stdout;          // where the report and what recovery did go
  FILE* err = stderr;          // where operational failures are reported
};

// Checks and repairs stop after this many rounds.
inline constexpr int kMaxPasses = 6;

// Returns fsck's exit code (see checker.h and fsck/main.cc).
int run_fsck(Device& device, const std::string& name, const RunOptions& options);

}  // namespace pagefs::fsck
