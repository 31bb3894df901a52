// rename(2) with RENAME_NOREPLACE, RENAME_EXCHANGE and RENAME_WHITEOUT.
//
// The whole operation runs under the filesystem lock held exclusively, so
// readers see either the old names or the new ones. RENAME_WHITEOUT (for
// overlayfs, whose upper layer marks a name deleted with it) leaves a
// whiteout at the source name in the same step: a new character device 0/0
// with mode bits 0, owned by the caller, as Linux filesystems make it.
#include <dirent.h>
#include <linux/fs.h>
#include <sys/stat.h>

#include "engine/filesystem.h"
#include "engine/fs_impl.h"

namespace pagefs {
namespace {

struct Side {
  InodeNo dir;
  InodeRecord dir_rec;
  FileSystem::Impl::FoundEntry entry;
  bool exists = false;
  InodeRecord rec{};
};

}  // namespace

Status FileSystem::rename(InodeNo parent, std::string_view name, InodeNo new_parent,
                          std::string_view new_name, uint32_t flags, const Caller& caller) {
  if (flags & ~(RENAME_NOREPLACE | RENAME_EXCHANGE | RENAME_WHITEOUT)) return Err{EINVAL};
  if ((flags & RENAME_EXCHANGE) && (flags & (RENAME_NOREPLACE | RENAME_WHITEOUT))) {
    return Err{EINVAL};
  }
  if (name.size() > kNameMax || new_name.size() > kNameMax) return Err{ENAMETOOLONG};
  if (name == "." || name == ".." || new_name == "." || new_name == "..") return Err{EBUSY};
  if (new_name.empty() || new_name.find('/') != std::string_view::npos) return Err{EINVAL};
  std::unique_lock lock(impl_->mu_);
  return impl_->run_op(
      [&] { return impl_->rename_locked(parent, name, new_parent, new_name, flags, caller); });
}

Status FileSystem::Impl::rename_locked(InodeNo parent, std::string_view name, InodeNo new_parent,
                                       std::string_view new_name, uint32_t flags,
                                       const Caller& caller) {
  Impl& fs = *this;
  PAGEFS_TRY(fs.begin_op(64));

  Side src{parent}, dst{new_parent};
  PAGEFS_ASSIGN(src.dir_rec, fs.get_dir(parent));
  PAGEFS_ASSIGN(dst.dir_rec, fs.get_dir(new_parent));
  PAGEFS_ASSIGN(src.exists, fs.dir_find(parent, name, &src.entry));
  if (!src.exists) return Err{ENOENT};
  PAGEFS_ASSIGN(src.rec, fs.get_inode(InodeNo{src.entry.ino}));
  PAGEFS_ASSIGN(dst.exists, fs.dir_find(new_parent, new_name, &dst.entry));
  if (dst.exists) {
    PAGEFS_ASSIGN(dst.rec, fs.get_inode(InodeNo{dst.entry.ino}));
  }
  if (dst.dir_rec.nlink == 0) return Err{ENOENT};

  InodeNo src_ino{src.entry.ino};
  bool src_dir = S_ISDIR(src.rec.mode);
  bool dst_dir = dst.exists && S_ISDIR(dst.rec.mode);
  if (sticky_denies(src.dir_rec, src.rec, caller)) return Err{EPERM};
  if (dst.exists && sticky_denies(dst.dir_rec, dst.rec, caller)) return Err{EPERM};
  PAGEFS_TRY(may_remove_entry(src.dir_rec, src.rec));
  PAGEFS_TRY(may_add_entry(dst.dir_rec));
  if (dst.exists) PAGEFS_TRY(may_remove_entry(dst.dir_rec, dst.rec));

  if (flags & RENAME_EXCHANGE) {
    if (!dst.exists) return Err{ENOENT};
    if (src.entry.ino == dst.entry.ino) return ok_status();
    // Neither directory may end up inside itself.
    if (src_dir && parent != new_parent) {
      PAGEFS_ASSIGN(bool loop, fs.is_ancestor(src_ino, new_parent));
      if (loop) return Err{EINVAL};
    }
    if (dst_dir && parent != new_parent) {
      PAGEFS_ASSIGN(bool loop, fs.is_ancestor(InodeNo{dst.entry.ino}, parent));
      if (loop) return Err{EINVAL};
    }
  } else if (dst.exists) {
    if (flags & RENAME_NOREPLACE) return Err{EEXIST};
    if (src.entry.ino == dst.entry.ino) return ok_status();
    if (src_dir && !dst_dir) return Err{ENOTDIR};
    if (!src_dir && dst_dir) return Err{EISDIR};
    if (dst_dir && dst.rec.size != 0) return Err{ENOTEMPTY};
  }
  if (!(flags & RENAME_EXCHANGE) && src_dir && parent != new_parent) {
    PAGEFS_ASSIGN(bool loop, fs.is_ancestor(src_ino, new_parent));
    if (loop) return Err{EINVAL};
  }
  if (fs.space_->free_pages() < ((flags & RENAME_WHITEOUT) ? 8u : 4u)) return Err{ENOSPC};

  timespec now = now_timespec();
  auto stamp_dir = [&](InodeRecord& d) {
    d.mtime_sec = d.ctime_sec = now.tv_sec;
    d.mtime_nsec = d.ctime_nsec = uint32_t(now.tv_nsec);
  };
  bool same_dir = parent == new_parent;

  if (flags & RENAME_EXCHANGE) {
    InodeNo dst_ino{dst.entry.ino};
    // Swap the two entries' targets in place: same names, same cookies.
    PAGEFS_TRY(fs.dir_remove(parent, src.entry.cookie));
    PAGEFS_TRY(fs.dir_remove(new_parent, dst.entry.cookie));
    PAGEFS_TRY(fs.dir_add(parent, name, dst_ino.value, dst.entry.type));
    PAGEFS_TRY(fs.dir_add(new_parent, new_name, src_ino.value, src.entry.type));
    if (!same_dir && src_dir != dst_dir) {
      // A directory moved from one parent to the other: move a link with it.
      if (src_dir) src.dir_rec.nlink--, dst.dir_rec.nlink++;
      if (dst_dir) dst.dir_rec.nlink--, src.dir_rec.nlink++;
    }
    if (src_dir) src.rec.parent = new_parent.value;
    if (dst_dir) dst.rec.parent = parent.value;
    src.rec.ctime_sec = dst.rec.ctime_sec = now.tv_sec;
    src.rec.ctime_nsec = dst.rec.ctime_nsec = uint32_t(now.tv_nsec);
    PAGEFS_TRY(fs.put_inode(src_ino, src.rec));
    PAGEFS_TRY(fs.put_inode(dst_ino, dst.rec));
  } else {
    if (dst.exists) {
      InodeNo dst_ino{dst.entry.ino};
      PAGEFS_TRY(fs.dir_remove(new_parent, dst.entry.cookie));
      PAGEFS_TRY(fs.drop_link(dst_ino, dst.rec));
      dst.dir_rec.size--;
      if (dst_dir) dst.dir_rec.nlink--;
    }
    PAGEFS_TRY(fs.dir_remove(parent, src.entry.cookie));
    if (flags & RENAME_WHITEOUT) {
      PAGEFS_TRY(fs.add_whiteout(parent, name, src.dir_rec, caller));  // the name stays
    } else if (same_dir) {
      dst.dir_rec.size--;  // one record; see the merge below
    } else {
      src.dir_rec.size--;
    }
    PAGEFS_TRY(fs.dir_add(new_parent, new_name, src_ino.value, src.entry.type));
    dst.dir_rec.size++;
    if (src_dir && !same_dir) {
      src.dir_rec.nlink--;
      dst.dir_rec.nlink++;
      src.rec.parent = new_parent.value;
    }
    src.rec.ctime_sec = now.tv_sec;
    src.rec.ctime_nsec = uint32_t(now.tv_nsec);
    PAGEFS_TRY(fs.put_inode(src_ino, src.rec));
  }
  if (same_dir) {
    // Both sides describe the same directory; dst carries the changes.
    if (flags & RENAME_EXCHANGE) dst.dir_rec = src.dir_rec;
    stamp_dir(dst.dir_rec);
    return fs.put_inode(new_parent, dst.dir_rec);
  }
  stamp_dir(src.dir_rec);
  stamp_dir(dst.dir_rec);
  PAGEFS_TRY(fs.put_inode(parent, src.dir_rec));
  return fs.put_inode(new_parent, dst.dir_rec);
}

// A whiteout at `name` in `dir`, whose record is `dir_rec`: a character
// device 0/0 with no mode bits (the kernel's WHITEOUT_MODE and WHITEOUT_DEV),
// taking the caller's ids and the group of a setgid directory as any new node.
Status FileSystem::Impl::add_whiteout(InodeNo dir, std::string_view name,
                                      const InodeRecord& dir_rec, const Caller& caller) {
  InodeRecord rec;
  PAGEFS_ASSIGN(InodeNo ino, new_inode(S_IFCHR, 0, caller, dir_rec, &rec));
  PAGEFS_TRY(dir_add(dir, name, ino.value, DT_CHR));
  return ok_status();
}

}  // namespace pagefs
