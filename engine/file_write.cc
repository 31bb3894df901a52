// Writes: file bytes into cache pages, each page's CRC32C into its extent.
//
// Sequential writes grow the current extent page by page while the next
// device page is free, so a file written in order lands in few, contiguous
// extents; files written side by side each look in a window of their own
// (alloc_streams.h).
//
// A write works in chunks of kChunkPages, each its own segment (the rule at
// the top of transaction.cc): a chunk that fails is undone whole, and the
// write returns the bytes of the chunks before it, or the error if there are
// none. The copy and the checksum of whole pages happen outside the
// filesystem lock, so writers to different files copy in parallel:
//   1. Without any lock but the file's own (InodeLocks, held exclusively for
//      the whole write), the CRC32C of every whole page of the caller's
//      buffer is computed.
//   2. Under the filesystem lock, a chunk's pages are found or allocated, the
//      frames of its whole pages pinned and marked dirty, its extents stored
//      with the CRCs of step 1, and the inode stored; partial pages are read,
//      changed and checksummed right there. The chunk counts as a copy in
//      flight (begin_copies) before the lock is released.
//   3. Without the filesystem lock, the whole pages are copied into their
//      pinned frames, which are then unpinned, and the copy ends
//      (end_copies).
// Nobody sees a frame between steps 2 and 3: readers and other changers of
// the file's data wait for the file's lock; pinned frames are neither
// evicted nor written back; and closing a transaction waits for the copies
// in flight (close_txn_locked), so no commit takes a page half copied.
#include <fcntl.h>
#include <sys/stat.h>

#include <algorithm>
#include <cstring>
#include <mutex>

#include "engine/crc32c.h"
#include "engine/filesystem.h"
#include "engine/fs_impl.h"

namespace pagefs {
namespace {

constexpr uint64_t kChunkPages = 32;

}  // namespace

// Finds or allocates the device page of file page `fp`, growing `cur` in
// place when the next device page is free.
Status FileSystem::Impl::map_page(InodeNo ino, InodeRecord& rec, uint64_t fp, Extent& cur,
                                  bool& cur_valid, bool& cur_dirty) {
  auto flush_cur = [&]() -> Status {
    if (cur_valid && cur_dirty) PAGEFS_TRY(put_extent(ino, cur));
    cur_dirty = false;
    return ok_status();
  };
  bool covered = cur_valid && fp >= cur.file_page && fp < cur.end();
  if (covered) return ok_status();
  bool grown = false;
  if (!(cur_valid && cur.end() == fp)) {
    PAGEFS_TRY(flush_cur());
    Extent found;
    bool hit = false;
    PAGEFS_TRY(find_extent(ino, fp, &found, &hit));
    if (hit) {
      cur = found, cur_valid = true;
      return ok_status();
    }
    if (fp > 0) {
      PAGEFS_TRY(find_extent(ino, fp - 1, &found, &hit));
      if (hit) cur = found, cur_valid = true;
    }
  }
  // Extents never overlap, so when cur ends just before fp, an extent that
  // covers fp starts exactly at fp: one lookup says whether to grow cur.
  if (cur_valid && cur.end() == fp) {
    Extent next;
    bool hit = false;
    PAGEFS_TRY(find_extent(ino, fp, &next, &hit));
    if (hit) {
      PAGEFS_TRY(flush_cur());
      cur = next;
      return ok_status();
    }
  }
  if (cur_valid && cur.end() == fp && cur.pages < kMaxExtentPages) {
    PAGEFS_ASSIGN(bool got, space_->allocate_at(PageNo{cur.phys + cur.pages}, false));
    if (got) {
      space_->streams().allocated(ino.value, fp, cur.phys + cur.pages);
      cur.crc[cur.pages] = 0;
      cur.unwritten |= 1u << cur.pages;
      cur.pages++;
      cur_dirty = grown = true;
      rec.blocks++;
    }
  }
  if (!grown) {
    PAGEFS_TRY(flush_cur());
    AllocStreams& streams = space_->streams();
    uint64_t hint = streams.hint(ino.value, fp, cur_valid ? cur.phys + cur.pages : 0);
    PAGEFS_ASSIGN(PageRun run,
                  space_->allocate(PageNo{hint}, 1, false, streams.stream_of(ino.value, fp)));
    streams.allocated(ino.value, fp, run.start.value);
    cur = Extent{};
    cur.file_page = fp;
    cur.phys = run.start.value;
    cur.pages = 1;
    cur.unwritten = 1;
    cur_valid = cur_dirty = true;
    rec.blocks++;
  }
  return ok_status();
}

// Writes [in_page, in_page+len) of file page `fp`. With `copies`, a whole
// page is only pinned and marked dirty, its CRC (`whole_crc`) stored, and the
// copy queued for step 3; otherwise the bytes are copied and checksummed now.
Status FileSystem::Impl::write_page(InodeNo ino, InodeRecord& rec, uint64_t fp, uint32_t in_page,
                                    const char* buf, uint32_t len, WriteCursor& c,
                                    std::vector<PendingCopy>* copies, uint32_t whole_crc) {
  PAGEFS_TRY(map_page(ino, rec, fp, c.cur, c.valid, c.dirty));
  Extent& cur = c.cur;
  uint32_t idx = uint32_t(fp - cur.file_page);
  PageNo phys{cur.phys + idx};
  bool whole = in_page == 0 && len == page_size_;
  bool deferred = whole && copies != nullptr;
  PageRef ref;
  // A page allocated just now, or allocated but never written (fallocate),
  // holds nothing live: it is fresh, goes home before the commit and needs
  // no journal copy. Overwriting a live page, even whole, is journaled.
  if (cur.is_unwritten(idx)) {
    PAGEFS_ASSIGN(ref, pool_->create(phys, false, /*fresh=*/true, /*zero=*/!deferred));
  } else if (whole) {
    PAGEFS_ASSIGN(ref, pool_->create(phys, false, /*fresh=*/false, /*zero=*/!deferred));
  } else {
    PAGEFS_ASSIGN(ref, pool_->fetch_data(phys, cur.crc[idx]));
  }
  ref.mark_dirty();
  if (deferred) {
    cur.crc[idx] = whole_crc;
    copies->push_back(PendingCopy{std::move(ref), buf, whole_crc});
  } else {
    std::memcpy(ref.data() + in_page, buf, len);
    cur.crc[idx] = crc32c(ref.data(), page_size_);
    ref.set_data_crc(cur.crc[idx]);
  }
  cur.unwritten &= ~(1u << idx);
  c.dirty = true;
  return ok_status();
}

// Writes [pos, pos+len) inside one chunk, then stores its extent and the
// inode. `crcs[k]`: the CRC of the k-th page of the chunk when it is whole.
Status FileSystem::Impl::write_chunk(InodeNo ino, InodeRecord& rec, uint64_t pos, const char* buf,
                                     size_t len, std::vector<PendingCopy>* copies,
                                     const uint32_t* crcs) {
  WriteCursor c;
  size_t done = 0;
  for (size_t k = 0; done < len; k++) {
    uint64_t at = pos + done;
    uint32_t in_page = uint32_t(at % page_size_);
    uint32_t n = uint32_t(std::min<uint64_t>(page_size_ - in_page, len - done));
    PAGEFS_TRY(write_page(ino, rec, at / page_size_, in_page, buf + done, n, c, copies,
                          crcs != nullptr ? crcs[k] : 0));
    done += n;
  }
  if (c.valid && c.dirty) PAGEFS_TRY(put_extent(ino, c.cur));
  rec.size = std::max<uint64_t>(rec.size, pos + len);
  touch(rec, true, true);
  return put_inode(ino, rec);
}

// The whole write under the filesystem lock, for callers that hold it inside
// a larger operation (a symlink's target, inside create): any failure is the
// caller's to undo.
Result<size_t> FileSystem::Impl::write_locked(InodeNo ino, InodeRecord& rec, uint64_t off,
                                              const char* buf, size_t len) {
  if (off >= kMaxFileBytes || len > kMaxFileBytes - off) return Err{EFBIG};
  for (size_t done = 0; done < len;) {
    uint64_t pos = off + done;
    uint64_t end = std::min<uint64_t>(off + len, (pos / page_size_ + kChunkPages) * page_size_);
    PAGEFS_TRY(write_chunk(ino, rec, pos, buf + done, size_t(end - pos), nullptr, nullptr));
    done += size_t(end - pos);
  }
  return len;
}

// ---- copies in flight -------------------------------------------------------

void FileSystem::Impl::begin_copies() {
  std::lock_guard lock(copies_mu_);
  copies_in_flight_++;
}

void FileSystem::Impl::end_copies() {
  {
    std::lock_guard lock(copies_mu_);
    copies_in_flight_--;
  }
  copies_cv_.notify_all();
}

void FileSystem::Impl::wait_for_copies() {
  std::unique_lock lock(copies_mu_);
  copies_cv_.wait(lock, [&] { return copies_in_flight_ == 0; });
}

// ---- FileSystem::write --------------------------------------------------------

namespace {

// Step 1: the CRC32C of each page of [off, off+len) that the write covers
// whole (0 for the partial pages at either end).
std::vector<uint32_t> whole_page_crcs(uint64_t off, const char* buf, size_t len,
                                      uint32_t page_size) {
  std::vector<uint32_t> crcs;
  crcs.reserve(len / page_size + 2);
  for (size_t done = 0; done < len;) {
    uint32_t in_page = uint32_t((off + done) % page_size);
    size_t n = std::min<size_t>(page_size - in_page, len - done);
    crcs.push_back(n == page_size ? crc32c(buf + done, page_size) : 0);
    done += n;
  }
  return crcs;
}

}  // namespace

// One chunk: step 2 under the filesystem lock (a segment of its own), then
// step 3 without it. `first`: the chunk that drops setuid/setgid.
Result<size_t> FileSystem::Impl::write_one_chunk(InodeNo ino, uint64_t pos, const char* buf,
                                                 size_t len, const uint32_t* crcs,
                                                 bool drop_setid) {
  std::vector<PendingCopy> copies;
  copies.reserve(kChunkPages);
  {
    std::unique_lock lock(mu_);
    Status st = run_op([&]() -> Status {
      PAGEFS_TRY(check_writable());
      PAGEFS_ASSIGN(InodeRecord rec, get_inode(ino));
      if (S_ISDIR(rec.mode)) return Err{EISDIR};
      if (!S_ISREG(rec.mode)) return Err{EINVAL};
      PAGEFS_TRY(may_write(ino, rec, pos, buf, len));
      if (drop_setid) {
        rec.mode &= ~uint32_t(S_ISUID);
        if (rec.mode & S_IXGRP) rec.mode &= ~uint32_t(S_ISGID);
      }
      uint64_t pages = (len + page_size_ - 1) / page_size_ + 1;
      PAGEFS_TRY(begin_op(2 * pages + 16, pages));
      Status wrote = write_chunk(ino, rec, pos, buf, len, &copies, crcs);
      if (!wrote.ok()) copies.clear();  // unpinned before the segment is undone
      return wrote;
    });
    if (!st.ok()) return Err{st.error()};
    if (!copies.empty()) begin_copies();
  }
  if (copies.empty()) return len;
  for (PendingCopy& c : copies) {
    std::memcpy(c.frame.data(), c.source, page_size_);
    c.frame.set_data_crc(c.crc);
  }
  copies.clear();  // unpins
  end_copies();
  return len;
}

Result<size_t> FileSystem::write(InodeNo ino, uint64_t off, const char* buf, size_t len,
                                 bool drop_setid) {
  Impl& fs = *impl_;
  if (len == 0) {
    std::shared_lock lock(fs.mu_);
    PAGEFS_TRY(fs.check_writable());
    PAGEFS_ASSIGN(InodeRecord rec, fs.get_inode(ino));
    if (S_ISDIR(rec.mode)) return Err{EISDIR};
    return S_ISREG(rec.mode) ? Result<size_t>(size_t(0)) : Err{EINVAL};
  }
  if (off >= kMaxFileBytes || len > kMaxFileBytes - off) return Err{EFBIG};
  std::unique_lock file_lock(fs.inode_locks_.of(ino));
  const std::vector<uint32_t> crcs = whole_page_crcs(off, buf, len, fs.page_size_);
  size_t done = 0, page = 0;
  while (done < len) {
    uint64_t pos = off + done;
    uint64_t end =
        std::min<uint64_t>(off + len, (pos / fs.page_size_ + kChunkPages) * fs.page_size_);
    size_t n = size_t(end - pos);
    const bool drop = drop_setid && done == 0;
    std::optional<Result<size_t>> in_place =
        fs.overwrite_chunk(ino, pos, buf + done, n, crcs.data() + page, drop);
    Result<size_t> wrote =
        in_place ? std::move(*in_place)
                 : fs.write_one_chunk(ino, pos, buf + done, n, crcs.data() + page, drop);
    if (!wrote.ok()) {
      if (done == 0) return Err{wrote.error()};
      break;  // the chunks before it stay: a short count
    }
    if (*wrote < n) return done + *wrote;  // an overwrite that ran out of frames
    done += n;
    page += (pos % fs.page_size_ + n + fs.page_size_ - 1) / fs.page_size_;
  }
  return done;
}

}  // namespace pagefs
