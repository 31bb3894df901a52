// File data: read, truncate, fallocate, lseek and copy_file_range (writes
// are in file_write.cc).
//
// A file page lives in a device page named by an extent (extent.cc), which
// records each page's CRC32C.
#include <fcntl.h>
#include <linux/falloc.h>
#include <sys/stat.h>
#include <unistd.h>

#include <algorithm>
#include <cstring>

#include "engine/crc32c.h"
#include "engine/filesystem.h"
#include "engine/fs_impl.h"

namespace pagefs {
namespace {

uint32_t low_bits(uint32_t n) {
  return n >= 32 ? ~0u : ((1u << n) - 1);
}

}  // namespace

// ---- read -------------------------------------------------------------------

// The extents covering [off, off+len), read under the filesystem lock.
Status FileSystem::Impl::read_extents(InodeNo ino, uint64_t off, size_t len,
                                      std::vector<Extent>* extents) {
  if (len == 0) return ok_status();
  return collect_extents(ino, off / page_size_, (off + len - 1) / page_size_, extents);
}

// Fetches the pages of [off, off+len) named by `extents` (prefetched in one
// batch) and hands them out in order. Needs no filesystem lock: the caller
// holds the file's lock, so no one changes or frees these pages meanwhile,
// and every fetch checks the page against the CRC its extent recorded.
template <class Piece>
Status FileSystem::Impl::for_each_piece(const std::vector<Extent>& extents, uint64_t off,
                                        size_t len, Piece&& piece) {
  uint64_t first = off / page_size_, last = (off + len - 1) / page_size_;
  std::vector<DataPageRequest> wanted;
  for (const Extent& e : extents) {
    for (uint64_t fp = std::max(first, e.file_page); fp <= last && fp < e.end(); fp++) {
      uint32_t i = uint32_t(fp - e.file_page);
      if (!e.is_unwritten(i)) wanted.push_back(DataPageRequest{PageNo{e.phys + i}, e.crc[i]});
    }
  }
  if (wanted.size() > 1) pool_->prefetch_data(wanted);
  size_t done = 0;
  size_t ei = 0;
  while (done < len) {
    uint64_t pos = off + done;
    uint64_t fp = pos / page_size_;
    uint32_t in_page = uint32_t(pos % page_size_);
    size_t n = std::min<size_t>(page_size_ - in_page, len - done);
    while (ei < extents.size() && extents[ei].end() <= fp) ei++;
    const Extent* e = ei < extents.size() && extents[ei].file_page <= fp ? &extents[ei] : nullptr;
    uint32_t i = e ? uint32_t(fp - e->file_page) : 0;
    if (!e || e->is_unwritten(i)) {
      piece(PageRef(), in_page, n);
    } else {
      PAGEFS_ASSIGN(PageRef ref, pool_->fetch_data(PageNo{e->phys + i}, e->crc[i]));
      piece(std::move(ref), in_page, n);
    }
    done += n;
  }
  return ok_status();
}

// Copies [off, off+len) (cut at rec.size) into buf.
Result<size_t> FileSystem::Impl::read_copy(const InodeRecord& rec,
                                           const std::vector<Extent>& extents, uint64_t off,
                                           size_t len, char* buf) {
  if (off >= rec.size || len == 0) return size_t(0);
  len = size_t(std::min<uint64_t>(len, rec.size - off));
  size_t done = 0;
  PAGEFS_TRY(for_each_piece(extents, off, len, [&](PageRef ref, uint32_t in_page, size_t n) {
    if (ref.valid()) {
      std::memcpy(buf + done, ref.data() + in_page, n);
    } else {
      std::memset(buf + done, 0, n);
    }
    done += n;
  }));
  return done;
}

Result<size_t> FileSystem::Impl::read_pinned(const InodeRecord& rec,
                                             const std::vector<Extent>& extents, uint64_t off,
                                             size_t len, const FileSystem::ReadReply& reply) {
  if (off >= rec.size || len == 0) {
    reply({});
    return size_t(0);
  }
  len = size_t(std::min<uint64_t>(len, rec.size - off));
  size_t pages = size_t((off + len - 1) / page_size_ - off / page_size_ + 1);
  if (pages > std::max<size_t>(1, pool_->frame_count() / 64)) return Err{ENOBUFS};
  // All in-place reads together pin at most a quarter of the cache, so that
  // many concurrent ones cannot leave other callers without a frame.
  const size_t budget = std::max<size_t>(1, pool_->frame_count() / 4);
  if (in_place_pins_.fetch_add(pages, std::memory_order_relaxed) + pages > budget) {
    in_place_pins_.fetch_sub(pages, std::memory_order_relaxed);
    return Err{ENOBUFS};
  }
  struct Unreserve {
    std::atomic<size_t>& pins;
    size_t pages;
    ~Unreserve() { pins.fetch_sub(pages, std::memory_order_relaxed); }
  } unreserve{in_place_pins_, pages};
  std::vector<PageRef> pins;
  std::vector<iovec> iov;
  pins.reserve(pages);
  iov.reserve(pages);
  PAGEFS_TRY(for_each_piece(extents, off, len, [&](PageRef ref, uint32_t in_page, size_t n) {
    std::byte* base = ref.valid() ? ref.data() + in_page : zero_page_.get();
    if (ref.valid()) pins.push_back(std::move(ref));
    // Frames next to each other in memory (read together) make one iovec.
    if (!iov.empty() && static_cast<std::byte*>(iov.back().iov_base) + iov.back().iov_len == base) {
      iov.back().iov_len += n;
    } else {
      iov.push_back(iovec{base, n});
    }
  }));
  reply(iov);
  return len;
}

// The filesystem lock is held only while the extents are looked up, not
// during the device read: four workers reading ahead would otherwise hold the
// (reader-preferring) lock almost continuously and keep writers and commits
// waiting. Reading without it is safe because the pool verifies each page
// against the CRC found here and drops it on a mismatch, and never reads a
// page it already holds: a page freed and reused meanwhile is either in the
// pool (skipped) or has new contents at home (dropped).
void FileSystem::Impl::prefetch_range(InodeNo ino, uint64_t off, uint64_t len) {
  std::vector<DataPageRequest> wanted;
  for (int tries = 1; tries < kReadTries; tries++) {  // as read_op, but best effort
    std::optional<BufferPool::Miss> missed;
    {
      std::shared_lock lock(mu_);
      BufferPool::NoDeviceReads no_reads;
      wanted.clear();
      collect_data_pages(ino, off, len, &wanted);
      missed = no_reads.missed();
    }
    if (!missed) break;
    pool_->load(*missed);
  }
  pool_->prefetch_data(wanted);
}

void FileSystem::Impl::collect_data_pages(InodeNo ino, uint64_t off, uint64_t len,
                                          std::vector<DataPageRequest>* wanted) {
  auto rec = get_inode(ino);
  if (!rec.ok() || off >= rec->size) return;
  len = std::min<uint64_t>(len, rec->size - off);
  uint64_t first = off / page_size_, last = (off + len - 1) / page_size_;
  std::vector<Extent> extents;
  if (!collect_extents(ino, first, last, &extents).ok()) return;
  for (const Extent& e : extents) {
    for (uint64_t fp = std::max(first, e.file_page); fp <= last && fp < e.end(); fp++) {
      uint32_t i = uint32_t(fp - e.file_page);
      if (!e.is_unwritten(i)) wanted->push_back(DataPageRequest{PageNo{e.phys + i}, e.crc[i]});
    }
  }
}

// ---- truncate and fallocate ---------------------------------------------------

// Zeroes [off, off+len) inside one page, if that page holds written data.
Status FileSystem::Impl::zero_bytes(InodeNo ino, uint64_t off, uint32_t len) {
  uint64_t fp = off / page_size_;
  uint32_t in_page = uint32_t(off % page_size_);
  Extent e;
  bool found = false;
  PAGEFS_TRY(find_extent(ino, fp, &e, &found));
  uint32_t i = uint32_t(fp - e.file_page);
  if (!found || e.is_unwritten(i)) return ok_status();
  PAGEFS_ASSIGN(PageRef ref, pool_->fetch_data(PageNo{e.phys + i}, e.crc[i]));
  ref.mark_dirty();
  std::memset(ref.data() + in_page, 0, len);
  e.crc[i] = crc32c(ref.data(), page_size_);
  ref.set_data_crc(e.crc[i]);
  return put_extent(ino, e);
}

// Keeps the invariant that bytes past the end of file inside its last page are
// zero, so growing a file again reads zeros there. The tail is zeroed and the
// new size stored in one step; the pages past it are freed afterwards, in
// chunks that may commit (extents past the end of file are consistent).
Status FileSystem::Impl::truncate_locked(InodeNo ino, InodeRecord& rec, uint64_t size) {
  if (size > kMaxFileBytes) return Err{EFBIG};
  bool shrink = size < rec.size;
  if (shrink && size % page_size_) {
    uint32_t in_page = uint32_t(size % page_size_);
    PAGEFS_TRY(zero_bytes(ino, size, page_size_ - in_page));
  }
  rec.size = size;
  touch(rec, true, true);
  PAGEFS_TRY(put_inode(ino, rec));
  if (shrink) {
    uint64_t keep = (size + page_size_ - 1) / page_size_;
    PAGEFS_TRY(remove_pages(ino, rec, keep, kMaxFileBytes / page_size_ + kMaxExtentPages));
  }
  return ok_status();
}

// Allocates unwritten extents over the holes in file pages [first, end).
// All or nothing: the pages and the tree pages mapping them must fit before
// anything is allocated (the space statfs reports is exactly what fits), and
// when fragmented free space makes the records outgrow that estimate, what
// this call allocated is freed again before it fails.
Status FileSystem::Impl::allocate_unwritten(InodeNo ino, InodeRecord& rec, uint64_t first,
                                            uint64_t end) {
  std::vector<Extent> extents;
  PAGEFS_TRY(collect_extents(ino, first, end - 1, &extents));
  uint64_t need = 0, p = first;
  for (const Extent& e : extents) {
    if (e.file_page > p) need += e.file_page - p;
    p = std::max(p, e.end());
  }
  if (p < end) need += end - p;
  auto fits = [&] { return need + extent_tree_pages(need) <= space_->data_free_pages(); };
  if (!fits() && space_->pending_pages() > 0) {
    // Freed space comes back at a checkpoint; the state so far is consistent.
    PAGEFS_TRY(put_inode(ino, rec));
    PAGEFS_TRY(checkpoint_locked());
  }
  if (!fits()) return Err{ENOSPC};
  p = first;
  uint64_t hint = 0;
  int since_commit_point = 0;
  // File page ranges given extents so far, and those of them kept at the
  // last commit point (the ones a failure must remove by hand).
  std::vector<std::pair<uint64_t, uint64_t>> filled, kept;
  auto fill = [&](uint64_t from, uint64_t to) -> Status {
    filled.emplace_back(from, from);
    while (from < to) {
      if (++since_commit_point == 32) {
        // Unwritten extents past what the size covers are consistent.
        PAGEFS_TRY(put_inode(ino, rec));
        PAGEFS_TRY(begin_op(160, kMaxExtentPages));
        kept = filled;
        since_commit_point = 0;
      }
      uint32_t want = uint32_t(std::min<uint64_t>(kMaxExtentPages, to - from));
      PAGEFS_ASSIGN(PageRun run, space_->allocate(PageNo{hint}, want, false));
      Extent e{};
      e.file_page = from;
      e.phys = run.start.value;
      e.pages = run.count;
      e.unwritten = low_bits(run.count);
      PAGEFS_TRY(put_extent(ino, e));
      rec.blocks += run.count;
      hint = run.start.value + run.count;
      from += run.count;
      filled.back().second = from;
    }
    return ok_status();
  };
  Status st;
  for (const Extent& e : extents) {
    if (!st.ok()) break;
    if (e.file_page > p) st = fill(p, e.file_page);
    p = std::max(p, e.end());
  }
  if (st.ok() && p < end) st = fill(p, end);
  if (!st.ok() && !kept.empty()) PAGEFS_TRY(unfill(ino, rec, kept));
  return st;
}

// After a fallocate failed past a commit point: its last segment is undone,
// and the extents it allocated in the segments before it (`kept`) are
// removed, since those ranges were holes. The removal is kept, so the failed call
// leaves the file and the free space as they were. Should the removal fail
// too, the extents stay, past the size if need be and counted in the inode's
// blocks: a consistent file.
Status FileSystem::Impl::unfill(InodeNo ino, InodeRecord& rec,
                                const std::vector<std::pair<uint64_t, uint64_t>>& kept) {
  undo_segment();
  PAGEFS_ASSIGN(rec, get_inode(ino));
  for (const auto& [from, to] : kept) {
    if (to > from) PAGEFS_TRY(remove_pages(ino, rec, from, to));
  }
  PAGEFS_TRY(put_inode(ino, rec));
  return begin_op(16);  // keeps the removal
}

// ---- FileSystem: public ---------------------------------------------------------

namespace {

// relatime: atime moves when it is not after mtime or ctime, or is a day old.
bool atime_due(const InodeRecord& rec, int64_t now_sec) {
  auto before_or_same = [](int64_t s1, uint32_t n1, int64_t s2, uint32_t n2) {
    return s1 < s2 || (s1 == s2 && n1 <= n2);
  };
  return before_or_same(rec.atime_sec, rec.atime_nsec, rec.mtime_sec, rec.mtime_nsec) ||
         before_or_same(rec.atime_sec, rec.atime_nsec, rec.ctime_sec, rec.ctime_nsec) ||
         now_sec - rec.atime_sec >= 24 * 3600;
}

}  // namespace

// Both reads store a due atime before reading, so the reply goes out after
// it: whatever the caller does next (a stat, a chmod) already sees it. The
// filesystem lock is held only to read the inode and the extents: the pages
// are fetched (device misses included) and handed to `read_pages` (the
// reply, for in-place reads) without it, under the file's own lock, so
// readers never keep writers of other files waiting on a device or on the
// kernel.
template <class ReadPages>
Result<size_t> FileSystem::Impl::read_file(InodeNo ino, uint64_t off, size_t len,
                                           ReadPages&& read_pages, bool atime) {
  std::shared_lock file_lock(inode_locks_.of(ino));
  InodeRecord rec;
  std::vector<Extent> extents;
  for (bool atime_done = !atime;; atime_done = true) {
    bool wants_atime = false;
    PAGEFS_TRY(read_op([&]() -> Status {
      extents.clear();
      PAGEFS_ASSIGN(rec, get_inode(ino));
      if (S_ISDIR(rec.mode)) return Err{EISDIR};
      wants_atime = !atime_done && atime_wanted(rec);
      if (wants_atime || off >= rec.size) return ok_status();
      return read_extents(ino, off, size_t(std::min<uint64_t>(len, rec.size - off)), &extents);
    }));
    if (!wants_atime) break;
    update_atime(ino);
  }
  PAGEFS_ASSIGN(size_t n, read_pages(rec, extents));
  if (readahead_) readahead_->note_read(ino, off, n);
  return n;
}

Result<size_t> FileSystem::read(InodeNo ino, uint64_t off, size_t len, char* buf) {
  return impl_->read_file(ino, off, len, [&](const InodeRecord& rec, const auto& extents) {
    return impl_->read_copy(rec, extents, off, len, buf);
  });
}

Result<size_t> FileSystem::read_in_place(InodeNo ino, uint64_t off, size_t len,
                                         const ReadReply& reply) {
  return impl_->read_file(ino, off, len, [&](const InodeRecord& rec, const auto& extents) {
    return impl_->read_pinned(rec, extents, off, len, reply);
  });
}

bool FileSystem::Impl::atime_wanted(const InodeRecord& rec) const {
  if (read_only_ || failed_ || (rec.flags & kInodeFlagNoAtime)) return false;
  switch (options_.atime_updates) {
    case AtimeUpdates::kNever:
      return false;
    case AtimeUpdates::kAlways:
      return true;
    case AtimeUpdates::kRelative:
      break;
  }
  return atime_due(rec, now_timespec().tv_sec);
}

// Best effort: a read does not fail for its atime.
void FileSystem::Impl::update_atime(InodeNo ino) {
  std::unique_lock lock(mu_);
  (void)run_op([&]() -> Status {
    PAGEFS_ASSIGN(InodeRecord rec, get_inode(ino));
    if (!atime_wanted(rec)) return ok_status();
    PAGEFS_TRY(begin_op(4));
    timespec now = now_timespec();
    rec.atime_sec = now.tv_sec;
    rec.atime_nsec = uint32_t(now.tv_nsec);
    return put_inode(ino, rec);
  });
}

Result<Attr> FileSystem::setattr(InodeNo ino, const SetAttr& c) {
  // A size change takes the file's lock (file_write.cc) before the filesystem's.
  std::unique_lock<std::shared_mutex> file_lock;
  if (c.set_size) file_lock = std::unique_lock(impl_->inode_locks_.of(ino));
  std::unique_lock lock(impl_->mu_);
  return impl_->run_op([&] { return impl_->setattr_locked(ino, c); });
}

// A chmod of an inode with an access ACL rewrites the ACL in the same
// operation (after the truncate's commit points, if it truncates too).
Result<Attr> FileSystem::Impl::setattr_locked(InodeNo ino, const SetAttr& c) {
  FoundXattr acl;
  uint64_t acl_pages = 0, acl_data_pages = 0;
  if (c.set_mode && options_.posix_acl) {
    PAGEFS_TRY(find_xattr(ino, kAclAccessXattr, &acl));
    if (acl.found) {
      const uint32_t bytes = decode_xattr(acl.item).value_bytes;
      acl_pages = xattr_op_pages(bytes);
      acl_data_pages = xattr_value_pages(bytes, page_size_);
    }
  }
  PAGEFS_TRY(begin_op(16 + acl_pages, acl_data_pages));
  PAGEFS_ASSIGN(InodeRecord rec, get_inode(ino));
  PAGEFS_TRY(may_set_attr(rec, c));
  if (c.set_size) {
    if (S_ISDIR(rec.mode)) return Err{EISDIR};
    if (!S_ISREG(rec.mode)) return Err{EINVAL};
    PAGEFS_TRY(truncate_locked(ino, rec, c.size));
    if (acl.found) PAGEFS_TRY(begin_op(16 + acl_pages, acl_data_pages));
  }
  if (c.set_mode) {
    rec.mode = (rec.mode & S_IFMT) | (c.mode & 07777);
    if (acl.found) PAGEFS_TRY(chmod_acl(ino, acl, rec.mode));
  }
  if (c.set_uid) rec.uid = c.uid;
  if (c.set_gid) rec.gid = c.gid;
  timespec now = now_timespec();
  if (c.set_atime) {
    timespec t = c.atime_now ? now : c.atime;
    rec.atime_sec = t.tv_sec, rec.atime_nsec = uint32_t(t.tv_nsec);
  }
  if (c.set_mtime) {
    timespec t = c.mtime_now ? now : c.mtime;
    rec.mtime_sec = t.tv_sec, rec.mtime_nsec = uint32_t(t.tv_nsec);
  }
  rec.ctime_sec = now.tv_sec, rec.ctime_nsec = uint32_t(now.tv_nsec);
  PAGEFS_TRY(put_inode(ino, rec));
  Attr a = to_attr(ino, rec);
  a.blocks_512 = rec.blocks * (page_size_ / 512);
  return a;
}

Status FileSystem::fallocate(InodeNo ino, int mode, uint64_t off, uint64_t len,
                             uint32_t clear_mode) {
  const int known = FALLOC_FL_KEEP_SIZE | FALLOC_FL_PUNCH_HOLE | FALLOC_FL_ZERO_RANGE;
  if (mode & ~known) return Err{EOPNOTSUPP};
  if ((mode & FALLOC_FL_PUNCH_HOLE) && !(mode & FALLOC_FL_KEEP_SIZE)) return Err{EOPNOTSUPP};
  if ((mode & FALLOC_FL_PUNCH_HOLE) && (mode & FALLOC_FL_ZERO_RANGE)) return Err{EOPNOTSUPP};
  if (len == 0) return Err{EINVAL};
  if (off >= kMaxFileBytes || len > kMaxFileBytes - off) return Err{EFBIG};
  std::unique_lock file_lock(impl_->inode_locks_.of(ino));
  std::unique_lock lock(impl_->mu_);
  return impl_->run_op([&] { return impl_->fallocate_locked(ino, mode, off, len, clear_mode); });
}

Status FileSystem::Impl::fallocate_locked(InodeNo ino, int mode, uint64_t off, uint64_t len,
                                          uint32_t clear_mode) {
  Impl& fs = *this;
  PAGEFS_TRY(fs.begin_op(64));
  PAGEFS_ASSIGN(InodeRecord rec, fs.get_inode(ino));
  if (S_ISDIR(rec.mode)) return Err{EISDIR};
  if (!S_ISREG(rec.mode)) return Err{ENODEV};
  PAGEFS_TRY(may_fallocate(rec, mode));
  const uint64_t ps = fs.page_size_;
  uint64_t end = off + len;
  uint64_t first_full = (off + ps - 1) / ps, end_full = end / ps;
  if (mode & (FALLOC_FL_PUNCH_HOLE | FALLOC_FL_ZERO_RANGE)) {
    if (first_full > end_full) {
      PAGEFS_TRY(fs.zero_bytes(ino, off, uint32_t(len)));  // inside one page
    } else {
      if (off % ps) PAGEFS_TRY(fs.zero_bytes(ino, off, uint32_t(ps - off % ps)));
      if (end % ps && end_full >= first_full)
        PAGEFS_TRY(fs.zero_bytes(ino, end_full * ps, uint32_t(end % ps)));
      PAGEFS_TRY(fs.remove_pages(ino, rec, first_full, end_full));
    }
    if (mode & FALLOC_FL_ZERO_RANGE && end_full > first_full) {
      PAGEFS_TRY(fs.allocate_unwritten(ino, rec, first_full, end_full));
    }
    Impl::touch(rec, true, true);
  } else {
    PAGEFS_TRY(fs.allocate_unwritten(ino, rec, off / ps, (end + ps - 1) / ps));
    Impl::touch(rec, false, true);
  }
  if (!(mode & FALLOC_FL_KEEP_SIZE) && end > rec.size) {
    rec.size = end;
    Impl::touch(rec, true, true);
  }
  rec.mode &= ~(clear_mode & uint32_t(S_ISUID | S_ISGID));
  return fs.put_inode(ino, rec);
}

Result<uint64_t> FileSystem::lseek(InodeNo ino, uint64_t off, int whence) {
  if (whence != SEEK_DATA && whence != SEEK_HOLE) return Err{EINVAL};
  Impl& fs = *impl_;
  InodeRecord rec{};
  std::vector<Extent> extents;
  const uint64_t ps = fs.page_size_;
  PAGEFS_TRY(fs.read_op([&]() -> Status {
    extents.clear();
    PAGEFS_ASSIGN(rec, fs.get_inode(ino));
    if (off >= rec.size) return Err{ENXIO};
    return fs.collect_extents(ino, off / ps, UINT64_MAX / ps, &extents);
  }));
  if (whence == SEEK_DATA) {
    for (const Extent& e : extents) {
      uint64_t start = std::max(off, e.file_page * ps);
      if (start < e.end() * ps) return start < rec.size ? Result<uint64_t>(start) : Err{ENXIO};
    }
    return Err{ENXIO};
  }
  uint64_t pos = off;
  for (const Extent& e : extents) {
    if (e.file_page * ps > pos) break;
    pos = std::max(pos, e.end() * ps);
  }
  return std::min(pos, rec.size);
}

Result<size_t> FileSystem::copy_file_range(InodeNo in, uint64_t off_in, InodeNo out,
                                           uint64_t off_out, size_t len) {
  if (in == out && off_in < off_out + len && off_out < off_in + len) return Err{EINVAL};
  // As Linux does, the source length is fixed at the start: copying within
  // one file must not chase the end it is extending.
  PAGEFS_ASSIGN(Attr src, getattr(in));
  if (off_in >= src.size) return size_t(0);
  len = size_t(std::min<uint64_t>(len, src.size - off_in));
  constexpr size_t kChunk = 1 << 20;
  std::vector<char> buf(std::min(len, kChunk));
  size_t done = 0;
  while (done < len) {
    size_t want = std::min(kChunk, len - done);
    // No atime: a copy that fails must leave everything as it was.
    Result<size_t> got = impl_->read_file(
        in, off_in + done, want,
        [&](const InodeRecord& rec, const auto& extents) {
          return impl_->read_copy(rec, extents, off_in + done, want, buf.data());
        },
        /*atime=*/false);
    if (!got.ok() || *got == 0) {
      if (done == 0 && !got.ok()) return Err{got.error()};
      break;
    }
    Result<size_t> put = write(out, off_out + done, buf.data(), *got);
    if (!put.ok()) {
      if (done == 0) return Err{put.error()};
      break;  // what was copied stays copied, as a short count says
    }
    done += *put;
    if (*put < *got) break;
  }
  return done;
}

}  // namespace pagefs
