// Repairer: applies a RepairPlan (plan.h) to the device.
//
// When items change, or the tree is damaged, the tree is written anew in
// free pages (TreeBuilder) from three streams merged in key order: the items
// of the intact leaves, the items salvage recovered for damaged ranges, and
// the plan's edits (which win over both; `dropped` inodes lose every item).
// While items stream through, the pages of extents are counted, extents that
// share pages with another owner get copies of them in fresh pages, data
// pages the plan zeroes are zeroed, and every item is held to the engine's
// checks one last time. Then one commit (Writer) switches the superblock to
// the new root together with a bitmap of exactly the pages in use: the old
// tree's pages become free. When only the space map or the superblock need
// fixing, the commit carries just those.
//
// When the bitmap does not fit one transaction (a large device with a small
// journal), the switch takes three steps that each leave a mountable
// filesystem with at worst leaked pages: bitmaps marking the old and the new
// pages in use, the superblock, then the final bitmaps.
//
// Thread-safety: none.
#pragma once

#include <cstdint>
#include <cstdio>
#include <map>
#include <set>

#include "engine/device.h"
#include "engine/result.h"
#include "fsck/plan.h"
#include "fsck/tree_builder.h"
#include "fsck/writer.h"

namespace pagefs::fsck {

struct RepairStats {
  uint64_t items = 0;    // items in the new tree
  uint64_t refused = 0;  // items the engine's checks refused, left out
  uint64_t relocated_pages = 0;
  uint64_t zeroed_pages = 0;
};

class Repairer {
 public:
  Repairer(Device& device, const Superblock& sb, RepairPlan& plan, FILE* out);

  // Applies the plan.
  Status apply();
  // Only sets the superblock's state (after a check found nothing to fix).
  Status mark_clean();
  const RepairStats& stats() const { return stats_; }

 private:
  Status rewrite_tree();
  Status stream_items(TreeBuilder& builder);
  Status emit(TreeBuilder& builder, const Key& key, std::string value);
  Status relocate(ExtentValue& ev);
  void zero_pages(const Key& key, ExtentValue& ev, std::string& value);
  Status switch_to(const PageSet& in_use, Superblock sb);
  Status commit_bitmaps(const PageSet& in_use, const Superblock& sb);
  std::vector<PageImage> bitmap_images(const PageSet& in_use, uint64_t first, uint64_t count);
  bool dropped(const Key& key) const;

  Device& device_;
  Superblock sb_;
  RepairPlan& plan_;
  FILE* out_;
  std::unique_ptr<Writer> writer_;
  std::unique_ptr<PageAllocator> allocator_;
  PageSet in_use_;  // pages the new tree's items reference, and its nodes
  std::set<Key> relocate_;
  std::map<Key, std::vector<uint32_t>> zero_;
  std::vector<PageImage> zeros_;  // zero pages to write once every copy is made
  uint64_t inodes_ = 0;
  uint64_t max_ino_ = 0;
  RepairStats stats_;
};

}  // namespace pagefs::fsck
