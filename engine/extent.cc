// Extent records: encoding, lookup and the removal of file page ranges.
#include <cassert>
#include <cstring>
#include <shared_mutex>

#include "engine/fs_impl.h"
#include "engine/log.h"
#include "engine/node.h"

namespace pagefs {

std::string Extent::encode() const {
  assert(pages >= 1 && pages <= kMaxExtentPages);
  std::string out(extent_value_size(pages), '\0');
  ExtentValue v{phys, static_cast<uint16_t>(pages), 0, unwritten};
  std::memcpy(out.data(), &v, sizeof v);
  std::memcpy(out.data() + sizeof v, crc, 4 * size_t(pages));
  return out;
}

namespace {

bool fail(const char** why, const char* reason) {
  *why = reason;
  return false;
}

// An extent's device pages lie in the data region; its file pages end below
// the largest file offset (as fsck holds them), so file_page + pages never wraps.
bool extent_in_bounds(uint64_t file_page, const ExtentValue& v, const ItemLimits& limits) {
  assert(limits.page_size > 0);
  uint64_t max_file_pages = uint64_t(INT64_MAX) / limits.page_size;
  return v.phys >= limits.data_start && v.phys < limits.page_count &&
         v.pages <= limits.page_count - v.phys && file_page <= max_file_pages - v.pages;
}

}  // namespace

bool Extent::decode(uint64_t file_page, std::span<const std::byte> bytes, const ItemLimits& limits,
                    Extent* out, const char** why) {
  ExtentValue v;
  if (bytes.size() < sizeof v) return fail(why, "extent item too short");
  std::memcpy(&v, bytes.data(), sizeof v);
  if (v.pages == 0 || v.pages > kMaxExtentPages) return fail(why, "extent length out of range");
  if (bytes.size() != extent_value_size(v.pages)) return fail(why, "extent item of the wrong size");
  if (v.reserved != 0) return fail(why, "extent reserved field not zero");
  if (uint64_t{v.unwritten_mask} >> v.pages != 0) {
    return fail(why, "unwritten bits past the extent's pages");
  }
  if (!extent_in_bounds(file_page, v, limits)) return fail(why, "extent outside the data region");
  out->file_page = file_page;
  out->phys = v.phys;
  out->pages = v.pages;
  out->unwritten = v.unwritten_mask;
  std::memcpy(out->crc, bytes.data() + sizeof v, 4 * size_t(v.pages));
  return true;
}

// Extents covering any page in [first_page, last_page], in order. An extent
// holds at most kMaxExtentPages pages, so one covering first_page starts no
// earlier than first_page - (kMaxExtentPages - 1).
Status FileSystem::Impl::collect_extents(InodeNo ino, uint64_t first_page, uint64_t last_page,
                                         std::vector<Extent>* out, size_t limit) {
  uint64_t from = first_page >= kMaxExtentPages ? first_page - (kMaxExtentPages - 1) : 0;
  bool corrupt = false;
  std::shared_lock latch(item_latches_.of(ino));  // an overwrite may be changing them
  PAGEFS_TRY(tree_->scan(Key::of(ino.value, KeyKind::kExtent, from),
                         Key::of(ino.value, KeyKind::kExtent, last_page),
                         [&](const Key& k, std::span<const std::byte> v) {
                           Extent e;
                           const char* why = nullptr;
                           if (!Extent::decode(k.off, v, limits_, &e, &why)) {
                             corrupt = true;
                             return false;
                           }
                           if (e.end() > first_page) out->push_back(e);
                           return limit == 0 || out->size() < limit;
                         }));
  if (corrupt) {
    PAGEFS_LOG_ERROR("inode %llu has a damaged extent record", (unsigned long long)ino.value);
    return Err{EIO};
  }
  return ok_status();
}

Status FileSystem::Impl::find_extent(InodeNo ino, uint64_t file_page, Extent* out, bool* found) {
  std::vector<Extent> v;
  PAGEFS_TRY(collect_extents(ino, file_page, file_page, &v));
  *found = !v.empty();
  if (*found) *out = v.front();
  return ok_status();
}

Status FileSystem::Impl::put_extent(InodeNo ino, const Extent& e) {
  std::string v = e.encode();
  dirty_ = true;
  return tree_->put(Key::of(ino.value, KeyKind::kExtent, e.file_page),
                    std::span(reinterpret_cast<const std::byte*>(v.data()), v.size()));
}

Status FileSystem::Impl::erase_extent(InodeNo ino, uint64_t file_page) {
  PAGEFS_ASSIGN(bool erased, tree_->erase(Key::of(ino.value, KeyKind::kExtent, file_page)));
  dirty_ = true;
  return erased ? ok_status() : Status(Err{EIO});
}

// A leaf has page_size - kSlotsOffset bytes for cells. With 4 KiB pages that
// is 4048; the record of a full extent takes 17 + 2 + 16 + 4 * 32 + 2 = 165
// bytes, so 24 fit, and an append splits a full leaf 23 + 1: 23 records, 736
// data pages per leaf. An internal cell takes 17 + 2 + 8 + 2 = 29 bytes: 139
// children. 1 GiB of new data (262144 pages, 8192 records) takes 357 leaves,
// plus 2 for the leaves split where the records go in, and 2 internal pages
// plus 3 for splits along the path: 364 pages, 0.14%.
uint64_t FileSystem::Impl::extent_tree_pages(uint64_t data_pages) const {
  const uint64_t cell_room = page_size_ - kSlotsOffset;
  const uint64_t per_leaf = cell_room / Node::cell_bytes(extent_value_size(kMaxExtentPages)) - 1;
  const uint64_t per_internal = cell_room / Node::cell_bytes(sizeof(uint64_t));
  assert(per_leaf >= 2 && per_internal >= 2);
  uint64_t records = (data_pages + kMaxExtentPages - 1) / kMaxExtentPages;
  uint64_t leaves = (records + per_leaf - 1) / per_leaf + 2;
  return leaves + leaves / per_internal + 3;
}

// Monotone tree_pages() makes this safe: d = F - tree(F) gives
// d + tree(d) <= F - tree(F) + tree(F) = F.
uint64_t FileSystem::Impl::data_pages_fitting(uint64_t free_pages) const {
  uint64_t tree = extent_tree_pages(free_pages);
  return free_pages > tree ? free_pages - tree : 0;
}

// Frees file pages [first_page, end_page): extents wholly inside go away,
// extents straddling an edge are cut. Works in chunks of kChunkExtents: after
// each, rec (blocks) is stored and a commit may happen, which is safe because
// a half-removed range is a consistent state (a shorter file whose dropped
// pages are holes, or extents past the end of file).
Status FileSystem::Impl::remove_pages(InodeNo ino, InodeRecord& rec, uint64_t first_page,
                                      uint64_t end_page) {
  constexpr size_t kChunkExtents = 32;
  std::vector<Extent> extents;
  while (end_page > first_page) {
    extents.clear();
    PAGEFS_TRY(collect_extents(ino, first_page, end_page - 1, &extents, kChunkExtents));
    if (extents.empty()) return ok_status();
    for (const Extent& e : extents) PAGEFS_TRY(cut_extent(ino, rec, e, first_page, end_page));
    PAGEFS_TRY(put_inode(ino, rec));
    first_page = std::max(first_page, extents.back().end());
    if (extents.size() == kChunkExtents) PAGEFS_TRY(begin_op(4 * kChunkExtents + 16));
  }
  return ok_status();
}

Status FileSystem::Impl::cut_extent(InodeNo ino, InodeRecord& rec, const Extent& e,
                                    uint64_t first_page, uint64_t end_page) {
  uint64_t cut_from = std::max(first_page, e.file_page);
  uint64_t cut_to = std::min(end_page, e.end());
  PAGEFS_TRY(erase_extent(ino, e.file_page));
  if (e.file_page < cut_from) {
    Extent left = e;
    left.pages = uint32_t(cut_from - e.file_page);
    left.unwritten &= left.pages == 32 ? ~0u : ((1u << left.pages) - 1);
    PAGEFS_TRY(put_extent(ino, left));
  }
  if (cut_to < e.end()) {
    Extent right{};
    uint32_t skip = uint32_t(cut_to - e.file_page);
    right.file_page = cut_to;
    right.phys = e.phys + skip;
    right.pages = e.pages - skip;
    right.unwritten = e.unwritten >> skip;
    std::memcpy(right.crc, e.crc + skip, 4 * size_t(right.pages));
    PAGEFS_TRY(put_extent(ino, right));
  }
  uint64_t phys = e.phys + (cut_from - e.file_page);
  uint32_t count = uint32_t(cut_to - cut_from);
  for (uint32_t i = 0; i < count; i++) pool_->discard(PageNo{phys + i});
  PAGEFS_TRY(space_->free(PageNo{phys}, count));
  rec.blocks -= std::min<uint64_t>(rec.blocks, count);
  return ok_status();
}

}  // namespace pagefs
