#include "fsck/tree_builder.h"

#include <cassert>
#include <cstring>

#include "engine/buffer_pool.h"
#include "engine/node.h"

namespace pagefs::fsck {
namespace {

constexpr size_t kWriteBatch = 256;

std::byte* bytes_of(PageImage& image) {
  return reinterpret_cast<std::byte*>(image.bytes->data());
}

}  // namespace

Result<uint64_t> PageAllocator::page() {
  return run(1);
}

Result<uint64_t> PageAllocator::run(uint32_t count) {
  assert(count >= 1);
  uint64_t start = next_;
  while (start + count <= end_) {
    uint32_t n = 0;
    while (n < count && free(start + n)) n++;
    if (n == count) {
      for (uint32_t i = 0; i < count; i++) taken_.set(start + i);
      if (count == 1 || start == next_) next_ = start + count;
      return start;
    }
    start += n + 1;
  }
  return Err{ENOSPC};
}

TreeBuilder::TreeBuilder(Writer& writer, PageAllocator& allocator)
    : writer_(writer),
      allocator_(allocator),
      page_size_(writer.page_size()),
      lsn_(writer.next_lsn()) {}

Status TreeBuilder::add(const Key& key, std::span<const std::byte> value) {
  assert(!has_last_ || last_ < key);
  has_last_ = true;
  last_ = key;
  return append(leaves_, 0, key, value);
}

// Appends to the open node of a level, closing it first when the cell would
// take it past the fill target (or not fit at all).
Status TreeBuilder::append(Level& level, uint16_t height, const Key& key,
                           std::span<const std::byte> value) {
  if (level.open.bytes != nullptr) {
    Node node(bytes_of(level.open), page_size_);
    const size_t used = page_size_ - node.free_bytes() + Node::cell_bytes(value.size());
    if (!node.fits(value.size()) || used * 100 > size_t{page_size_} * kFillPercent) {
      PAGEFS_TRY(close(level));
    }
  }
  if (level.open.bytes == nullptr) {
    PAGEFS_TRY(start(level, height));
    level.open_first = key;
  }
  Node node(bytes_of(level.open), page_size_);
  assert(node.fits(value.size()));
  node.insert_at(node.count(), key, value);
  return ok_status();
}

Status TreeBuilder::start(Level& level, uint16_t height) {
  PAGEFS_ASSIGN(uint64_t page, allocator_.page());
  level.open = PageImage{page, writer_.new_page()};
  Node(bytes_of(level.open), page_size_).init(page, height);
  reinterpret_cast<PageHeader*>(level.open.bytes->data())->lsn = lsn_;
  return ok_status();
}

Status TreeBuilder::close(Level& level) {
  level.closed.push_back(Child{level.open_first, level.open.page});
  stamp_meta_page(bytes_of(level.open), page_size_);
  written_.push_back(std::move(level.open));
  level.open = PageImage{};
  nodes_++;
  if (written_.size() >= kWriteBatch) return flush_written();
  return ok_status();
}

Status TreeBuilder::flush_written() {
  PAGEFS_TRY(writer_.write_ahead(written_));
  written_.clear();
  return ok_status();
}

// Closes the leaf level, then builds each level above from the one below
// until a level has a single node: the root. An empty tree is one empty leaf.
Result<BuiltTree> TreeBuilder::finish() {
  if (leaves_.open.bytes == nullptr && leaves_.closed.empty()) PAGEFS_TRY(start(leaves_, 0));
  if (leaves_.open.bytes != nullptr) PAGEFS_TRY(close(leaves_));
  std::vector<Child> below = std::move(leaves_.closed);
  uint16_t height = 1;
  while (below.size() > 1) {
    Level level;
    for (const Child& child : below) {
      const std::span<const std::byte> value(reinterpret_cast<const std::byte*>(&child.page),
                                             sizeof child.page);
      PAGEFS_TRY(append(level, height, child.first, value));
    }
    PAGEFS_TRY(close(level));
    below = std::move(level.closed);
    height++;
  }
  PAGEFS_TRY(flush_written());
  return BuiltTree{below.front().page, height, nodes_};
}

}  // namespace pagefs::fsck
