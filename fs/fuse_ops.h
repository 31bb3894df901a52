// The table of FUSE low-level handlers pagefs registers with libfuse.
//
// Every handler is noexcept and follows one contract: decode the request, make
// one engine call through the FuseAdapter (fuse_req_userdata), send exactly one
// reply, with a positive errno to fuse_reply_err. The handlers live in five
// files grouped by what they touch:
//   fuse_ops.cc        init, destroy, names and attributes, statfs
//   fuse_file_ops.cc   open files: open, create, read, write, fsync, ...
//   fuse_dir_ops.cc    readdir, readdirplus, fsyncdir
//   fuse_xattr_ops.cc  extended attributes, including user.pagefs.stats
//   fuse_ioctl_ops.cc  file attributes (chattr, lsattr)
// Operations left empty (access, locks, bmap, poll) get libfuse's
// ENOSYS, which makes the kernel handle them itself (permission checks come
// from default_permissions, locks are local to this machine).
#pragma once

#include "fs/fuse_adapter.h"

namespace pagefs {

// The handlers, for fuse_session_new(); the session's userdata must be a
// FuseAdapter*.
const fuse_lowlevel_ops& fuse_operations();

// Each ops file fills in its own handlers.
void add_file_ops(fuse_lowlevel_ops& ops);
void add_dir_ops(fuse_lowlevel_ops& ops);
void add_xattr_ops(fuse_lowlevel_ops& ops);
void add_ioctl_ops(fuse_lowlevel_ops& ops);

}  // namespace pagefs
