#include "engine/node.h"

#include <algorithm>
#include <cassert>
#include <cstring>
#include <vector>

namespace pagefs {

// cell_start is a uint16; an empty 64 KiB node would need 65536, so 0 stands
// for "the end of the page".
size_t Node::cell_start() const {
  uint16_t raw = header()->cell_start;
  return raw == 0 ? page_size_ : raw;
}

void Node::set_cell_start(size_t v) {
  assert(v <= page_size_);
  header()->cell_start = v == page_size_ ? 0 : static_cast<uint16_t>(v);
}

void Node::init(uint64_t page_no, uint16_t level) {
  std::memset(page_, 0, page_size_);
  auto* ph = reinterpret_cast<PageHeader*>(page_);
  ph->magic = kPageMagic;
  ph->type = static_cast<uint16_t>(PageType::kTreeNode);
  ph->page_no = page_no;
  header()->level = level;
  set_cell_start(page_size_);
}

uint16_t Node::value_len(uint16_t i) const {
  uint16_t len;
  std::memcpy(&len, cell(i) + sizeof(DiskKey), sizeof len);
  return len;
}

std::span<const std::byte> Node::value_at(uint16_t i) const {
  assert(i < count());
  return {cell(i) + kCellOverhead, value_len(i)};
}

std::span<std::byte> Node::mutable_value_at(uint16_t i) {
  assert(i < count());
  return {cell(i) + kCellOverhead, value_len(i)};
}

uint64_t Node::child_at(uint16_t i) const {
  assert(!is_leaf() && value_len(i) == sizeof(uint64_t));
  uint64_t child;
  std::memcpy(&child, cell(i) + kCellOverhead, sizeof child);
  return child;
}

uint16_t Node::lower_bound(const Key& key) const {
  uint16_t lo = 0, hi = count();
  while (lo < hi) {
    uint16_t mid = (lo + hi) / 2;
    if (key_at(mid) < key) {
      lo = mid + 1;
    } else {
      hi = mid;
    }
  }
  return lo;
}

// The last child whose separator is <= key; child 0 covers everything below
// the second separator (its own separator stands for minus infinity).
uint16_t Node::child_index(const Key& key) const {
  assert(!is_leaf() && count() > 0);
  uint16_t lo = 1, hi = count();
  while (lo < hi) {
    uint16_t mid = (lo + hi) / 2;
    if (key_at(mid) <= key) {
      lo = mid + 1;
    } else {
      hi = mid;
    }
  }
  return lo - 1;
}

size_t Node::used_cell_bytes() const {
  size_t used = 0;
  for (uint16_t i = 0; i < count(); i++) used += kCellOverhead + value_len(i);
  return used;
}

size_t Node::free_bytes() const {
  size_t slots_end = kSlotsOffset + 2 * size_t(count());
  return page_size_ - slots_end - used_cell_bytes();
}

void Node::insert_at(uint16_t i, const Key& key, std::span<const std::byte> value) {
  assert(i <= count() && fits(value.size()));
  size_t need = kCellOverhead + value.size();
  size_t slots_end = kSlotsOffset + 2 * size_t(count() + 1);
  if (cell_start() < slots_end + need) compact();
  assert(cell_start() >= slots_end + need);
  size_t at = cell_start() - need;
  key.store(page_ + at);
  uint16_t len = static_cast<uint16_t>(value.size());
  std::memcpy(page_ + at + sizeof(DiskKey), &len, sizeof len);
  if (!value.empty()) std::memcpy(page_ + at + kCellOverhead, value.data(), value.size());
  set_cell_start(at);
  uint16_t* s = slots();
  std::memmove(s + i + 1, s + i, 2 * size_t(count() - i));
  s[i] = static_cast<uint16_t>(at);
  header()->count++;
}

void Node::erase_at(uint16_t i) {
  assert(i < count());
  size_t at = slots()[i];
  size_t len = kCellOverhead + value_len(i);
  uint16_t* s = slots();
  std::memmove(s + i, s + i + 1, 2 * size_t(count() - i - 1));
  header()->count--;
  // Erasing the lowest cell just moves cell_start up; others leave a hole
  // that compact() recovers.
  if (at == cell_start()) set_cell_start(at + len);
  if (count() == 0) set_cell_start(page_size_);
}

void Node::compact() {
  // check() or our own inserts guarantee the cells fit between the slots and
  // the end of the page; rewriting them contiguously stays inside it.
  assert(kSlotsOffset + 2 * size_t(count()) + used_cell_bytes() <= page_size_);
  std::vector<std::byte> copy(page_size_);
  std::memcpy(copy.data(), page_, page_size_);
  Node old(copy.data(), page_size_);
  size_t at = page_size_;
  for (uint16_t i = 0; i < old.count(); i++) {
    size_t len = kCellOverhead + old.value_len(i);
    at -= len;
    std::memcpy(page_ + at, old.cell(i), len);
    slots()[i] = static_cast<uint16_t>(at);
  }
  set_cell_start(at);
}

void Node::move_tail(uint16_t from, Node& dst) {
  assert(dst.count() == 0 && from <= count());
  for (uint16_t i = from; i < count(); i++) {
    dst.insert_at(dst.count(), key_at(i), value_at(i));
  }
  header()->count = from;
  compact();
}

// Every field is checked before it is used, so that a node that passed is
// safe for every method: each cell lies whole inside the page and below no
// slot, no two cells share a byte (so compact() fits them all back), values
// are as long as the format allows, keys strictly increase, leaves hold only
// known kinds, and an internal node has at least one 8-byte child pointer.
bool Node::check(const char** why) const {
  if (level() >= kMaxTreeHeight) return fail(why, "level out of range");
  if (!is_leaf() && count() == 0) return fail(why, "internal node without children");
  size_t slots_end = kSlotsOffset + 2 * size_t(count());
  if (cell_start() > page_size_) return fail(why, "cell start past the end of the page");
  if (slots_end > cell_start()) return fail(why, "slot array overlaps cells");
  for (uint16_t i = 0; i < count(); i++) {
    if (!check_cell(i, why)) return false;
  }
  return check_overlap(why);
}

bool Node::fail(const char** why, const char* reason) {
  *why = reason;
  return false;
}

// Cell i: inside [cell_start, page_size), a value length the format allows,
// a key above the previous one and of a known kind (an internal node's first
// key excepted: it stands for the lowest key, whatever it holds; the others
// are copies of real keys, and one of an unknown kind would hide items).
bool Node::check_cell(uint16_t i, const char** why) const {
  size_t at = slots()[i];
  if (at < cell_start() || at + kCellOverhead > page_size_) return fail(why, "cell out of bounds");
  size_t len = value_len(i);
  if (at + kCellOverhead + len > page_size_) return fail(why, "cell runs past the end of the page");
  if (is_leaf() && len > max_value_size(page_size_)) return fail(why, "value too long");
  if (!is_leaf() && len != sizeof(uint64_t)) return fail(why, "child pointer is not 8 bytes");
  Key key = key_at(i);
  bool known = key.kind >= uint8_t(KeyKind::kInode) && key.kind <= uint8_t(KeyKind::kOrphan);
  if (!known && (is_leaf() || i > 0)) return fail(why, "unknown key kind");
  if (i > 0 && !(key_at(i - 1) < key)) return fail(why, "keys out of order");
  return true;
}

// Sorted by offset, each cell must end at or before the next one starts.
// Then the cells' bytes add up to at most page_size - cell_start, which is
// what free_bytes() and compact() rely on.
bool Node::check_overlap(const char** why) const {
  std::vector<std::pair<size_t, size_t>> spans(count());  // offset, end
  for (uint16_t i = 0; i < count(); i++) {
    spans[i] = {slots()[i], slots()[i] + kCellOverhead + value_len(i)};
  }
  std::sort(spans.begin(), spans.end());
  for (size_t i = 1; i < spans.size(); i++) {
    if (spans[i - 1].second > spans[i].first) return fail(why, "cells overlap");
  }
  return true;
}

}  // namespace pagefs
