#include "engine/file_device.h"

#include <fcntl.h>
#include <liburing.h>
#include <linux/fs.h>
#include <sys/file.h>
#include <sys/ioctl.h>
#include <sys/stat.h>
#include <unistd.h>

#include <algorithm>
#include <cassert>
#include <climits>
#include <cstdio>
#include <cstdlib>
#include <system_error>
#include <utility>

namespace pagefs {
namespace {

constexpr uint32_t kFileBlockBytes = 4096;  // minimum alignment for regular files
constexpr unsigned kMaxRings = 64;
constexpr unsigned kMaxQueueDepth = 4096;
constexpr unsigned kMaxIovecsPerSqe = IOV_MAX;    // the kernel's limit for one readv/writev
constexpr unsigned kMaxRetriesPerOp = 1000;       // -EAGAIN/-EINTR resubmissions of one op
constexpr unsigned kMaxEnterRetries = 1'000'000;  // transient io_uring_enter failures in a row

// Thread-safe, unlike strerror().
std::string errno_text(int err) {
  return std::error_code(err, std::generic_category()).message();
}

Err fail(std::string* message, int err, std::string text) {
  if (message != nullptr) *message = std::move(text);
  return Err{err};
}

// Aborts on an io_uring_enter failure that can only be our bug (EFAULT, EINVAL, EBADF):
// returning would leave queued SQEs that point at the caller's buffers.
// Always-on check of our own logic; a broken ring must not be used further.
void check(bool ok, const char* what) {
  if (ok) return;
  std::fprintf(stderr, "pagefs: FileDevice: %s\n", what);
  std::abort();
}

[[noreturn]] void die_on_enter_error(int err) {
  std::fprintf(stderr, "pagefs: io_uring_enter failed: %s\n", errno_text(err).c_str());
  std::abort();
}

// Closes a descriptor unless released.
class FdGuard {
 public:
  explicit FdGuard(int fd) : fd_(fd) {}
  ~FdGuard() {
    if (fd_ >= 0) ::close(fd_);
  }
  FdGuard(const FdGuard&) = delete;
  FdGuard& operator=(const FdGuard&) = delete;
  int get() const { return fd_; }
  int release() { return std::exchange(fd_, -1); }

 private:
  int fd_;
};

struct Geometry {
  uint64_t size_bytes = 0;
  uint32_t block_size = 0;
};

bool is_power_of_two(uint64_t x) {
  return x != 0 && (x & (x - 1)) == 0;
}

Result<Geometry> block_device_geometry(int fd, const std::string& path, std::string* message) {
  uint64_t size_bytes = 0;
  int logical_block = 0;
  if (ioctl(fd, BLKGETSIZE64, &size_bytes) != 0 || ioctl(fd, BLKSSZGET, &logical_block) != 0) {
    const int err = errno;
    return fail(message, err, "cannot read the geometry of " + path + ": " + errno_text(err));
  }
  return Geometry{size_bytes, static_cast<uint32_t>(logical_block)};
}

// The direct-I/O alignment the kernel asks for, or 0 if it does not say.
uint32_t statx_dio_alignment(int fd) {
#ifdef STATX_DIOALIGN
  struct statx stx = {};
  if (statx(fd, "", AT_EMPTY_PATH, STATX_DIOALIGN, &stx) == 0 && (stx.stx_mask & STATX_DIOALIGN)) {
    return std::max(stx.stx_dio_offset_align, stx.stx_dio_mem_align);
  }
#else
  (void)fd;
#endif
  return 0;
}

// A file's tail past the last whole block is not addressable.
Geometry regular_file_geometry(const struct stat& st, int fd) {
  const uint32_t block_size = std::max(kFileBlockBytes, statx_dio_alignment(fd));
  const uint64_t size = static_cast<uint64_t>(st.st_size);
  return Geometry{size - size % block_size, block_size};
}

Result<Geometry> probe_geometry(int fd, const std::string& path, std::string* message) {
  struct stat st = {};
  if (fstat(fd, &st) != 0) {
    const int err = errno;
    return fail(message, err, "cannot stat " + path + ": " + errno_text(err));
  }
  Geometry g;
  if (S_ISBLK(st.st_mode)) {
    PAGEFS_ASSIGN(g, block_device_geometry(fd, path, message));
  } else if (S_ISREG(st.st_mode)) {
    g = regular_file_geometry(st, fd);
  } else {
    return fail(message, EINVAL, path + " is not a regular file or a block device");
  }
  if (!is_power_of_two(g.block_size)) {
    return fail(message, EINVAL, path + " reports an unusable block size");
  }
  return g;
}

Result<int> open_fd(const std::string& path, bool read_only, std::string* message) {
  struct stat st = {};
  if (stat(path.c_str(), &st) != 0) {
    const int err = errno;
    return fail(message, err, "cannot open " + path + ": " + errno_text(err));
  }
  if (!S_ISREG(st.st_mode) && !S_ISBLK(st.st_mode)) {
    return fail(message, EINVAL, path + " is not a regular file or a block device");
  }
  int flags = O_DIRECT | O_CLOEXEC | (read_only ? O_RDONLY : O_RDWR);
  if (S_ISBLK(st.st_mode)) flags |= O_EXCL;  // the kernel refuses if it is mounted
  const int fd = ::open(path.c_str(), flags);
  if (fd >= 0) return fd;
  const int err = errno;
  if (err == EBUSY) {
    return fail(message, EBUSY, path + " is in use by another process (already mounted?)");
  }
  if (err == EINVAL) {
    return fail(message, err, "cannot open " + path + ": direct I/O (O_DIRECT) is not supported");
  }
  return fail(message, err, "cannot open " + path + ": " + errno_text(err));
}

Status lock_fd(int fd, bool read_only, const std::string& path, std::string* message) {
  if (flock(fd, (read_only ? LOCK_SH : LOCK_EX) | LOCK_NB) == 0) return ok_status();
  const int err = errno;
  if (err == EWOULDBLOCK) {
    return fail(message, EBUSY, path + " is in use by another process (already mounted?)");
  }
  return fail(message, err, "cannot lock " + path + ": " + errno_text(err));
}

bool options_valid(const FileDeviceOptions& opts) {
  return opts.rings >= 1 && opts.rings <= kMaxRings && opts.queue_depth >= 1 &&
         opts.queue_depth <= kMaxQueueDepth;
}

// Offsets, buffer addresses and lengths block aligned, no empty buffer, inside the device.
Status check_request(const IoRequest& r, uint64_t size_bytes, uint32_t block_size) {
  if (r.offset % block_size != 0 || r.offset > size_bytes || r.iov.empty()) return Err{EINVAL};
  uint64_t len = 0;
  for (const iovec& v : r.iov) {
    const auto address = reinterpret_cast<uintptr_t>(v.iov_base);
    if (v.iov_len == 0 || v.iov_len % block_size != 0 || address % block_size != 0) {
      return Err{EINVAL};
    }
    if (v.iov_len > size_bytes - r.offset - len) return Err{EINVAL};
    len += v.iov_len;
  }
  return ok_status();
}

Status check_batch(std::span<const IoRequest> batch, uint64_t size_bytes, uint32_t block_size) {
  for (const IoRequest& r : batch) PAGEFS_TRY(check_request(r, size_bytes, block_size));
  return ok_status();
}

}  // namespace

// One io_uring with the per-operation state of the call using it. Allocated once.
struct FileDevice::Ring {
  // One IoRequest in flight: what is left of it.
  struct Op {
    uint64_t offset = 0;
    std::span<const iovec> rest;  // whole buffers not yet started
    iovec head = {};              // remainder of a partly transferred buffer; empty if none
    unsigned retries = 0;

    void start(const IoRequest& r) {
      offset = r.offset;
      rest = r.iov;
      head = {};
      retries = 0;
    }
    bool done() const { return head.iov_len == 0 && rest.empty(); }
    void advance(size_t bytes);
  };

  // What a completion means for its op.
  struct Outcome {
    bool resubmit = false;
    int error = 0;
  };

  explicit Ring(unsigned queue_depth) : ops(queue_depth), cqes(queue_depth) {
    free_ops.reserve(queue_depth);
    for (uint32_t i = 0; i < queue_depth; i++) free_ops.push_back(i);
  }
  ~Ring() {
    if (initialized) io_uring_queue_exit(&uring);
  }
  Ring(const Ring&) = delete;
  Ring& operator=(const Ring&) = delete;

  int run(int fd, Direction dir, std::span<const IoRequest> batch);
  int fsync(int fd);
  void queue(uint32_t slot, Direction dir, int fd);
  Outcome complete(uint32_t slot, int res);
  void enter(unsigned wait_nr);

  io_uring uring = {};
  bool initialized = false;
  std::vector<Op> ops;              // queue_depth slots; user_data is the slot index
  std::vector<uint32_t> free_ops;   // slots not in flight
  std::vector<io_uring_cqe*> cqes;  // scratch for bulk reaping
};

void FileDevice::Ring::Op::advance(size_t bytes) {
  offset += bytes;
  if (head.iov_len != 0) {
    assert(bytes <= head.iov_len);
    head.iov_base = static_cast<char*>(head.iov_base) + bytes;
    head.iov_len -= bytes;
    return;
  }
  while (bytes > 0) {
    assert(!rest.empty());
    const iovec& v = rest.front();
    rest = rest.subspan(1);
    if (bytes < v.iov_len) {
      head = {static_cast<char*>(v.iov_base) + bytes, v.iov_len - bytes};
      return;
    }
    bytes -= v.iov_len;
  }
}

// Queues the op's next piece: the partial head buffer alone, else up to IOV_MAX buffers.
void FileDevice::Ring::queue(uint32_t slot, Direction dir, int fd) {
  Op& op = ops[slot];
  assert(!op.done());
  io_uring_sqe* sqe = io_uring_get_sqe(&uring);
  // The SQ has at least queue_depth entries and at most queue_depth ops are live.
  check(sqe != nullptr, "submission queue full");
  const iovec* iov = op.head.iov_len != 0 ? &op.head : op.rest.data();
  const unsigned count =
      op.head.iov_len != 0 ? 1 : std::min<size_t>(op.rest.size(), kMaxIovecsPerSqe);
  if (dir == Direction::kWrite) {
    io_uring_prep_writev(sqe, fd, iov, count, op.offset);
  } else {
    io_uring_prep_readv(sqe, fd, iov, count, op.offset);
  }
  io_uring_sqe_set_data64(sqe, slot);
}

FileDevice::Ring::Outcome FileDevice::Ring::complete(uint32_t slot, int res) {
  Op& op = ops[slot];
  if (res == -EAGAIN || res == -EINTR) {
    if (++op.retries > kMaxRetriesPerOp) return {false, EAGAIN};
    return {true, 0};
  }
  if (res < 0) return {false, -res};
  if (res == 0) return {false, EIO};  // no progress: the file ended early
  op.advance(static_cast<size_t>(res));
  return {!op.done(), 0};
}

// Submits what is queued and waits for wait_nr completions, retrying transient failures.
void FileDevice::Ring::enter(unsigned wait_nr) {
  for (unsigned attempt = 0; attempt < kMaxEnterRetries; attempt++) {
    const int ret = io_uring_submit_and_wait(&uring, wait_nr);
    if (ret >= 0) return;
    if (ret != -EINTR && ret != -EAGAIN && ret != -EBUSY) die_on_enter_error(-ret);
    if (ret != -EINTR && io_uring_cq_ready(&uring) > 0) return;  // reap to make room
    if (ret != -EINTR) sched_yield();
  }
  die_on_enter_error(EAGAIN);
}

// Keeps up to queue_depth requests of the batch in flight until all are done. After an
// error no new request starts, but everything in flight is reaped before returning.
int FileDevice::Ring::run(int fd, Direction dir, std::span<const IoRequest> batch) {
  size_t next = 0;
  size_t in_flight = 0;
  int first_error = 0;
  for (;;) {
    while (first_error == 0 && next < batch.size() && !free_ops.empty()) {
      const uint32_t slot = free_ops.back();
      free_ops.pop_back();
      ops[slot].start(batch[next++]);
      queue(slot, dir, fd);
      in_flight++;
    }
    if (in_flight == 0) break;
    enter(1);
    const unsigned n = io_uring_peek_batch_cqe(&uring, cqes.data(), cqes.size());
    for (unsigned i = 0; i < n; i++) {
      const auto slot = static_cast<uint32_t>(io_uring_cqe_get_data64(cqes[i]));
      check(slot < ops.size(), "completion for an unknown slot");
      const Outcome out = complete(slot, cqes[i]->res);
      if (out.error != 0 && first_error == 0) first_error = out.error;
      if (out.resubmit && first_error == 0) {
        queue(slot, dir, fd);
        continue;
      }
      free_ops.push_back(slot);
      in_flight--;
    }
    io_uring_cq_advance(&uring, n);
  }
  assert(free_ops.size() == ops.size());
  return first_error;
}

int FileDevice::Ring::fsync(int fd) {
  for (unsigned attempt = 0; attempt <= kMaxRetriesPerOp; attempt++) {
    io_uring_sqe* sqe = io_uring_get_sqe(&uring);
    check(sqe != nullptr, "submission queue full");
    // fdatasync: the bytes written and what reading them back needs (an
    // extent the host filesystem converts from unwritten, say), without the
    // file's times, which every direct write changes and nothing here reads.
    // On a regular file that saves a host journal commit per flush; on a
    // block device the two are the same cache flush.
    io_uring_prep_fsync(sqe, fd, IORING_FSYNC_DATASYNC);
    io_uring_cqe* cqe = nullptr;
    do {
      enter(1);
    } while (io_uring_peek_cqe(&uring, &cqe) != 0);
    const int res = cqe->res;
    io_uring_cqe_seen(&uring, cqe);
    if (res != -EAGAIN && res != -EINTR) return res < 0 ? -res : 0;
  }
  return EAGAIN;
}

FileDevice::FileDevice(int fd, uint64_t size_bytes, uint32_t block_size, bool read_only)
    : fd_(fd), size_bytes_(size_bytes), block_size_(block_size), read_only_(read_only) {}

FileDevice::~FileDevice() {
  {
    // Never tear a ring down with I/O in flight: wait until every call has returned.
    std::unique_lock lock(pool_mu_);
    ring_returned_.wait(lock, [this] { return free_rings_.size() == rings_.size(); });
  }
  rings_.clear();
  ::close(fd_);  // also releases the flock
}

Result<std::unique_ptr<FileDevice>> FileDevice::open(const std::string& path,
                                                     const FileDeviceOptions& opts,
                                                     std::string* error_message) {
  if (!options_valid(opts)) {
    return fail(error_message, EINVAL, "invalid device options (rings or queue depth)");
  }
  PAGEFS_ASSIGN(const int raw_fd, open_fd(path, opts.read_only, error_message));
  FdGuard fd(raw_fd);
  PAGEFS_ASSIGN(const Geometry geometry, probe_geometry(fd.get(), path, error_message));
  if (opts.exclusive_lock) PAGEFS_TRY(lock_fd(fd.get(), opts.read_only, path, error_message));
  std::unique_ptr<FileDevice> device(
      new FileDevice(fd.release(), geometry.size_bytes, geometry.block_size, opts.read_only));
  PAGEFS_TRY(device->init_rings(opts, error_message));
  device->check_invariants();
  return device;
}

// Creates the ring pool and checks the kernel knows the operations we use.
Status FileDevice::init_rings(const FileDeviceOptions& opts, std::string* error_message) {
  rings_.reserve(opts.rings);
  free_rings_.reserve(opts.rings);
  for (unsigned i = 0; i < opts.rings; i++) {
    auto ring = std::make_unique<Ring>(opts.queue_depth);
    const int ret = io_uring_queue_init(opts.queue_depth, &ring->uring, 0);
    // Callers wait for a free ring, so fewer rings only means less I/O in
    // parallel: on kernels that count ring memory against RLIMIT_MEMLOCK
    // (before 5.12) an unprivileged mount may get only a few.
    if (ret == -ENOMEM && !rings_.empty()) break;
    if (ret < 0) {
      return fail(error_message, -ret, "io_uring is not available: " + errno_text(-ret));
    }
    ring->initialized = true;
    // The device file is not registered with the ring (IOSQE_FIXED_FILE): the
    // kernel tears a ring down asynchronously, so a registered file outlives
    // a process that exits without closing it, and with it the device's
    // flock, and an immediate mkfs, fsck or mount would see EBUSY. Fixed
    // buffers are not used either: Debian 12's liburing has no vectored
    // fixed-buffer operations, and merged vectored writes matter more.
    free_rings_.push_back(ring.get());
    rings_.push_back(std::move(ring));
  }
  // Probing needs Linux 5.6; readv, writev and fsync are older than the probe itself.
  io_uring_probe* probe = io_uring_get_probe_ring(&rings_.front()->uring);
  if (probe == nullptr) return ok_status();
  const bool supported = io_uring_opcode_supported(probe, IORING_OP_READV) &&
                         io_uring_opcode_supported(probe, IORING_OP_WRITEV) &&
                         io_uring_opcode_supported(probe, IORING_OP_FSYNC);
  io_uring_free_probe(probe);
  if (!supported) {
    return fail(error_message, ENOSYS, "io_uring is not available: readv/writev/fsync unsupported");
  }
  return ok_status();
}

FileDevice::Ring* FileDevice::acquire_ring() {
  std::unique_lock lock(pool_mu_);
  ring_returned_.wait(lock, [this] { return !free_rings_.empty(); });
  Ring* ring = free_rings_.back();
  free_rings_.pop_back();
  return ring;
}

void FileDevice::release_ring(Ring* ring) {
  {
    std::lock_guard lock(pool_mu_);
    assert(free_rings_.size() < rings_.size());
    free_rings_.push_back(ring);
  }
  // notify_all: the destructor waits for a different condition than acquirers.
  ring_returned_.notify_all();
}

Status FileDevice::submit_batch(Direction dir, std::span<const IoRequest> batch) {
  PAGEFS_TRY(check_batch(batch, size_bytes_, block_size_));
  if (batch.empty()) return ok_status();
  Ring* ring = acquire_ring();
  const int err = ring->run(fd_, dir, batch);
  release_ring(ring);
  if (err != 0) return Err{err};
  return ok_status();
}

Status FileDevice::read(std::span<const IoRequest> batch) {
  return submit_batch(Direction::kRead, batch);
}

Status FileDevice::write(std::span<const IoRequest> batch) {
  if (read_only_) return Err{EROFS};
  return submit_batch(Direction::kWrite, batch);
}

Status FileDevice::flush() {
  Ring* ring = acquire_ring();
  const int err = ring->fsync(fd_);
  release_ring(ring);
  if (err != 0) return Err{err};
  return ok_status();
}

void FileDevice::check_invariants() const {
  std::lock_guard lock(pool_mu_);
  check(fd_ >= 0, "no descriptor");
  check(is_power_of_two(block_size_), "block size not a power of two");
  check(size_bytes_ % block_size_ == 0, "size not a multiple of the block size");
  check(!rings_.empty(), "empty ring pool");
  check(free_rings_.size() <= rings_.size(), "more free rings than rings");
  for (const Ring* ring : free_rings_) {
    check(std::count(free_rings_.begin(), free_rings_.end(), ring) == 1, "ring freed twice");
    check(ring->free_ops.size() == ring->ops.size(), "free ring with I/O in flight");
  }
}

}  // namespace pagefs
