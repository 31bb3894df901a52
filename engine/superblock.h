// Superblock checks: what makes a superblock copy (or a journal image of
// page 0) trustworthy. Shared by mount, recovery and fsck, so that they agree
// on which copy counts.
//
// Thread-safety: pure functions.
#pragma once

#include <cstdint>

#include "engine/format.h"

namespace pagefs {

// A power of two from kMinPageSize to kMaxPageSize.
bool valid_page_size(uint32_t page_size);

// Whether the geometry and counters of a superblock of this format version
// make sense on their own: magics, page size, regions in order and not overlapping,
// the bitmap sized for page_count, the tree root in the data region, tree
// height, next_inode, an aligned journal tail. False, with the reason in
// `why`, if not.
bool superblock_valid(const Superblock& sb, const char** why);

// Whether the filesystem fits on a device of `device_bytes` bytes.
bool superblock_fits(const Superblock& sb, uint64_t device_bytes);

// Whether two superblocks describe the same layout (fixed at mkfs).
bool same_geometry(const Superblock& a, const Superblock& b);

}  // namespace pagefs
