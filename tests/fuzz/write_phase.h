// The changing operations the fuzzer runs on a mounted, possibly damaged
// image after reading it: creates, writes into new and existing files,
// truncates, renames (also over an existing name), unlinks, mkdir and rmdir,
// fallocate, setxattr and removexattr, fsync. Targets are paths the oracle
// knows, half of the time among the suspects: paths where reading met the
// damage, so that unlink, truncate and overwrite meet it too. Any call may
// fail; only what the image looks like to fsck afterwards is judged
// (image_check.h).
#pragma once

#include <cstdint>
#include <set>
#include <string>

#include "engine/filesystem.h"
#include "tests/fuzz/fuzz_util.h"
#include "tests/fuzz/oracle.h"

namespace pagefs::fuzz {

// Runs `count` random operations; returns how many failed.
uint64_t run_writes(FileSystem& fs, const Oracle& oracle, const std::set<std::string>& suspects,
                    Rng& rng, int count);

}  // namespace pagefs::fuzz
