// Btree: the one B+tree that holds every item of the filesystem.
//
// Keys are (ino, kind, off) and order items so that everything about one
// inode is adjacent: its record, xattrs, directory entries and extents. Values
// are byte strings of at most max_value_size(page_size). Nodes are slotted
// pages (Node) fetched through the buffer pool and allocated from the space
// map.
//
// Invariants: all leaves are at level 0 and the root at height-1; keys are
// strictly increasing in a node; child i of an internal node holds keys in
// [key(i), key(i+1)) (key(0) is minus infinity); no node but the root is empty.
//
// Nothing read from the device is trusted: every node passes Node::check when
// it is read, and every descent checks that a child pointer lies in the data
// region and that the child's level is its parent's minus one (the root's is
// height-1). So a descent is at most height nodes deep and a pointer cycle
// cannot make it loop; a violation is metadata damage, EIO to the caller.
// Deletion frees a node when it becomes empty instead of merging underfull
// siblings ("free at empty"): lookups stay O(log n) and the code stays small.
//
// Thread-safety: none; the filesystem lock serializes writers against
// everything, readers may run concurrently with each other. The one change
// made under the lock held shared, a value rewritten in place (locate), is
// kept apart from readers of the same item by the caller
// (FileSystem::Impl's item latches).
#pragma once

#include <cstdint>
#include <functional>
#include <optional>
#include <span>
#include <string>

#include "engine/buffer_pool.h"
#include "engine/key.h"
#include "engine/node.h"
#include "engine/result.h"
#include "engine/space_map.h"

namespace pagefs {

struct TreeRoot {
  uint64_t page = 0;
  uint32_t height = 0;
};

class Btree {
 public:
  // Visitor for scan(): return false to stop.
  using Visitor = std::function<bool(const Key&, std::span<const std::byte>)>;
  // Checks a leaf item: true if well formed, else false with the reason in `why`.
  using ItemCheck = std::function<bool(const Key&, std::span<const std::byte>, const char** why)>;

  Btree(BufferPool& pool, SpaceMap& space, TreeRoot& root);

  // Creates an empty tree (one leaf) and stores its location in `root`.
  static Status create(BufferPool& pool, SpaceMap& space, TreeRoot& root);

  // Copies the value of `key` into `out`; false if absent.
  Result<bool> get(const Key& key, std::string* out);
  // Where the value of `key` is stored: its leaf, pinned, and the value's
  // offset and size in it; nullopt if absent. The value may be changed in
  // place, same size, through PageRef::change for as long as the tree's
  // shape does not change (file_overwrite.cc says when that is).
  struct Place {
    PageRef leaf;
    size_t offset = 0;
    size_t size = 0;
  };
  Result<std::optional<Place>> locate(const Key& key);
  // Inserts or replaces.
  Status put(const Key& key, std::span<const std::byte> value);
  // Inserts; EEXIST if present.
  Status insert(const Key& key, std::span<const std::byte> value);
  // Removes; false if absent.
  Result<bool> erase(const Key& key);
  // Visits items with lo <= key <= hi in key order.
  Status scan(const Key& lo, const Key& hi, const Visitor& visit);

  size_t max_value() const { return max_value_size(pool_.page_size()); }

  // From now on every item get() and scan() hand out passes `check` first; one
  // that fails is metadata damage (EIO). Without a check, items are handed out
  // as stored (the tree itself does not know what they mean).
  void set_item_check(ItemCheck check) { item_check_ = std::move(check); }

 private:
  struct Split {
    Key separator;
    uint64_t page;
  };
  enum class PutMode { kUpsert, kInsertOnly };

  // The keys a subtree may hold: lo <= key < hi (its parent's separators).
  struct KeyRange {
    Key lo;
    Key hi;
  };
  static constexpr KeyRange kAllKeys{Key::min(), Key::max()};

  // The node at `page`, which its parent says is at `level` and holds keys
  // of `range` only; a node below the root is never empty.
  Result<PageRef> node_page(uint64_t page, uint32_t level, const KeyRange& range);
  Result<PageRef> root_page() { return node_page(root_.page, root_.height - 1, kAllKeys); }
  // The range of child i of `node`, whose own range is `range`.
  static KeyRange child_range(const Node& node, uint16_t i, const KeyRange& range);
  // Child pointer i of the internal node `node` held by `ref`.
  Result<uint64_t> child_page(const PageRef& ref, const Node& node, uint16_t i);
  // The index of the child of `node` that may hold `key`.
  Result<uint16_t> child_for(const PageRef& ref, const Node& node, const Key& key);
  // Item i of the leaf `node` held by `ref`, checked by item_check_.
  Status check_item(const PageRef& ref, const Node& node, uint16_t i);
  Result<std::optional<Split>> put_rec(uint64_t page, uint32_t level, const KeyRange& range,
                                       const Key& key, std::span<const std::byte> value,
                                       PutMode mode);
  Result<std::optional<Split>> split_and_insert(PageRef& ref, uint16_t pos, const Key& key,
                                                std::span<const std::byte> value);
  // Returns true through `emptied` when the node became empty (and was freed).
  Result<bool> erase_rec(uint64_t page, uint32_t level, const KeyRange& range, const Key& key,
                         bool is_root, bool* emptied);
  Result<bool> scan_rec(uint64_t page, uint32_t level, const KeyRange& range, const Key& lo,
                        const Key& hi, const Visitor& visit);
  Status grow_root(const Split& split);
  Status shrink_root();
  Result<PageRef> new_node(uint16_t level, uint64_t near);
  Status free_node(uint64_t page);

  BufferPool& pool_;
  SpaceMap& space_;
  TreeRoot& root_;
  ItemCheck item_check_;
};

}  // namespace pagefs
