// Rebuilding a superblock when both copies are damaged (fsck -y).
//
// The layout is found from the device and the pages' own headers, which
// carry their type and page number under a checksum:
//
//   1. the page size and the first bitmap page: for each page size, the
//      first bitmap page mkfs's default layout puts on a device of this
//      size, else the first page after the smallest journal that verifies
//      as a bitmap page; the journal lies between page 2 and it, the data
//      region after the room mkfs keeps by default for the bitmap to grow
//      (formatter.h), or right after the bitmap pages that cover the device;
//   2. the newest valid image of page 0 the journal region still holds (any
//      committed transaction carries one): with the same layout it is the
//      superblock of the last commit, and recovery replays from its tail
//      what came after it; it also tells which of the two data regions is
//      the right one, since a record is whole only with its own layout;
//   3. failing that, a superblock made from the layout: the data region
//      after the room unless a tree node lies in the room, the tree root the
//      highest-level tree node the bitmap marks in use (newest LSN first),
//      the journal starts a new run of LSNs and sequence numbers past every
//      one seen, so nothing in it is replayed; the check that follows
//      raises next_inode and the counters, and rebuilds the tree if the
//      root was wrong. A filesystem grown by `pagefs resize`, or made with a
//      room of its own size, may come back with a data region starting
//      right after the bitmap: consistent, but without room to grow.
//
// Both copies are then written (page 0, flush, page 1, flush).
//
// Thread-safety: none.
#pragma once

#include <string>

#include "engine/device.h"
#include "engine/format.h"
#include "engine/result.h"

namespace pagefs::fsck {

// Finds the layout and writes both superblock copies. EINVAL if the device
// shows no pagefs layout (then nothing is written). `how` says which source
// the superblock came from, for the report.
Status rebuild_superblock(Device& device, Superblock* out, std::string* how);

}  // namespace pagefs::fsck
