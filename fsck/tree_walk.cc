// Pass 3, the nodes: a level-by-level walk of the B+tree.
//
// Each level is read in batches of kBatchPages nodes. Children inherit a key
// range from their parent, so every key is checked against the separators all
// the way up, and leaves are met left to right: items arrive in key order.
//
// A node that cannot be used (unreadable, a bad checksum, an impossible
// layout, keys outside its range, a pointer to a page already in use) leaves
// its whole key range unread: the range is recorded as damaged, and when
// repairing, salvage.cc recovers its items from other copies of tree pages.
// Leaves that pass every check are listed in the plan, in key order, for the
// repair to copy.
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
  level.push_back(NodeRef{sb_.tree_root, uint16_t(sb_.tree_height - 1), KeyRange{}});
  const bool root_claimed = claim(sb_.tree_root);
  assert(root_claimed);  // superblock_valid put the root in the data region
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
      advance(n);
      if (fatal_) return false;
    }
    level.swap(next);
  }
  if (!flush_data_checks()) return false;
  if (!damaged_nodes_.empty() && options_.mode != Mode::kCheck && !salvage()) return false;
  if (options_.verbose) {
    report_.info("tree: %llu nodes, %llu items, %llu inodes; %llu data pages verified",
                 ull(tree_nodes_), ull(item_count_), ull(inode_records_),
                 ull(data_pages_verified_));
  }
  return true;
}

void Checker::mark_damaged(uint64_t page, const KeyRange& range, std::string why) {
  damaged_nodes_.push_back(DamagedNode{page, range, std::move(why)});
  damaged_pages_.insert(page);
  plan_.damaged.push_back(range);
}

void Checker::check_node(const NodeRef& ref, const uint8_t* page, std::vector<NodeRef>* next) {
  tree_nodes_++;
  std::string why;
  if (!check_meta_header(page, ref.page, PageType::kTreeNode, &why)) {
    return mark_damaged(ref.page, ref.range, why);
  }
  NodeHeader nh;
  memcpy(&nh, page + kNodeHeaderOffset, sizeof(nh));
  if (nh.level != ref.level) {
    return mark_damaged(
        ref.page, ref.range,
        "has level " + std::to_string(nh.level) + ", expected " + std::to_string(ref.level));
  }
  if (header_reserved_set(page) || nh.reserved0 != 0 || nh.reserved1 != 0 || nh.reserved2 != 0) {
    report_.at(Fix::kRepair, "tree node " + std::to_string(ref.page), "rewrite the tree",
               "has nonzero reserved fields");
    plan_.rewrite_tree = true;
  }
  const bool root_leaf = ref.page == sb_.tree_root && ref.level == 0;
  if (nh.count == 0) {
    // An empty root leaf is an empty tree; its cell_start is not examined
    // (page_size itself does not fit the field when pages are 64 KiB).
    if (!root_leaf) {
      report_.at(Fix::kRepair, "tree node " + std::to_string(ref.page), "rewrite the tree",
                 "is empty");
      plan_.rewrite_tree = true;
    }
    if (ref.level == 0) plan_.leaves.push_back(LeafRef{ref.page, ref.range});
    return;
  }
  std::vector<Cell> cells;
  if (kSlotsOffset + 2 * size_t{nh.count} > nh.cell_start) {
    return mark_damaged(ref.page, ref.range,
                        "has " + std::to_string(nh.count) + " slots overlapping its cells");
  }
  if (!parse_cells(page, nh.count, nh.cell_start, &cells, &why) ||
      !check_cell_overlap(cells, &why) || !check_key_order(ref, cells, nh.level > 0, &why)) {
    return mark_damaged(ref.page, ref.range, why);
  }
  if (nh.level > 0) return add_children(ref, cells, next);
  plan_.leaves.push_back(LeafRef{ref.page, ref.range});
  for (const Cell& cell : cells) check_item(cell);
}

// Decodes the slots; every cell must lie inside [cell_start, page_size).
bool Checker::parse_cells(const uint8_t* page, uint16_t count, uint16_t cell_start,
                          std::vector<Cell>* cells, std::string* why) const {
  cells->reserve(count);
  for (uint16_t i = 0; i < count; i++) {
    const uint16_t offset = load_u16(page + kSlotsOffset + 2 * size_t{i});
    if (offset < cell_start || offset + kCellOverhead > page_size_) {
      *why = "has slot " + std::to_string(i) + " outside the cell area";
      return false;
    }
    const uint16_t value_len = load_u16(page + offset + sizeof(DiskKey));
    if (offset + kCellOverhead + value_len > page_size_) {
      *why = "has cell " + std::to_string(i) + " running past the end of the page";
      return false;
    }
    cells->push_back(Cell{Key::load(reinterpret_cast<const std::byte*>(page + offset)), offset,
                          value_len, page + offset + kCellOverhead});
  }
  return true;
}

bool Checker::check_cell_overlap(std::vector<Cell> cells, std::string* why) {
  std::sort(cells.begin(), cells.end(),
            [](const Cell& a, const Cell& b) { return a.offset < b.offset; });
  for (size_t i = 1; i < cells.size(); i++) {
    const size_t prev_end = cells[i - 1].offset + kCellOverhead + cells[i - 1].value_len;
    if (prev_end > cells[i].offset) {
      *why = "has overlapping cells at offsets " + std::to_string(cells[i - 1].offset) + " and " +
             std::to_string(cells[i].offset);
      return false;
    }
  }
  return true;
}

// Keys strictly increase and lie inside the range the parent allows; an internal
// node's first key stands for minus infinity and is not held to the lower bound.
bool Checker::check_key_order(const NodeRef& ref, const std::vector<Cell>& cells, bool internal,
                              std::string* why) {
  for (size_t i = 0; i < cells.size(); i++) {
    const Key& key = cells[i].key;
    const char* what = nullptr;
    if (i > 0 && !(cells[i - 1].key < key)) {
      what = "is not above the previous key";
    } else if (ref.range.has_lo && key < ref.range.lo && !(internal && i == 0)) {
      what = "is below the node's lower bound";
    } else if (ref.range.has_hi && !(key < ref.range.hi)) {
      what = "is not below the node's upper bound";
    }
    if (what != nullptr) {
      *why = "key " + to_string(key) + " in slot " + std::to_string(i) + " " + what;
      return false;
    }
  }
  return true;
}

void Checker::add_children(const NodeRef& ref, const std::vector<Cell>& cells,
                           std::vector<NodeRef>* next) {
  for (size_t i = 0; i < cells.size(); i++) {
    const Cell& cell = cells[i];
    // A separator is a copy of a real key (the first one stands for the
    // lowest key and is none): the engine refuses a node with a separator of
    // an unknown kind. The ranges it gives still hold the children to it, so
    // the leaves found are whole and the tree is written anew from them.
    if (i > 0 &&
        (cell.key.kind < uint8_t(KeyKind::kInode) || cell.key.kind > uint8_t(KeyKind::kOrphan))) {
      report_.at(Fix::kRepair, "tree node " + std::to_string(ref.page), "rewrite the tree",
                 "separator %zu has an unknown key kind %u", i, cell.key.kind);
      plan_.rewrite_tree = true;
    }
    KeyRange range = ref.range;
    if (i > 0) {
      range.has_lo = true;
      range.lo = cell.key;
    }
    if (i + 1 < cells.size()) {
      range.has_hi = true;
      range.hi = cells[i + 1].key;
    }
    uint64_t child = 0;
    if (cell.value_len != sizeof(child)) {
      mark_damaged(ref.page, range, "has a " + std::to_string(cell.value_len) + "-byte pointer");
      continue;
    }
    memcpy(&child, cell.value, sizeof(child));
    if (child < sb_.data_start || child >= sb_.page_count) {
      mark_damaged(ref.page, range,
                   "points to page " + std::to_string(child) + ", outside the data region");
      continue;
    }
    if (!claim(child)) {
      mark_damaged(ref.page, range,
                   "points to page " + std::to_string(child) + ", which is already in use");
      continue;
    }
    next->push_back(NodeRef{child, uint16_t(ref.level - 1), range});
  }
}

}  // namespace pagefs::fsck
