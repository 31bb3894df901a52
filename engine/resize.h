// grow_filesystem: makes an unmounted pagefs use more of its device (the work
// of `pagefs resize`).
//
// Growing needs a larger free-space bitmap, and the bitmap sits between the
// journal and the data region, so the page after it is in use. mkfs therefore
// leaves room for growth there (FormatOptions::grow_limit_bytes): the pages
// from the end of the journal to data_start form the *bitmap area*, two slots
// each large enough for the bitmap at the grow limit. The bitmap lives in one
// slot; a resize writes the larger bitmap into the other, then switches to it
// by writing the superblock. No page the old filesystem uses is written
// before that switch, so a crash leaves either the old filesystem (the new
// bitmap lies in reserved pages nothing reads) or the new one:
//
//   1. replay the journal if it needs it, as a mount would;
//   2. build the new bitmap: the old bits, the new pages free, pages past the
//      new end in use; write it into the free slot and flush;
//   3. THE SWITCH: the superblock with the new page_count, bitmap_start and
//      bitmap_pages, written to page 0 and flushed, then to page 1 and flushed
//      (write_superblock_copies); the newer whole copy wins at mount.
//
// The layout rules are unchanged (superblock_valid() already allows room
// between the bitmap and data_start), so earlier pagefs versions read a grown
// filesystem. A filesystem made without room (by mkfs before this existed, or
// with -E resize= at most its size) cannot grow: grow_filesystem says so.
// Shrinking is refused.
//
// Thread-safety: none; the caller holds the device's exclusive lock, so no
// mount runs meanwhile.
#pragma once

#include <cstdint>
#include <string>

#include "engine/device.h"
#include "engine/result.h"

namespace pagefs {

struct ResizeResult {
  uint32_t page_size = 0;
  uint64_t old_pages = 0;  // page_count before
  uint64_t new_pages = 0;  // page_count after (== old_pages: nothing to do)
  uint64_t max_pages = 0;  // the most pages this filesystem can ever grow to
};

// Grows the filesystem on `device` to `new_bytes` (rounded down to whole
// pages), which the device must already hold. EINVAL for a smaller size or
// one past the device; ENOSPC when the bitmap area has no room for the new
// bitmap; the journal's and the device's errors otherwise. `message` gets
// one line for the user on failure.
Status grow_filesystem(Device& device, uint64_t new_bytes, ResizeResult* result,
                       std::string* message);

// Checks, writing nothing, that the filesystem on `device` can grow to
// `new_bytes`, which the device need not hold yet: EINVAL for a smaller
// size, ENOSPC when the bitmap area has no room, as grow_filesystem says
// them, with `result` filled the same way. `pagefs resize` asks before it
// extends a file, so that a size it would refuse costs no time or disk space.
Status check_growth(Device& device, uint64_t new_bytes, ResizeResult* result, std::string* message);

}  // namespace pagefs
