#include "fs/kernel_flags.h"

#include <linux/fuse.h>
#include <unistd.h>

#include <algorithm>
#include <array>
#include <cerrno>
#include <cstddef>
#include <cstring>
#include <string>

#include "engine/log.h"

namespace pagefs {
namespace {

// The flags pagefs asks for beyond what libfuse 3.14 sends, each only where
// the kernel offers it:
//
// FUSE_PARALLEL_DIROPS: without it the kernel serialises every lookup and
// readdir in one directory on a per-directory mutex; with it only the VFS
// directory lock applies, which those two take shared. The engine takes its
// lock shared for lookup, getattr and readdir and exclusive for every change,
// readdir cookies are stable, and the adapter's lookup counts have their own
// mutex, so lookups and listings of one directory may run together. libfuse
// 3.14 puts FUSE_CAP_PARALLEL_DIROPS in conn->want by default, but do_init
// never copies it into the reply.
//
// FUSE_DIRECT_IO_ALLOW_MMAP (cache=private only): lets programs map direct-I/O
// files shared (SQLite's WAL index, LMDB). The kernel then caches a mapped
// file's pages and keeps them coherent with read(2) and write(2): before each
// direct read or write it writes back and drops the cached pages of that range,
// and it writes dirty mapped pages back on msync, fsync and munmap, as
// ordinary FUSE_WRITE requests. libfuse 3.14 predates the flag.
//
// Not asked for, although libfuse 3.14 never sends them either:
// FUSE_HANDLE_KILLPRIV(_V2) would stop the kernel clearing setuid/setgid on
// chown and truncate, which it does correctly for us; FUSE_SETXATTR_EXT
// changes the setxattr request, and FUSE_SECURITY_CTX, FUSE_CREATE_SUPP_GROUP
// and FUSE_ALLOW_IDMAP add request extensions, none of which libfuse 3.14
// parses; FUSE_HAS_RESEND would need resent requests to be recognised;
// FUSE_ABORT_ERROR turns an aborted connection into an error libfuse 3.14
// reports as a device failure; FUSE_NO_EXPORT_SUPPORT would refuse file
// handles outright (export support is issue 11's item 4); passthrough,
// io_uring transport, DAX and submounts are other data paths.
uint64_t wanted_flags(bool private_cache) {
  return kFuseParallelDirops | (private_cache ? kFuseDirectIoAllowMmap : 0);
}

struct FlagName {
  uint64_t flag;
  const char* name;
};
constexpr FlagName kFlagNames[] = {{kFuseInitExt, "init_ext"},
                                   {kFuseParallelDirops, "parallel_dirops"},
                                   {kFuseDirectIoAllowMmap, "direct_io_allow_mmap"}};

std::string flag_names(uint64_t flags) {
  std::string names;
  for (const FlagName& f : kFlagNames) {
    if (flags & f.flag) names += std::string(names.empty() ? "" : " ") + f.name;
  }
  return names.empty() ? "none" : names;
}

// The reply to INIT as libfuse sends it for protocol 7.23 and later.
constexpr size_t kInitReplyBytes = sizeof(fuse_out_header) + sizeof(fuse_init_out);
constexpr size_t kFlagsEnd = sizeof(fuse_out_header) + offsetof(fuse_init_out, flags) + 4;
constexpr size_t kFlags2End = sizeof(fuse_out_header) + offsetof(fuse_init_out, flags2) + 4;

}  // namespace

KernelFlags::KernelFlags(bool private_cache) : wanted_(wanted_flags(private_cache)) {}

void KernelFlags::note_request(const void* buf, size_t len) {
  if (init_done_.load(std::memory_order_acquire)) return;
  fuse_in_header in;
  fuse_init_in init{};
  constexpr size_t kMinInit = sizeof in + offsetof(fuse_init_in, flags) + 4;
  if (len < kMinInit) return;
  std::memcpy(&in, buf, sizeof in);
  if (in.opcode != FUSE_INIT) return;
  std::memcpy(&init, static_cast<const char*>(buf) + sizeof in,
              std::min(len - sizeof in, sizeof init));
  uint64_t offered = init.flags;
  // flags2 exists from protocol 7.36 on, announced by FUSE_INIT_EXT.
  if ((offered & kFuseInitExt) && len >= sizeof in + offsetof(fuse_init_in, flags2) + 4) {
    offered |= uint64_t(init.flags2) << 32;
  }
  offered_.store(offered, std::memory_order_release);
  init_unique_.store(in.unique, std::memory_order_release);
}

ssize_t KernelFlags::send(int fd, const iovec* iov, int count) {
  uint64_t unique = init_unique_.load(std::memory_order_acquire);
  if (unique != 0 && count > 0 && iov[0].iov_len >= sizeof(fuse_out_header)) {
    fuse_out_header out;
    std::memcpy(&out, iov[0].iov_base, sizeof out);
    if (out.unique == unique) return send_init_reply(fd, iov, count);
  }
  return ::writev(fd, iov, count);
}

// Copies the reply into one buffer, sets the wanted flags the kernel offered,
// and sends it with one write, as /dev/fuse requires.
ssize_t KernelFlags::send_init_reply(int fd, const iovec* iov, int count) {
  std::array<char, kInitReplyBytes> reply{};
  size_t len = 0;
  for (int i = 0; i < count; ++i) {
    if (iov[i].iov_len > reply.size() - len) return ::writev(fd, iov, count);  // not INIT's shape
    std::memcpy(reply.data() + len, iov[i].iov_base, iov[i].iov_len);
    len += iov[i].iov_len;
  }
  if (len < sizeof(fuse_out_header)) return ::writev(fd, iov, count);
  fuse_out_header out;
  fuse_init_out init{};
  std::memcpy(&out, reply.data(), sizeof out);
  std::memcpy(&init, reply.data() + sizeof out, std::min(len - sizeof out, sizeof init));
  // An error, or a reply to an INIT of a newer major version (the kernel
  // then sends a 7.x INIT, whose reply is the one to amend), is left alone.
  if (out.error != 0 || init.major != FUSE_KERNEL_VERSION || len < kFlagsEnd) {
    return ::writev(fd, iov, count);
  }
  uint64_t offered = offered_.load(std::memory_order_acquire);
  uint32_t libfuse_flags = init.flags;
  uint64_t extra = wanted_ & offered;
  // libfuse sets FUSE_INIT_EXT when the kernel offers it; should a build not,
  // the reply still has room for flags2, which it leaves zero.
  bool has_flags2 = (offered & kFuseInitExt) && len >= kFlags2End;
  if (!has_flags2) extra &= 0xffffffffull;
  init.flags |= uint32_t(extra);
  if (extra >> 32) {
    init.flags |= uint32_t(kFuseInitExt);
    init.flags2 |= uint32_t(extra >> 32);
  }
  uint64_t replied = init.flags | (has_flags2 ? uint64_t(init.flags2) << 32 : 0);
  std::memcpy(reply.data() + sizeof out, &init, len - sizeof out);
  ssize_t written = ::write(fd, reply.data(), len);
  if (written == ssize_t(len)) {
    int saved_errno = errno;
    replied_.store(replied, std::memory_order_release);
    init_unique_.store(0, std::memory_order_release);
    init_done_.store(true, std::memory_order_release);
    log_outcome(offered, replied, replied & ~uint64_t(libfuse_flags));
    errno = saved_errno;
  }
  return written;
}

void KernelFlags::log_outcome(uint64_t offered, uint64_t replied, uint64_t added) const {
  PAGEFS_LOG_DEBUG(
      "INIT: the kernel offers flags 0x%llx, the reply carries 0x%llx; added to "
      "libfuse's reply: %s",
      static_cast<unsigned long long>(offered), static_cast<unsigned long long>(replied),
      flag_names(added).c_str());
  if ((wanted_ & kFuseDirectIoAllowMmap) && !(replied & kFuseDirectIoAllowMmap)) {
    PAGEFS_LOG_INFO(
        "the kernel does not offer FUSE_DIRECT_IO_ALLOW_MMAP (Linux 6.6 and later do): with "
        "cache=private, shared mmap is refused (ENODEV); mount with -o cache=kernel for "
        "programs that need it");
  }
}

}  // namespace pagefs
