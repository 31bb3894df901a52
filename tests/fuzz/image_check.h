// The check of one mutated image, in the order a user meets it:
//
//   1. fsck -n (in-process, exactly as fsck.pagefs -n: the journal laid over
//      the device in memory; if that fails, the raw device is checked);
//   2. mount (a FaultDevice that injects nothing, over the image);
//   3. if mounted: for one image in two, a scrub to its end; then read
//      everything (TreeReader) against the oracle;
//   4. run changing operations (run_writes); errors are allowed;
//   5. unmount;
//   6. fsck -n again.
// With mount_only, steps 3 and 4 are left out, as when a user mounts and
// unmounts after a crash: nothing the reads (atime) and writes commit then
// overwrites what recovery left in the journal past its stop.
//
// Findings, besides the TreeReader's wrong bytes:
//   fsck-clean-mount-refused   fsck -n said clean but the mount failed;
//   fsck-clean-read-errors     fsck -n said clean but reading the tree failed;
//   fsck-clean-scrub-damage    fsck -n said clean but the scrub found damage
//   fsck-clean-scrub-failed    (or failed);
//   clean-before-not-after     fsck -n said clean before, not after the
//                              mount (its recovery, reads and writes) and
//                              the unmount.
// A crash, sanitizer report or hang is the parent's to see (runner.h).
//
// Thread-safety: none; one image at a time.
#pragma once

#include "engine/mem_device.h"
#include "tests/fuzz/channel.h"
#include "tests/fuzz/fuzz_util.h"
#include "tests/fuzz/oracle.h"

namespace pagefs::fuzz {

struct CheckOptions {
  bool lies = false;  // the image carries a lie mutation
  int writes = 12;    // changing operations in step 4
  bool mount_only = false;
};

void check_image(MemDevice& image, const Oracle& oracle, const CheckOptions& options, Rng& rng,
                 Channel& channel);

}  // namespace pagefs::fuzz
