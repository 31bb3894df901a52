// Handlers for open files. The engine addresses files by inode only, so there
// are no file handles: open and release carry no state, and every read and
// write names the inode.
#include <fcntl.h>

#include <algorithm>
#include <cstring>
#include <memory>
#include <new>

#include "fs/fuse_ops.h"
#include "fs/request_rewrite.h"

namespace pagefs {
namespace {

FileSystem& fs_of(fuse_req_t req) {
  return FuseAdapter::from(req).fs();
}

bool has_setid_bits(FileSystem& fs, fuse_ino_t ino) {
  Result<Attr> attr = fs.getattr(InodeNo{ino});
  return attr.ok() && (attr->mode & (S_ISUID | S_ISGID)) != 0;
}

// O_TRUNC needs nothing here: without FUSE_CAP_ATOMIC_O_TRUNC the kernel sends
// setattr(size=0) after the open, which the engine refuses where the file's
// attributes forbid it. An open for writing is refused (EPERM) for an
// immutable file, or an append-only one without O_APPEND.
void op_open(fuse_req_t req, fuse_ino_t ino, fuse_file_info* fi) noexcept {
  FuseAdapter& adapter = FuseAdapter::from(req);
  if ((fi->flags & O_ACCMODE) != O_RDONLY) {
    Status allowed = adapter.fs().check_open(InodeNo{ino}, fi->flags);
    if (!allowed.ok()) {
      fuse_reply_err(req, allowed.error());
      return;
    }
  }
  adapter.set_open_flags(fi);
  fuse_reply_open(req, fi);
}

// Also O_TMPFILE: the kernel's FUSE_TMPFILE arrives here as a create of the
// name "/" (fs/request_rewrite.h), which no real create can have, for a file
// with no name.
void op_create(fuse_req_t req, fuse_ino_t parent, const char* name, mode_t mode,
               fuse_file_info* fi) noexcept {
  FuseAdapter& adapter = FuseAdapter::from(req);
  uint32_t file_mode = (mode & ~S_IFMT) | S_IFREG;
  Caller caller = FuseAdapter::caller(req);
  if (std::strcmp(name, kTmpfileName) == 0) {
    adapter.reply_create(req, adapter.fs().tmpfile(InodeNo{parent}, file_mode, caller, Hold::kYes),
                         fi);
    return;
  }
  adapter.reply_create(
      req, adapter.fs().mknod(InodeNo{parent}, name, file_mode, 0, caller, Hold::kYes), fi);
}

// Replies straight from the engine's cache pages (fuse_reply_iov: the kernel
// copies once, from the frames); a range too large to pin at once is copied
// through a buffer instead.
void op_read(fuse_req_t req, fuse_ino_t ino, size_t size, off_t off, fuse_file_info*) noexcept {
  if (off < 0) {
    fuse_reply_err(req, EINVAL);
    return;
  }
  Result<size_t> bytes = fs_of(req).read_in_place(
      InodeNo{ino}, static_cast<uint64_t>(off), size, [req](std::span<const iovec> iov) {
        fuse_reply_iov(req, iov.data(), static_cast<int>(iov.size()));
      });
  if (bytes.ok()) return;
  if (bytes.error() != ENOBUFS) {
    fuse_reply_err(req, bytes.error());
    return;
  }
  char* buffer = thread_buffer(size);
  if (buffer == nullptr) {
    fuse_reply_err(req, ENOMEM);
    return;
  }
  bytes = fs_of(req).read(InodeNo{ino}, static_cast<uint64_t>(off), size, buffer);
  if (!bytes.ok()) {
    fuse_reply_err(req, bytes.error());
    return;
  }
  fuse_reply_buf(req, buffer, *bytes);
}

void op_write(fuse_req_t req, fuse_ino_t ino, const char* buf, size_t size, off_t off,
              fuse_file_info*) noexcept {
  if (off < 0) {
    fuse_reply_err(req, EINVAL);
    return;
  }
  // With direct_io the kernel leaves clearing setuid/setgid on write to us.
  // Its cached mode still has them, and a write's reply carries no
  // attributes: when the engine may clear bits, that copy must go. So a
  // caller other than root costs a look at the mode first (read-only).
  bool drop_setid = fuse_req_ctx(req)->uid != 0;
  FuseAdapter& adapter = FuseAdapter::from(req);
  bool clears_bits = drop_setid && has_setid_bits(adapter.fs(), ino);
  Result<size_t> bytes =
      adapter.fs().write(InodeNo{ino}, static_cast<uint64_t>(off), buf, size, drop_setid);
  if (clears_bits) adapter.invalidate_attributes(ino);
  if (!bytes.ok()) {
    fuse_reply_err(req, bytes.error());
    return;
  }
  fuse_reply_write(req, *bytes);
}

void op_release(fuse_req_t req, fuse_ino_t, fuse_file_info*) noexcept {
  fuse_reply_err(req, 0);
}

void op_fsync(fuse_req_t req, fuse_ino_t ino, int datasync, fuse_file_info*) noexcept {
  FuseAdapter::reply_status(req, fs_of(req).fsync(InodeNo{ino}, datasync != 0));
}

// The setid bits a change to the data of a file with `attr` by the caller
// clears, by Linux's rule (should_remove_suid, setattr_should_drop_sgid):
// none for root, taken to hold CAP_FSETID; setuid; and setgid when the file
// is group-executable or the caller is not in its group.
uint32_t setid_bits_to_clear(fuse_req_t req, const Attr& attr) {
  if (fuse_req_ctx(req)->uid == 0) return 0;
  uint32_t bits = attr.mode & S_ISUID;
  if ((attr.mode & S_ISGID) &&
      ((attr.mode & S_IXGRP) || !FuseAdapter::caller_in_group(req, attr.gid))) {
    bits |= S_ISGID;
  }
  return bits;
}

// fallocate, punch-hole and zero-range clear setid bits as a write does; the
// kernel's cached mode is dropped when they do (the reply carries none).
void op_fallocate(fuse_req_t req, fuse_ino_t ino, int mode, off_t offset, off_t length,
                  fuse_file_info*) noexcept {
  if (offset < 0 || length <= 0) {
    fuse_reply_err(req, EINVAL);
    return;
  }
  FuseAdapter& adapter = FuseAdapter::from(req);
  uint32_t clear_mode = 0;
  if (fuse_req_ctx(req)->uid != 0) {
    Result<Attr> attr = adapter.fs().getattr(InodeNo{ino});
    if (attr.ok()) clear_mode = setid_bits_to_clear(req, *attr);
  }
  Status done =
      adapter.fs().fallocate(InodeNo{ino}, mode, uint64_t(offset), uint64_t(length), clear_mode);
  if (done.ok() && clear_mode != 0) adapter.invalidate_attributes(ino);
  FuseAdapter::reply_status(req, done);
}

// SEEK_DATA and SEEK_HOLE for a file taken to be data from start to end, as
// the kernel answers them when the filesystem does not.
Result<uint64_t> seek_without_holes(FileSystem& fs, fuse_ino_t ino, uint64_t off, int whence) {
  PAGEFS_ASSIGN(Attr attr, fs.getattr(InodeNo{ino}));
  if (off >= attr.size) return Err{ENXIO};
  return whence == SEEK_DATA ? off : attr.size;
}

// The kernel answers SEEK_SET, SEEK_CUR and SEEK_END itself. A negative
// offset is past every byte of data, so ENXIO, as on ext4 and xfs.
void op_lseek(fuse_req_t req, fuse_ino_t ino, off_t off, int whence, fuse_file_info*) noexcept {
  if (whence != SEEK_DATA && whence != SEEK_HOLE) {
    fuse_reply_err(req, EINVAL);
    return;
  }
  if (off < 0) {
    fuse_reply_err(req, ENXIO);
    return;
  }
  Result<uint64_t> pos = Err{ENOSYS};
  switch (FuseAdapter::from(req).seek_knowledge(ino, off)) {
    case SeekKnowledge::kExact:
      pos = fs_of(req).lseek(InodeNo{ino}, static_cast<uint64_t>(off), whence);
      break;
    case SeekKnowledge::kSizeOnly:
      pos = seek_without_holes(fs_of(req), ino, static_cast<uint64_t>(off), whence);
      break;
    case SeekKnowledge::kKernelAlone:
      break;  // ENOSYS: the kernel answers every later lseek from its own size
  }
  if (!pos.ok()) {
    fuse_reply_err(req, pos.error());
    return;
  }
  fuse_reply_lseek(req, static_cast<off_t>(*pos));
}

void op_copy_file_range(fuse_req_t req, fuse_ino_t ino_in, off_t off_in, fuse_file_info*,
                        fuse_ino_t ino_out, off_t off_out, fuse_file_info*, size_t len,
                        int flags) noexcept {
  if (flags != 0 || off_in < 0 || off_out < 0) {
    fuse_reply_err(req, EINVAL);
    return;
  }
  Result<size_t> bytes =
      fs_of(req).copy_file_range(InodeNo{ino_in}, static_cast<uint64_t>(off_in), InodeNo{ino_out},
                                 static_cast<uint64_t>(off_out), len);
  if (!bytes.ok()) {
    fuse_reply_err(req, bytes.error());
    return;
  }
  fuse_reply_write(req, *bytes);
}

}  // namespace

void add_file_ops(fuse_lowlevel_ops& ops) {
  ops.open = op_open;
  ops.create = op_create;
  ops.read = op_read;
  ops.write = op_write;
  ops.release = op_release;
  ops.fsync = op_fsync;
  ops.fallocate = op_fallocate;
  ops.lseek = op_lseek;
  ops.copy_file_range = op_copy_file_range;
}

}  // namespace pagefs
