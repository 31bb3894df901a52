// ioctl handlers: the file attributes of chattr(1) and lsattr(1).
//
// The kernel turns FS_IOC_GETFLAGS/SETFLAGS and FS_IOC_FSGETXATTR/FSSETXATTR
// on a regular file or a directory into FUSE_IOCTL requests of the same
// command, with an int (or a struct fsxattr) to fill or read; it has checked
// ownership and CAP_LINUX_IMMUTABLE already, and the engine checks them again
// (engine/inode_flags.cc). Other commands are ENOTTY, as for a filesystem
// that does not know them.
#include <linux/fs.h>

#include <cstdint>
#include <cstring>

#include "engine/format.h"
#include "fs/fuse_ops.h"

namespace pagefs {
namespace {

// Attribute flags and their FS_IOC_FSGETXATTR counterparts.
struct XflagPair {
  uint32_t flag;
  uint32_t xflag;
};
constexpr XflagPair kXflags[] = {
    {kInodeFlagImmutable, FS_XFLAG_IMMUTABLE},
    {kInodeFlagAppend, FS_XFLAG_APPEND},
    {kInodeFlagNoDump, FS_XFLAG_NODUMP},
    {kInodeFlagNoAtime, FS_XFLAG_NOATIME},
};

uint32_t to_xflags(uint32_t flags) {
  uint32_t x = 0;
  for (const XflagPair& p : kXflags) x |= (flags & p.flag) ? p.xflag : 0;
  return x;
}

// The attribute flags for `xflags`; false if it has others.
bool from_xflags(uint32_t xflags, uint32_t* flags) {
  *flags = 0;
  for (const XflagPair& p : kXflags) {
    if (xflags & p.xflag) *flags |= p.flag, xflags &= ~p.xflag;
  }
  return xflags == 0;
}

// Replies with `value`'s bytes, cut or zero-padded to the `out_size` the
// kernel expects (an int for the flags).
void reply_value(fuse_req_t req, const void* value, size_t size, size_t out_size) {
  char out[sizeof(fsxattr)] = {};
  size_t n = out_size < sizeof out ? out_size : sizeof out;
  std::memcpy(out, value, size < n ? size : n);
  fuse_reply_ioctl(req, 0, out, n);
}

void set_flags(fuse_req_t req, fuse_ino_t ino, uint32_t flags) {
  FuseAdapter& adapter = FuseAdapter::from(req);
  Result<Attr> done = adapter.fs().set_flags(InodeNo{ino}, flags, FuseAdapter::caller(req));
  if (!done.ok()) {
    fuse_reply_err(req, done.error());
    return;
  }
  adapter.invalidate_attributes(ino);  // the reply carries no new ctime
  fuse_reply_ioctl(req, 0, nullptr, 0);
}

void op_ioctl(fuse_req_t req, fuse_ino_t ino, unsigned command, void*, fuse_file_info*,
              unsigned flags, const void* in_buf, size_t in_size, size_t out_size) noexcept {
  if (flags & FUSE_IOCTL_COMPAT) {
    fuse_reply_err(req, ENOTTY);
    return;
  }
  if (command == FS_IOC_GETFLAGS || command == FS_IOC_FSGETXATTR) {
    Result<Attr> attr = FuseAdapter::from(req).fs().getattr(InodeNo{ino});
    if (!attr.ok()) {
      fuse_reply_err(req, attr.error());
    } else if (command == FS_IOC_GETFLAGS) {
      uint32_t value = attr->flags;
      reply_value(req, &value, sizeof value, out_size);
    } else {
      fsxattr fsx{};
      fsx.fsx_xflags = to_xflags(attr->flags);
      reply_value(req, &fsx, sizeof fsx, out_size);
    }
    return;
  }
  if (command == FS_IOC_SETFLAGS && in_size >= sizeof(uint32_t)) {
    uint32_t value;
    std::memcpy(&value, in_buf, sizeof value);
    set_flags(req, ino, value);
    return;
  }
  if (command == FS_IOC_FSSETXATTR && in_size >= sizeof(fsxattr)) {
    fsxattr fsx;
    std::memcpy(&fsx, in_buf, sizeof fsx);
    uint32_t value = 0;
    bool known = from_xflags(fsx.fsx_xflags, &value);
    if (!known || fsx.fsx_extsize != 0 || fsx.fsx_projid != 0 || fsx.fsx_cowextsize != 0) {
      fuse_reply_err(req, EOPNOTSUPP);
      return;
    }
    set_flags(req, ino, value);
    return;
  }
  fuse_reply_err(req, ENOTTY);
}

}  // namespace

void add_ioctl_ops(fuse_lowlevel_ops& ops) {
  ops.ioctl = op_ioctl;
}

}  // namespace pagefs
