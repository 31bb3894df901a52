#include "engine/space_map.h"

#include <algorithm>
#include <bit>
#include <cassert>
#include <cstring>

#include "engine/log.h"

namespace pagefs {
namespace {

bool test_bit(const std::byte* bits, uint64_t i) {
  return (std::to_integer<unsigned>(bits[i / 8]) >> (i % 8)) & 1;
}

void put_bit(std::byte* bits, uint64_t i, bool v) {
  std::byte mask{static_cast<unsigned char>(1u << (i % 8))};
  if (v) {
    bits[i / 8] |= mask;
  } else {
    bits[i / 8] &= ~mask;
  }
}

}  // namespace

SpaceMap::SpaceMap(BufferPool& pool, const Superblock& sb)
    : pool_(pool),
      bitmap_start_(sb.bitmap_start),
      bitmap_pages_(sb.bitmap_pages),
      page_count_(sb.page_count),
      data_start_(sb.data_start),
      bits_per_page_(bitmap_bits_per_page(sb.page_size)),
      free_in_page_(sb.bitmap_pages, 0) {}

Status SpaceMap::format(BufferPool& pool, const Superblock& sb) {
  uint64_t bits = bitmap_bits_per_page(sb.page_size);
  for (uint64_t k = 0; k < sb.bitmap_pages; k++) {
    PAGEFS_ASSIGN(PageRef ref, pool.create(PageNo{sb.bitmap_start + k}, true));
    auto* h = ref.as<PageHeader>();
    h->magic = kPageMagic;
    h->type = static_cast<uint16_t>(PageType::kBitmap);
    h->page_no = sb.bitmap_start + k;
    std::byte* map = ref.data() + sizeof(PageHeader);
    for (uint64_t i = 0; i < bits; i++) {
      uint64_t page = k * bits + i;
      // Reserved regions and pages past the end are permanently "used".
      if (page < sb.data_start || page >= sb.page_count) put_bit(map, i, true);
    }
    ref.mark_dirty();
  }
  return ok_status();
}

Result<std::unique_ptr<SpaceMap>> SpaceMap::load(BufferPool& pool, const Superblock& sb) {
  std::unique_ptr<SpaceMap> map(new SpaceMap(pool, sb));
  for (uint64_t k = 0; k < sb.bitmap_pages; k++) {
    PAGEFS_ASSIGN(PageRef ref, map->bitmap_page(k));
    const std::byte* bits = ref.data() + sizeof(PageHeader);
    PAGEFS_TRY(map->check_reserved(k, bits));
    uint64_t used = 0;
    for (uint64_t w = 0; w < map->bits_per_page_ / 8; w++) {
      used += std::popcount(std::to_integer<unsigned>(bits[w]));
    }
    map->free_in_page_[k] = static_cast<uint32_t>(map->bits_per_page_ - used);
    map->free_pages_ += map->free_in_page_[k];
  }
  return map;
}

// Pages outside the data region are marked in use at mkfs and stay so. A
// clear bit there would let allocate() hand out a superblock, journal or
// bitmap page, or a page past the end of the filesystem.
Status SpaceMap::check_reserved(uint64_t index, const std::byte* bits) {
  uint64_t first = index * bits_per_page_, end = first + bits_per_page_;
  auto check = [&](uint64_t from, uint64_t to) -> Status {
    for (uint64_t page = from; page < to; page++) {
      if (!test_bit(bits, page - first)) {
        return pool_.metadata_error(PageNo{bitmap_start_ + index},
                                    "page %llu, outside the data region, is marked free",
                                    (unsigned long long)page);
      }
    }
    return ok_status();
  };
  PAGEFS_TRY(check(first, std::min(end, data_start_)));
  return check(std::max(first, page_count_), end);
}

Result<PageRef> SpaceMap::bitmap_page(uint64_t index) {
  assert(index < bitmap_pages_);
  return pool_.fetch_meta(PageNo{bitmap_start_ + index}, PageType::kBitmap);
}

bool SpaceMap::allowed(uint64_t count, bool metadata) const {
  if (metadata) return free_pages() >= count;
  return data_free_pages() >= count;
}

bool SpaceMap::is_pending(uint64_t page) const {
  auto it = pending_.upper_bound(page);
  if (it == pending_.begin()) return false;
  --it;
  return page < it->first + it->second.count;
}

void SpaceMap::checkpoint_done() {
  assert(!savepoint_open_);
  pending_.clear();
  pending_pages_ = 0;
}

void SpaceMap::release_retired(uint64_t txn) {
  assert(!savepoint_open_);
  if (txn <= released_txn_) return;
  released_txn_ = txn;
  for (auto it = pending_.begin(); it != pending_.end();) {
    if (it->second.txn > txn) {
      ++it;
      continue;
    }
    pending_pages_ -= it->second.count;
    it = pending_.erase(it);
  }
}

void SpaceMap::begin_savepoint() {
  assert(!savepoint_open_);
  savepoint_open_ = true;
  saved_.free_pages = free_pages_;
  saved_.pending_pages = pending_pages_;
  saved_.next_fit = next_fit_;
  saved_.free_in_page.clear();
  saved_.pending.clear();
}

void SpaceMap::release_savepoint() {
  assert(savepoint_open_);
  savepoint_open_ = false;
}

void SpaceMap::rollback_savepoint() {
  assert(savepoint_open_);
  savepoint_open_ = false;
  for (auto it = saved_.pending.rbegin(); it != saved_.pending.rend(); ++it) {
    if (it->merged) {
      pending_[it->grown_run].count -= it->count;
    } else {
      pending_.erase(it->start);
    }
  }
  for (const auto& [k, count] : saved_.free_in_page) free_in_page_[k] = count;
  free_pages_ = saved_.free_pages;
  pending_pages_ = saved_.pending_pages;
  next_fit_ = saved_.next_fit;
}

// The bitmap pages an operation touches are few: a linear search will do.
void SpaceMap::save_free_in_page(uint64_t k) {
  if (!savepoint_open_) return;
  for (const auto& saved : saved_.free_in_page) {
    if (saved.first == k) return;
  }
  saved_.free_in_page.emplace_back(k, free_in_page_[k]);
}

Result<PageRun> SpaceMap::allocate(PageNo hint, uint32_t max_pages, bool metadata,
                                   uint64_t stream) {
  assert(max_pages > 0);
  if (++allocations_ == fail_allocation_at_) {
    fail_allocation_at_ = 0;
    return Err{ENOSPC};
  }
  if (!allowed(1, metadata)) return Err{ENOSPC};
  // Without a hint, continue where the last allocation ended (next fit):
  // searching from the start each time would rescan every used page.
  uint64_t from_page = hint.value != 0 ? hint.value : next_fit_;
  uint64_t start = std::clamp<uint64_t>(from_page, data_start_, page_count_ - 1);
  // Other streams' windows are searched only when nothing else is free.
  PAGEFS_ASSIGN(std::optional<PageRun> run, search(start, max_pages, metadata, stream, true));
  if (!run) {
    PAGEFS_ASSIGN(run, search(start, max_pages, metadata, stream, false));
  }
  if (!run) return Err{ENOSPC};
  PAGEFS_TRY(set_bits(run->start.value, run->count, true));
  next_fit_ = run->start.value + run->count;
  return *run;
}

// The first run of free pages at or after `start`, wrapping around; with
// `skip_windows`, outside the windows of streams other than `stream`.
Result<std::optional<PageRun>> SpaceMap::search(uint64_t start, uint32_t max_pages, bool metadata,
                                                uint64_t stream, bool skip_windows) {
  uint64_t first_page = start / bits_per_page_;
  // The last step comes back to the hint's own bitmap page and searches it
  // from its start: the wrap-around.
  for (uint64_t step = 0; step <= bitmap_pages_; step++) {
    uint64_t k = (first_page + step) % bitmap_pages_;
    if (free_in_page_[k] == 0) continue;
    PAGEFS_ASSIGN(PageRef ref, bitmap_page(k));
    const std::byte* bits = ref.data() + sizeof(PageHeader);
    const uint64_t base = k * bits_per_page_;
    uint64_t from = (step == 0) ? start % bits_per_page_ : 0;
    for (uint64_t i = from; i < bits_per_page_; i++) {
      // Skip whole bytes that are all in use.
      while (i % 8 == 0 && i + 8 <= bits_per_page_ && bits[i / 8] == std::byte{0xff}) i += 8;
      if (i >= bits_per_page_) break;
      if (test_bit(bits, i)) continue;
      uint64_t page = base + i;
      if (!pending_.empty() && is_pending(page)) continue;
      if (skip_windows) {
        if (uint64_t end = streams_.foreign_window_end(page, stream); end != 0) {
          i = end - base - 1;  // the loop ends if the window goes past this bitmap page
          continue;
        }
      }
      uint32_t run = 1;
      while (run < max_pages && i + run < bits_per_page_ && !test_bit(bits, i + run) &&
             (pending_.empty() || !is_pending(page + run)) && allowed(run + 1, metadata) &&
             (!skip_windows || streams_.foreign_window_end(page + run, stream) == 0)) {
        run++;
      }
      return std::optional<PageRun>(PageRun{PageNo{page}, run});
    }
  }
  return std::optional<PageRun>();
}

Result<bool> SpaceMap::allocate_at(PageNo page, bool metadata) {
  if (page.value < data_start_ || page.value >= page_count_) return false;
  if (!allowed(1, metadata)) return false;
  if (!pending_.empty() && is_pending(page.value)) return false;
  PAGEFS_ASSIGN(bool used, is_used(page));
  if (used) return false;
  PAGEFS_TRY(set_bits(page.value, 1, true));
  return true;
}

Result<bool> SpaceMap::is_used(PageNo page) {
  if (!in_data_region(page.value)) {
    return pool_.metadata_error(page, "space map lookup outside the data region");
  }
  PAGEFS_ASSIGN(PageRef ref, bitmap_page(page.value / bits_per_page_));
  return test_bit(ref.data() + sizeof(PageHeader), page.value % bits_per_page_);
}

// The range comes from an extent or a tree pointer, both read from the device.
Status SpaceMap::free(PageNo start, uint32_t count) {
  if (!in_data_region(start.value, count)) {
    return pool_.metadata_error(start, "free of %u pages outside the data region", count);
  }
  PAGEFS_TRY(set_bits(start.value, count, false));
  // Merge with a pending run of the same transaction ending here (frees of a
  // file come in order).
  const uint64_t txn = pool_.running_txn();
  auto it = pending_.upper_bound(start.value);
  if (it != pending_.begin() && std::prev(it)->first + std::prev(it)->second.count == start.value &&
      std::prev(it)->second.txn == txn) {
    std::prev(it)->second.count += count;
    if (savepoint_open_) saved_.pending.push_back({start.value, count, true, std::prev(it)->first});
  } else {
    pending_.emplace(start.value, PendingRun{count, txn});
    if (savepoint_open_) saved_.pending.push_back({start.value, count, false, 0});
  }
  pending_pages_ += count;
  return ok_status();
}

// Flips bits for pages [start, start+count). Every bit must change: a bit
// already in the target state means the map disagrees with the tree
// (corruption), reported as EIO.
Status SpaceMap::set_bits(uint64_t start, uint32_t count, bool used) {
  if (!in_data_region(start, count)) {
    return pool_.metadata_error(PageNo{start},
                                "space map change of %u pages outside the data region", count);
  }
  uint64_t page = start;
  while (page < start + count) {
    uint64_t k = page / bits_per_page_;
    PAGEFS_ASSIGN(PageRef ref, bitmap_page(k));
    ref.mark_dirty();
    save_free_in_page(k);
    std::byte* bits = ref.data() + sizeof(PageHeader);
    for (; page < start + count && page / bits_per_page_ == k; page++) {
      uint64_t i = page % bits_per_page_;
      if (test_bit(bits, i) == used) {
        return pool_.metadata_error(ref.page_no(), "page %llu is already %s",
                                    (unsigned long long)page, used ? "in use" : "free");
      }
      put_bit(bits, i, used);
      if (used) {
        free_in_page_[k]--;
        free_pages_--;
      } else {
        free_in_page_[k]++;
        free_pages_++;
      }
    }
  }
  return ok_status();
}

}  // namespace pagefs
