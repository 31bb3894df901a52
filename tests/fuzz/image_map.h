// ImageMap: where things are in an undamaged image, so that mutations can aim
// at tree nodes, items, extents, bitmap pages and journal records instead of
// hitting free space.
//
// Built once per base image by parsing the bytes directly (not through the
// engine), before any mutation. Mutations applied one after another may have
// changed a page the map describes; each mutation re-checks what it finds
// before relying on the map.
#pragma once

#include <cstdint>
#include <string>
#include <vector>

#include "engine/format.h"
#include "engine/mem_device.h"

namespace pagefs::fuzz {

struct TreeNodeRef {
  uint64_t page = 0;
  uint16_t level = 0;
  uint64_t parent = 0;  // 0 for the root
};

// One leaf cell: which node and slot hold it, and its key.
struct CellRef {
  uint64_t node = 0;
  uint16_t slot = 0;
  uint64_t ino = 0;
  uint8_t kind = 0;
  uint64_t off = 0;
};

struct ExtentRef {
  CellRef cell;
  uint64_t phys = 0;
  uint16_t pages = 0;
  uint32_t unwritten = 0;
};

// A whole transaction the journal holds after its tail.
struct JournalTxn {
  uint64_t lsn = 0;  // of its record; the commit follows at lsn + record_bytes
  uint64_t sequence = 0;
  uint64_t record_bytes = 0;
};

struct ImageMap {
  Superblock sb{};
  std::vector<TreeNodeRef> nodes;
  std::vector<CellRef> cells;  // every leaf cell
  std::vector<ExtentRef> extents;
  std::vector<uint64_t> data_pages;  // written data pages of every extent
  std::vector<uint64_t> inodes;      // inode numbers with a record
  std::vector<JournalTxn> txns;      // whole transactions after the tail, oldest first
  uint64_t head_lsn = 0;             // where the next transaction would be written
  uint64_t next_sequence = 0;        // and its sequence number

  uint32_t page_size() const { return sb.page_size; }
  // Byte offset on the device of the journal byte at `lsn`.
  uint64_t journal_offset(uint64_t lsn) const;
};

// Parses an undamaged image; false with *error set if it does not parse.
bool map_image(MemDevice& dev, ImageMap* out, std::string* error);

}  // namespace pagefs::fuzz
