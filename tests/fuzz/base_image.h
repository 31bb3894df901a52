// Base images: the populated filesystems every fuzzed image is copied from.
//
// Built once per run, in memory, through the engine's API:
//   "clean"    a tree of directories several levels deep; regular files of
//              many sizes (one page, multi-extent, fragmented by interleaved
//              writes, sparse, fallocated with and without KEEP_SIZE, punched,
//              truncated to a page's middle); hard links; short, long and
//              dangling symlinks; xattrs small, large (inline, and in data
//              pages up to 64 KiB) and many; POSIX ACLs (a default ACL on
//              the root and one in data pages); and one directory of 4,000
//              entries (names up to 255 bytes), so the tree has three levels.
//              Unmounted cleanly: the journal holds only checkpointed records.
//   "journal"  the clean image mounted again and changed by a dozen operations,
//              each made durable by fsync, then cut off before the unmount
//              (every later write dropped, as a crash would): the journal holds
//              a dozen committed transactions that recovery must replay.
// Each comes with its oracle (what was written) and its map (where things are).
//
// Thread-safety: built by the parent before any image is forked; read-only after.
#pragma once

#include <cstdint>
#include <memory>
#include <string>
#include <vector>

#include "engine/mem_device.h"
#include "tests/fuzz/image_map.h"
#include "tests/fuzz/oracle.h"

namespace pagefs::fuzz {

inline constexpr uint64_t kImageBytes = 16ull << 20;

struct BaseImage {
  std::string name;
  std::unique_ptr<MemDevice> device;
  Oracle oracle;
  ImageMap map;
};

// Builds the base images from `seed` (file contents and xattr values depend on
// it); false with *error set if the engine fails to build them.
bool build_base_images(uint64_t seed, std::vector<BaseImage>* out, std::string* error);

}  // namespace pagefs::fuzz
