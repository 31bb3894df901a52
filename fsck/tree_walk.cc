// Pass 3, the nodes: a level-by-level walk of the B+tree.
//
// Each level is read in batches of kBatchPages nodes. Children inherit a key
// range from their parent, so every key is checked against the separators all
// the way up, and leaves are met left to right: items arrive in key order.
#include <algorithm>
#include <cassert>
#include <cstring>

#include "fsck/checker.h"

namespace pagefs::fsck {
namespace {

using ull = unsigned long long;

uint16_t load_u16(const uint8_t* p) {
  uint16_t v;
  memcpy(&v, p, sizeof(v));
  return v;
}

}  // namespace

bool Checker::walk_tree() {
  std::vector<NodeRef> level;
  level.push_back(NodeRef{sb_.tree_root, uint16_t(sb_.tree_height - 1), false, false, {}, {}});
  const bool root_claimed = claim(sb_.tree_root);
  assert(root_claimed);  // check_regions put the root in the data region
  (void)root_claimed;
  uint64_t pages[kBatchPages];
  for (uint32_t depth = 0; !level.empty(); depth++) {
    assert(depth < kMaxTreeHeight);  // levels strictly decrease from a height <= kMaxTreeHeight
    std::vector<NodeRef> next;
    for (size_t first = 0; first < level.size(); first += kBatchPages) {
      const size_t n = std::min(kBatchPages, level.size() - first);
      for (size_t i = 0; i < n; i++) pages[i] = level[first + i].page;
      if (!read_pages(pages, n, *node_buf_)) return false;
      for (size_t i = 0; i < n; i++) {
        check_node(level[first + i], node_buf_->data() + i * page_size_, &next);
      }
      if (fatal_) return false;
    }
    level.swap(next);
  }
  if (!flush_data_checks()) return false;
  if (options_.verbose) {
    report_.info("tree: %llu nodes, %llu items, %llu inodes; %llu data pages verified",
                 ull(tree_nodes_), ull(item_count_), ull(inode_records_),
                 ull(data_pages_verified_));
  }
  return true;
}

void Checker::check_node(const NodeRef& ref, const uint8_t* page, std::vector<NodeRef>* next) {
  tree_nodes_++;
  if (!check_meta_header(page, ref.page, PageType::kTreeNode, "tree node")) return;
  NodeHeader nh;
  memcpy(&nh, page + kNodeHeaderOffset, sizeof(nh));
  if (nh.level != ref.level) {
    report_.error("tree node %llu has level %u, expected %u", ull(ref.page), nh.level, ref.level);
    return;
  }
  if (nh.reserved0 != 0 || nh.reserved1 != 0 || nh.reserved2 != 0) {
    report_.error("tree node %llu has nonzero reserved fields", ull(ref.page));
  }
  const bool root_leaf = ref.page == sb_.tree_root && ref.level == 0;
  if (nh.count == 0) {
    // An empty root leaf is an empty tree; its cell_start is not examined
    // (page_size itself does not fit the field when pages are 64 KiB).
    if (!root_leaf) report_.error("tree node %llu is empty", ull(ref.page));
    return;
  }
  if (kSlotsOffset + 2 * size_t{nh.count} > nh.cell_start) {
    report_.error("tree node %llu: %u slots overlap the cells at offset %u", ull(ref.page),
                  nh.count, nh.cell_start);
    return;
  }
  std::vector<Cell> cells;
  if (!parse_cells(ref.page, page, nh.count, nh.cell_start, &cells)) return;
  if (!check_cell_overlap(ref.page, cells)) return;
  check_key_order(ref, cells, nh.level > 0);
  if (nh.level == 0) {
    for (const Cell& cell : cells) check_item(cell);
  } else {
    add_children(ref, cells, next);
  }
}

// Decodes the slots; every cell must lie inside [cell_start, page_size).
bool Checker::parse_cells(uint64_t page_no, const uint8_t* page, uint16_t count,
                          uint16_t cell_start, std::vector<Cell>* cells) {
  cells->reserve(count);
  for (uint16_t i = 0; i < count; i++) {
    const uint16_t offset = load_u16(page + kSlotsOffset + 2 * size_t{i});
    if (offset < cell_start || offset + kCellOverhead > page_size_) {
      report_.error("tree node %llu: slot %u points outside the cell area (offset %u)",
                    ull(page_no), i, offset);
      return false;
    }
    DiskKey dk;
    memcpy(&dk, page + offset, sizeof(dk));
    const uint16_t value_len = load_u16(page + offset + sizeof(DiskKey));
    if (offset + kCellOverhead + value_len > page_size_) {
      report_.error("tree node %llu: cell %u runs past the end of the page (%u value bytes)",
                    ull(page_no), i, value_len);
      return false;
    }
    cells->push_back(
        Cell{Key{dk.ino, dk.kind, dk.off}, offset, value_len, page + offset + kCellOverhead});
  }
  return true;
}

bool Checker::check_cell_overlap(uint64_t page_no, std::vector<Cell> cells) {
  std::sort(cells.begin(), cells.end(),
            [](const Cell& a, const Cell& b) { return a.offset < b.offset; });
  for (size_t i = 1; i < cells.size(); i++) {
    const size_t prev_end = cells[i - 1].offset + kCellOverhead + cells[i - 1].value_len;
    if (prev_end > cells[i].offset) {
      report_.error("tree node %llu: cells at offsets %u and %u overlap", ull(page_no),
                    cells[i - 1].offset, cells[i].offset);
      return false;
    }
  }
  return true;
}

// Keys strictly increase and lie inside the range the parent allows; an internal
// node's first key stands for minus infinity and is not held to the lower bound.
// One error per node is enough.
void Checker::check_key_order(const NodeRef& ref, const std::vector<Cell>& cells, bool internal) {
  for (size_t i = 0; i < cells.size(); i++) {
    const Key& key = cells[i].key;
    const char* what = nullptr;
    if (i > 0 && !(cells[i - 1].key < key)) {
      what = "is not above the previous key";
    } else if (ref.has_lo && key < ref.lo && !(internal && i == 0)) {
      what = "is below the node's lower bound";
    } else if (ref.has_hi && !(key < ref.hi)) {
      what = "is not below the node's upper bound";
    }
    if (what != nullptr) {
      report_.error("tree node %llu: key %s in slot %zu %s", ull(ref.page), to_string(key).c_str(),
                    i, what);
      return;
    }
  }
}

void Checker::add_children(const NodeRef& ref, const std::vector<Cell>& cells,
                           std::vector<NodeRef>* next) {
  for (size_t i = 0; i < cells.size(); i++) {
    const Cell& cell = cells[i];
    uint64_t child = 0;
    if (cell.value_len != sizeof(child)) {
      report_.error("tree node %llu: slot %zu has a %u-byte child pointer", ull(ref.page), i,
                    cell.value_len);
      continue;
    }
    memcpy(&child, cell.value, sizeof(child));
    if (child < sb_.data_start || child >= sb_.page_count) {
      report_.error("tree node %llu: child %llu is outside the data region", ull(ref.page),
                    ull(child));
      continue;
    }
    if (!claim(child)) {
      report_.error("page %llu is claimed twice (again as a child of tree node %llu)", ull(child),
                    ull(ref.page));
      continue;
    }
    // A separator is a copy of a real key (the first one is not a key at all).
    if (i > 0 &&
        (cell.key.kind < uint8_t(KeyKind::kInode) || cell.key.kind > uint8_t(KeyKind::kOrphan))) {
      report_.error("tree node %llu: separator %zu has an unknown key kind %u", ull(ref.page), i,
                    cell.key.kind);
    }
    NodeRef child_ref{child, uint16_t(ref.level - 1), ref.has_lo, ref.has_hi, ref.lo, ref.hi};
    if (i > 0) {
      child_ref.has_lo = true;
      child_ref.lo = cell.key;
    }
    if (i + 1 < cells.size()) {
      child_ref.has_hi = true;
      child_ref.hi = cells[i + 1].key;
    }
    next->push_back(child_ref);
  }
}

}  // namespace pagefs::fsck
