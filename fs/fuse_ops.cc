#include "fs/fuse_ops.h"

#include <cstdio>
#include <cstring>
#include <string_view>

namespace pagefs {
namespace {

FileSystem& fs_of(fuse_req_t req) {
  return FuseAdapter::from(req).fs();
}

void op_init(void* userdata, fuse_conn_info* conn) noexcept {
  static_cast<FuseAdapter*>(userdata)->init(conn);
}

// Runs when the session ends; main checks the stored unmount status.
void op_destroy(void* userdata) noexcept {
  (void)static_cast<FuseAdapter*>(userdata)->shutdown();
}

// "." and ".." arrive only when the kernel resolves a file handle; their
// ENOENT (the inode is gone) must stay an error, which it reports as ESTALE.
void op_lookup(fuse_req_t req, fuse_ino_t parent, const char* name) noexcept {
  FuseAdapter& adapter = FuseAdapter::from(req);
  std::string_view n(name);
  adapter.reply_entry(req, adapter.fs().lookup(InodeNo{parent}, n, Hold::kYes),
                      /*negative=*/n != "." && n != "..");
}

void op_forget(fuse_req_t req, fuse_ino_t ino, uint64_t nlookup) noexcept {
  FuseAdapter::from(req).forget(ino, nlookup);
  fuse_reply_none(req);
}

void op_forget_multi(fuse_req_t req, size_t count, fuse_forget_data* forgets) noexcept {
  FuseAdapter& adapter = FuseAdapter::from(req);
  for (size_t i = 0; i < count; ++i) adapter.forget(forgets[i].ino, forgets[i].nlookup);
  fuse_reply_none(req);
}

void op_getattr(fuse_req_t req, fuse_ino_t ino, fuse_file_info*) noexcept {
  FuseAdapter& adapter = FuseAdapter::from(req);
  adapter.reply_attr(req, adapter.fs().getattr(InodeNo{ino}));
}

// FUSE_SET_ATTR_CTIME is ignored: the engine sets ctime on every change.
// The mode is passed as the kernel sends it, file type bits included.
SetAttr decode_setattr(const struct stat& attr, int to_set) {
  SetAttr changes;
  changes.set_mode = (to_set & FUSE_SET_ATTR_MODE) != 0;
  changes.mode = attr.st_mode;
  changes.set_uid = (to_set & FUSE_SET_ATTR_UID) != 0;
  changes.uid = attr.st_uid;
  changes.set_gid = (to_set & FUSE_SET_ATTR_GID) != 0;
  changes.gid = attr.st_gid;
  changes.set_size = (to_set & FUSE_SET_ATTR_SIZE) != 0;
  changes.size = static_cast<uint64_t>(attr.st_size);
  changes.atime_now = (to_set & FUSE_SET_ATTR_ATIME_NOW) != 0;
  changes.set_atime = changes.atime_now || (to_set & FUSE_SET_ATTR_ATIME) != 0;
  changes.atime = attr.st_atim;
  changes.mtime_now = (to_set & FUSE_SET_ATTR_MTIME_NOW) != 0;
  changes.set_mtime = changes.mtime_now || (to_set & FUSE_SET_ATTR_MTIME) != 0;
  changes.mtime = attr.st_mtim;
  return changes;
}

// With the kernel's write-back cache (cache=kernel) the kernel keeps the
// mtime of the writes it cached and stores it later as a setattr of mtime
// (and ctime) alone, which the engine must let through where it lets the
// writes through (append-only files). Such a setattr looks exactly like
// touch -m, which an append-only file then takes too.
void op_setattr(fuse_req_t req, fuse_ino_t ino, struct stat* attr, int to_set,
                fuse_file_info*) noexcept {
  if (to_set & FUSE_SET_ATTR_SIZE && attr->st_size < 0) {
    fuse_reply_err(req, EINVAL);
    return;
  }
  FuseAdapter& adapter = FuseAdapter::from(req);
  SetAttr changes = decode_setattr(*attr, to_set);
  changes.cached_write_time =
      adapter.options().kernel_cache && (to_set & ~FUSE_SET_ATTR_CTIME) == FUSE_SET_ATTR_MTIME;
  adapter.reply_attr(req, adapter.fs().setattr(InodeNo{ino}, changes));
}

void op_readlink(fuse_req_t req, fuse_ino_t ino) noexcept {
  Result<std::string> target = fs_of(req).readlink(InodeNo{ino});
  if (!target.ok()) {
    fuse_reply_err(req, target.error());
    return;
  }
  fuse_reply_readlink(req, target->c_str());
}

void op_mknod(fuse_req_t req, fuse_ino_t parent, const char* name, mode_t mode,
              dev_t rdev) noexcept {
  FuseAdapter& adapter = FuseAdapter::from(req);
  adapter.reply_entry(req, adapter.fs().mknod(InodeNo{parent}, name, mode, rdev,
                                              FuseAdapter::caller(req), Hold::kYes));
}

void op_mkdir(fuse_req_t req, fuse_ino_t parent, const char* name, mode_t mode) noexcept {
  FuseAdapter& adapter = FuseAdapter::from(req);
  adapter.reply_entry(
      req, adapter.fs().mkdir(InodeNo{parent}, name, mode, FuseAdapter::caller(req), Hold::kYes));
}

void op_symlink(fuse_req_t req, const char* target, fuse_ino_t parent, const char* name) noexcept {
  FuseAdapter& adapter = FuseAdapter::from(req);
  adapter.reply_entry(req, adapter.fs().symlink(InodeNo{parent}, name, target,
                                                FuseAdapter::caller(req), Hold::kYes));
}

void op_link(fuse_req_t req, fuse_ino_t ino, fuse_ino_t new_parent, const char* new_name) noexcept {
  FuseAdapter& adapter = FuseAdapter::from(req);
  adapter.reply_entry(req,
                      adapter.fs().link(InodeNo{ino}, InodeNo{new_parent}, new_name, Hold::kYes));
}

void op_unlink(fuse_req_t req, fuse_ino_t parent, const char* name) noexcept {
  FuseAdapter::reply_status(req,
                            fs_of(req).unlink(InodeNo{parent}, name, FuseAdapter::caller(req)));
}

void op_rmdir(fuse_req_t req, fuse_ino_t parent, const char* name) noexcept {
  FuseAdapter::reply_status(req, fs_of(req).rmdir(InodeNo{parent}, name, FuseAdapter::caller(req)));
}

void op_rename(fuse_req_t req, fuse_ino_t parent, const char* name, fuse_ino_t new_parent,
               const char* new_name, unsigned int flags) noexcept {
  if (flags & ~static_cast<unsigned>(RENAME_NOREPLACE | RENAME_EXCHANGE | RENAME_WHITEOUT)) {
    fuse_reply_err(req, EINVAL);
    return;
  }
  FuseAdapter::reply_status(req, fs_of(req).rename(InodeNo{parent}, name, InodeNo{new_parent},
                                                   new_name, flags, FuseAdapter::caller(req)));
}

// Inode counts are not kept by the format: the inodes in use plus the free
// pages (each could hold at least one more inode) approximate the total.
void op_statfs(fuse_req_t req, fuse_ino_t) noexcept {
  FsStats stats = fs_of(req).stats();
  struct statvfs st;
  std::memset(&st, 0, sizeof st);
  st.f_bsize = stats.page_size;
  st.f_frsize = stats.page_size;
  st.f_blocks = stats.total_pages;
  st.f_bfree = stats.free_pages;
  st.f_bavail = stats.free_pages;
  st.f_files = stats.inodes + stats.free_pages;
  st.f_ffree = stats.free_pages;
  st.f_favail = stats.free_pages;
  st.f_namemax = 255;
  fuse_reply_statfs(req, &st);
}

void add_entry_ops(fuse_lowlevel_ops& ops) {
  ops.init = op_init;
  ops.destroy = op_destroy;
  ops.lookup = op_lookup;
  ops.forget = op_forget;
  ops.forget_multi = op_forget_multi;
  ops.getattr = op_getattr;
  ops.setattr = op_setattr;
  ops.readlink = op_readlink;
  ops.mknod = op_mknod;
  ops.mkdir = op_mkdir;
  ops.symlink = op_symlink;
  ops.link = op_link;
  ops.unlink = op_unlink;
  ops.rmdir = op_rmdir;
  ops.rename = op_rename;
  ops.statfs = op_statfs;
}

fuse_lowlevel_ops build_operations() {
  fuse_lowlevel_ops ops;
  std::memset(&ops, 0, sizeof ops);
  add_entry_ops(ops);
  add_file_ops(ops);
  add_dir_ops(ops);
  add_xattr_ops(ops);
  add_ioctl_ops(ops);
  return ops;
}

}  // namespace

const fuse_lowlevel_ops& fuse_operations() {
  static const fuse_lowlevel_ops ops = build_operations();
  return ops;
}

}  // namespace pagefs
