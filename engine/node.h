// Node: a view of one B+tree node page (see the format comment in format.h).
//
// A node is slotted: a sorted array of uint16 cell offsets grows up from the
// header, cells grow down from the end of the page. Deleting a cell leaves a
// hole; compact() squeezes the holes out when an insert needs the room.
// Node does not own the page and takes no locks; the caller holds the page
// pinned and has the tree locked.
#pragma once

#include <cstddef>
#include <cstdint>
#include <span>

#include "engine/format.h"
#include "engine/key.h"

namespace pagefs {

class Node {
 public:
  Node(std::byte* page, uint32_t page_size) : page_(page), page_size_(page_size) {}

  // Formats an empty node of the given level at `page_no`.
  void init(uint64_t page_no, uint16_t level);

  uint16_t count() const { return header()->count; }
  uint16_t level() const { return header()->level; }
  bool is_leaf() const { return level() == 0; }

  Key key_at(uint16_t i) const { return Key::load(cell(i)); }
  std::span<const std::byte> value_at(uint16_t i) const;
  std::span<std::byte> mutable_value_at(uint16_t i);
  uint64_t child_at(uint16_t i) const;

  // First index whose key is >= key (count() if none).
  uint16_t lower_bound(const Key& key) const;
  // Internal nodes: the child that may hold `key`.
  uint16_t child_index(const Key& key) const;

  // Bytes free for a new cell with its slot, counting holes compact() recovers.
  size_t free_bytes() const;
  static size_t cell_bytes(size_t value_len) { return kCellOverhead + value_len + 2; }
  size_t cell_bytes_at(uint16_t i) const { return kCellOverhead + value_len(i) + 2; }
  bool fits(size_t value_len) const { return free_bytes() >= cell_bytes(value_len); }

  // Inserts at index i (the caller keeps keys sorted). Requires fits().
  void insert_at(uint16_t i, const Key& key, std::span<const std::byte> value);
  void erase_at(uint16_t i);
  // Moves cells [from, count) to the empty node `dst`.
  void move_tail(uint16_t from, Node& dst);
  void compact();
  // Checks everything the other methods rely on (see node.cc); false, with
  // the reason in `why`, if the node cannot be used.
  bool check(const char** why) const;

 private:
  NodeHeader* header() const { return reinterpret_cast<NodeHeader*>(page_ + kNodeHeaderOffset); }
  uint16_t* slots() const { return reinterpret_cast<uint16_t*>(page_ + kSlotsOffset); }
  std::byte* cell(uint16_t i) const { return page_ + slots()[i]; }
  uint16_t value_len(uint16_t i) const;
  size_t cell_start() const;
  void set_cell_start(size_t v);
  size_t used_cell_bytes() const;
  static bool fail(const char** why, const char* reason);
  bool check_cell(uint16_t i, const char** why) const;
  bool check_overlap(const char** why) const;

  std::byte* page_;
  uint32_t page_size_;
};

}  // namespace pagefs
