// KernelFlags: the INIT flags pagefs negotiates itself, because libfuse 3.14
// cannot.
//
// At mount the kernel sends FUSE_INIT with the flags it offers, and libfuse
// answers with the flags the filesystem wants. libfuse 3.14 only knows the
// flags up to protocol 7.38, and some it knows it never puts in the reply
// (FUSE_CAP_PARALLEL_DIROPS reaches conn->want but not the reply's flags).
// So the daemon talks to /dev/fuse through libfuse's custom I/O hooks: every
// request read is shown to note_request(), which records the INIT request;
// every reply goes out through send(), which sets the extra flags in the INIT
// reply, where the kernel offered them, and changes nothing else.
//
// Which flags, and why each is safe, is written beside kWanted in
// kernel_flags.cc. The outcome is logged once: at -d, what the kernel offered
// and what was added; and in cache=private on a kernel without
// FUSE_DIRECT_IO_ALLOW_MMAP, one line saying that shared maps stay refused.
//
// Thread-safety: note_request() and send() are called from every session
// thread. The kernel sends no other request before INIT has been answered,
// so INIT's request and reply never race with each other; the atomics let the
// other threads skip the inspection once INIT is done.
#pragma once

#include <sys/uio.h>

#include <atomic>
#include <cstddef>
#include <cstdint>

namespace pagefs {

// INIT flags in the kernel's numbering (include/uapi/linux/fuse.h): bits
// 0-31 travel in fuse_init_{in,out}.flags, bits 32-63 in flags2, which is
// only valid when FUSE_INIT_EXT is set on both sides.
inline constexpr uint64_t kFuseDontMask = 1ull << 6;
inline constexpr uint64_t kFuseParallelDirops = 1ull << 18;
inline constexpr uint64_t kFusePosixAcl = 1ull << 20;
inline constexpr uint64_t kFuseInitExt = 1ull << 30;
inline constexpr uint64_t kFuseDirectIoAllowMmap = 1ull << 36;  // Linux >= 6.6

class KernelFlags {
 public:
  // `private_cache`: files are opened with direct I/O (-o cache=private), so
  // shared maps need FUSE_DIRECT_IO_ALLOW_MMAP.
  explicit KernelFlags(bool private_cache);
  KernelFlags(const KernelFlags&) = delete;
  KernelFlags& operator=(const KernelFlags&) = delete;

  // Looks at a request just read from /dev/fuse (`len` bytes at `buf`).
  void note_request(const void* buf, size_t len);
  // Writes a reply to /dev/fuse as writev(2) would, amending INIT's.
  ssize_t send(int fd, const iovec* iov, int count);

  // The flags the kernel offered (0 until INIT was read) and the flags of
  // the reply as sent (0 until INIT was answered).
  uint64_t offered() const { return offered_.load(std::memory_order_acquire); }
  uint64_t replied() const { return replied_.load(std::memory_order_acquire); }
  // Whether both sides agreed on `flag` (one of the constants above).
  bool granted(uint64_t flag) const { return (replied() & flag) != 0; }

 private:
  ssize_t send_init_reply(int fd, const iovec* iov, int count);
  void log_outcome(uint64_t offered, uint64_t replied, uint64_t added) const;

  const uint64_t wanted_;
  // The unique id of the INIT request awaiting its reply; 0 when none.
  std::atomic<uint64_t> init_unique_{0};
  std::atomic<bool> init_done_{false};
  std::atomic<uint64_t> offered_{0};
  std::atomic<uint64_t> replied_{0};
};

}  // namespace pagefs
