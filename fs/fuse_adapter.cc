#include "fs/fuse_adapter.h"

#include <unistd.h>

#include <algorithm>
#include <cstring>
#include <memory>
#include <new>

#include "engine/log.h"
#include "fs/request_rewrite.h"

namespace pagefs {
namespace {

void want_if_offered(fuse_conn_info* conn, unsigned capability) {
  if (conn->capable & capability) conn->want |= capability;
}

// libfuse's custom I/O hooks; `userdata` is the session's, the adapter.
ssize_t channel_read(int fd, void* buf, size_t len, void* userdata) {
  ssize_t n = ::read(fd, buf, len);
  if (n > 0) {
    auto* adapter = static_cast<FuseAdapter*>(userdata);
    adapter->kernel_flags().note_request(buf, size_t(n));
    adapter->request_stats().note_request(buf, size_t(n));
    rewrite_request(buf, size_t(n));
  }
  return n;
}

ssize_t channel_writev(int fd, iovec* iov, int count, void* userdata) {
  auto* adapter = static_cast<FuseAdapter*>(userdata);
  adapter->request_stats().note_reply(iov, count);
  return adapter->kernel_flags().send(fd, iov, count);
}

}  // namespace

char* thread_buffer(size_t bytes) {
  thread_local std::unique_ptr<char[]> buffer;
  thread_local size_t capacity = 0;
  if (bytes > capacity) {
    buffer.reset(new (std::nothrow) char[bytes]);
    capacity = buffer ? bytes : 0;
  }
  return buffer.get();
}

FuseAdapter::FuseAdapter(FileSystem* fs, const AdapterOptions& options)
    : fs_(fs), options_(options), kernel_flags_(!options.kernel_cache) {
  assert(fs_ != nullptr);
}

Caller FuseAdapter::caller(fuse_req_t req) {
  const fuse_ctx* ctx = fuse_req_ctx(req);
  return Caller{ctx->uid, ctx->gid, ctx->umask};
}

// Whether the caller's group or one of its supplementary groups is `gid`.
// Groups that cannot be read count as not containing it: the bit goes.
bool FuseAdapter::caller_in_group(fuse_req_t req, uint32_t gid) {
  if (fuse_req_ctx(req)->gid == gid) return true;
  constexpr int kFew = 64;
  gid_t few[kFew];
  const gid_t* groups = few;
  int n = fuse_req_getgroups(req, kFew, few);
  std::unique_ptr<gid_t[]> many;
  if (n > kFew) {
    int capacity = n;
    many.reset(new (std::nothrow) gid_t[size_t(capacity)]);
    if (many == nullptr) return false;
    n = std::min(capacity, fuse_req_getgroups(req, capacity, many.get()));
    groups = many.get();
  }
  return n > 0 && std::find(groups, groups + n, gid_t(gid)) != groups + n;
}

// Kernel features: export support (file handles: the kernel may look up "."
// and ".." by inode number, and every entry carries the inode's generation),
// no splice. POSIX ACLs with -o acl: the
// kernel then checks permissions against them (FUSE_POSIX_ACL turns on
// default_permissions) and stops applying the umask to new inodes, which
// FUSE_DONT_MASK leaves to the engine: it must not be applied when the
// directory has a default ACL. O_TRUNC arrives as setattr(size=0), and the kernel
// clears setuid/setgid on chown and truncate itself (the engine does it on
// write). Writeback caching only with -o cache=kernel.
//
// libfuse 3.14 never sends FUSE_PARALLEL_DIROPS, although it takes
// FUSE_CAP_PARALLEL_DIROPS here; fs/kernel_flags.h puts it in the reply, with
// the flags libfuse 3.14 does not know.
//
// Directories keep OPENDIR: answering it ENOSYS would save two round trips
// per listing, but the kernel then caches every listing until the next
// rewind (FOPEN_CACHE_DIR), and a seekdir to a position taken before
// removals no longer leads to the first remaining entry.
void FuseAdapter::init(fuse_conn_info* conn) const {
  conn->want &=
      ~(FUSE_CAP_SPLICE_READ | FUSE_CAP_SPLICE_WRITE | FUSE_CAP_SPLICE_MOVE | FUSE_CAP_POSIX_ACL |
        FUSE_CAP_ATOMIC_O_TRUNC | FUSE_CAP_HANDLE_KILLPRIV | FUSE_CAP_WRITEBACK_CACHE);
  want_if_offered(conn, FUSE_CAP_EXPORT_SUPPORT);
  want_if_offered(conn, FUSE_CAP_IOCTL_DIR);  // chattr on directories
  want_if_offered(conn, FUSE_CAP_ASYNC_READ);
  want_if_offered(conn, FUSE_CAP_READDIRPLUS);
  want_if_offered(conn, FUSE_CAP_PARALLEL_DIROPS);
  want_if_offered(conn, FUSE_CAP_CACHE_SYMLINKS);
  if (options_.kernel_cache) want_if_offered(conn, FUSE_CAP_WRITEBACK_CACHE);
  if (options_.posix_acl && (conn->capable & FUSE_CAP_POSIX_ACL)) {
    conn->want |= FUSE_CAP_POSIX_ACL;
    want_if_offered(conn, FUSE_CAP_DONT_MASK);
  } else if (options_.posix_acl) {
    PAGEFS_LOG_WARN("the kernel does not offer POSIX ACL support: ACLs are refused (EOPNOTSUPP)");
  }
  conn->max_write = kMaxTransferBytes;
  conn->max_readahead = kMaxTransferBytes;
  conn->time_gran = 1;
}

int FuseAdapter::attach(fuse_session* session) {
  session_ = session;
  fuse_custom_io io{};
  io.read = channel_read;
  io.writev = channel_writev;
  return fuse_session_custom_io(session, &io, fuse_session_fd(session));
}

fuse_entry_param FuseAdapter::entry_param(const Attr& attr) const {
  fuse_entry_param e;
  std::memset(&e, 0, sizeof e);
  e.ino = attr.ino;
  e.generation = attr.generation;
  e.attr = to_stat(attr);
  e.attr_timeout = kCacheTimeoutS;
  e.entry_timeout = kCacheTimeoutS;
  return e;
}

void FuseAdapter::reply_entry(fuse_req_t req, const Result<Attr>& attr, bool negative) {
  if (!attr.ok()) {
    if (!negative || attr.error() != ENOENT) {
      fuse_reply_err(req, attr.error());
      return;
    }
    fuse_entry_param e;
    std::memset(&e, 0, sizeof e);  // ino 0: "no such name", cached for entry_timeout
    e.entry_timeout = kCacheTimeoutS;
    fuse_reply_entry(req, &e);
    return;
  }
  fuse_entry_param e = entry_param(*attr);
  // A reply the kernel did not take hands it no reference.
  if (fuse_reply_entry(req, &e) != 0) forget(e.ino, 1);
}

void FuseAdapter::reply_create(fuse_req_t req, const Result<Attr>& attr, fuse_file_info* fi) {
  if (!attr.ok()) {
    fuse_reply_err(req, attr.error());
    return;
  }
  fuse_entry_param e = entry_param(*attr);
  set_open_flags(fi);
  if (fuse_reply_create(req, &e, fi) != 0) forget(e.ino, 1);
}

void FuseAdapter::reply_attr(fuse_req_t req, const Result<Attr>& attr) {
  if (!attr.ok()) {
    fuse_reply_err(req, attr.error());
    return;
  }
  struct stat st = to_stat(*attr);
  fuse_reply_attr(req, &st, kCacheTimeoutS);
}

void FuseAdapter::reply_status(fuse_req_t req, const Status& status) {
  fuse_reply_err(req, status.ok() ? 0 : status.error());
}

// close(2) promises nothing about durability (fsync does) and open files
// carry no state, so no FLUSH is asked for: one round trip less per close.
// With writeback caching the kernel flushes anyway and ignores this.
void FuseAdapter::set_open_flags(fuse_file_info* fi) const {
  fi->noflush = 1;
  fi->direct_io = options_.kernel_cache ? 0 : 1;
  fi->keep_cache = options_.kernel_cache ? 1 : 0;
}

SeekKnowledge FuseAdapter::seek_knowledge(uint64_t ino, off_t off) {
  if (options_.kernel_cache) return SeekKnowledge::kKernelAlone;
  // Without shared maps of direct-I/O files the kernel caches no file data.
  if (!kernel_flags_.granted(kFuseDirectIoAllowMmap)) return SeekKnowledge::kExact;
  if (seek_flushes_.fetch_add(1) + 1 >= options_.session_threads || session_ == nullptr) {
    seek_flushes_.fetch_sub(1);
    return SeekKnowledge::kSizeOnly;
  }
  int error = fuse_lowlevel_notify_inval_inode(session_, ino, off, 0);
  seek_flushes_.fetch_sub(1);
  // ENOENT: the kernel has no such inode cached, so no pages of it either.
  return error == 0 || error == -ENOENT ? SeekKnowledge::kExact : SeekKnowledge::kSizeOnly;
}

void FuseAdapter::invalidate_attributes(uint64_t ino) {
  // A negative offset: the attributes only, no cached pages. The kernel
  // takes no lock a request in flight may hold, so this is safe from a
  // handler.
  int error = session_ != nullptr ? fuse_lowlevel_notify_inval_inode(session_, ino, -1, 0) : 0;
  if (error != 0 && error != -ENOENT) {
    PAGEFS_LOG_WARN("cannot invalidate the cached attributes of inode %llu: %s",
                    static_cast<unsigned long long>(ino), std::strerror(-error));
  }
}

void FuseAdapter::forget(uint64_t ino, uint64_t n) {
  Status released = fs_->forget(InodeNo{ino}, n);
  if (!released.ok()) {
    PAGEFS_LOG_WARN("releasing inode %llu: %s", static_cast<unsigned long long>(ino),
                    std::strerror(released.error()));
  }
}

Status FuseAdapter::shutdown() {
  std::lock_guard lock(shutdown_mu_);
  if (!shut_down_) {
    shut_down_ = true;
    // The kernel sends no FORGET at unmount: whatever it still held is free now.
    fs_->forget_all();
    Status unmounted = fs_->unmount();
    if (!unmounted.ok()) shutdown_error_ = unmounted.error();
    if (shutdown_error_ != 0) {
      PAGEFS_LOG_ERROR("unmount failed: %s", std::strerror(shutdown_error_));
    }
  }
  if (shutdown_error_ != 0) return Err{shutdown_error_};
  return ok_status();
}

}  // namespace pagefs
