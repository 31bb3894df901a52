// FileSystem: the POSIX-shaped operations of pagefs on inode numbers.
//
// This is the engine's public API; the FUSE adapter in fs/ is a thin layer over
// it. Every operation is one atomic unit: it takes the locks it needs, changes
// the tree and pages through the buffer manager, and returns a value or a
// positive errno. Nothing here knows about FUSE.
//
// Permission checks are the kernel's (the mount uses default_permissions, and
// the kernel evaluates POSIX ACLs); the engine enforces the rules that are
// about structure: names, types, emptiness, sticky directories on
// rename/unlink, link counts, space. It keeps ACLs in step with the mode and
// gives new inodes their directory's default ACL (engine/posix_acl.h).
//
// Creating calls (mknod, mkdir) apply the caller's umask unless the directory
// has a default ACL: the mode they get is the one the process asked for.
//
// Lifetime of inodes: an inode whose link count reaches zero goes onto the
// orphan list and keeps its data while the kernel holds references to it.
// The calls that hand an inode to the kernel take a reference when asked
// (`Hold::kYes`), under the filesystem lock; forget() gives references back
// and frees an unlinked inode whose count reached zero, checking the count
// again under the lock. Orphans left by a crash or an unmount are purged at
// the next mount.
//
// Thread-safety: every method may be called concurrently from any thread.
#pragma once

#include <sys/stat.h>
#include <sys/statvfs.h>
#include <sys/types.h>
#include <sys/uio.h>

#include <atomic>
#include <cstdint>
#include <functional>
#include <memory>
#include <shared_mutex>
#include <span>
#include <string>
#include <string_view>
#include <vector>

#include "engine/device.h"
#include "engine/result.h"
#include "engine/stats.h"
#include "engine/types.h"

namespace pagefs {

class BufferPool;
class Btree;
class SpaceMap;
struct Superblock;

// When a read of a file stores a new access time (the atime mount options).
enum class AtimeUpdates {
  kNever,     // noatime
  kRelative,  // relatime: when atime is not after mtime or ctime, or is a day old
  kAlways,    // strictatime: on every read
};

struct MountOptions {
  uint64_t cache_bytes = 256ull << 20;  // buffer pool budget
  bool read_only = false;
  uint32_t commit_interval_s = 5;  // dirty data reaches the device within this
  // The commit thread's nice value, -20 to 19. Every fsync waits for that
  // thread: on CPUs kept busy by writers and readers, a lower value gives
  // fsyncs a shorter tail and the others a little less throughput
  // (docs/benchmarks.md, "Commit thread priority").
  int commit_nice = 0;
  uint64_t max_write_iops = 0;  // background write-back limit; 0: none
  uint64_t max_write_mbps = 0;  // background write-back limit in MB/s; 0: none
  AtimeUpdates atime_updates = AtimeUpdates::kRelative;
  // POSIX ACLs (engine/posix_acl.h): stored, inherited and kept in step with
  // the mode. Off: the ACL xattr names are EOPNOTSUPP.
  bool posix_acl = true;
};

// What the filesystem reports about an inode (a subset of struct stat).
struct Attr {
  uint64_t ino = 0;
  uint32_t mode = 0;
  uint32_t nlink = 0;
  uint32_t uid = 0;
  uint32_t gid = 0;
  uint64_t rdev = 0;
  uint64_t size = 0;
  uint64_t blocks_512 = 0;  // st_blocks: 512-byte units allocated
  timespec atime{};
  timespec mtime{};
  timespec ctime{};
  uint32_t generation = 0;  // with ino, names this inode for the filesystem's life
  uint32_t flags = 0;       // kInodeFlag* attributes (FS_IOC_GETFLAGS numbering)

  struct stat to_stat(uint32_t blksize) const;
};

// Whether a call that returns an inode also takes a kernel reference on it.
enum class Hold { kNo, kYes };

// Who is asking: new inodes take these ids (and a setgid directory's gid).
struct Caller {
  uint32_t uid = 0;
  uint32_t gid = 0;
  // Cleared from a new inode's permission bits, unless its directory has a
  // default ACL (which masks them instead, as POSIX says).
  uint32_t umask = 0;
};

// A setattr request; only the fields whose flag is set change.
struct SetAttr {
  bool set_mode = false, set_uid = false, set_gid = false, set_size = false;
  bool set_atime = false, set_mtime = false;
  bool atime_now = false, mtime_now = false;  // UTIME_NOW
  // The change is the kernel storing the mtime of writes it cached (its
  // write-back cache sends it as a setattr of mtime alone); an append-only
  // file takes it as it takes the writes.
  bool cached_write_time = false;
  uint32_t mode = 0, uid = 0, gid = 0;
  uint64_t size = 0;
  timespec atime{}, mtime{};
};

// One directory entry as readdir reports it. `cookie` is the offset to resume
// after this entry.
struct DirEntry {
  std::string_view name;
  uint64_t ino;
  uint32_t type;  // DT_* from <dirent.h>
  uint64_t cookie;
};

// A scrub (engine/scrub.h): how fast it may read.
struct ScrubOptions {
  uint64_t rate_mbps = 0;  // MB/s of device reads; 0: about a quarter of the device's time
};

// A damaged page a scrub found, and what owns it.
struct ScrubDamage {
  uint64_t page = 0;
  bool metadata = false;  // a superblock, bitmap or tree page; else file data
  bool repaired = false;  // rewritten from a good copy (the cache or the journal)
  uint64_t ino = 0;       // data: the file; metadata: 0
  uint64_t offset = 0;    // data: byte offset in the file
  std::string owner;      // "/docs/a.txt", or "tree node holding inodes 45-52", ...
  std::string what;       // "checksum mismatch", ...
};

struct ScrubStatus {
  enum class State { kNever, kRunning, kDone, kCancelled, kFailed };
  State state = State::kNever;
  int64_t started = 0;   // seconds since the epoch
  int64_t finished = 0;  // 0 while running
  uint64_t pages_checked = 0;
  uint64_t pages_total = 0;         // an estimate: the pages in use when it started
  uint64_t errors = 0;              // damaged pages found
  uint64_t repaired = 0;            // of which rewritten from a good copy
  uint64_t rate_mbps = 0;           // the limit asked for; 0: a share of the device
  std::string failure;              // kFailed: why
  std::vector<ScrubDamage> damage;  // the first Scrubber::kMaxReported
};

// "never", "running", "done", "cancelled", "failed".
const char* scrub_state_name(ScrubStatus::State state);

struct FsStats {
  uint64_t page_size = 0;
  uint64_t total_pages = 0;
  uint64_t free_pages = 0;  // file data pages that still fit, once the running transaction commits
  uint64_t inodes = 0;
  uint64_t checksum_errors = 0;  // CRC mismatches found on reads since mount
  uint64_t metadata_errors = 0;  // metadata with a good CRC but impossible contents, since mount
  uint64_t cache_hits = 0;
  uint64_t cache_misses = 0;
  uint64_t cache_frames = 0;
  uint64_t pages_read = 0;
  uint64_t pages_written = 0;
  // The last (or running) scrub.
  ScrubStatus::State scrub_state = ScrubStatus::State::kNever;
  int64_t scrub_finished = 0;
  uint64_t scrub_pages_checked = 0;
  uint64_t scrub_errors = 0;
  uint64_t scrub_repaired = 0;
};

class FileSystem {
 public:
  // Opens a formatted device. Fails with EINVAL (not pagefs), EPROTONOSUPPORT
  // (unknown version or features) or EIO; `error_message` receives one line for
  // the user.
  static Result<std::unique_ptr<FileSystem>> mount(std::unique_ptr<Device> device,
                                                   const MountOptions& options,
                                                   std::string* error_message = nullptr);
  ~FileSystem();
  FileSystem(const FileSystem&) = delete;
  FileSystem& operator=(const FileSystem&) = delete;

  // Writes every dirty page home, marks the superblock clean and flushes. The
  // object must not be used afterwards except to destroy it.
  Status unmount();

  // `name` "." is `parent` itself, of any type, and ".." a directory's parent
  // (the kernel asks for them to resolve file handles); both are ENOENT for
  // an inode that has no links left.
  Result<Attr> lookup(InodeNo parent, std::string_view name, Hold hold = Hold::kNo);
  Result<Attr> getattr(InodeNo ino, Hold hold = Hold::kNo);
  Result<Attr> setattr(InodeNo ino, const SetAttr& changes);

  // `mode` carries the file type (S_IFREG, S_IFIFO, S_IFSOCK, S_IFCHR, S_IFBLK).
  Result<Attr> mknod(InodeNo parent, std::string_view name, uint32_t mode, uint64_t rdev,
                     const Caller& caller, Hold hold = Hold::kNo);
  Result<Attr> mkdir(InodeNo parent, std::string_view name, uint32_t mode, const Caller& caller,
                     Hold hold = Hold::kNo);
  Result<Attr> symlink(InodeNo parent, std::string_view name, std::string_view target,
                       const Caller& caller, Hold hold = Hold::kNo);
  Result<std::string> readlink(InodeNo ino);
  // A file with no name yet (O_TMPFILE): a regular file of `mode`'s
  // permission bits, made in `dir` as mknod would make it, with no links,
  // on the orphan list, so it is freed when the kernel lets go of it, or at
  // the next mount. link() may give it its first name.
  Result<Attr> tmpfile(InodeNo dir, uint32_t mode, const Caller& caller, Hold hold = Hold::kNo);
  // ENOENT for an inode without links, unless tmpfile() made it and it was
  // never linked.
  Result<Attr> link(InodeNo ino, InodeNo new_parent, std::string_view new_name,
                    Hold hold = Hold::kNo);
  // The caller's uid is needed for sticky directories.
  Status unlink(InodeNo parent, std::string_view name, const Caller& caller);
  Status rmdir(InodeNo parent, std::string_view name, const Caller& caller);
  // flags: 0, RENAME_NOREPLACE, RENAME_EXCHANGE or RENAME_WHITEOUT (which
  // may come with RENAME_NOREPLACE): a whiteout, a character device 0/0
  // owned by `caller`, takes the source name's place in the same step.
  Status rename(InodeNo parent, std::string_view name, InodeNo new_parent,
                std::string_view new_name, uint32_t flags, const Caller& caller);

  // Sets the attribute flags (kInodeFlag*, as FS_IOC_SETFLAGS; Attr::flags
  // has them): EOPNOTSUPP for others. Only root may set or clear immutable
  // and append-only, only the owner or root the others, and nothing but
  // immutable itself may change while it is set (EPERM). While an inode is
  // immutable or append-only, the calls that would change it fail with
  // EPERM (engine/inode_flags.cc lists them).
  Result<Attr> set_flags(InodeNo ino, uint32_t flags, const Caller& caller);
  // Whether `ino` may be opened with open(2)'s `flags`: EPERM for writing or
  // truncating an immutable file, and for writing an append-only one without
  // O_APPEND or truncating it.
  Status check_open(InodeNo ino, int flags);

  // Gives back `n` kernel references to `ino`; at zero, frees it if unlinked.
  Status forget(InodeNo ino, uint64_t n);
  // Frees `ino` if it is unlinked and the kernel holds no reference to it.
  Status release_inode(InodeNo ino);
  // Gives back every kernel reference (at unmount the kernel sends no more
  // FORGETs) and frees what was unlinked; a failure leaves an orphan, which
  // the next mount purges.
  void forget_all();

  // Reads up to `len` bytes at `off` into `buf`; returns bytes read (short at
  // EOF). Stores a new atime first as MountOptions::atime_updates says.
  Result<size_t> read(InodeNo ino, uint64_t off, size_t len, char* buf);
  // Like read(), without copying: calls `reply` once with the bytes in place,
  // iovecs into pinned cache pages (and a page of zeros for holes), while the
  // file's lock keeps its writers out; the pages are unpinned when it returns.
  // `reply` gets an empty span at EOF and must not call into the filesystem.
  // ENOBUFS if the range spans more pages than one read may pin (a 64th of
  // the cache), or if in-place reads in progress already pin a quarter of it:
  // use read() then. On any error `reply` is not called.
  using ReadReply = std::function<void(std::span<const iovec>)>;
  Result<size_t> read_in_place(InodeNo ino, uint64_t off, size_t len, const ReadReply& reply);
  // Writes `len` bytes; returns bytes written. Updates size, mtime and ctime.
  // With `drop_setid` (an unprivileged writer) it clears S_ISUID, and S_ISGID
  // when group-execute is set, as Linux filesystems do.
  Result<size_t> write(InodeNo ino, uint64_t off, const char* buf, size_t len,
                       bool drop_setid = false);
  // mode: 0, FALLOC_FL_KEEP_SIZE, FALLOC_FL_PUNCH_HOLE|FALLOC_FL_KEEP_SIZE,
  // FALLOC_FL_ZERO_RANGE (optionally with KEEP_SIZE). Others: EOPNOTSUPP.
  // `clear_mode`: the S_ISUID/S_ISGID bits the call clears from the file's
  // mode when it succeeds; the caller decides them, as the kernel's
  // file_remove_privs does (other bits are ignored).
  Status fallocate(InodeNo ino, int mode, uint64_t off, uint64_t len, uint32_t clear_mode = 0);
  // whence: SEEK_DATA or SEEK_HOLE. ENXIO past the end or when no data follows.
  Result<uint64_t> lseek(InodeNo ino, uint64_t off, int whence);
  Result<size_t> copy_file_range(InodeNo in, uint64_t off_in, InodeNo out, uint64_t off_out,
                                 size_t len);
  // Makes the file's data and the metadata that reaches it durable.
  Status fsync(InodeNo ino, bool datasync);

  // Calls `emit` for each entry after `cookie` (0 = from the start; "." and
  // ".." are the caller's business) until it returns false.
  Status readdir(InodeNo dir, uint64_t cookie, const std::function<bool(const DirEntry&)>& emit);

  // flags: 0, XATTR_CREATE or XATTR_REPLACE. Names need a known namespace
  // (user., trusted., security., system.) and something after it; values
  // may be up to 64 KiB (XATTR_SIZE_MAX; larger is E2BIG).
  // system.posix_acl_access and system.posix_acl_default must hold valid
  // ACLs (EINVAL; EOPNOTSUPP with MountOptions::posix_acl off): an access
  // ACL sets the mode's permission bits and clears the `clear_mode` bits of
  // S_ISGID (the caller's to decide, as for fallocate), and one the mode says
  // entirely is not stored; a default ACL is for directories only (EACCES).
  Status setxattr(InodeNo ino, std::string_view name, std::string_view value, int flags,
                  uint32_t clear_mode = 0);
  // Returns the value (ENODATA if absent).
  Result<std::string> getxattr(InodeNo ino, std::string_view name);
  // Returns the names, each followed by a NUL, as listxattr(2) does.
  Result<std::string> listxattr(InodeNo ino);
  Status removexattr(InodeNo ino, std::string_view name);

  // Online verification (engine/scrub.h): starts a scrub in the background
  // (EBUSY if one runs), asks it to stop, and reports on it.
  Status scrub_start(const ScrubOptions& options);
  void scrub_cancel();
  ScrubStatus scrub_status() const;

  FsStats stats() const;
  // Counters, latency histograms and gauges for `pagefs stats` (engine/stats.cc).
  StatsReport stats_report() const;
  uint32_t page_size() const;
  bool read_only() const;

  class Impl;  // engine-internal: fs_impl.h
  // The engine's own tests reach the internals through this (fault injection
  // into the space map, the tree's items); nothing else may.
  Impl& internals_for_testing() { return *impl_; }

 private:
  FileSystem();
  std::unique_ptr<Impl> impl_;
};

}  // namespace pagefs
