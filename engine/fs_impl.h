// FileSystem::Impl: the engine's filesystem state, shared by the files that
// implement its operations (filesystem.cc, dir_ops.cc, file_ops.cc,
// xattr_ops.cc). Not part of the public API.
//
// Locking: mu_ is the filesystem lock (FsLock: it prefers writers and times
// itself). Operations that only read take it shared, never twice; every
// operation that changes a page takes it exclusively, but one: a write into
// pages a file has allocated, which takes it shared
// (file_overwrite.cc). Lock order: an inode lock, mu_, an item latch, then
// the buffer pool's internal mutex.
//
// Transactions: every change made under mu_ joins the running transaction,
// and every changing operation is all or nothing; the rule is written out at
// the top of transaction.cc.
#pragma once

#include <condition_variable>
#include <mutex>
#include <optional>
#include <shared_mutex>
#include <string>
#include <thread>
#include <unordered_set>

#include "engine/btree.h"
#include "engine/buffer_pool.h"
#include "engine/checkpointer.h"
#include "engine/committer.h"
#include "engine/filesystem.h"
#include "engine/format.h"
#include "engine/fs_lock.h"
#include "engine/inode_locks.h"
#include "engine/inode_refs.h"
#include "engine/items.h"
#include "engine/journal.h"
#include "engine/posix_acl.h"
#include "engine/readahead.h"
#include "engine/scrub.h"
#include "engine/space_map.h"
#include "engine/sync_batch.h"
#include "engine/xattr_item.h"

namespace pagefs {

// An extent record in memory: `pages` file pages from `file_page` on, stored
// at device pages phys..phys+pages-1.
struct Extent {
  uint64_t file_page = 0;
  uint64_t phys = 0;
  uint32_t pages = 0;
  uint32_t unwritten = 0;  // bit i: page i allocated but reads as zeros
  uint32_t crc[kMaxExtentPages] = {};

  uint64_t end() const { return file_page + pages; }
  bool is_unwritten(uint32_t i) const { return (unwritten >> i) & 1; }
  std::string encode() const;
  // Decodes the value of (ino, kExtent, file_page), checking every field
  // against the format and `limits`; false with the reason in `why`.
  static bool decode(uint64_t file_page, std::span<const std::byte> v, const ItemLimits& limits,
                     Extent* out, const char** why);
};

timespec now_timespec();

class FileSystem::Impl {
 public:
  Impl(std::unique_ptr<Device> device, const MountOptions& options);
  ~Impl();

  Status open(std::string* message);
  Status recover(std::string* message);

  // ---- transactions (transaction.cc); mu_ held exclusively ----
  // Runs one changing operation: `fn` returns a Result or Status; on an
  // error, the changes of its last segment are undone (all of them if it
  // has no commit points) before the error is returned.
  template <class Fn>
  auto run_op(Fn&& fn) -> decltype(fn());
  // A commit point: the changes so far form a consistent state and are kept;
  // a new segment starts. `data_pages`: new data pages the next segment may
  // allocate; `pages`: a bound on the pages it changes.
  Status begin_op(uint64_t pages, uint64_t data_pages = 0);
  // The journal-room part of begin_op (see transaction.cc).
  Status admit(uint64_t pages);
  // Ends the running transaction and hands it to the committer; returns the
  // transaction holding every change so far (see transaction.cc).
  Result<uint64_t> close_txn_locked();
  bool has_changes() const;
  // Undoes the open segment's changes and opens a new one (a write whose
  // chunk failed keeps the chunks before it).
  void undo_segment();
  Status commit_locked();
  Status checkpoint_locked();
  Status write_superblocks();
  void fail(const char* what, int error);
  void open_segment();
  void keep_segment();
  bool rollback_segment();
  // Ends the open segment (keeping it) for a commit, and opens the next one
  // when it goes out of scope.
  class SegmentBoundary;
  // The commit-interval thread: closes the running transaction every
  // commit_interval_s, so changes reach the journal without an fsync.
  void start_ticker();
  // The committer and checkpointer threads (read-write mounts).
  void start_journal_threads();
  void stop_ticker();
  // Closes the running transaction if a slot is free, without waiting.
  void close_if_idle();

  // ---- reads under the shared lock ----
  // Runs `fn`, which only reads and returns a Result or Status, under the
  // filesystem lock held shared, without reading the device under it: a page
  // the pool does not hold fails the try (BufferPool::NoDeviceReads); the
  // page is read with no lock held, and `fn` runs again. So a reader that
  // misses never keeps a writer waiting on the device, nor, behind that
  // writer, everyone else (the lock prefers writers). A try that succeeds
  // stands, and the last of kReadTries reads what it misses under the lock,
  // so a page evicted between tries cannot starve the reader.
  static constexpr int kReadTries = 8;
  template <class Fn>
  auto read_op(Fn&& fn) -> decltype(fn());

  // ---- inodes (filesystem.cc) ----
  Result<InodeRecord> get_inode(InodeNo ino);
  Status put_inode(InodeNo ino, const InodeRecord& rec);
  Status insert_inode(InodeNo ino, const InodeRecord& rec);
  Result<InodeNo> new_inode(uint32_t mode, uint64_t rdev, const Caller& caller,
                            const InodeRecord& parent, InodeRecord* out);
  Status free_inode(InodeNo ino, const InodeRecord& rec);
  // Erases an item that must be there (EIO if it is not).
  Status erase_item(const Key& key);
  Status add_orphan(InodeNo ino);
  Status remove_orphan(InodeNo ino);
  Status purge_orphans();
  Status purge_orphan(InodeNo ino);
  static Attr to_attr(InodeNo ino, const InodeRecord& rec);
  // The attributes of `ino`, with a kernel reference taken if asked; mu_ held.
  Result<Attr> attr_of(InodeNo ino, Hold hold);
  static void touch(InodeRecord& rec, bool mtime, bool ctime);
  Status check_writable() const;

  // ---- attribute flags (inode_flags.cc): EPERM where +i or +a forbid ----
  static Status may_change_inode(const InodeRecord& rec);  // xattrs, links
  static Status may_add_entry(const InodeRecord& dir);
  static Status may_remove_entry(const InodeRecord& dir, const InodeRecord& target);
  static Status may_set_attr(const InodeRecord& rec, const SetAttr& changes);
  static Status may_fallocate(const InodeRecord& rec, int mode);
  // A write of [off, off+len) from `buf`; mu_ held.
  Status may_write(InodeNo ino, const InodeRecord& rec, uint64_t off, const char* buf, size_t len);

  // ---- directories (dir_ops.cc) ----
  struct FoundEntry {
    uint64_t cookie = 0;
    uint64_t ino = 0;
    uint8_t type = 0;
  };
  Result<bool> dir_find(InodeNo dir, std::string_view name, FoundEntry* out);
  Result<uint64_t> dir_add(InodeNo dir, std::string_view name, uint64_t ino, uint8_t type);
  Status dir_remove(InodeNo dir, uint64_t cookie);
  Result<InodeRecord> get_dir(InodeNo dir);
  // lookup() of "." or ".." (mu_ held shared).
  Result<Attr> lookup_dots(InodeNo ino, std::string_view name, Hold hold);
  Result<Attr> create_node(InodeNo parent, std::string_view name, uint32_t mode, uint64_t rdev,
                           const Caller& caller, std::string_view symlink_target, Hold hold);
  Status drop_link(InodeNo ino, InodeRecord& rec);
  static bool sticky_denies(const InodeRecord& dir, const InodeRecord& target,
                            const Caller& caller);
  Result<bool> is_ancestor(InodeNo ancestor, InodeNo dir);
  Status rename_locked(InodeNo parent, std::string_view name, InodeNo new_parent,
                       std::string_view new_name, uint32_t flags, const Caller& caller);
  Status add_whiteout(InodeNo dir, std::string_view name, const InodeRecord& dir_rec,
                      const Caller& caller);

  // ---- xattrs (xattr_ops.cc) ----
  // An xattr looked up by name: the item as stored, or the cookie a new item
  // of that name would take.
  struct FoundXattr {
    bool found = false;
    uint64_t cookie = 0;       // found: the item's
    uint64_t free_cookie = 0;  // not found: the first unused cookie of the name's hash
    std::string item;          // found: the item's value bytes
  };
  Status find_xattr(InodeNo ino, std::string_view name, FoundXattr* out);
  // Decodes an item the tree handed out (and so checked); the result points
  // into `item`.
  XattrItem decode_xattr(std::string_view item) const;
  // The value of a decoded item of `ino`, read from its pages if it has
  // them, and held to its CRC32C if the item has one (EIO if it fails).
  Result<std::string> xattr_value(InodeNo ino, const XattrItem& x);
  Result<std::vector<XattrPage>> write_xattr_pages(std::string_view value);
  Status free_xattr_pages(std::span<const XattrPage> pages);
  // Stores or replaces an xattr (`old` from find_xattr), freeing the pages of
  // the value it replaces; the inode record is the caller's.
  Status store_xattr(InodeNo ino, std::string_view name, std::string_view value,
                     const FoundXattr& old);
  // Erases a found xattr and frees its pages.
  Status erase_xattr(InodeNo ino, const FoundXattr& old);
  // A bound on the pages a setxattr of a value of `value_bytes` changes.
  uint64_t xattr_op_pages(size_t value_bytes) const;

  // ---- POSIX ACLs (acl_ops.cc; engine/posix_acl.h) ----
  // setxattr of kAclAccessXattr or kAclDefaultXattr, as one operation.
  Status set_acl_locked(InodeNo ino, std::string_view name, std::string_view value, int flags,
                        uint32_t clear_mode);
  // The ACL a found item holds; EIO (metadata damage) if it is not one.
  Result<PosixAcl> load_acl(InodeNo ino, const FoundXattr& item);
  // The same for the value of `ino`'s xattr `name` as read.
  Result<PosixAcl> parse_stored_acl(InodeNo ino, std::string_view name, std::string_view value);
  // chmod of an inode with the access ACL `access`: its entries follow `mode`.
  Status chmod_acl(InodeNo ino, const FoundXattr& access, uint32_t mode);
  // What a new inode takes from its directory: found before the operation
  // changes anything, stored once the inode exists.
  struct Inheritance {
    uint32_t mode = 0;        // the new inode's mode: masked by the default ACL, or by the umask
    std::string access;       // access ACL to store; empty: none
    std::string dir_default;  // default ACL to store (new directories); empty: none
    uint64_t pages = 0;       // begin_op's bounds for storing them
    uint64_t data_pages = 0;
  };
  Status inherit(InodeNo dir, uint32_t mode, const Caller& caller, Inheritance* out);
  Status store_inherited(InodeNo ino, const Inheritance& in);

  // ---- file data (file_ops.cc) ----
  Status find_extent(InodeNo ino, uint64_t file_page, Extent* out, bool* found);
  Status put_extent(InodeNo ino, const Extent& e);
  Status erase_extent(InodeNo ino, uint64_t file_page);
  // At most `limit` extents (0: no limit).
  Status collect_extents(InodeNo ino, uint64_t first_page, uint64_t last_page,
                         std::vector<Extent>* out, size_t limit = 0);
  // ---- writes (file_write.cc) ----
  // A whole page a write copies after the filesystem lock is released.
  struct PendingCopy {
    PageRef frame;       // pinned and marked dirty
    const char* source;  // page_size_ bytes of the caller's buffer
    uint32_t crc;        // their CRC32C, already in the extent
  };
  // The extent a write is filling, and whether it needs storing.
  struct WriteCursor {
    Extent cur;
    bool valid = false;
    bool dirty = false;
  };
  // The whole write under the filesystem lock (inside a larger operation).
  Result<size_t> write_locked(InodeNo ino, InodeRecord& rec, uint64_t off, const char* buf,
                              size_t len);
  Result<size_t> write_one_chunk(InodeNo ino, uint64_t pos, const char* buf, size_t len,
                                 const uint32_t* crcs, bool drop_setid);
  Status write_chunk(InodeNo ino, InodeRecord& rec, uint64_t pos, const char* buf, size_t len,
                     std::vector<PendingCopy>* copies, const uint32_t* crcs);
  Status map_page(InodeNo ino, InodeRecord& rec, uint64_t file_page, Extent& cur, bool& cur_valid,
                  bool& cur_dirty);
  // Copies in flight (file_write.cc): a transaction is closed only when none
  // is, so no commit takes a page half copied.
  void begin_copies();
  void end_copies();
  void wait_for_copies();
  // ---- overwrites in place (file_overwrite.cc) ----
  // A chunk into pages the file already has allocated, written under the
  // filesystem lock held shared; nullopt if the chunk is not such an
  // overwrite (the caller then takes write_one_chunk). Takes the lock itself.
  std::optional<Result<size_t>> overwrite_chunk(InodeNo ino, uint64_t pos, const char* buf,
                                                size_t len, const uint32_t* crcs, bool drop_setid);
  bool overwrite_applies(InodeNo ino, uint64_t pos, size_t len, bool drop_setid, InodeRecord* rec,
                         std::vector<Extent>* extents);
  // One try; nullopt with `short_of` set: no room in the running
  // transaction for that many images.
  std::optional<Result<size_t>> overwrite_once(InodeNo ino, uint64_t pos, const char* buf,
                                               size_t len, const uint32_t* crcs, bool drop_setid,
                                               uint64_t* short_of);
  void make_room_for_overwrite(uint64_t images);
  std::optional<Result<size_t>> overwrite_reading_unlocked(InodeNo ino, uint64_t pos,
                                                           const char* buf, size_t len,
                                                           const uint32_t* crcs, bool drop_setid,
                                                           uint64_t* short_of);
  // What an overwrite found and holds between its steps.
  struct OverwritePlan {
    InodeRecord rec;
    std::vector<Extent> extents;                          // covering the chunk, in order
    std::vector<Btree::Place> places;                     // the extents' records, then the inode's
    uint64_t partial_page[2] = {UINT64_MAX, UINT64_MAX};  // written pages changed in part
    PageRef partial[2];                                   // and their frames, read and pinned
    Extent& extent_of(uint64_t file_page) {
      for (Extent& e : extents) {
        if (file_page < e.end()) return e;
      }
      return extents.back();  // overwrite_applies saw every page covered
    }
  };
  Result<bool> prepare_overwrite(InodeNo ino, uint64_t pos, size_t len, OverwritePlan* plan);
  size_t fill_overwrite_pages(uint64_t pos, const char* buf, size_t len, const uint32_t* crcs,
                              OverwritePlan* plan, Status* st);
  void store_overwrite_records(InodeNo ino, uint64_t end, OverwritePlan* plan);
  bool take_overwrite_credits(uint64_t images);
  void return_overwrite_credits(uint64_t images);
  // ---- reads (file_ops.cc) ----
  Status read_extents(InodeNo ino, uint64_t off, size_t len, std::vector<Extent>* extents);
  Result<size_t> read_copy(const InodeRecord& rec, const std::vector<Extent>& extents, uint64_t off,
                           size_t len, char* buf);
  Result<size_t> read_pinned(const InodeRecord& rec, const std::vector<Extent>& extents,
                             uint64_t off, size_t len, const FileSystem::ReadReply& reply);
  // Calls `piece(ref, in_page, n)` for each page-sized piece of [off, off+len)
  // in order; `ref` is empty for holes and unwritten pages.
  template <class Piece>
  Status for_each_piece(const std::vector<Extent>& extents, uint64_t off, size_t len,
                        Piece&& piece);
  // A read of [off, off+len) of `ino`: stores a due atime first (unless
  // `atime` is false), reads the inode and its extents under the shared
  // lock, then calls `read_pages(rec, extents)` without it, and tells
  // read-ahead.
  template <class ReadPages>
  Result<size_t> read_file(InodeNo ino, uint64_t off, size_t len, ReadPages&& read_pages,
                           bool atime = true);
  // Whether a read now should store a new atime (writable, and as the mount's
  // atime_updates says).
  bool atime_wanted(const InodeRecord& rec) const;
  // Stores a new atime if still wanted. Takes the filesystem lock itself.
  void update_atime(InodeNo ino);
  // Readahead's worker: brings [off, off+len) of ino into the pool.
  void prefetch_range(InodeNo ino, uint64_t off, uint64_t len);
  // The written data pages of [off, off+len), with their CRCs.
  void collect_data_pages(InodeNo ino, uint64_t off, uint64_t len,
                          std::vector<DataPageRequest>* wanted);
  Status write_page(InodeNo ino, InodeRecord& rec, uint64_t file_page, uint32_t in_page,
                    const char* buf, uint32_t len, WriteCursor& c, std::vector<PendingCopy>* copies,
                    uint32_t whole_crc);
  // Frees file pages [first_page, end_page) in chunks; between chunks the
  // inode record is stored and a commit may happen.
  Status remove_pages(InodeNo ino, InodeRecord& rec, uint64_t first_page, uint64_t end_page);
  Status cut_extent(InodeNo ino, InodeRecord& rec, const Extent& e, uint64_t first_page,
                    uint64_t end_page);
  Status zero_bytes(InodeNo ino, uint64_t off, uint32_t len);
  Status truncate_locked(InodeNo ino, InodeRecord& rec, uint64_t size);
  Status allocate_unwritten(InodeNo ino, InodeRecord& rec, uint64_t first_page, uint64_t end_page);
  Status unfill(InodeNo ino, InodeRecord& rec,
                const std::vector<std::pair<uint64_t, uint64_t>>& kept);
  Result<Attr> setattr_locked(InodeNo ino, const SetAttr& changes);
  Status fallocate_locked(InodeNo ino, int mode, uint64_t off, uint64_t len, uint32_t clear_mode);
  // Tree pages the extent records of `data_pages` new data pages can take
  // when their space is contiguous (extent.cc has a worked example).
  uint64_t extent_tree_pages(uint64_t data_pages) const;
  // The most data pages that fit in `free_pages` with the tree pages that
  // map them.
  uint64_t data_pages_fitting(uint64_t free_pages) const;

  // ---- state ----
  EngineStats stats_;               // before device_, which records into it
  std::unique_ptr<Device> device_;  // a MeteredDevice over the mounted device
  MountOptions options_;
  uint32_t page_size_ = 0;
  std::unique_ptr<BufferPool> pool_;
  std::unique_ptr<std::byte[]> zero_page_;  // page_size_ zero bytes, for holes
  std::atomic<size_t> in_place_pins_{0};    // pages pinned by read_in_place calls
  std::unique_ptr<SpaceMap> space_;
  std::unique_ptr<Btree> tree_;
  std::unique_ptr<Journal> journal_;
  std::unique_ptr<Readahead> readahead_;
  std::unique_ptr<Scrubber> scrubber_;  // online verification; stopped before the rest
  InodeLocks inode_locks_;              // each file's data; taken before mu_
  // Each inode's record and extent records while an overwrite changes them
  // in place (file_overwrite.cc); readers of those items (get_inode,
  // collect_extents) hold it shared. Taken after mu_, before the pool's lock.
  InodeLocks item_latches_;
  std::atomic<uint64_t> overwrite_credits_{0};  // transaction images overwrites reserved
  std::mutex copies_mu_;                        // a leaf
  std::condition_variable copies_cv_;
  uint64_t copies_in_flight_ = 0;  // guarded by copies_mu_
  InodeRefs refs_;                 // the kernel's references; added to under mu_
  // Files made by tmpfile() that have not been linked yet, and only those,
  // may get a link with no link left (guarded by mu_). In memory only: a
  // remount frees them, as orphans.
  std::unordered_set<uint64_t> linkable_;
  std::atomic<bool> failed_{false};  // sticky: a journal or device write failed
  std::mutex fail_mu_;               // makes fail() log once
  TreeRoot root_;
  ItemLimits limits_;         // what extents may point at, from the superblock
  Superblock* sb_ = nullptr;  // in-memory copy, guarded by mu_
  std::string sb_storage_;
  bool read_only_ = false;
  bool dirty_ = false;  // anything changed since the last commit; guarded by mu_
  // The open segment of the operation in progress (guarded by mu_): what the
  // in-memory superblock and tree root were when it began.
  bool segment_open_ = false;
  Superblock segment_sb_{};
  TreeRoot segment_root_;

  mutable FsLock mu_{stats_.fs_lock};

  std::unique_ptr<Committer> committer_;        // read-write mounts only
  std::unique_ptr<Checkpointer> checkpointer_;  // read-write mounts only
  // fsyncs gathering to share a commit; a leader waits at most the average
  // commit time, and never longer than kMaxSyncPatience.
  SyncBatch sync_batch_;
  static constexpr std::chrono::nanoseconds kMaxSyncPatience = std::chrono::milliseconds(5);

  std::mutex ticker_mu_;
  std::condition_variable ticker_cv_;
  bool ticker_stop_ = false;  // guarded by ticker_mu_
  std::thread ticker_;
};

template <class Fn>
auto FileSystem::Impl::read_op(Fn&& fn) -> decltype(fn()) {
  for (int tries = 1;; tries++) {
    std::optional<BufferPool::Miss> missed;
    {
      std::shared_lock lock(mu_);
      if (tries == kReadTries) return fn();
      BufferPool::NoDeviceReads no_reads;
      auto result = fn();
      if (result.ok() || !no_reads.missed()) return result;
      missed = no_reads.missed();
    }
    pool_->load(*missed);
  }
}

template <class Fn>
auto FileSystem::Impl::run_op(Fn&& fn) -> decltype(fn()) {
  assert(!segment_open_);
  open_segment();
  auto result = fn();
  if (segment_open_) {  // closed only when an undo failed and stopped changes
    if (result.ok()) {
      keep_segment();
    } else {
      (void)rollback_segment();
    }
  }
  return result;
}

}  // namespace pagefs
