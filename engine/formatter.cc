#include "engine/formatter.h"

#include <sys/stat.h>

#include <cstdlib>
#include <cstring>
#include <ctime>
#include <memory>
#include <random>

#include "engine/btree.h"
#include "engine/buffer_pool.h"
#include "engine/space_map.h"

namespace pagefs {
namespace {

struct Geometry {
  uint64_t page_count, journal_start, journal_pages, bitmap_start, bitmap_pages, data_start;
};

uint64_t bitmap_pages_for(uint64_t page_count, uint32_t page_size) {
  uint64_t bits = bitmap_bits_per_page(page_size);
  return page_count / bits + (page_count % bits != 0);
}

// `grow_limit_bytes` as FormatOptions says, in pages; saturates rather than wraps.
uint64_t grow_limit_pages(uint64_t device_bytes, uint32_t page_size, uint64_t grow_limit_bytes) {
  uint64_t limit = grow_limit_bytes;
  if (limit == 0) {
    limit = device_bytes > UINT64_MAX / kDefaultGrowFactor ? UINT64_MAX
                                                           : device_bytes * kDefaultGrowFactor;
  }
  return limit / page_size;
}

Geometry plan(uint64_t device_bytes, uint32_t page_size, uint64_t journal_bytes,
              uint64_t limit_pages) {
  Geometry g{};
  g.page_count = device_bytes / page_size;
  if (journal_bytes == 0) {
    // 1/64 of the device, between 4 MiB and 256 MiB, and at most a quarter
    // of a small device.
    journal_bytes = std::clamp<uint64_t>(device_bytes / 64, 4 << 20, 256ull << 20);
    journal_bytes = std::min<uint64_t>(journal_bytes, device_bytes / 4);
  }
  g.journal_start = 2;
  g.journal_pages = std::max<uint64_t>(journal_bytes / page_size, kMinJournalPages);
  g.bitmap_start = g.journal_start + g.journal_pages;
  g.bitmap_pages = bitmap_pages_for(g.page_count, page_size);
  g.data_start = g.bitmap_start + bitmap_area_pages(g.page_count, limit_pages, page_size);
  return g;
}

// Zeroes the journal region so that no stale bytes look like records.
Status zero_journal(Device& device, const Geometry& g, uint32_t page_size) {
  constexpr uint64_t kChunk = 1 << 20;
  void* buf = std::aligned_alloc(4096, kChunk);
  if (!buf) return Err{ENOMEM};
  std::memset(buf, 0, kChunk);
  std::unique_ptr<void, decltype(&std::free)> guard(buf, &std::free);
  uint64_t off = g.journal_start * page_size, end = (g.journal_start + g.journal_pages) * page_size;
  while (off < end) {
    uint64_t n = std::min(kChunk, end - off);
    PAGEFS_TRY(device.write_at(off, buf, n));
    off += n;
  }
  return ok_status();
}

void fill_superblock(Superblock* sb, const Geometry& g, const FormatOptions& o) {
  std::memset(sb, 0, sizeof *sb);
  std::memcpy(sb->magic, kSuperMagic, sizeof kSuperMagic);
  sb->version = kFormatVersion;
  sb->page_size = o.page_size;
  sb->page_count = g.page_count;
  sb->journal_start = g.journal_start;
  sb->journal_pages = g.journal_pages;
  sb->bitmap_start = g.bitmap_start;
  sb->bitmap_pages = g.bitmap_pages;
  sb->data_start = g.data_start;
  sb->state = static_cast<uint32_t>(FsState::kClean);
  sb->next_inode = kRootInode.value + 1;
  sb->inode_count = 1;
  sb->features_incompat = o.xattr_crc ? kIncompatXattrCrc : 0;
  std::random_device rd;
  for (auto& b : sb->uuid) b = static_cast<uint8_t>(rd());
  std::strncpy(sb->label, o.label.c_str(), sizeof sb->label - 1);
  sb->mkfs_time = sb->write_time = std::time(nullptr);
}

}  // namespace

// No room to grow: the bitmap alone. Otherwise two slots, each large enough for
// the bitmap at the limit; the bitmap starts in the first.
uint64_t bitmap_area_pages(uint64_t page_count, uint64_t limit_pages, uint32_t page_size) {
  uint64_t now = bitmap_pages_for(page_count, page_size);
  if (limit_pages <= page_count) return now;
  return 2 * bitmap_pages_for(limit_pages, page_size);
}

uint64_t min_device_bytes(uint32_t page_size) {
  // Superblocks, the smallest journal, one bitmap page and 64 pages of data.
  return uint64_t(2 + kMinJournalPages + 1 + 64) * page_size;
}

bool has_pagefs_signature(Device& device) {
  void* buf = std::aligned_alloc(4096, 4096);
  std::unique_ptr<void, decltype(&std::free)> guard(buf, &std::free);
  if (device.size_bytes() < 4096 || !device.read_at(0, buf, 4096).ok()) return false;
  Superblock sb;
  std::memcpy(&sb, buf, sizeof sb);
  return std::memcmp(sb.magic, kSuperMagic, sizeof kSuperMagic) == 0;
}

Status format_device(Device& device, const FormatOptions& o, std::string* message) {
  uint32_t ps = o.page_size;
  if (ps < kMinPageSize || ps > kMaxPageSize || (ps & (ps - 1)) || ps % device.block_size()) {
    *message =
        "page size must be a power of two from 4096 to 65536 and a multiple of the "
        "device's block size";
    return Err{EINVAL};
  }
  const uint64_t limit_pages = grow_limit_pages(device.size_bytes(), ps, o.grow_limit_bytes);
  Geometry g = plan(device.size_bytes(), ps, o.journal_bytes, limit_pages);
  // A device too small to keep room for growth gets none.
  if (g.data_start + 64 > g.page_count) g = plan(device.size_bytes(), ps, o.journal_bytes, 0);
  if (device.size_bytes() < min_device_bytes(ps) || g.data_start + 64 > g.page_count) {
    *message = "device is too small (need at least " +
               std::to_string((g.data_start + 64) * ps / 1024) + " KiB with this journal size)";
    return Err{ENOSPC};
  }
  Superblock sb;
  fill_superblock(&sb, g, o);
  Status st = zero_journal(device, g, ps);
  if (!st.ok()) {
    *message = std::string("cannot write the journal region: ") + strerror(st.error());
    return st;
  }
  auto pool = BufferPool::open(device, ps, 64 * ps, /*transactions=*/false);
  if (!pool.ok()) return Err{pool.error()};
  PAGEFS_TRY(SpaceMap::format(**pool, sb));
  PAGEFS_ASSIGN(auto space, SpaceMap::load(**pool, sb));
  TreeRoot root;
  PAGEFS_TRY(Btree::create(**pool, *space, root));
  Btree tree(**pool, *space, root);

  InodeRecord rec{};
  rec.mode = S_IFDIR | 0755;
  rec.uid = o.root_uid;
  rec.gid = o.root_gid;
  rec.nlink = 2;
  rec.parent = kRootInode.value;
  timespec now;
  clock_gettime(CLOCK_REALTIME, &now);
  rec.atime_sec = rec.mtime_sec = rec.ctime_sec = rec.crtime_sec = now.tv_sec;
  rec.atime_nsec = rec.mtime_nsec = rec.ctime_nsec = rec.crtime_nsec = uint32_t(now.tv_nsec);
  PAGEFS_TRY(tree.put(Key::of(kRootInode.value, KeyKind::kInode, 0),
                      std::span(reinterpret_cast<const std::byte*>(&rec), sizeof rec)));
  sb.tree_root = root.page;
  sb.tree_height = root.height;
  sb.free_pages = space->free_pages();
  sb.generation = 1;
  for (uint64_t copy = 0; copy < 2; copy++) {
    PAGEFS_ASSIGN(PageRef ref, (*pool)->create(PageNo{copy}, true));
    std::memcpy(ref.data(), &sb, sizeof sb);
    auto* h = ref.as<PageHeader>();
    h->magic = kPageMagic;
    h->type = static_cast<uint16_t>(PageType::kSuperblock);
    h->page_no = copy;
    ref.mark_dirty();
  }
  st = (*pool)->flush_all();
  if (!st.ok()) *message = std::string("cannot write the filesystem: ") + strerror(st.error());
  return st;
}

}  // namespace pagefs
