#include "fsck/geometry.h"

#include <algorithm>
#include <cstddef>
#include <cstring>
#include <ctime>
#include <memory>
#include <random>

#include "engine/buffer_pool.h"
#include "engine/formatter.h"
#include "engine/journal.h"
#include "engine/node.h"
#include "engine/superblock.h"
#include "fsck/aligned_buffer.h"

namespace pagefs::fsck {
namespace {

constexpr uint64_t kBatch = 64;

// Reads `n` pages from `first` into buf, or fails.
Status read_run(Device& device, uint32_t ps, uint64_t first, uint64_t n, AlignedBuffer& buf) {
  return device.read_at(first * ps, buf.data(), n * ps);
}

bool is_bitmap_page(const uint8_t* page, uint32_t ps, uint64_t page_no) {
  const char* why = nullptr;
  return verify_meta_page(reinterpret_cast<const std::byte*>(page), ps, PageNo{page_no},
                          PageType::kBitmap, &why);
}

// The layout mkfs gives a device, with the journal found to end at
// `bitmap_start`, and no room for the bitmap to grow.
Superblock layout(uint64_t device_bytes, uint32_t ps, uint64_t bitmap_start) {
  Superblock sb{};
  sb.header.magic = kPageMagic;
  sb.header.type = uint16_t(PageType::kSuperblock);
  std::memcpy(sb.magic, kSuperMagic, sizeof kSuperMagic);
  sb.version = kFormatVersion;
  sb.page_size = ps;
  sb.page_count = device_bytes / ps;
  sb.journal_start = 2;
  sb.journal_pages = bitmap_start - 2;
  sb.bitmap_start = bitmap_start;
  const uint64_t bits = bitmap_bits_per_page(ps);
  sb.bitmap_pages = (sb.page_count + bits - 1) / bits;
  sb.data_start = bitmap_start + sb.bitmap_pages;
  sb.tree_root = sb.data_start;
  sb.tree_height = 1;
  sb.next_inode = 2;
  sb.state = uint32_t(FsState::kMounted);
  sb.generation = 1;
  return sb;
}

// mkfs's default journal for this device size (formatter.cc's plan()).
uint64_t default_bitmap_start(uint64_t device_bytes, uint32_t ps) {
  uint64_t journal_bytes = std::clamp<uint64_t>(device_bytes / 64, 4 << 20, 256ull << 20);
  journal_bytes = std::min<uint64_t>(journal_bytes, device_bytes / 4);
  return 2 + std::max<uint64_t>(journal_bytes / ps, kMinJournalPages);
}

// The first bitmap page for page size `ps`: where mkfs's default puts it,
// else the first page past the smallest journal that verifies as one.
bool find_bitmap(Device& device, uint32_t ps, uint64_t* bitmap_start) {
  const uint64_t pages = device.size_bytes() / ps;
  AlignedBuffer buf(kBatch * ps, std::max<size_t>(kIoAlignment, device.block_size()));
  const uint64_t guess = default_bitmap_start(device.size_bytes(), ps);
  if (guess < pages && read_run(device, ps, guess, 1, buf).ok() &&
      is_bitmap_page(buf.data(), ps, guess)) {
    *bitmap_start = guess;
    return true;
  }
  for (uint64_t first = 2 + kMinJournalPages; first < pages / 2; first += kBatch) {
    const uint64_t n = std::min(kBatch, pages - first);
    if (!read_run(device, ps, first, n, buf).ok()) return false;
    for (uint64_t i = 0; i < n; i++) {
      if (is_bitmap_page(buf.data() + i * ps, ps, first + i)) {
        *bitmap_start = first + i;
        return true;
      }
    }
  }
  return false;
}

bool find_layout(Device& device, Superblock* out) {
  for (uint32_t ps = kMinPageSize; ps <= kMaxPageSize; ps *= 2) {
    if (ps < device.block_size() || device.size_bytes() / ps < 2 + kMinJournalPages + 2) continue;
    uint64_t bitmap_start = 0;
    if (!find_bitmap(device, ps, &bitmap_start)) continue;
    Superblock sb = layout(device.size_bytes(), ps, bitmap_start);
    const char* why = nullptr;
    if (sb.data_start < sb.page_count && superblock_valid(sb, &why)) {
      *out = sb;
      return true;
    }
  }
  return false;
}

// The newest valid image of page 0 in the journal region, and the highest
// LSN any whole transaction there carries.
bool newest_superblock_image(Device& device, const Superblock& layout, Superblock* out,
                             uint64_t* max_lsn) {
  bool found = false;
  auto scanned = Journal::scan_region(
      device, layout, [&](uint64_t lsn, PageNo page, const std::byte* image) -> Status {
        *max_lsn = std::max(*max_lsn, lsn);
        if (page.value != 0) return ok_status();
        Superblock sb;
        std::memcpy(&sb, image, sizeof sb);  // scan_region checked it (same layout)
        if (!found || sb.generation > out->generation) *out = sb;
        found = true;
        return ok_status();
      });
  return scanned.ok() && found;
}

// The layout `bare` with the data region where mkfs puts it by default:
// after room for the bitmap of a filesystem kDefaultGrowFactor times the
// device (formatter.h). False if mkfs would have kept no room.
bool with_default_room(const Superblock& bare, uint64_t device_bytes, Superblock* out) {
  const uint32_t ps = bare.page_size;
  const uint64_t limit_pages = device_bytes > UINT64_MAX / kDefaultGrowFactor
                                   ? UINT64_MAX / ps
                                   : device_bytes * kDefaultGrowFactor / ps;
  *out = bare;
  out->data_start = bare.bitmap_start + bitmap_area_pages(bare.page_count, limit_pages, ps);
  out->tree_root = out->data_start;
  const char* why = nullptr;
  return out->data_start > bare.data_start && out->data_start + 64 <= out->page_count &&
         superblock_valid(*out, &why);
}

// The highest-level tree node the bitmap marks in use (the newest on a tie),
// the lowest page holding any tree node, and the highest LSN of any tree node.
// `xattr_crc` becomes 1 if the first xattr item met carries its value's
// CRC32C (the xattr_crc feature, which the layout cannot tell), 0 if not.
void find_root(Device& device, Superblock& sb, uint64_t* lowest_node, uint64_t* max_lsn,
               int* xattr_crc) {
  const uint32_t ps = sb.page_size;
  const uint64_t bits = bitmap_bits_per_page(ps);
  AlignedBuffer bitmap(ps, std::max<size_t>(kIoAlignment, device.block_size()));
  AlignedBuffer buf(kBatch * ps, std::max<size_t>(kIoAlignment, device.block_size()));
  int best_level = -1;
  uint64_t best_lsn = 0;
  uint64_t loaded = UINT64_MAX;
  bool bitmap_ok = false;
  for (uint64_t first = sb.data_start; first < sb.page_count; first += kBatch) {
    const uint64_t n = std::min(kBatch, sb.page_count - first);
    if (!read_run(device, ps, first, n, buf).ok()) continue;
    for (uint64_t i = 0; i < n; i++) {
      const uint64_t p = first + i;
      if (p / bits != loaded) {
        loaded = p / bits;
        bitmap_ok = read_run(device, ps, sb.bitmap_start + loaded, 1, bitmap).ok() &&
                    is_bitmap_page(bitmap.data(), ps, sb.bitmap_start + loaded);
      }
      const uint64_t bit = p % bits;
      if (bitmap_ok && !((bitmap.data()[sizeof(PageHeader) + bit / 8] >> (bit % 8)) & 1)) continue;
      auto* page = reinterpret_cast<std::byte*>(buf.data() + i * ps);
      const char* why = nullptr;
      if (!verify_meta_page(page, ps, PageNo{p}, PageType::kTreeNode, &why)) continue;
      Node node(page, ps);
      if (!node.check(&why)) continue;
      PageHeader h;
      std::memcpy(&h, page, sizeof h);
      for (uint16_t c = 0; *xattr_crc < 0 && node.is_leaf() && c < node.count(); c++) {
        auto value = node.value_at(c);
        if (node.key_at(c).kind != uint8_t(KeyKind::kXattr) || value.size() < sizeof(XattrValue)) {
          continue;
        }
        *xattr_crc =
            (std::to_integer<uint8_t>(value[offsetof(XattrValue, flags)]) & kXattrCrc) ? 1 : 0;
      }
      *lowest_node = std::min(*lowest_node, p);
      *max_lsn = std::max(*max_lsn, h.lsn);
      if (node.level() > best_level || (node.level() == best_level && h.lsn > best_lsn)) {
        best_level = node.level();
        best_lsn = h.lsn;
        sb.tree_root = p;
        sb.tree_height = node.level() + 1u;
      }
    }
  }
}

void fill_identity(Superblock& sb) {
  std::random_device rd;
  for (auto& b : sb.uuid) b = uint8_t(rd());
  sb.mkfs_time = sb.write_time = time(nullptr);
}

Status write_copies(Device& device, Superblock sb) {
  const uint32_t ps = sb.page_size;
  AlignedBuffer page(ps, std::max<size_t>(kIoAlignment, device.block_size()));
  for (uint64_t copy = 0; copy < 2; copy++) {
    std::memset(page.data(), 0, ps);
    sb.header = PageHeader{kPageMagic, uint16_t(PageType::kSuperblock), 0, 0, 0, copy, 0};
    std::memcpy(page.data(), &sb, sizeof sb);
    stamp_meta_page(reinterpret_cast<std::byte*>(page.data()), ps);
    PAGEFS_TRY(device.write_at(copy * ps, page.data(), ps));
    PAGEFS_TRY(device.flush());
  }
  return ok_status();
}

}  // namespace

// The data region starts after room for the bitmap to grow (mkfs's default)
// or right after the bitmap (a small device, or -E resize= of its own size).
// The journal's images of page 0 settle which (a record is whole only with
// the geometry it was written with); without them the room is taken to be
// there when no tree node lies in it.
Status rebuild_superblock(Device& device, Superblock* out, std::string* how) {
  Superblock sb;
  if (!find_layout(device, &sb)) return Err{EINVAL};
  Superblock roomy;
  const bool has_roomy = with_default_room(sb, device.size_bytes(), &roomy);
  uint64_t max_lsn = 0;
  Superblock image;
  if ((has_roomy && newest_superblock_image(device, roomy, &image, &max_lsn)) ||
      newest_superblock_image(device, sb, &image, &max_lsn)) {
    *how = "the newest copy of it in the journal";
    sb = image;
    sb.generation++;
  } else {
    *how = "the layout of the device and its pages' headers";
    uint64_t lowest_node = UINT64_MAX;
    int xattr_crc = -1;
    find_root(device, sb, &lowest_node, &max_lsn, &xattr_crc);
    if (has_roomy && lowest_node >= roomy.data_start) {
      roomy.tree_root = sb.tree_root;
      roomy.tree_height = sb.tree_height;
      sb = roomy;
    }
    if (xattr_crc == 1) sb.features_incompat |= kIncompatXattrCrc;
    fill_identity(sb);
    // A new run of LSNs: no record left in the journal can be replayed.
    sb.journal_tail = (max_lsn / sb.page_size + 1) * sb.page_size;
    sb.journal_sequence = 1;
  }
  const char* why = nullptr;
  if (!superblock_valid(sb, &why) || !superblock_fits(sb, device.size_bytes())) {
    return Err{EINVAL};
  }
  PAGEFS_TRY(write_copies(device, sb));
  *out = sb;
  return ok_status();
}

}  // namespace pagefs::fsck
