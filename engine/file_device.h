// FileDevice: the real device, a regular file or a block device driven through io_uring.
//
// The file is opened with O_DIRECT, so no device byte passes through the kernel page
// cache, and every read, write and flush is an io_uring operation. A fixed pool of
// rings is created at open; a call takes a free ring (waiting if all are busy), keeps
// up to queue_depth operations of its batch in flight on it, resubmits the remainder
// of short transfers and -EAGAIN completions, and gives the ring back only once
// nothing it submitted is still in flight.
//
// Geometry:
//   block device  size from BLKGETSIZE64, block size from BLKSSZGET (opened O_EXCL)
//   regular file  size from fstat rounded down to the block size; block size 4096,
//                 or the direct-I/O alignment statx reports if that is larger
// Every request must have its offset, buffer addresses and buffer lengths aligned to
// block_size(), no zero-length buffer, and lie inside the device; otherwise EINVAL
// and nothing is submitted.
//
// Locking: with exclusive_lock the open file holds flock(LOCK_EX) (LOCK_SH when
// read-only) for the object's lifetime, so a second mount fails with EBUSY and a
// script can `flock DEVICE true` to wait until the daemon has let go.
//
// Invariants: the ring pool is fixed at open; a ring on the free list has no I/O in
// flight; the destructor waits until every ring is back before tearing them down.
//
// Thread-safety: every method may be called concurrently; up to `rings` calls run in
// parallel, further callers wait for a free ring.
#pragma once

#include <condition_variable>
#include <cstdint>
#include <memory>
#include <mutex>
#include <string>
#include <vector>

#include "engine/device.h"

namespace pagefs {

struct FileDeviceOptions {
  bool read_only = false;
  bool exclusive_lock = true;
  unsigned rings = 4;         // io_uring instances in the pool, 1..64
  unsigned queue_depth = 64;  // entries per ring = bound on a call's in-flight I/O, 1..4096
};

class FileDevice final : public Device {
 public:
  // Opens `path` and creates the ring pool. On failure returns the errno and, when
  // error_message is given, stores one line for the user, e.g.
  //   "cannot open /x: No such file or directory"           (ENOENT)
  //   "/x is in use by another process (already mounted?)"  (EBUSY)
  //   "io_uring is not available: Operation not permitted"  (EPERM)
  // The caller prints that line as is.
  static Result<std::unique_ptr<FileDevice>> open(const std::string& path,
                                                  const FileDeviceOptions& opts,
                                                  std::string* error_message = nullptr);
  ~FileDevice() override;

  // A write on a read-only device is EROFS. A read that comes back short because
  // the file shrank under us is EIO.
  Status read(std::span<const IoRequest> batch) override;
  Status write(std::span<const IoRequest> batch) override;
  // fdatasync through io_uring (IORING_OP_FSYNC, IORING_FSYNC_DATASYNC).
  Status flush() override;

  uint64_t size_bytes() const override { return size_bytes_; }
  uint32_t block_size() const override { return block_size_; }
  bool read_only() const override { return read_only_; }

  // Aborts if the pool bookkeeping is inconsistent.
  void check_invariants() const;

 private:
  struct Ring;
  enum class Direction { kRead, kWrite };

  FileDevice(int fd, uint64_t size_bytes, uint32_t block_size, bool read_only);
  Status init_rings(const FileDeviceOptions& opts, std::string* error_message);
  Status submit_batch(Direction dir, std::span<const IoRequest> batch);
  Ring* acquire_ring();
  void release_ring(Ring* ring);

  const int fd_;
  const uint64_t size_bytes_;
  const uint32_t block_size_;
  const bool read_only_;

  // Fixed after open; a ring is used by at most one call at a time.
  std::vector<std::unique_ptr<Ring>> rings_;
  // Lock order: leaf (nothing else is taken while it is held).
  mutable std::mutex pool_mu_;
  std::condition_variable ring_returned_;
  std::vector<Ring*> free_rings_;  // guarded by pool_mu_; capacity rings_.size()
};

}  // namespace pagefs
