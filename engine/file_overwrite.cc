// Overwrites in place: writers to different files in parallel.
//
// A write chunk of whole pages the file already has allocated (written
// before, or allocated by fallocate and still unwritten, inside its size or
// past it) changes nothing but those pages' bytes, the CRCs and unwritten
// bits in their extent records and the inode's size, mtime and ctime: no
// allocation, no new item, no item that changes size, so the tree's shape and
// the space map stay as they are. Such a chunk runs under the filesystem
// lock held *shared*, beside other such writers and readers, instead of
// taking it exclusively:
//
//   1. With the file's own lock held exclusively (FileSystem::write) and the
//      filesystem lock shared, the inode and the extents are read and every
//      condition above checked; anything else goes the exclusive way
//      (write_one_chunk), as does any error here, which that way reports.
//   2. The leaf of each extent record and of the inode record is located
//      and pinned (Btree::locate), and the running transaction's room for
//      the chunk's pages is reserved (overwrite credits, below). Nothing has
//      changed yet.
//   3. Page by page: the frame is taken (BufferPool::create), marked dirty,
//      filled from the caller's buffer and given its CRC (computed before,
//      without any lock). If a frame cannot be had, the pages before it are
//      kept: the write is short, as POSIX allows, or fails if none was done.
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
  if (pos % page_size_ != 0 || len % page_size_ != 0 || len == 0) return false;
  auto got = get_inode(ino);
  if (!got.ok()) return false;
  *rec = *got;
  if (!S_ISREG(rec->mode) || !may_change_inode(*rec).ok()) return false;
  const bool setid = (rec->mode & S_ISUID) || ((rec->mode & S_ISGID) && (rec->mode & S_IXGRP));
  if (drop_setid && setid) return false;
  const uint64_t first = pos / page_size_, last = (pos + len) / page_size_ - 1;
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
      overwrite_once(ino, pos, buf, len, crcs, drop_setid, &short_of);
  if (done || short_of == 0 || read_only_) return done;
  make_room_for_overwrite(short_of);
  return overwrite_once(ino, pos, buf, len, crcs, drop_setid, &short_of);
}

std::optional<Result<size_t>> FileSystem::Impl::overwrite_once(InodeNo ino, uint64_t pos,
                                                               const char* buf, size_t len,
                                                               const uint32_t* crcs,
                                                               bool drop_setid,
                                                               uint64_t* short_of) {
  std::shared_lock lock(mu_);
  InodeRecord rec;
  std::vector<Extent> extents;
  if (!overwrite_applies(ino, pos, len, drop_setid, &rec, &extents)) return std::nullopt;
  // Step 2.
  std::vector<Btree::Place> places;  // the extents' records, then the inode's
  places.reserve(extents.size() + 1);
  for (const Extent& e : extents) {
    auto place = tree_->locate(Key::of(ino.value, KeyKind::kExtent, e.file_page));
    if (!place.ok() || !*place || (*place)->size != e.encode().size()) return std::nullopt;
    places.push_back(std::move(**place));
  }
  auto inode_place = tree_->locate(Key::of(ino.value, KeyKind::kInode, 0));
  if (!inode_place.ok() || !*inode_place || (*inode_place)->size != sizeof rec) return std::nullopt;
  places.push_back(std::move(**inode_place));
  const uint64_t pages = len / page_size_;
  const uint64_t credits = pages + places.size();
  if (!take_overwrite_credits(credits)) {
    *short_of = credits;
    return std::nullopt;
  }
  // Step 3.
  const uint64_t first = pos / page_size_;
  size_t e = 0;
  uint64_t done = 0;
  Status st = ok_status();
  for (; done < pages; done++) {
    const uint64_t fp = first + done;
    while (extents[e].end() <= fp) e++;
    const uint32_t idx = uint32_t(fp - extents[e].file_page);
    // A page allocated but never written holds nothing live: fresh, as in
    // write_page().
    const bool fresh = extents[e].is_unwritten(idx);
    auto frame = pool_->create(PageNo{extents[e].phys + idx}, false, fresh, /*zero=*/false);
    if (!frame.ok()) {
      st = Err{frame.error()};
      break;
    }
    frame->mark_dirty();
    std::memcpy(frame->data(), buf + done * page_size_, page_size_);
    frame->set_data_crc(crcs[done]);
    extents[e].crc[idx] = crcs[done];
    extents[e].unwritten &= ~(1u << idx);
  }
  // Step 4.
  if (done > 0) {
    rec.size = std::max<uint64_t>(rec.size, pos + done * page_size_);
    touch(rec, true, true);
    std::unique_lock latch(item_latches_.of(ino));
    for (size_t i = 0; i < extents.size(); i++) {
      places[i].leaf.change(places[i].offset, bytes_of(extents[i].encode()));
    }
    places.back().leaf.change(places.back().offset,
                              std::span(reinterpret_cast<const std::byte*>(&rec), sizeof rec));
  }
  return_overwrite_credits(credits);
  if (done == 0) return Result<size_t>(Err{st.error()});
  return Result<size_t>(size_t(done * page_size_));
}

}  // namespace pagefs
