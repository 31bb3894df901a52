#include "engine/resize.h"

#include <algorithm>
#include <cassert>
#include <cstdlib>
#include <cstring>
#include <ctime>
#include <memory>

#include "engine/buffer_pool.h"
#include "engine/format.h"
#include "engine/recovery.h"

namespace pagefs {
namespace {

// Bitmap pages built and written per device call.
constexpr uint64_t kChunkPages = 256;

uint64_t bitmap_pages_for(uint64_t page_count, uint64_t bits) {
  return page_count / bits + (page_count % bits != 0);
}

// Where the new bitmap goes: the slot the current one is not in. The area is
// [area_start, data_start); its second slot starts half-way.
struct Placement {
  uint64_t start = 0;     // first page of the new bitmap
  uint64_t capacity = 0;  // pages the new bitmap may take there (0: no room)
};

Placement place_bitmap(const Superblock& sb) {
  const uint64_t area_start = sb.journal_start + sb.journal_pages;
  const uint64_t area = sb.data_start - area_start;
  const uint64_t half = area / 2;
  const uint64_t offset = sb.bitmap_start - area_start;
  if (offset < half) {
    // In the first slot: the second is free if the bitmap ends before it.
    if (offset + sb.bitmap_pages > half) return {};
    return {area_start + half, area - half};
  }
  return {area_start, offset};
}

void put_bit(std::byte* bits, uint64_t i, bool used) {
  std::byte mask{static_cast<unsigned char>(1u << (i % 8))};
  bits[i / 8] = used ? bits[i / 8] | mask : bits[i / 8] & ~mask;
}

struct AlignedPages {
  explicit AlignedPages(size_t bytes)
      : data(static_cast<std::byte*>(std::aligned_alloc(4096, bytes))) {}
  ~AlignedPages() { std::free(data); }
  AlignedPages(const AlignedPages&) = delete;
  AlignedPages& operator=(const AlignedPages&) = delete;
  std::byte* const data;
};

// The bitmap pages [first, first + count) of the grown filesystem, built in
// `buf`: old pages keep their bits (each verified first), pages from the old
// end to the new one are free, pages past the new end are in use.
Status build_chunk(Device& device, const Superblock& old_sb, uint64_t new_pages, uint64_t new_start,
                   uint64_t first, uint64_t count, std::byte* buf, std::string* message) {
  const uint32_t ps = old_sb.page_size;
  const uint64_t bits = bitmap_bits_per_page(ps);
  const uint64_t old_count =
      std::min(count, old_sb.bitmap_pages - std::min(first, old_sb.bitmap_pages));
  if (old_count > 0) {
    PAGEFS_TRY(device.read_at((old_sb.bitmap_start + first) * ps, buf, old_count * ps));
  }
  for (uint64_t k = 0; k < count; k++) {
    std::byte* page = buf + k * ps;
    const char* why = nullptr;
    if (k < old_count && !verify_meta_page(page, ps, PageNo{old_sb.bitmap_start + first + k},
                                           PageType::kBitmap, &why)) {
      *message = "bitmap page " + std::to_string(old_sb.bitmap_start + first + k) +
                 " is damaged (" + why + "); run fsck.pagefs";
      return Err{EIO};
    }
    if (k >= old_count) std::memset(page, 0, ps);
    std::byte* map = page + sizeof(PageHeader);
    for (uint64_t i = 0; i < bits; i++) {
      const uint64_t p = (first + k) * bits + i;
      if (p >= old_sb.page_count) put_bit(map, i, p >= new_pages);
    }
    auto* h = reinterpret_cast<PageHeader*>(page);
    *h = PageHeader{};
    h->magic = kPageMagic;
    h->type = static_cast<uint16_t>(PageType::kBitmap);
    h->page_no = new_start + first + k;
    stamp_meta_page(page, ps);
  }
  return ok_status();
}

// Step 2: the whole new bitmap, written into its slot and flushed.
Status write_new_bitmap(Device& device, const Superblock& sb, uint64_t new_pages,
                        uint64_t new_start, uint64_t new_bitmap_pages, std::string* message) {
  const uint32_t ps = sb.page_size;
  AlignedPages buf(kChunkPages * ps);
  if (buf.data == nullptr) return Err{ENOMEM};
  for (uint64_t first = 0; first < new_bitmap_pages; first += kChunkPages) {
    const uint64_t count = std::min(kChunkPages, new_bitmap_pages - first);
    PAGEFS_TRY(build_chunk(device, sb, new_pages, new_start, first, count, buf.data, message));
    PAGEFS_TRY(device.write_at((new_start + first) * ps, buf.data, count * ps));
  }
  return device.flush();
}

std::string describe(int error) {
  return std::strerror(error);
}

// The checks the superblock alone answers: fills `result`; EINVAL for a
// size smaller than the filesystem, ENOSPC past the room of the bitmap area.
Status check_new_size(const Superblock& sb, uint64_t new_pages, ResizeResult* result,
                      std::string* message) {
  const uint64_t bits = bitmap_bits_per_page(sb.page_size);
  const Placement slot = place_bitmap(sb);
  result->page_size = sb.page_size;
  result->old_pages = result->new_pages = sb.page_count;
  result->max_pages = std::max(sb.page_count, slot.capacity * bits);
  if (new_pages < sb.page_count) {
    *message = "shrinking a pagefs is not supported";
    return Err{EINVAL};
  }
  if (new_pages > sb.page_count && bitmap_pages_for(new_pages, bits) > slot.capacity) {
    *message = slot.capacity == 0 ? "this filesystem was made without room to grow its bitmap"
                                  : "the bitmap has no room for that size";
    return Err{ENOSPC};
  }
  return ok_status();
}

}  // namespace

Status grow_filesystem(Device& device, uint64_t new_bytes, ResizeResult* result,
                       std::string* message) {
  if (device.read_only()) {
    *message = "the device is read-only";
    return Err{EROFS};
  }
  Superblock sb;
  RecoveryResult recovered;
  PAGEFS_TRY(recover_device(device, &sb, &recovered, message));
  const uint32_t ps = sb.page_size;
  const uint64_t bits = bitmap_bits_per_page(ps);
  const uint64_t new_pages = new_bytes / ps;
  PAGEFS_TRY(check_new_size(sb, new_pages, result, message));
  if (new_bytes > device.size_bytes()) {
    *message = "the new size is larger than the device";
    return Err{EINVAL};
  }
  if (new_pages == sb.page_count) return ok_status();
  const Placement slot = place_bitmap(sb);
  const uint64_t new_bitmap_pages = bitmap_pages_for(new_pages, bits);
  Status st = write_new_bitmap(device, sb, new_pages, slot.start, new_bitmap_pages, message);
  if (!st.ok()) {
    if (message->empty()) *message = "cannot write the new bitmap: " + describe(st.error());
    return st;
  }
  Superblock grown = sb;
  grown.page_count = new_pages;
  grown.bitmap_start = slot.start;
  grown.bitmap_pages = new_bitmap_pages;
  grown.free_pages = sb.free_pages + (new_pages - sb.page_count);
  grown.write_time = std::time(nullptr);
  const char* why = nullptr;
  assert(superblock_valid(grown, &why));
  st = write_superblock_copies(device, grown);
  if (!st.ok()) {
    *message = "cannot write the superblock: " + describe(st.error());
    return st;
  }
  result->new_pages = new_pages;
  return ok_status();
}

Status check_growth(Device& device, uint64_t new_bytes, ResizeResult* result,
                    std::string* message) {
  Superblock sb;
  PAGEFS_TRY(load_superblock(device, &sb, message));
  return check_new_size(sb, new_bytes / sb.page_size, result, message);
}

}  // namespace pagefs
