// The mutations the fuzzer applies to a copy of a base image.
//
// Families (the class name's prefix):
//   raw.*      bit flips, a zeroed page, two pages swapped, a page copied over
//              another; aimed at superblocks, journal, bitmap, tree nodes, data
//              pages or anywhere. They break a checksum or move a page away
//              from its own number (or hit free space, or copy equal bytes),
//              so whatever they change, a checksum or page number catches.
//   super.*    one superblock field of one or both copies changed, with or
//              without recomputing the copy's CRC.
//   node.*     a tree node's layout damaged (level, count, cell_start, slots,
//              key kinds, key order, value lengths, child pointers), CRC
//              recomputed so only validation can catch it.
//   extent.*, dirent.*, inode.*, xattr.*
//              one leaf item's value made impossible, CRC recomputed.
//   bitmap.*   bits of a bitmap page changed, CRC recomputed.
//   journal.*  a committed record damaged (recovery must stop there), or a
//              forged record appended at the head: valid header CRCs, payload
//              CRC and commit record, impossible contents.
//
// A mutation is a *lie* when it writes a plausible value the engine cannot
// tell from the truth without a full check (an item dropped by lowering a
// node's count, a written page marked unwritten, an extent aliasing another
// file's pages with their CRCs). Bytes that differ from the oracle after a lie
// are noted but are not a failure.
#pragma once

#include <string>

#include "engine/mem_device.h"
#include "tests/fuzz/fuzz_util.h"
#include "tests/fuzz/image_map.h"

namespace pagefs::fuzz {

struct Mutation {
  std::string cls;   // e.g. "node.level"
  std::string desc;  // exactly what changed
  bool lie = false;
};

// Applies one mutation chosen by `rng` to `image`, a copy (perhaps already
// mutated) of the base image `map` describes.
Mutation mutate_image(MemDevice& image, const ImageMap& map, Rng& rng);

}  // namespace pagefs::fuzz
