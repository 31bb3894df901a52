// RawNode: the fuzzer's own view of a B+tree node page (format.h), to read
// an undamaged node and to damage one field at a time. It trusts nothing:
// every accessor of a cell checks that the cell lies inside the page, since
// the page may already carry an earlier mutation.
#pragma once

#include <cstddef>
#include <cstdint>
#include <cstring>
#include <optional>

#include "engine/format.h"

namespace pagefs::fuzz {

class RawNode {
 public:
  RawNode(std::byte* page, uint32_t page_size) : page_(page), page_size_(page_size) {}

  bool is_node() const {
    PageHeader h;
    std::memcpy(&h, page_, sizeof h);
    return h.magic == kPageMagic && h.type == uint16_t(PageType::kTreeNode);
  }

  uint16_t count() const { return field(0); }
  uint16_t level() const { return field(2); }
  uint16_t cell_start() const { return field(4); }
  void set_count(uint16_t v) { set_field(0, v); }
  void set_level(uint16_t v) { set_field(2, v); }
  void set_cell_start(uint16_t v) { set_field(4, v); }

  // Slot i, if the slot array still fits in the page.
  std::optional<uint16_t> slot(uint16_t i) const {
    size_t at = kSlotsOffset + 2 * size_t(i);
    if (at + 2 > page_size_) return std::nullopt;
    uint16_t v;
    std::memcpy(&v, page_ + at, 2);
    return v;
  }
  void set_slot(uint16_t i, uint16_t v) {
    std::memcpy(page_ + kSlotsOffset + 2 * size_t(i), &v, 2);
  }

  // Offset of cell i if its key, length and value lie inside the page.
  std::optional<size_t> cell(uint16_t i) const {
    auto at = slot(i);
    if (!at || *at < kSlotsOffset || *at + kCellOverhead > page_size_) return std::nullopt;
    if (*at + kCellOverhead + value_len_at(*at) > page_size_) return std::nullopt;
    return *at;
  }
  DiskKey key_at(size_t cell) const {
    DiskKey k;
    std::memcpy(&k, page_ + cell, sizeof k);
    return k;
  }
  void set_key_at(size_t cell, const DiskKey& k) { std::memcpy(page_ + cell, &k, sizeof k); }
  uint16_t value_len_at(size_t cell) const {
    uint16_t v;
    std::memcpy(&v, page_ + cell + sizeof(DiskKey), 2);
    return v;
  }
  void set_value_len_at(size_t cell, uint16_t v) {
    std::memcpy(page_ + cell + sizeof(DiskKey), &v, 2);
  }
  std::byte* value_at(size_t cell) const { return page_ + cell + kCellOverhead; }

 private:
  uint16_t field(size_t at) const {
    uint16_t v;
    std::memcpy(&v, page_ + kNodeHeaderOffset + at, 2);
    return v;
  }
  void set_field(size_t at, uint16_t v) { std::memcpy(page_ + kNodeHeaderOffset + at, &v, 2); }

  std::byte* page_;
  uint32_t page_size_;
};

}  // namespace pagefs::fuzz
