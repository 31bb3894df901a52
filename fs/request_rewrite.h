// Requests of the FUSE protocol that libfuse 3.14 does not know, turned into
// ones it does before it sees them.
//
// FUSE_TMPFILE (open(2) with O_TMPFILE, protocol 7.37) carries the same
// arguments as FUSE_CREATE (struct fuse_create_in, then a name: "/") and
// expects the same reply (an entry and an open file). libfuse 3.14 answers
// it ENOSYS, after which the kernel refuses O_TMPFILE for the rest of the
// mount. So the daemon's read hook (FuseAdapter::attach) rewrites its opcode
// to FUSE_CREATE; the create handler knows it by its name, "/" (the VFS
// names every file it asks a filesystem to make with O_TMPFILE so), which no
// real FUSE_CREATE can carry, and makes a file with no name. (Its open flags
// need not hold O_TMPFILE: overlayfs asks for such files without it.)
//
// Thread-safety: a pure function of the buffer it is given.
#pragma once

#include <cstddef>

namespace pagefs {

// The name a FUSE_TMPFILE request carries.
inline constexpr char kTmpfileName[] = "/";

// Rewrites, in place, the request of `len` bytes at `buf` just read from
// /dev/fuse, if it is one libfuse 3.14 cannot serve as it stands. Returns
// whether it did.
bool rewrite_request(void* buf, size_t len);

}  // namespace pagefs
