#include "fs/request_stats.h"

#include <linux/fuse.h>

#include <array>
#include <chrono>
#include <cstring>

namespace pagefs {
namespace {

// The request this thread read last and has not answered yet.
struct Pending {
  uint64_t unique = 0;  // 0: none
  uint32_t opcode = 0;
  std::chrono::steady_clock::time_point start;
};
thread_local Pending t_pending;

constexpr std::array<std::string_view, RequestStats::kOpcodes> make_names() {
  std::array<std::string_view, RequestStats::kOpcodes> n{};
  n[FUSE_LOOKUP] = "lookup";
  n[FUSE_FORGET] = "forget";
  n[FUSE_GETATTR] = "getattr";
  n[FUSE_SETATTR] = "setattr";
  n[FUSE_READLINK] = "readlink";
  n[FUSE_SYMLINK] = "symlink";
  n[FUSE_MKNOD] = "mknod";
  n[FUSE_MKDIR] = "mkdir";
  n[FUSE_UNLINK] = "unlink";
  n[FUSE_RMDIR] = "rmdir";
  n[FUSE_RENAME] = "rename";
  n[FUSE_LINK] = "link";
  n[FUSE_OPEN] = "open";
  n[FUSE_READ] = "read";
  n[FUSE_WRITE] = "write";
  n[FUSE_STATFS] = "statfs";
  n[FUSE_RELEASE] = "release";
  n[FUSE_FSYNC] = "fsync";
  n[FUSE_SETXATTR] = "setxattr";
  n[FUSE_GETXATTR] = "getxattr";
  n[FUSE_LISTXATTR] = "listxattr";
  n[FUSE_REMOVEXATTR] = "removexattr";
  n[FUSE_FLUSH] = "flush";
  n[FUSE_INIT] = "init";
  n[FUSE_OPENDIR] = "opendir";
  n[FUSE_READDIR] = "readdir";
  n[FUSE_RELEASEDIR] = "releasedir";
  n[FUSE_FSYNCDIR] = "fsyncdir";
  n[FUSE_GETLK] = "getlk";
  n[FUSE_SETLK] = "setlk";
  n[FUSE_SETLKW] = "setlkw";
  n[FUSE_ACCESS] = "access";
  n[FUSE_CREATE] = "create";
  n[FUSE_INTERRUPT] = "interrupt";
  n[FUSE_BMAP] = "bmap";
  n[FUSE_DESTROY] = "destroy";
  n[FUSE_IOCTL] = "ioctl";
  n[FUSE_POLL] = "poll";
  n[FUSE_NOTIFY_REPLY] = "notify_reply";
  n[FUSE_BATCH_FORGET] = "batch_forget";
  n[FUSE_FALLOCATE] = "fallocate";
  n[FUSE_READDIRPLUS] = "readdirplus";
  n[FUSE_RENAME2] = "rename2";
  n[FUSE_LSEEK] = "lseek";
  n[FUSE_COPY_FILE_RANGE] = "copy_file_range";
  n[FUSE_SYNCFS] = "syncfs";
  n[FUSE_TMPFILE] = "tmpfile";
  return n;
}
constexpr std::array<std::string_view, RequestStats::kOpcodes> kNames = make_names();

}  // namespace

std::string_view RequestStats::opcode_name(size_t opcode) {
  return opcode < kOpcodes && !kNames[opcode].empty() ? kNames[opcode] : "other";
}

void RequestStats::note_request(const void* buf, size_t len) {
  fuse_in_header in;
  if (len < sizeof in) return;
  std::memcpy(&in, buf, sizeof in);
  const uint32_t opcode = in.opcode < kOpcodes && !kNames[in.opcode].empty() ? in.opcode : 0;
  requests_[opcode].fetch_add(1, std::memory_order_relaxed);
  t_pending = Pending{in.unique, opcode, std::chrono::steady_clock::now()};
  if (opcode == FUSE_WRITE && len >= sizeof in + sizeof(fuse_write_in)) {
    fuse_write_in write;
    std::memcpy(&write, static_cast<const char*>(buf) + sizeof in, sizeof write);
    app_write_bytes_.fetch_add(write.size, std::memory_order_relaxed);
  }
}

void RequestStats::note_reply(const iovec* iov, int count) {
  if (t_pending.unique == 0 || count < 1 || iov[0].iov_len < sizeof(fuse_out_header)) return;
  fuse_out_header out;
  std::memcpy(&out, iov[0].iov_base, sizeof out);
  if (out.unique != t_pending.unique) return;  // a notification, or another thread's request
  auto elapsed = std::chrono::steady_clock::now() - t_pending.start;
  latency_ns_[t_pending.opcode].record(
      static_cast<uint64_t>(std::chrono::duration_cast<std::chrono::nanoseconds>(elapsed).count()));
  if (t_pending.opcode == FUSE_READ && out.error == 0 && out.len > sizeof out) {
    app_read_bytes_.fetch_add(out.len - sizeof out, std::memory_order_relaxed);
  }
  t_pending.unique = 0;
}

}  // namespace pagefs
