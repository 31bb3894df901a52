// RepairPlan: what one check decided to change, for Repairer (repair.h) to apply.
//
// The checker fills it as it finds problems, so that the plan and the report
// always agree: every problem with a fix adds the change that fixes it. The
// plan describes the filesystem after the repair as differences from the tree
// the check read:
//
//   - items: `edits` replaces or deletes single items, `dropped` removes every
//     item of an inode (a freed orphan, a broken symlink);
//   - tree: the leaves the walk read intact, in key order, and the key ranges
//     it could not read; `salvaged` holds the items recovered for those ranges
//     from other copies of tree pages (a scan of the data region and the
//     journal);
//   - extents whose pages another owner claimed first get fresh copies of
//     their pages (`relocate`), and data pages that fail their checksum may be
//     replaced by zeros (`zero_pages`);
//   - the space map and the superblock, which Repairer recomputes from what it
//     writes whenever it rewrites the tree.
//
// Thread-safety: none; a value type.
#pragma once

#include <cstdint>
#include <cstring>
#include <map>
#include <optional>
#include <set>
#include <string>
#include <vector>

#include "engine/format.h"
#include "engine/key.h"
#include "fsck/page_set.h"

namespace pagefs::fsck {

// A key range: lo <= key < hi, each bound optional (absent: unbounded).
struct KeyRange {
  bool has_lo = false, has_hi = false;
  Key lo, hi;

  bool contains(const Key& key) const { return (!has_lo || !(key < lo)) && (!has_hi || key < hi); }
};

// A leaf the walk read intact, and the key range its parents allow it.
struct LeafRef {
  uint64_t page = 0;
  KeyRange range;
};

struct Item {
  Key key;
  std::string value;
};

// Calls `fn(page)` for each device page whose bytes an item holds: the pages
// of an extent, and those of an xattr value kept in pages. The item must have
// passed the engine's item checks (engine/items.h), which bound its sizes.
template <class Fn>
void for_each_item_page(const Key& key, const std::string& value, Fn&& fn) {
  if (key.kind == uint8_t(KeyKind::kExtent)) {
    ExtentValue ev;
    std::memcpy(&ev, value.data(), sizeof ev);
    for (uint32_t i = 0; i < ev.pages; i++) fn(ev.phys + i);
    return;
  }
  XattrValue xv;
  if (key.kind != uint8_t(KeyKind::kXattr)) return;
  std::memcpy(&xv, value.data(), sizeof xv);
  if (!(xv.flags & kXattrInPages)) return;
  const char* record =
      value.data() + sizeof xv + xv.name_len + ((xv.flags & kXattrCrc) ? kXattrCrcBytes : 0);
  XattrPages xp;
  std::memcpy(&xp, record, sizeof xp);
  for (uint32_t i = 0; i < xp.pages; i++) {
    XattrPage page;
    std::memcpy(&page, record + sizeof xp + sizeof page * i, sizeof page);
    fn(page.phys);
  }
}

// A data page to replace with zeros: page `index` of the extent at `key`.
struct ZeroPage {
  Key key;
  uint32_t index = 0;
};

struct RepairPlan {
  // ---- the tree ----
  std::vector<LeafRef> leaves;    // intact leaves, in key order
  std::vector<KeyRange> damaged;  // ranges the walk could not read
  std::vector<Item> salvaged;     // items recovered for `damaged`, in key order
  bool rewrite_tree = false;      // node-level problems: write the tree anew

  // ---- items ----
  std::map<Key, std::optional<std::string>> edits;  // nullopt: delete the item
  std::set<uint64_t> dropped;                       // inodes removed with all their items
  std::vector<Key> relocate;                        // extents to copy to fresh pages
  std::vector<ZeroPage> zero_pages;

  // ---- space and superblock ----
  bool rewrite_bitmap = false;
  bool rewrite_superblock = false;
  // Pages the repair must not write over: everything the current tree
  // references, every page the bitmap marks in use, every salvage source.
  PageSet busy;
  // Pages in use (reserved regions, tree nodes, extents) as the check found
  // them, for a repair that keeps the tree.
  PageSet referenced;
  uint64_t inode_count = 0;  // inode records the check found
  uint64_t next_inode = 0;   // the lowest next_inode that is safe
  // The repair makes inodes (new generation): it counts as a mount.
  bool bump_mount_count = false;

  bool changes_items() const {
    return rewrite_tree || !damaged.empty() || !edits.empty() || !dropped.empty() ||
           !relocate.empty() || !zero_pages.empty();
  }
  bool empty() const {
    return !changes_items() && !rewrite_bitmap && !rewrite_superblock && !bump_mount_count;
  }
};

}  // namespace pagefs::fsck
