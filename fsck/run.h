// run_fsck: what fsck.pagefs does with a device once it is open, as a
// library function so that tests run it in-process on any Device.
//
// Without `replay` (fsck -n) nothing is written: the journal's whole
// transactions are laid over the device in memory (OverlayDevice), so the
// check sees what a mount would see after recovery. With `replay` (-y, -p)
// the journal is replayed onto the device first, as a mount would.
//
// Thread-safety: none; one call at a time per device.
#pragma once

#include <cstdio>
#include <string>

#include "engine/device.h"

namespace pagefs::fsck {

struct RunOptions {
  bool replay = false;   // -y or -p: replay the journal onto the device
  bool verbose = false;  // -v
  FILE* out = stdout;    // where the report and what recovery did go
  FILE* err = stderr;    // where operational failures are reported
};

// Returns fsck's exit code (see checker.h and fsck/main.cc).
int run_fsck(Device& device, const std::string& name, const RunOptions& options);

}  // namespace pagefs::fsck
