// Overwrites in place: writers to different files in parallel.
//
// A write chunk into pages the file already has allocated (written before,
// or allocated by fallocate and still unwritten; inside its size or past it;
// whole pages or parts of them) changes nothing but those pages' bytes, the
// CRCs and unwritten bits in their extent records and the inode's size,
// mtime and ctime: no allocation, no new item, no item that changes size, so
// the tree's shape and the space map stay as they are. Such a chunk runs
// under the filesystem lock held *shared*, beside other such writers and
// readers, instead of taking it exclusively:
//
//   1. With the file's own lock held exclusively (FileSystem::write) and the
//      filesystem lock shared, the inode and the extents are read and every
//      condition above checked (overwrite_applies); anything else goes the
//      exclusive way (write_one_chunk), as does any error here, which that
//      way reports.
//   2. The leaf of each extent record and of the inode record is located
//      and pinned (Btree::locate); a written page the chunk changes only in
//      part is read, checked against its CRC and pinned (a damaged one fails
//      the write here, with nothing changed); and the running transaction's
//      room for the chunk's pages is reserved (overwrite credits, below).
//      Nothing has changed yet.
//   3. Page by page: the frame is taken (BufferPool::create, or the page
//      read in step 2), marked dirty, filled from the caller's buffer and
//      given its CRC (computed before, without any lock, for whole pages).
//      If a frame cannot be had, the pages before it are kept: the write is
//      short, as POSIX allows, or fails if none was done.
//   4. With the inode's item latch held exclusively, the new extent records
//      and the inode record are copied over the old ones in their pinned
//      leaves, same size (PageRef::change). This cannot fail.
//
// Why this is safe beside everything else that holds the lock shared:
//   - Only values change, never a node's keys, slots or header, so a reader
//     descending the tree or reading other items of the same leaf reads bytes
//     nobody changes. The bytes that do change are read only through
//     get_inode and collect_extents, which hold the inode's item latch
//     shared (the latches are stripes: two inodes may share one and take
//     turns), and through the pool's cached_copy, which copies under the
//     pool's lock that PageRef::change also holds.
//   - The file's data pages are read only by holders of the file's lock,
//     or by read-ahead, which does not read a page the pool holds.
//   - Transactions close, and segments open, only under the lock held
//     exclusively, so no overwrite is half done when a transaction closes,
//     and none runs while an operation could be undone (an undo puts back
//     whole pages, and would put back an overwrite's bytes with them).
//
// Overwrite credits: the running transaction must keep room for what it
// takes (admit() in transaction.cc). An overwrite reserves its pages, plus one
// image for each leaf it changes, in overwrite_credits_ before it changes
// anything, and gives them back when done, by then counted in the pool's
// transaction images; the check adds the credits other overwrites hold. An
// overwrite that does not fit waits, without the lock, for a commit slot
// and for journal room, has the transaction closed (the lock held
// exclusively for the close alone), and tries once more; if it still does not
// fit, it goes the exclusive way (admit() then closes or waits).
#include <sys/stat.h>

#include <algorithm>
#include <cstring>
#include <mutex>

#include "engine/crc32c.h"
#include "engine/filesystem.h"
#include "engine/fs_impl.h"

namespace pagefs {
namespace {

// Room kept beyond the declared images, as admit() does.
constexpr uint64_t kSlackImages = 16;

std::span<const std::byte> bytes_of(const std::string& s) {
  return std::span(reinterpret_cast<const std::byte*>(s.data()), s.size());
}

}  // namespace

bool FileSystem::Impl::take_overwrite_credits(uint64_t images) {
  if (failed_ || read_only_ || pool_->write_error() != 0) return false;
  const uint64_t others = overwrite_credits_.fetch_add(images);
  const uint64_t total = pool_->txn_images() + others + images;
  const bool fits = total <= journal_->max_images() && total <= pool_->frame_count() / 4 &&
                    pool_->txn_frames() + others + images <= pool_->frame_count() &&
                    journal_->available_bytes() >= journal_->record_bound(total + kSlackImages);
  if (!fits) overwrite_credits_.fetch_sub(images);
  return fits;
}

void FileSystem::Impl::return_overwrite_credits(uint64_t images) {
  overwrite_credits_.fetch_sub(images);
}

// Step 1: the inode and the extents of the chunk's pages, if the chunk can be
// an overwrite in place.
bool FileSystem::Impl::overwrite_applies(InodeNo ino, uint64_t pos, size_t len, bool drop_setid,
                                         InodeRecord* rec, std::vector<Extent>* extents) {
  if (len == 0) return false;
  auto got = get_inode(ino);
  if (!got.ok()) return false;
  *rec = *got;
  if (!S_ISREG(rec->mode) || !may_change_inode(*rec).ok()) return false;
  const bool setid = (rec->mode & S_ISUID) || ((rec->mode & S_ISGID) && (rec->mode & S_IXGRP));
  if (drop_setid && setid) return false;
  const uint64_t first = pos / page_size_, last = (pos + len - 1) / page_size_;
  if (!collect_extents(ino, first, last, extents).ok()) return false;
  uint64_t next = first;  // every page of the chunk allocated
  for (const Extent& e : *extents) {
    if (e.file_page > next) return false;
    next = std::max(next, e.end());
  }
  return next > last;
}

// The running transaction had no room for the overwrite: a commit slot and
// journal room are waited for without any lock, and the lock is held
// exclusively only to close the transaction, so nobody else waits on the
// journal behind it. What is still short then is the exclusive way's to wait
// for (admit), or to report.
void FileSystem::Impl::make_room_for_overwrite(uint64_t images) {
  committer_->wait_slot_free();
  close_if_idle();
  if (journal_->available_bytes() < journal_->record_bound(images + kSlackImages)) {
    (void)checkpointer_->wait_for_room(journal_->record_bound(images + kSlackImages));
  }
}

std::optional<Result<size_t>> FileSystem::Impl::overwrite_chunk(InodeNo ino, uint64_t pos,
                                                                const char* buf, size_t len,
                                                                const uint32_t* crcs,
                                                                bool drop_setid) {
  uint64_t short_of = 0;
  std::optional<Result<size_t>> done =
      overwrite_reading_unlocked(ino, pos, buf, len, crcs, drop_setid, &short_of);
  if (done || short_of == 0 || read_only_) return done;
  make_room_for_overwrite(short_of);
  return overwrite_reading_unlocked(ino, pos, buf, len, crcs, drop_setid, &short_of);
}

// overwrite_once, with what it misses in the pool read without the lock, as
// read_op does for readers: the lock is held shared, and a writer waiting
// for it would otherwise wait on the device, and everyone else behind it.
std::optional<Result<size_t>> FileSystem::Impl::overwrite_reading_unlocked(
    InodeNo ino, uint64_t pos, const char* buf, size_t len, const uint32_t* crcs, bool drop_setid,
    uint64_t* short_of) {
  for (int tries = 1;; tries++) {
    std::optional<BufferPool::Miss> missed;
    {
      std::optional<BufferPool::NoDeviceReads> no_reads;
      if (tries < kReadTries) no_reads.emplace();
      std::optional<Result<size_t>> done =
          overwrite_once(ino, pos, buf, len, crcs, drop_setid, short_of);
      if (!no_reads || !no_reads->missed() || (done && done->ok())) return done;
      missed = no_reads->missed();
    }
    *short_of = 0;
    pool_->load(*missed);
  }
}

std::optional<Result<size_t>> FileSystem::Impl::overwrite_once(InodeNo ino, uint64_t pos,
                                                               const char* buf, size_t len,
                                                               const uint32_t* crcs,
                                                               bool drop_setid,
                                                               uint64_t* short_of) {
  std::shared_lock lock(mu_);
  OverwritePlan plan;
  if (!overwrite_applies(ino, pos, len, drop_setid, &plan.rec, &plan.extents)) {
    return std::nullopt;
  }
  Result<bool> prepared = prepare_overwrite(ino, pos, len, &plan);
  if (!prepared.ok()) return Result<size_t>(Err{prepared.error()});
  if (!*prepared) return std::nullopt;
  const uint64_t pages = (pos + len - 1) / page_size_ - pos / page_size_ + 1;
  const uint64_t credits = pages + plan.places.size();
  if (!take_overwrite_credits(credits)) {
    *short_of = credits;
    return std::nullopt;
  }
  Status st = ok_status();
  const size_t done = fill_overwrite_pages(pos, buf, len, crcs, &plan, &st);
  if (done > 0) store_overwrite_records(ino, pos + done, &plan);
  return_overwrite_credits(credits);
  if (done == 0) return Result<size_t>(Err{st.error()});
  return Result<size_t>(done);
}

// Step 2: the records' leaves, pinned, and the pages the chunk changes only
// in part, if they hold written data, read (and checked) now: the changes
// below then need nothing that can fail but taking a frame. False: not an
// overwrite after all; an error: such a page is damaged (counted and logged
// once, by the pool), and the write fails with nothing changed, as the
// exclusive way's would.
Result<bool> FileSystem::Impl::prepare_overwrite(InodeNo ino, uint64_t pos, size_t len,
                                                 OverwritePlan* plan) {
  plan->places.reserve(plan->extents.size() + 1);
  for (const Extent& e : plan->extents) {
    auto place = tree_->locate(Key::of(ino.value, KeyKind::kExtent, e.file_page));
    if (!place.ok() || !*place || (*place)->size != extent_value_size(e.pages)) return false;
    plan->places.push_back(std::move(**place));
  }
  auto inode_place = tree_->locate(Key::of(ino.value, KeyKind::kInode, 0));
  if (!inode_place.ok() || !*inode_place || (*inode_place)->size != sizeof plan->rec) return false;
  plan->places.push_back(std::move(**inode_place));
  const uint64_t ends[2] = {pos, pos + len - 1};
  for (int i = 0; i < 2; i++) {
    const uint64_t fp = ends[i] / page_size_;
    const bool whole = fp * page_size_ >= pos && (fp + 1) * page_size_ <= pos + len;
    if (whole || (i == 1 && fp == plan->partial_page[0])) continue;
    const Extent& e = plan->extent_of(fp);
    const uint32_t idx = uint32_t(fp - e.file_page);
    if (e.is_unwritten(idx)) continue;
    PAGEFS_ASSIGN(PageRef ref, pool_->fetch_data(PageNo{e.phys + idx}, e.crc[idx]));
    plan->partial_page[i] = fp;
    plan->partial[i] = std::move(ref);
  }
  return true;
}

// Step 3: the chunk's pages, one after the other; the bytes written, which
// fall short of `len` only if a frame could not be had (`st` says why).
size_t FileSystem::Impl::fill_overwrite_pages(uint64_t pos, const char* buf, size_t len,
                                              const uint32_t* crcs, OverwritePlan* plan,
                                              Status* st) {
  size_t done = 0;
  for (size_t k = 0; done < len; k++) {
    const uint64_t at = pos + done, fp = at / page_size_;
    const uint32_t in_page = uint32_t(at % page_size_);
    const size_t n = std::min<size_t>(page_size_ - in_page, len - done);
    Extent& e = plan->extent_of(fp);
    const uint32_t idx = uint32_t(fp - e.file_page);
    const bool whole = n == page_size_;
    PageRef frame;
    if (fp == plan->partial_page[0] || fp == plan->partial_page[1]) {
      frame = std::move(plan->partial[fp == plan->partial_page[0] ? 0 : 1]);
    } else {
      // A page allocated but never written holds nothing live: fresh, as in
      // write_page(), and zero where this write does not cover it.
      auto got = pool_->create(PageNo{e.phys + idx}, false, e.is_unwritten(idx), !whole);
      if (!got.ok()) {
        *st = Err{got.error()};
        break;
      }
      frame = std::move(*got);
    }
    frame.mark_dirty();
    std::memcpy(frame.data() + in_page, buf + done, n);
    const uint32_t crc = whole ? crcs[k] : crc32c(frame.data(), page_size_);
    frame.set_data_crc(crc);
    e.crc[idx] = crc;
    e.unwritten &= ~(1u << idx);
    done += n;
  }
  return done;
}

// Step 4: the extent records and the inode record, copied over the old ones
// in their pinned leaves; `end`: where the written bytes end.
void FileSystem::Impl::store_overwrite_records(InodeNo ino, uint64_t end, OverwritePlan* plan) {
  plan->rec.size = std::max<uint64_t>(plan->rec.size, end);
  touch(plan->rec, true, true);
  std::unique_lock latch(item_latches_.of(ino));
  for (size_t i = 0; i < plan->extents.size(); i++) {
    plan->places[i].leaf.change(plan->places[i].offset, bytes_of(plan->extents[i].encode()));
  }
  plan->places.back().leaf.change(
      plan->places.back().offset,
      std::span(reinterpret_cast<const std::byte*>(&plan->rec), sizeof plan->rec));
}

}  // namespace pagefs
