#include "engine/btree.h"

#include <algorithm>
#include <cassert>
#include <cstring>

#include "engine/log.h"
#include "engine/node.h"

namespace pagefs {

Btree::Btree(BufferPool& pool, SpaceMap& space, TreeRoot& root)
    : pool_(pool), space_(space), root_(root) {}

Status Btree::create(BufferPool& pool, SpaceMap& space, TreeRoot& root) {
  Btree tree(pool, space, root);
  PAGEFS_ASSIGN(PageRef ref, tree.new_node(0, 0));
  root.page = ref.page_no().value;
  root.height = 1;
  return ok_status();
}

namespace {

// Node structure is checked once, when the page comes from the device; a
// cached node was built or checked by this process.
bool valid_node(const std::byte* page, uint32_t page_size, const char** why) {
  return Node(const_cast<std::byte*>(page), page_size).check(why);
}

}  // namespace

// The level check bounds every descent (cycles included); the range check
// catches a child pointer aimed at another node of the right level, and a
// separator key changed, which would otherwise hide or misplace items.
Result<PageRef> Btree::node_page(uint64_t page, uint32_t level, const KeyRange& range) {
  PAGEFS_ASSIGN(PageRef ref, pool_.fetch_meta(PageNo{page}, PageType::kTreeNode, valid_node));
  Node node(ref.data(), pool_.page_size());
  if (node.level() != level) {
    return pool_.metadata_error(PageNo{page}, "tree node at level %u where level %u belongs",
                                node.level(), level);
  }
  const bool root = level == root_.height - 1;
  if (node.count() == 0) {
    if (root) return ref;
    return pool_.metadata_error(PageNo{page}, "empty tree node below the root");
  }
  // An internal node's first key stands for the lowest one its range allows.
  const uint16_t first = node.is_leaf() ? 0 : 1;
  if (first < node.count() &&
      (node.key_at(first) < range.lo || !(node.key_at(node.count() - 1) < range.hi))) {
    return pool_.metadata_error(PageNo{page},
                                "tree node keys outside the range its parent gives it");
  }
  return ref;
}

Btree::KeyRange Btree::child_range(const Node& node, uint16_t i, const KeyRange& range) {
  KeyRange r = range;
  if (i > 0) r.lo = node.key_at(i);
  if (i + 1 < node.count()) r.hi = node.key_at(i + 1);
  return r;
}

// Checked before the child is read: a pointer at a superblock, the journal or
// past the end is damage in this node, not a bad page elsewhere.
Result<uint64_t> Btree::child_page(const PageRef& ref, const Node& node, uint16_t i) {
  uint64_t child = node.child_at(i);
  if (!space_.in_data_region(child)) {
    return pool_.metadata_error(ref.page_no(),
                                "child %u points at page %llu, outside the data region", i,
                                (unsigned long long)child);
  }
  return child;
}

Status Btree::check_item(const PageRef& ref, const Node& node, uint16_t i) {
  const char* why = nullptr;
  if (!item_check_ || item_check_(node.key_at(i), node.value_at(i), &why)) return ok_status();
  Key k = node.key_at(i);
  return pool_.metadata_error(ref.page_no(), "item (%llu, %u, %llu): %s", (unsigned long long)k.ino,
                              k.kind, (unsigned long long)k.off, why);
}

Result<uint16_t> Btree::child_for(const PageRef& ref, const Node& node, const Key& key) {
  if (node.count() == 0) {
    return pool_.metadata_error(ref.page_no(), "internal node without children");
  }
  return node.child_index(key);
}

Result<PageRef> Btree::new_node(uint16_t level, uint64_t near) {
  PAGEFS_ASSIGN(PageRun run, space_.allocate(PageNo{near}, 1, /*metadata=*/true));
  PAGEFS_ASSIGN(PageRef ref, pool_.create(run.start, /*meta=*/true));
  Node(ref.data(), pool_.page_size()).init(run.start.value, level);
  ref.mark_dirty();
  return ref;
}

Status Btree::free_node(uint64_t page) {
  pool_.discard(PageNo{page});
  return space_.free(PageNo{page}, 1);
}

// ---- lookup -----------------------------------------------------------------

Result<bool> Btree::get(const Key& key, std::string* out) {
  PAGEFS_ASSIGN(std::optional<Place> place, locate(key));
  if (!place) return false;
  if (out)
    out->assign(reinterpret_cast<const char*>(place->leaf.data() + place->offset), place->size);
  return true;
}

// Each step goes one level down (node_page checks it), so the loop ends at a
// leaf after at most height steps.
Result<std::optional<Btree::Place>> Btree::locate(const Key& key) {
  uint64_t page = root_.page;
  KeyRange range = kAllKeys;
  for (uint32_t level = root_.height - 1;; level--) {
    PAGEFS_ASSIGN(PageRef ref, node_page(page, level, range));
    Node node(ref.data(), pool_.page_size());
    if (node.is_leaf()) {
      uint16_t i = node.lower_bound(key);
      if (i == node.count() || node.key_at(i) != key) return std::optional<Place>();
      PAGEFS_TRY(check_item(ref, node, i));
      auto v = node.value_at(i);
      const size_t offset = size_t(v.data() - ref.data());
      return std::optional<Place>(Place{std::move(ref), offset, v.size()});
    }
    PAGEFS_ASSIGN(uint16_t idx, child_for(ref, node, key));
    PAGEFS_ASSIGN(page, child_page(ref, node, idx));
    range = child_range(node, idx, range);
  }
}

Status Btree::scan(const Key& lo, const Key& hi, const Visitor& visit) {
  if (hi < lo) return ok_status();
  PAGEFS_TRY(scan_rec(root_.page, root_.height - 1, kAllKeys, lo, hi, visit));
  return ok_status();
}

// Returns false once the visitor asked to stop or the keys passed `hi`.
Result<bool> Btree::scan_rec(uint64_t page, uint32_t level, const KeyRange& range, const Key& lo,
                             const Key& hi, const Visitor& visit) {
  PAGEFS_ASSIGN(PageRef ref, node_page(page, level, range));
  Node node(ref.data(), pool_.page_size());
  if (node.is_leaf()) {
    for (uint16_t i = node.lower_bound(lo); i < node.count(); i++) {
      Key k = node.key_at(i);
      if (hi < k) return false;
      PAGEFS_TRY(check_item(ref, node, i));
      if (!visit(k, node.value_at(i))) return false;
    }
    return true;
  }
  PAGEFS_ASSIGN(uint16_t first, child_for(ref, node, lo));
  for (uint16_t i = first; i < node.count(); i++) {
    if (i > 0 && hi < node.key_at(i)) return false;
    PAGEFS_ASSIGN(uint64_t child, child_page(ref, node, i));
    PAGEFS_ASSIGN(bool more,
                  scan_rec(child, level - 1, child_range(node, i, range), lo, hi, visit));
    if (!more) return false;
  }
  return true;
}

// ---- insert -----------------------------------------------------------------

Status Btree::put(const Key& key, std::span<const std::byte> value) {
  if (value.size() > max_value()) return Err{E2BIG};
  PAGEFS_ASSIGN(auto split,
                put_rec(root_.page, root_.height - 1, kAllKeys, key, value, PutMode::kUpsert));
  if (split) PAGEFS_TRY(grow_root(*split));
  return ok_status();
}

Status Btree::insert(const Key& key, std::span<const std::byte> value) {
  if (value.size() > max_value()) return Err{E2BIG};
  PAGEFS_ASSIGN(auto split,
                put_rec(root_.page, root_.height - 1, kAllKeys, key, value, PutMode::kInsertOnly));
  if (split) PAGEFS_TRY(grow_root(*split));
  return ok_status();
}

Result<std::optional<Btree::Split>> Btree::put_rec(uint64_t page, uint32_t level,
                                                   const KeyRange& range, const Key& key,
                                                   std::span<const std::byte> value, PutMode mode) {
  PAGEFS_ASSIGN(PageRef ref, node_page(page, level, range));
  Node node(ref.data(), pool_.page_size());
  if (node.is_leaf()) {
    uint16_t pos = node.lower_bound(key);
    if (pos < node.count() && node.key_at(pos) == key) {
      if (mode == PutMode::kInsertOnly) return Err{EEXIST};
      auto old = node.mutable_value_at(pos);
      ref.mark_dirty();
      if (old.size() == value.size()) {
        std::memcpy(old.data(), value.data(), value.size());
        return std::optional<Split>();
      }
      node.erase_at(pos);
    }
    ref.mark_dirty();
    if (node.fits(value.size())) {
      node.insert_at(pos, key, value);
      return std::optional<Split>();
    }
    return split_and_insert(ref, pos, key, value);
  }
  PAGEFS_ASSIGN(uint16_t idx, child_for(ref, node, key));
  PAGEFS_ASSIGN(uint64_t child_no, child_page(ref, node, idx));
  PAGEFS_ASSIGN(auto child_split,
                put_rec(child_no, level - 1, child_range(node, idx, range), key, value, mode));
  if (!child_split) return std::optional<Split>();
  uint64_t child = child_split->page;
  std::span<const std::byte> child_bytes(reinterpret_cast<const std::byte*>(&child), 8);
  ref.mark_dirty();
  if (node.fits(8)) {
    node.insert_at(idx + 1, child_split->separator, child_bytes);
    return std::optional<Split>();
  }
  return split_and_insert(ref, idx + 1, child_split->separator, child_bytes);
}

// Splits a full node in two halves by bytes and inserts the new cell into the
// half where it belongs; the new right node's first key is the separator. An
// append at the end of the node (sequential inserts) moves only the last cell,
// so sequentially filled nodes stay full. Either half has room for the new
// cell: a half holds at most half the page, and a cell at most a quarter.
Result<std::optional<Btree::Split>> Btree::split_and_insert(PageRef& ref, uint16_t pos,
                                                            const Key& key,
                                                            std::span<const std::byte> value) {
  Node left(ref.data(), pool_.page_size());
  uint16_t n = left.count();
  assert(n >= 2);
  uint16_t mid = n - 1;
  if (pos < n) {
    size_t total = 0, acc = 0;
    for (uint16_t i = 0; i < n; i++) total += left.cell_bytes_at(i);
    mid = 0;
    while (mid < n && acc + left.cell_bytes_at(mid) <= total / 2) acc += left.cell_bytes_at(mid++);
    mid = std::clamp<uint16_t>(mid, 1, n - 1);
  }
  PAGEFS_ASSIGN(PageRef right_ref, new_node(left.level(), ref.page_no().value));
  Node right(right_ref.data(), pool_.page_size());
  left.move_tail(mid, right);
  if (pos < mid) {
    left.insert_at(pos, key, value);
  } else {
    right.insert_at(pos - mid, key, value);
  }
  return std::optional<Split>(Split{right.key_at(0), right_ref.page_no().value});
}

Status Btree::grow_root(const Split& split) {
  uint64_t old_root = root_.page;
  PAGEFS_ASSIGN(PageRef ref, new_node(static_cast<uint16_t>(root_.height), old_root));
  Node node(ref.data(), pool_.page_size());
  node.insert_at(0, Key::min(),
                 std::span<const std::byte>(reinterpret_cast<const std::byte*>(&old_root), 8));
  node.insert_at(1, split.separator,
                 std::span<const std::byte>(reinterpret_cast<const std::byte*>(&split.page), 8));
  root_.page = ref.page_no().value;
  root_.height++;
  return ok_status();
}

// ---- erase ------------------------------------------------------------------

Result<bool> Btree::erase(const Key& key) {
  bool emptied = false;
  PAGEFS_ASSIGN(bool found, erase_rec(root_.page, root_.height - 1, kAllKeys, key, true, &emptied));
  if (found) PAGEFS_TRY(shrink_root());
  return found;
}

Result<bool> Btree::erase_rec(uint64_t page, uint32_t level, const KeyRange& range, const Key& key,
                              bool is_root, bool* emptied) {
  PAGEFS_ASSIGN(PageRef ref, node_page(page, level, range));
  Node node(ref.data(), pool_.page_size());
  bool found = false;
  if (node.is_leaf()) {
    uint16_t pos = node.lower_bound(key);
    if (pos == node.count() || node.key_at(pos) != key) return false;
    ref.mark_dirty();
    node.erase_at(pos);
    found = true;
  } else {
    PAGEFS_ASSIGN(uint16_t idx, child_for(ref, node, key));
    PAGEFS_ASSIGN(uint64_t child, child_page(ref, node, idx));
    bool child_emptied = false;
    PAGEFS_ASSIGN(found, erase_rec(child, level - 1, child_range(node, idx, range), key, false,
                                   &child_emptied));
    if (child_emptied) {
      ref.mark_dirty();
      node.erase_at(idx);
    }
  }
  if (node.count() == 0 && !is_root) {
    ref.reset();
    PAGEFS_TRY(free_node(page));
    *emptied = true;
  }
  return found;
}

// An internal root with one child hands the root role to that child; an
// internal root with none (everything deleted) becomes an empty leaf. The
// child is read (and its level checked) before the old root is freed, so a
// damaged child never becomes the root.
Status Btree::shrink_root() {
  for (;;) {
    PAGEFS_ASSIGN(PageRef ref, root_page());
    Node node(ref.data(), pool_.page_size());
    if (node.is_leaf()) return ok_status();
    if (node.count() == 0) {
      ref.mark_dirty();
      node.init(root_.page, 0);
      root_.height = 1;
      return ok_status();
    }
    if (node.count() > 1) return ok_status();
    PAGEFS_ASSIGN(uint64_t child, child_page(ref, node, 0));
    PAGEFS_TRY(node_page(child, root_.height - 2, kAllKeys));
    uint64_t old = root_.page;
    ref.reset();
    PAGEFS_TRY(free_node(old));
    root_.page = child;
    root_.height--;
  }
}

}  // namespace pagefs
