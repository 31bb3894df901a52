// FuseAdapter: the state the FUSE low-level handlers share.
//
// The handlers in fs/fuse_*_ops.cc follow one contract (libfuse's
// passthrough_hp): decode the request, make one engine call, send exactly one
// reply, with a positive errno to fuse_reply_err (a write, fallocate or
// access-ACL change by a caller other than root reads the attributes first,
// to tell which setid bits it clears; readdirplus reads each entry's
// attributes). The adapter holds what they need beyond the request itself:
// the engine, the cache mode, the timeouts and the INIT flags negotiated
// beyond libfuse (KernelFlags, which
// /dev/fuse traffic passes through), plus the helpers that turn engine
// results into replies. The kernel's lookup counts live in the engine: the
// calls that hand out an inode take its reference with Hold::kYes, and a
// reply the kernel did not take gives it back.
//
// Caching: this daemon is the only writer of the filesystem, and every change
// goes through it and therefore through the kernel, which updates or drops its
// cached entries and attributes itself. So entries, negative entries and
// attributes are cached for a long time (kCacheTimeoutS); every reply that
// follows a change carries the fresh attributes the engine returned.
//
// Lifetime: created by main before the session, outlives it. shutdown() (from
// the destroy handler, or from main if the kernel never initialised the
// session) gives back the references the kernel still held and unmounts the
// engine; it runs once.
//
// Thread-safety: every method may be called concurrently from the session's
// worker threads, except shutdown(), which runs when no request is in flight.
#pragma once

#ifndef FUSE_USE_VERSION
#define FUSE_USE_VERSION 312
#endif
#include <fuse_lowlevel.h>

#include <atomic>
#include <chrono>
#include <mutex>
#include <string>

#include "engine/filesystem.h"
#include "fs/kernel_flags.h"
#include "fs/request_stats.h"

namespace pagefs {

struct AdapterOptions {
  // -o cache=kernel: file data goes through the kernel page cache (with
  // writeback caching). Default "private": direct I/O, only our pool caches.
  bool kernel_cache = false;
  // Threads serving requests (1 with -s).
  unsigned session_threads = 1;
  // The device as given at mount (made absolute), for the statistics.
  std::string device;
  // -o acl (default): ask the kernel to enforce POSIX ACLs (FUSE_POSIX_ACL)
  // and to leave the umask to the engine (FUSE_DONT_MASK), which applies it
  // unless a default ACL says otherwise.
  bool posix_acl = true;
};

// What pagefs can say to lseek(SEEK_DATA or SEEK_HOLE); see seek_knowledge().
enum class SeekKnowledge {
  kExact,        // the extents it stores are the whole truth
  kSizeOnly,     // its size is right, but data may be anywhere before it
  kKernelAlone,  // only the kernel knows the size and where data is
};

// Seconds the kernel may trust an entry, a negative entry or attributes.
inline constexpr double kCacheTimeoutS = 60.0;
// Largest read or write the kernel sends us.
inline constexpr unsigned kMaxTransferBytes = 1u << 20;

// A per-thread scratch buffer for replies (read data, directory listings) of
// at least `bytes`. It only grows, up to the largest request the kernel sends
// (max_pages, 1 MiB), so each session thread holds at most one. nullptr if
// memory is short. Valid until the thread's next call.
char* thread_buffer(size_t bytes);

class FuseAdapter {
 public:
  FuseAdapter(FileSystem* fs, const AdapterOptions& options);
  FuseAdapter(const FuseAdapter&) = delete;
  FuseAdapter& operator=(const FuseAdapter&) = delete;

  static FuseAdapter& from(fuse_req_t req) {
    return *static_cast<FuseAdapter*>(fuse_req_userdata(req));
  }
  // Who sent the request: new inodes take this uid and gid, and the umask
  // the kernel passes with a create, mknod or mkdir.
  static Caller caller(fuse_req_t req);
  // Whether the caller's group or one of its supplementary groups is `gid`.
  static bool caller_in_group(fuse_req_t req, uint32_t gid);
  // Whether the kernel enforces POSIX ACLs on this mount (-o acl, and the
  // kernel took FUSE_POSIX_ACL); otherwise the ACL xattrs are EOPNOTSUPP.
  bool acls_enforced() const { return kernel_flags_.granted(kFusePosixAcl); }

  FileSystem& fs() { return *fs_; }
  const AdapterOptions& options() const { return options_; }

  // Negotiates capabilities and sizes with the kernel (the init handler).
  void init(fuse_conn_info* conn) const;
  // Routes the mounted session's /dev/fuse traffic through kernel_flags(),
  // so that INIT asks for what libfuse 3.14 cannot, and through
  // rewrite_request() (fs/request_rewrite.h). Call after
  // fuse_session_mount and before the session loop; returns 0 or -errno.
  int attach(fuse_session* session);
  KernelFlags& kernel_flags() { return kernel_flags_; }
  const KernelFlags& kernel_flags() const { return kernel_flags_; }
  // Requests by type, their latencies and the bytes applications moved.
  RequestStats& request_stats() { return request_stats_; }
  const RequestStats& request_stats() const { return request_stats_; }
  // Milliseconds since the adapter was made, at mount.
  uint64_t uptime_ms() const {
    return uint64_t(std::chrono::duration_cast<std::chrono::milliseconds>(
                        std::chrono::steady_clock::now() - started_)
                        .count());
  }

  // Replies with an entry for `attr`, whose reference the engine took, or the
  // error. A lookup's ENOENT becomes a cacheable negative entry when `negative`.
  void reply_entry(fuse_req_t req, const Result<Attr>& attr, bool negative = false);
  // Replies to create(): like reply_entry, plus the open file.
  void reply_create(fuse_req_t req, const Result<Attr>& attr, fuse_file_info* fi);
  void reply_attr(fuse_req_t req, const Result<Attr>& attr);
  static void reply_status(fuse_req_t req, const Status& status);

  fuse_entry_param entry_param(const Attr& attr) const;
  struct stat to_stat(const Attr& attr) const {
    return attr.to_stat(fs_->page_size());
  }
  // Sets the open flags the cache mode asks for.
  void set_open_flags(fuse_file_info* fi) const;

  // Before an answer to lseek(SEEK_DATA or SEEK_HOLE) at `off` on `ino`. The
  // kernel forwards the call without writing back the dirty pages it holds
  // (written through a shared map, or in cache=kernel with its writeback
  // cache), so pagefs may not have seen data that is there. In cache=private
  // this asks the kernel to write back and drop the file's cached pages from
  // `off` on, which it does with ordinary FUSE_WRITEs served by the other
  // session threads: kExact. It does not when that could leave no thread
  // free to serve them (-s, or every other thread busy doing the same), and
  // returns kSizeOnly. In cache=kernel the kernel's size may be ahead of
  // pagefs's too: kKernelAlone.
  SeekKnowledge seek_knowledge(uint64_t ino, off_t off);

  // Drops the kernel's cached attributes of `ino`, after a change whose reply
  // does not carry them (a write or fallocate that cleared setuid/setgid).
  void invalidate_attributes(uint64_t ino);

  // Gives back `n` references; the engine frees an unlinked inode at zero.
  void forget(uint64_t ino, uint64_t n);

  // Releases every inode still referenced and unmounts the engine. Returns the
  // unmount's status; later calls return the first one's.
  Status shutdown();

 private:
  FileSystem* const fs_;
  const AdapterOptions options_;
  KernelFlags kernel_flags_;
  RequestStats request_stats_;
  const std::chrono::steady_clock::time_point started_ = std::chrono::steady_clock::now();
  fuse_session* session_ = nullptr;  // set by attach(), before the session loop
  // Session threads inside seek_knowledge()'s notification; fewer than
  // session_threads, so that one is always free to serve the writes.
  std::atomic<unsigned> seek_flushes_{0};
  // Lock order: taken alone, before any engine call shutdown() makes.
  std::mutex shutdown_mu_;
  bool shut_down_ = false;  // guarded by shutdown_mu_
  int shutdown_error_ = 0;  // guarded by shutdown_mu_
};

}  // namespace pagefs
