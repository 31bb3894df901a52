// Attribute flags (chattr(1)): setting them, and what immutable (+i) and
// append-only (+a) forbid.
//
// The kernel enforces these flags itself only for filesystems that set its
// inode flags, which FUSE does not; so every operation that could break
// them asks here first, under the filesystem lock, and fails with EPERM
// before it changes anything (the rule at the top of transaction.cc):
//
//   immutable    no change to the data, size, mode, owner, times (even to
//                "now"), xattrs or links of the inode, and no name added
//                to or removed from it, if it is a directory
//   append-only  data may only be appended: bytes before the end of file
//                may be written again only as they are (the kernel's
//                write-back cache rewrites a partial last page whole);
//                otherwise as immutable, except that times may be set to
//                "now", the kernel's write-back cache may store the mtime
//                of the writes it cached, and names may be added to such a
//                directory
//
// An inode with either flag can be neither renamed nor removed, since the
// name is part of what it keeps. Setting or clearing either flag is root's
// alone (CAP_LINUX_IMMUTABLE); the others, no-dump and no-atime, are the
// owner's too.
#include <fcntl.h>
#include <linux/falloc.h>
#include <sys/stat.h>

#include <algorithm>
#include <cstring>
#include <vector>

#include "engine/filesystem.h"
#include "engine/fs_impl.h"

namespace pagefs {
namespace {

constexpr uint32_t kNoChange = kInodeFlagImmutable | kInodeFlagAppend;

bool immutable(const InodeRecord& rec) {
  return (rec.flags & kInodeFlagImmutable) != 0;
}

bool fixed(const InodeRecord& rec) {
  return (rec.flags & kNoChange) != 0;
}

}  // namespace

Status FileSystem::Impl::may_change_inode(const InodeRecord& rec) {
  return fixed(rec) ? Status(Err{EPERM}) : ok_status();
}

Status FileSystem::Impl::may_add_entry(const InodeRecord& dir) {
  return immutable(dir) ? Status(Err{EPERM}) : ok_status();
}

Status FileSystem::Impl::may_remove_entry(const InodeRecord& dir, const InodeRecord& target) {
  return fixed(dir) || fixed(target) ? Status(Err{EPERM}) : ok_status();
}

Status FileSystem::Impl::may_set_attr(const InodeRecord& rec, const SetAttr& c) {
  if (!fixed(rec)) return ok_status();
  bool mtime_alone =
      c.set_mtime && !(c.set_atime || c.set_size || c.set_mode || c.set_uid || c.set_gid);
  if (c.cached_write_time && mtime_alone && !immutable(rec)) return ok_status();
  bool given_times = (c.set_atime && !c.atime_now) || (c.set_mtime && !c.mtime_now);
  if (c.set_size || c.set_mode || c.set_uid || c.set_gid || given_times) return Err{EPERM};
  bool touch = c.set_atime || c.set_mtime;
  return touch && immutable(rec) ? Status(Err{EPERM}) : ok_status();
}

Status FileSystem::Impl::may_fallocate(const InodeRecord& rec, int mode) {
  if (immutable(rec)) return Err{EPERM};
  bool append = (rec.flags & kInodeFlagAppend) != 0;
  return append && (mode & ~FALLOC_FL_KEEP_SIZE) ? Status(Err{EPERM}) : ok_status();
}

// Append-only: what lies before the end of file must come back unchanged.
// Reads the old bytes under the filesystem lock; only append-only files pay.
Status FileSystem::Impl::may_write(InodeNo ino, const InodeRecord& rec, uint64_t off,
                                   const char* buf, size_t len) {
  if (!fixed(rec)) return ok_status();
  if (immutable(rec)) return Err{EPERM};
  if (off >= rec.size) return ok_status();
  size_t n = size_t(std::min<uint64_t>(len, rec.size - off));
  std::vector<Extent> extents;
  PAGEFS_TRY(read_extents(ino, off, n, &extents));
  std::vector<char> old(n);
  PAGEFS_ASSIGN(size_t got, read_copy(rec, extents, off, n, old.data()));
  return got == n && std::memcmp(old.data(), buf, n) == 0 ? ok_status() : Status(Err{EPERM});
}

Status FileSystem::check_open(InodeNo ino, int flags) {
  PAGEFS_ASSIGN(InodeRecord rec, impl_->read_op([&] { return impl_->get_inode(ino); }));
  bool writes = (flags & O_ACCMODE) != O_RDONLY;
  if (immutable(rec) && (writes || (flags & O_TRUNC))) return Err{EPERM};
  if ((rec.flags & kInodeFlagAppend) && ((writes && !(flags & O_APPEND)) || (flags & O_TRUNC))) {
    return Err{EPERM};
  }
  return ok_status();
}

// Takes the file's lock first, as a write does, so no write is half done
// when the flags change, and a write checks flags that hold until it ends.
Result<Attr> FileSystem::set_flags(InodeNo ino, uint32_t flags, const Caller& caller) {
  if (flags & ~kKnownInodeFlags) return Err{EOPNOTSUPP};
  std::unique_lock file_lock(impl_->inode_locks_.of(ino));
  std::unique_lock lock(impl_->mu_);
  return impl_->run_op([&]() -> Result<Attr> {
    Impl& fs = *impl_;
    PAGEFS_TRY(fs.begin_op(4));
    PAGEFS_ASSIGN(InodeRecord rec, fs.get_inode(ino));
    bool root = caller.uid == 0;
    if (!root && caller.uid != rec.uid) return Err{EPERM};
    if (!root && ((flags ^ rec.flags) & kNoChange)) return Err{EPERM};
    // While immutable stays set, nothing else about the inode may change.
    if (immutable(rec) && (flags & kInodeFlagImmutable) && flags != rec.flags) {
      return Err{EPERM};
    }
    rec.flags = flags;
    Impl::touch(rec, false, true);
    PAGEFS_TRY(fs.put_inode(ino, rec));
    Attr a = Impl::to_attr(ino, rec);
    a.blocks_512 = rec.blocks * (fs.page_size_ / 512);
    return a;
  });
}

}  // namespace pagefs
