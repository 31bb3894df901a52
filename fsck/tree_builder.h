// TreeBuilder: writes a new B+tree bottom-up from items given in key order.
//
// Leaves are filled in order to kFillPercent of a page (so that the next
// inserts do not split every leaf at once), then each level above holds the
// first key and page number of every node below it, until one node, the
// root, remains. Nodes are formatted by the engine's Node (engine/node.h), so
// their layout is exactly what the engine writes; their pages come from a
// PageAllocator (free pages only) and go to the device through
// Writer::write_ahead, in batches, before anything references them. Every
// node carries the LSN of the commit that will make it reachable.
//
// Memory: one page per node of the level being filled and a batch of written
// pages; one (key, page) pair per node for the level above.
// Thread-safety: none.
#pragma once

#include <cstdint>
#include <span>
#include <vector>

#include "engine/key.h"
#include "engine/result.h"
#include "fsck/page_set.h"
#include "fsck/writer.h"

namespace pagefs::fsck {

// Hands out pages of [first, end) that are not in `busy`, in increasing
// order, and marks them in `taken`.
class PageAllocator {
 public:
  PageAllocator(const PageSet& busy, uint64_t first, uint64_t end)
      : busy_(busy), next_(first), end_(end), taken_(busy.size()) {}

  // One page, or ENOSPC.
  Result<uint64_t> page();
  // `count` consecutive pages, or ENOSPC.
  Result<uint64_t> run(uint32_t count);
  const PageSet& taken() const { return taken_; }

 private:
  bool free(uint64_t p) const { return !busy_.test(p) && !taken_.test(p); }

  const PageSet& busy_;
  uint64_t next_;
  const uint64_t end_;
  PageSet taken_;
};

struct BuiltTree {
  uint64_t root = 0;
  uint32_t height = 0;
  uint64_t nodes = 0;
};

class TreeBuilder {
 public:
  static constexpr unsigned kFillPercent = 85;

  TreeBuilder(Writer& writer, PageAllocator& allocator);

  // Appends an item; keys must strictly increase.
  Status add(const Key& key, std::span<const std::byte> value);
  // Writes the last nodes and every level above the leaves.
  Result<BuiltTree> finish();

 private:
  struct Child {
    Key first;
    uint64_t page;
  };
  // A level being filled: its open node and the nodes it closed.
  struct Level {
    PageImage open;
    std::vector<Child> closed;
    Key open_first;
  };

  Status append(Level& level, uint16_t height, const Key& key, std::span<const std::byte> value);
  Status close(Level& level);
  Status start(Level& level, uint16_t height);
  Status flush_written();

  Writer& writer_;
  PageAllocator& allocator_;
  const uint32_t page_size_;
  const uint64_t lsn_;
  Level leaves_;
  std::vector<PageImage> written_;  // closed nodes not yet sent to the device
  uint64_t nodes_ = 0;
  bool has_last_ = false;
  Key last_;
};

}  // namespace pagefs::fsck
