#include "fsck/repair.h"

#include <algorithm>
#include <cassert>
#include <cstring>

#include "engine/crc32c.h"
#include "engine/items.h"
#include "engine/node.h"

namespace pagefs::fsck {
namespace {

constexpr size_t kReadBatch = 256;

std::span<const std::byte> bytes_of(const std::string& s) {
  return {reinterpret_cast<const std::byte*>(s.data()), s.size()};
}

// Reads the items of the intact leaves, in key order, a batch of pages at a time.
class LeafReader {
 public:
  LeafReader(Device& device, const std::vector<LeafRef>& leaves, uint32_t page_size)
      : device_(device), leaves_(leaves), page_size_(page_size) {}

  // The next item; false at the end. Fails if the device does.
  Result<bool> next(Item* item) {
    for (;;) {
      if (page_ < loaded_) {
        Node node(reinterpret_cast<std::byte*>(buf_->data() + page_ * page_size_), page_size_);
        if (cell_ < node.count()) {
          item->key = node.key_at(cell_);
          auto value = node.value_at(cell_++);
          item->value.assign(reinterpret_cast<const char*>(value.data()), value.size());
          return true;
        }
        page_++;
        cell_ = 0;
        continue;
      }
      if (next_leaf_ == leaves_.size()) return false;
      PAGEFS_TRY(load());
    }
  }

 private:
  Status load() {
    const size_t n = std::min(kReadBatch, leaves_.size() - next_leaf_);
    if (!buf_) buf_ = std::make_unique<AlignedBuffer>(kReadBatch * page_size_);
    for (size_t i = 0; i < n; i++) {
      const uint64_t page = leaves_[next_leaf_ + i].page;
      PAGEFS_TRY(device_.read_at(page * page_size_, buf_->data() + i * page_size_, page_size_));
    }
    next_leaf_ += n;
    loaded_ = n;
    page_ = cell_ = 0;
    return ok_status();
  }

  Device& device_;
  const std::vector<LeafRef>& leaves_;
  const uint32_t page_size_;
  std::unique_ptr<AlignedBuffer> buf_;
  size_t next_leaf_ = 0, loaded_ = 0, page_ = 0;
  uint16_t cell_ = 0;
};

}  // namespace

Repairer::Repairer(Device& device, const Superblock& sb, RepairPlan& plan, FILE* out)
    : device_(device), sb_(sb), plan_(plan), out_(out) {}

Status Repairer::apply() {
  PAGEFS_ASSIGN(writer_, Writer::open(device_, sb_));
  if (plan_.changes_items()) return rewrite_tree();
  Superblock sb = sb_;
  sb.free_pages = sb.page_count - plan_.referenced.count();
  sb.inode_count = plan_.inode_count;
  sb.next_inode = plan_.next_inode;
  if (plan_.bump_mount_count) sb.mount_count++;
  if (sb.state != uint32_t(FsState::kClean)) sb.state = uint32_t(FsState::kMounted);
  if (!plan_.rewrite_bitmap) {
    std::vector<PageImage> none;
    return writer_->commit(none, sb);
  }
  return commit_bitmaps(plan_.referenced, sb);
}

Status Repairer::mark_clean() {
  PAGEFS_ASSIGN(writer_, Writer::open(device_, sb_));
  Superblock sb = sb_;
  sb.state = uint32_t(FsState::kClean);
  std::vector<PageImage> none;
  return writer_->commit(none, sb);
}

// The new tree, then the switch.
Status Repairer::rewrite_tree() {
  for (const Key& key : plan_.relocate) relocate_.insert(key);
  for (const ZeroPage& z : plan_.zero_pages) zero_[z.key].push_back(z.index);
  allocator_ = std::make_unique<PageAllocator>(plan_.busy, sb_.data_start, sb_.page_count);
  in_use_ = PageSet(sb_.page_count);
  for (uint64_t p = 0; p < sb_.data_start; p++) in_use_.set(p);
  TreeBuilder builder(*writer_, *allocator_);
  PAGEFS_TRY(stream_items(builder));
  PAGEFS_ASSIGN(BuiltTree tree, builder.finish());
  PAGEFS_TRY(writer_->write_ahead(zeros_));
  for (uint64_t p = sb_.data_start; p < sb_.page_count; p++) {
    if (allocator_->taken().test(p)) in_use_.set(p);  // new nodes and copies
  }
  Superblock sb = sb_;
  sb.tree_root = tree.root;
  sb.tree_height = tree.height;
  sb.inode_count = inodes_;
  sb.next_inode = std::max(plan_.next_inode, max_ino_ + 1);
  if (plan_.bump_mount_count) sb.mount_count++;
  sb.free_pages = sb.page_count - in_use_.count();
  if (sb.state != uint32_t(FsState::kClean)) sb.state = uint32_t(FsState::kMounted);
  return switch_to(in_use_, sb);
}

// Merges the intact leaves, the salvaged items and the edits in key order.
Status Repairer::stream_items(TreeBuilder& builder) {
  LeafReader leaves(device_, plan_.leaves, sb_.page_size);
  Item leaf;
  PAGEFS_ASSIGN(bool has_leaf, leaves.next(&leaf));
  size_t s = 0;
  auto edit = plan_.edits.begin();
  for (;;) {
    const Key* next = nullptr;
    if (has_leaf) next = &leaf.key;
    if (s < plan_.salvaged.size() && (!next || plan_.salvaged[s].key < *next)) {
      next = &plan_.salvaged[s].key;
    }
    if (edit != plan_.edits.end() && (!next || edit->first < *next)) next = &edit->first;
    if (next == nullptr) return ok_status();
    const Key key = *next;
    std::string value;
    bool present = false;
    if (has_leaf && leaf.key == key) {
      value = std::move(leaf.value);
      present = true;
      PAGEFS_ASSIGN(has_leaf, leaves.next(&leaf));
    }
    if (s < plan_.salvaged.size() && plan_.salvaged[s].key == key) {
      if (!present) value = std::move(plan_.salvaged[s].value);
      present = true;
      s++;
    }
    present = present && !dropped(key);
    if (edit != plan_.edits.end() && edit->first == key) {
      present = edit->second.has_value();
      if (present) value = *edit->second;
      ++edit;
    }
    if (present) PAGEFS_TRY(emit(builder, key, std::move(value)));
  }
}

bool Repairer::dropped(const Key& key) const {
  if (key.kind == uint8_t(KeyKind::kOrphan)) return plan_.dropped.count(key.off) > 0;
  return plan_.dropped.count(key.ino) > 0;
}

// One item into the new tree, after the last changes to its extent pages.
Status Repairer::emit(TreeBuilder& builder, const Key& key, std::string value) {
  if (key.kind == uint8_t(KeyKind::kExtent) && value.size() >= sizeof(ExtentValue)) {
    ExtentValue ev;
    memcpy(&ev, value.data(), sizeof ev);
    if (relocate_.count(key) > 0) {
      PAGEFS_TRY(relocate(ev));
      memcpy(value.data(), &ev, sizeof ev);
    }
    if (zero_.count(key) > 0) zero_pages(key, ev, value);
  }
  const ItemLimits limits{sb_.data_start, sb_.page_count, sb_.page_size,
                          (sb_.features_incompat & kIncompatXattrCrc) != 0};
  const char* why = nullptr;
  // An inode past the largest number would take next_inode past what a
  // mount accepts (salvaged items have not met the checker's rules).
  const uint64_t ino = key.kind == uint8_t(KeyKind::kOrphan) ? key.off : key.ino;
  if (!check_item(key, bytes_of(value), limits, &why) || ino >= kMaxInodeNumber) {
    stats_.refused++;
    return ok_status();
  }
  if (key.kind == uint8_t(KeyKind::kInode)) {
    inodes_++;
    max_ino_ = std::max(max_ino_, key.ino);
  }
  // The pages of extents and of xattr values kept in pages stay in use.
  for_each_item_page(key, value, [&](uint64_t page) { in_use_.set(page); });
  stats_.items++;
  return builder.add(key, bytes_of(value));
}

// Copies the extent's pages to a fresh run, so that the owner that claimed
// them first keeps the originals.
Status Repairer::relocate(ExtentValue& ev) {
  PAGEFS_ASSIGN(uint64_t to, allocator_->run(ev.pages));
  std::vector<PageImage> copies;
  for (uint32_t i = 0; i < ev.pages; i++) {
    PageImage copy{to + i, writer_->new_page()};
    PAGEFS_TRY(device_.read_at((ev.phys + i) * sb_.page_size, copy.bytes->data(), sb_.page_size));
    copies.push_back(std::move(copy));
    in_use_.set(to + i);
  }
  PAGEFS_TRY(writer_->write_ahead(copies));
  ev.phys = to;
  stats_.relocated_pages += ev.pages;
  return ok_status();
}

// Plans zeros for data pages that failed their checksum and stores the zero
// page's CRC for them: the rest of the file reads again. The zeros are
// written once every item has gone by (write_zeros): a page another extent
// shared is copied for that extent first, from its original bytes.
void Repairer::zero_pages(const Key& key, ExtentValue& ev, std::string& value) {
  auto page = writer_->new_page();
  const uint32_t crc = crc32c(page->data(), sb_.page_size);
  for (uint32_t index : zero_[key]) {
    if (index >= ev.pages) continue;
    zeros_.push_back(PageImage{ev.phys + index, std::move(page)});
    page = writer_->new_page();
    memcpy(value.data() + sizeof(ExtentValue) + 4 * size_t{index}, &crc, sizeof crc);
    ev.unwritten_mask &= ~(1u << index);
    stats_.zeroed_pages++;
  }
  memcpy(value.data(), &ev, sizeof ev);
}

// The superblock names the new tree in the same transaction as the bitmap
// that marks its pages, when the bitmap fits one transaction.
Status Repairer::switch_to(const PageSet& in_use, Superblock sb) {
  if (sb.bitmap_pages <= writer_->max_images()) {
    std::vector<PageImage> images = bitmap_images(in_use, 0, sb.bitmap_pages);
    return writer_->commit(images, sb);
  }
  PageSet both = plan_.busy;
  for (uint64_t p = 0; p < sb.page_count; p++) {
    if (in_use.test(p)) both.set(p);
  }
  PAGEFS_TRY(commit_bitmaps(both, writer_->superblock()));
  std::vector<PageImage> none;
  PAGEFS_TRY(writer_->commit(none, sb));
  return commit_bitmaps(in_use, writer_->superblock());
}

// Rewrites the whole bitmap from `in_use`, as many pages per transaction as fit.
Status Repairer::commit_bitmaps(const PageSet& in_use, const Superblock& sb) {
  const uint64_t step = writer_->max_images();
  for (uint64_t first = 0; first < sb.bitmap_pages; first += step) {
    const uint64_t n = std::min(step, sb.bitmap_pages - first);
    std::vector<PageImage> images = bitmap_images(in_use, first, n);
    PAGEFS_TRY(writer_->commit(images, first + n >= sb.bitmap_pages ? sb : writer_->superblock()));
  }
  return ok_status();
}

// Bitmap pages [first, first+count) for the pages in `in_use`; pages at or
// past page_count are marked in use, as mkfs marks them.
std::vector<PageImage> Repairer::bitmap_images(const PageSet& in_use, uint64_t first,
                                               uint64_t count) {
  const uint64_t bits = bitmap_bits_per_page(sb_.page_size);
  std::vector<PageImage> images;
  for (uint64_t k = first; k < first + count; k++) {
    PageImage image{sb_.bitmap_start + k, writer_->new_page()};
    auto* h = reinterpret_cast<PageHeader*>(image.bytes->data());
    h->magic = kPageMagic;
    h->type = uint16_t(PageType::kBitmap);
    h->page_no = image.page;
    uint8_t* map = image.bytes->data() + sizeof(PageHeader);
    for (uint64_t i = 0; i < bits; i++) {
      const uint64_t p = k * bits + i;
      if (p >= sb_.page_count || in_use.test(p)) map[i / 8] |= uint8_t(1u << (i % 8));
    }
    images.push_back(std::move(image));
  }
  return images;
}

}  // namespace pagefs::fsck
