// BufferPool: the private page cache of pagefs, and the only road between
// pages and the device.
//
// A fixed array of page-sized frames is allocated once at mount (its size is the
// user's cache budget) together with fixed frame descriptors and a page table
// sized for them; nothing grows afterwards. Callers fetch pages and get a
// PageRef, an RAII pin: a pinned frame is never evicted or reused.
//
// Checksums: a metadata page's CRC32C lives in its PageHeader and is computed on
// the frame at write-out; a data page's CRC32C lives in the extent record that
// points at it, so the caller passes the expected value to fetch_data(). Every
// read from the device is verified; a mismatch is EIO to the caller, a counter,
// and one log line naming the page. Wrong bytes are never handed out.
//
// Transactions: a page changed since the last commit belongs to the running
// transaction and may not be written home until that transaction's commit is
// durable (the write-ahead rule), unless it is *fresh*: a data page allocated
// in the running transaction, which held nothing live, may go home at any
// time and must be home before the commit (ordered writes). begin_commit()
// hands the filesystem the running transaction's pages and starts a new one;
// end_commit() releases them for write-back.
//
// Eviction is GCLOCK: a frame enters with usage 0 and each later hit raises it
// (to at most kMaxUsage); the clock hand lowers it and evicts at 0. Pages read
// once (a long sequential read) leave before pages used again and again (tree
// nodes, bitmaps), so a `cat` of a huge file does not flush the metadata.
// Dirty victims are written back in sorted, merged batches.
//
// Journal pins: a page whose changes a durable transaction journaled, and
// that is not home yet, still needs that transaction's journal record: the
// journal's tail may not pass it. Each such frame names the transaction
// (home_txn), and the pool counts the frames per transaction; a checkpoint
// writes the pinned frames home, flushes, and moves the tail to the oldest
// transaction still pinned. A frame changed again by a later transaction keeps
// its old pin until that transaction commits: its bytes are not home, and the
// later record that supersedes them is not durable yet. A page freed while
// pinned keeps its pin until the transaction that freed it is durable: before
// that, a crash makes the page live again, with the bytes only the pinned
// record holds (freed_pins_). The superblock pages
// (0 and 1) are not pinned and never written by background write-back: their
// home copies carry the journal tail, which only a checkpoint may move.
//
// Write-back: a background thread writes dirty pages that may go home (see
// below) in sorted, merged batches when more than a high-water share of the
// pool is dirty, down to a low-water share, so that eviction finds clean
// frames; optional limits cap its IOPS and bandwidth on a shared device.
//
// Savepoints (all-or-nothing operations): while a savepoint is open, the pool
// remembers how to undo every page change made through it. The first time a
// frame is dirtied or created under the savepoint it gets an undo entry:
// either a copy of its bytes and state (it was dirty, so its bytes exist
// nowhere else) or just a note to drop it (it was clean, so the device holds
// its bytes, or it did not exist). Frames with an undo entry are neither
// evicted nor written back until the savepoint ends, and pages discarded
// under a savepoint are only discarded when it is released, so an undo finds
// every frame it needs intact. The copies live in an area fixed at open; a
// savepoint that outgrows it can still be released but not undone.
// The rule for callers: mark_dirty() comes BEFORE the first change to a page.
//
// Locking: mu_ guards the page table and every frame descriptor. It is never
// held across device I/O; a frame under I/O is marked busy and waiters sleep on
// io_done_. Page *contents* are protected by the caller (the filesystem lock:
// pages are modified under it exclusively, or under it shared by an
// overwrite in place, which changes only frames it holds pinned, metadata
// through PageRef::change; pinned frames are never written out, so
// write-out never sees a half-modified page).
#pragma once

#include <atomic>
#include <chrono>
#include <condition_variable>
#include <cstddef>
#include <cstdint>
#include <map>
#include <memory>
#include <mutex>
#include <optional>
#include <span>
#include <thread>
#include <unordered_map>
#include <vector>

#include "engine/device.h"
#include "engine/format.h"
#include "engine/result.h"
#include "engine/types.h"

namespace pagefs {

class BufferPool;

// A pinned page. Movable, not copyable; unpins on destruction.
class PageRef {
 public:
  PageRef() = default;
  PageRef(PageRef&& other) noexcept;
  PageRef& operator=(PageRef&& other) noexcept;
  PageRef(const PageRef&) = delete;
  PageRef& operator=(const PageRef&) = delete;
  ~PageRef();

  bool valid() const { return pool_ != nullptr; }
  std::byte* data() const { return data_; }
  PageNo page_no() const { return page_; }
  // Records that the caller is about to change the page; it will be written
  // back. Must come before the first change (a savepoint copies the page here).
  void mark_dirty();
  // mark_dirty() and a copy of `bytes` to `offset`, as one step under the
  // pool's lock, so no copy the pool hands out (cached_copy) sees them half
  // written: for a change made without the filesystem lock held
  // exclusively (file_overwrite.cc).
  void change(size_t offset, std::span<const std::byte> bytes);
  // A data page's writer tells the pool the CRC32C of the bytes it left, so
  // later cache hits are checked against the extent's CRC by a compare.
  void set_data_crc(uint32_t crc);
  void reset();

  template <class T>
  T* as(size_t offset = 0) const {
    return reinterpret_cast<T*>(data_ + offset);
  }

 private:
  friend class BufferPool;
  PageRef(BufferPool* pool, uint32_t frame, PageNo page, std::byte* data)
      : pool_(pool), frame_(frame), page_(page), data_(data) {}

  BufferPool* pool_ = nullptr;
  uint32_t frame_ = 0;
  PageNo page_{};
  std::byte* data_ = nullptr;
};

// A page of the transaction being committed.
struct TxnPage {
  uint32_t frame;
  PageNo page;
  bool meta;
  bool fresh;  // written home before the commit instead of journaled
  std::byte* data;
};

struct WritebackOptions {
  uint32_t dirty_high_pct = 25;  // start when this share of the frames is dirty
  uint32_t dirty_low_pct = 10;   // stop at this share
  uint32_t batch_pages = 1024;   // pages per device submission
  uint64_t max_write_iops = 0;   // write requests per second; 0: no limit
  uint64_t max_write_mbps = 0;   // MB per second; 0: no limit
};

struct PoolStats {
  uint64_t frames = 0;
  uint64_t hits = 0;
  uint64_t misses = 0;
  uint64_t readahead_pages = 0;  // pages read ahead (prefetch_data)
  uint64_t readahead_hits = 0;   // hits that were a read-ahead page's first use
  uint64_t pages_read = 0;
  uint64_t pages_written = 0;
  uint64_t checksum_errors = 0;
  uint64_t metadata_errors = 0;  // metadata that passed its checksum but cannot be right
  uint64_t dirty = 0;
  uint64_t writeback_batches = 0;   // device writes of dirty pages (write-back, eviction, flush)
  uint64_t writeback_requests = 0;  // their requests: runs of adjacent pages merged into one
};

// A data page to read ahead: its device page and the CRC it must match.
struct DataPageRequest {
  PageNo page;
  uint32_t crc;
};

class BufferPool {
 public:
  static constexpr uint8_t kMaxUsage = 3;
  static constexpr uint32_t kWritebackBatch = 256;  // pages per eviction write-back

  // Allocates max(cache_bytes / page_size, kMinFrames) frames. Without
  // `transactions` (mkfs, tools) dirty pages may go home at any time.
  static Result<std::unique_ptr<BufferPool>> open(Device& device, uint32_t page_size,
                                                  uint64_t cache_bytes, bool transactions = true);
  ~BufferPool();
  BufferPool(const BufferPool&) = delete;
  BufferPool& operator=(const BufferPool&) = delete;

  // Checks the structure of a metadata page just read (after its CRC);
  // false, with a reason, refuses it as EIO.
  using Validator = bool (*)(const std::byte* page, uint32_t page_size, const char** why);

  // A metadata page: read if needed and verified (magic, type, page number,
  // CRC, and `validate` if given). A cached page must be metadata of `type`.
  Result<PageRef> fetch_meta(PageNo page, PageType type, Validator validate = nullptr);
  // A data page: read if needed and verified against `crc`; a cached one is
  // held to the same CRC (EIO, counted as a checksum error, on a mismatch).
  Result<PageRef> fetch_data(PageNo page, uint32_t crc);
  // A page a fetch needed and did not read (NoDeviceReads), with what that
  // fetch would have checked it against, and the read-ahead put off before it.
  struct Miss {
    PageNo page{0};
    bool meta = false;
    PageType type = PageType::kTreeNode;
    uint32_t crc = 0;
    Validator validate = nullptr;
    std::vector<DataPageRequest> prefetch;
  };
  // While one is alive on a thread, fetches on that thread do not read the
  // device: a page the pool does not hold, or holds under I/O, fails with
  // EWOULDBLOCK and is remembered (the first such page). prefetch_data reads
  // nothing either: its pages go with the miss that follows, if one does.
  // For a caller that holds a lock others wait for: it lets the lock go, has
  // the pages read (load()), and starts again. Scopes nest; the inner one sees
  // the misses.
  class NoDeviceReads {
   public:
    NoDeviceReads();
    ~NoDeviceReads();
    NoDeviceReads(const NoDeviceReads&) = delete;
    NoDeviceReads& operator=(const NoDeviceReads&) = delete;
    const std::optional<Miss>& missed() const { return missed_; }

   private:
    friend class BufferPool;
    NoDeviceReads* outer_;
    std::optional<Miss> missed_;
    std::vector<DataPageRequest> prefetch_;  // put off, for the next miss
  };
  // Reads a page a fetch missed into the pool (and the read-ahead put off
  // before it), checked as that fetch would have checked it, or waits for the
  // read in progress. Silent: a page that fails is left out, and the fetch
  // that needs it again reads and reports it.
  void load(const Miss& miss);
  // Reads the listed data pages that are not cached, in one merged batch.
  // Best effort: pages that fail are simply left out (fetch_data reports them).
  void prefetch_data(std::span<const DataPageRequest> pages);
  // A page whose old contents do not matter (newly allocated): a zeroed frame,
  // no device read. `meta` pages get their CRC stamped at write-out. A
  // `fresh` data page held nothing live before the running transaction.
  // Without `zero`, the frame's bytes are whatever it held: for a caller
  // that overwrites the whole page before anyone else may see it.
  Result<PageRef> create(PageNo page, bool meta, bool fresh = false, bool zero = true);
  // Forgets a page that was freed: its frame is dropped without write-back.
  // The page must not be pinned. Under a savepoint, done when it is released.
  void discard(PageNo page);

  // What the pool holds of `page`, for the scrub's checks of the device's
  // copy: nothing; a clean copy, which is then exactly what the device should
  // hold; a version that is changed or fresh, which will replace the device's
  // copy; or, unless `wait`, a frame under I/O (read in or written home now:
  // its bytes, and the device's, are in flux). With `wait` it waits for that
  // I/O to end instead. Unless `out` is null the bytes of a clean page, or of
  // a changed metadata page, are copied there (page_size bytes); a changed
  // data page's are not, since writers fill data frames without the
  // filesystem lock. For a clean data page `crc` gets its CRC32C if known,
  // else 0. Never pins the frame or counts as a use, so the scrub does not
  // disturb eviction. The caller holds the filesystem lock (shared is
  // enough): frames are dirtied, and metadata changed, only under it held
  // exclusively, or under the pool's mutex, which this holds.
  enum class Cached { kAbsent, kClean, kChanging, kBusy };
  Cached cached_copy(PageNo page, std::byte* out, uint32_t* crc, bool wait = true);

  // Drops every clean, unpinned frame, so the next fetches read the device
  // (tests use it to meet a cold cache in a known state).
  void drop_clean();

  // ---- savepoints (see the class comment) ----
  // Opens a savepoint; none may be open.
  void begin_savepoint();
  // Keeps every change made under the open savepoint and closes it.
  void release_savepoint();
  // Undoes every page change made under the open savepoint and closes it.
  // False, with nothing undone, if the savepoint outgrew the undo area.
  [[nodiscard]] bool rollback_savepoint();
  bool savepoint_open() const;
  // Pages the undo area can copy: a savepoint that dirties no more pages
  // than this that were already dirty can always be undone.
  uint32_t undo_capacity() const { return undo_capacity_; }

  // Writes every dirty page home in sorted, merged batches, then flushes the
  // device. Pages of the running transaction must have been committed first.
  // Without `superblocks`, pages 0 and 1 are left to the caller (their home
  // copies carry the journal tail, which must not go back).
  Status flush_all(bool superblocks = true);
  // Writes one pinned page home now (stamped) and flushes; it is clean after.
  Status write_through(PageRef& ref);

  // ---- transactions ----
  // Pages changed in the running transaction that need a journal image.
  uint64_t txn_images() const;
  // Frames listed in the running transaction (bounded by begin_op's commits).
  uint64_t txn_frames() const;
  // Ends the running transaction: returns its pages (fresh ones become busy
  // until end_commit) and starts the next.
  // `fresh_written` says whether fresh pages of it already went home by
  // write-back, unflushed: the commit must then flush before its record.
  std::vector<TxnPage> begin_commit(uint64_t* txn_id, bool* fresh_written);
  // Sets a metadata frame's LSN and checksum before its image is journaled.
  void stamp_lsn(const TxnPage& page, uint64_t lsn);
  // Builds sorted, merged write requests for the fresh pages in `pages`.
  void ordered_writes(const std::vector<TxnPage>& pages, std::vector<iovec>& iov,
                      std::vector<IoRequest>& batch) const;
  // The commit of `txn_id`, written at journal position `lsn`, is durable
  // (ok) or failed. Its pages are pinned to it until they are home.
  void end_commit(uint64_t txn_id, const std::vector<TxnPage>& pages, bool ok, uint64_t lsn);
  // The oldest transaction some frame is pinned to; UINT64_MAX if none.
  uint64_t oldest_pinned_txn() const;
  // Writes home the frames pinned to transactions up to `txn` that may go
  // home, in sorted, merged batches (no flush).
  Status write_home(uint64_t txn);
  uint64_t running_txn() const;

  // Starts and stops the background write-back thread.
  void start_writeback(const WritebackOptions& options);
  void stop_writeback();
  // The first error a background or eviction write-back met (0: none).
  int write_error() const;

  // Metadata damage found at `page`: a value that passed its checksum but
  // cannot be right (a bug, a misdirected write, a crafted image). Counts it
  // in metadata_errors and logs one line naming the page and `why`
  // (printf-style). Returns EIO, for the caller to hand up.
  Err metadata_error(PageNo page, const char* why, ...) __attribute__((format(printf, 3, 4)));
  // The same for a value found in one inode's items (an xattr whose contents
  // the format does not describe, such as an ACL), where no page is to blame.
  Err inode_metadata_error(uint64_t ino, const char* why, ...)
      __attribute__((format(printf, 3, 4)));

  PoolStats stats() const;
  // Frames pinned now (a walk over every frame: for statistics, not hot paths).
  uint64_t pinned_frames() const;
  uint32_t page_size() const { return page_size_; }
  uint32_t frame_count() const { return frame_count_; }
  Device& device() { return device_; }
  void check_invariants() const;
  // Fault injection for tests: the n-th time from now that a page needs a
  // frame (create, fetch), it fails with ENOMEM as if every frame were
  // pinned, once (0: off).
  void fail_frame_grab(uint64_t n);

 private:
  static constexpr uint32_t kMinFrames = 64;
  static constexpr uint32_t kNoFrame = UINT32_MAX;
  static constexpr uint32_t kNoImage = UINT32_MAX;
  static constexpr size_t kMaxDeferredDiscards = 4096;

  struct Frame {
    PageNo page{};
    uint32_t pins = 0;
    uint8_t usage = 0;
    bool in_use = false;  // holds a page (in the table)
    bool busy = false;    // under device I/O
    bool dirty = false;
    bool meta = false;
    uint64_t fresh_txn = 0;  // transaction that allocated this data page: ordered write
    uint64_t txn = 0;        // transaction that changed it, until its commit ends; 0: none
    bool savepoint = false;  // has an undo entry in the open savepoint: stays put
    bool crc_known = false;  // data frames: data_crc is the CRC32C of the bytes
    uint32_t data_crc = 0;
    uint64_t home_txn = 0;    // durable transaction whose record this frame still needs; 0: none
    bool read_ahead = false;  // read by prefetch_data and not looked up since
  };

  // How to undo the changes to one frame: restore `image` (an index into the
  // undo area) and the saved state, or drop the frame (kNoImage).
  struct UndoEntry {
    uint32_t frame;
    uint32_t image;
    Frame saved;
  };

  friend class PageRef;
  BufferPool(Device& device, uint32_t page_size, uint32_t frame_count, std::byte* memory,
             bool transactions, uint32_t undo_capacity);

  std::byte* frame_data(uint32_t f) const { return memory_ + size_t(f) * page_size_; }
  void unpin(uint32_t frame);
  void set_dirty(uint32_t frame);
  void set_dirty_locked(uint32_t frame);  // mu_ held
  void change(uint32_t frame, size_t offset, std::span<const std::byte> bytes);
  void set_data_crc(uint32_t frame, uint32_t crc);
  bool cached_page_matches(uint32_t frame, bool meta, PageType type, uint32_t crc,
                           bool report = true);
  Result<PageRef> fetch(PageNo page, bool meta, PageType type, uint32_t crc,
                        Validator validate = nullptr, bool report = true);
  // Under NoDeviceReads: records the miss and returns true (the fetch fails).
  static bool refuse_read(PageNo page, bool meta, PageType type, uint32_t crc, Validator validate);
  // Finds a free frame, evicting (and writing back) as needed. Called with mu_
  // held; may drop and retake it.
  Result<uint32_t> grab_frame(std::unique_lock<std::mutex>& lock);
  uint32_t find_victim();
  // Which dirty frames a write-back may take: any that may go home (a full
  // checkpoint), all but the superblocks (background), or only those pinned
  // to transactions up to a bound (a checkpoint's first pass).
  enum class Take { kAll, kNoSuperblock, kPinned };
  Status write_back_batch(std::unique_lock<std::mutex>& lock, uint32_t max_pages,
                          Take take = Take::kNoSuperblock, uint64_t pinned_up_to = 0);
  bool takes(const Frame& f, Take take, uint64_t pinned_up_to) const;
  // The frame's bytes are home: its journal pin, if any, goes.
  void unpin_journal(Frame& f);
  Status write_frames(std::vector<uint32_t>& frames);
  bool writable(const Frame& f) const;
  bool fresh(const Frame& f) const { return f.fresh_txn != 0 && f.fresh_txn == running_txn_; }
  void build_batch(std::vector<uint32_t>& frames, std::vector<iovec>& iov,
                   std::vector<IoRequest>& batch) const;
  bool verify(uint32_t frame, PageNo page, bool meta, PageType type, uint32_t crc, bool report);
  void stamp(uint32_t frame);
  void insert(uint32_t frame, PageNo page, bool meta);
  void release_frame(uint32_t frame);
  void discard_locked(std::unique_lock<std::mutex>& lock, PageNo page);
  // Gives `frame` an undo entry in the open savepoint, if it has none yet.
  void record_undo(uint32_t frame);
  void undo(const UndoEntry& entry);
  std::byte* undo_image(uint32_t i) const {
    return memory_ + (size_t(frame_count_) + i) * page_size_;
  }
  void writeback_loop();
  void throttle(uint64_t requests, uint64_t bytes, std::chrono::steady_clock::time_point start);

  Device& device_;
  const uint32_t page_size_;
  const uint32_t frame_count_;
  const bool transactions_;
  const uint32_t undo_capacity_;  // pages of the undo area, after the frames
  std::byte* const memory_;       // (frame_count_ + undo_capacity_) pages, page aligned

  mutable std::mutex mu_;  // lock order: the filesystem lock, then mu_
  std::condition_variable io_done_;
  std::vector<Frame> frames_;                     // guarded by mu_
  std::unordered_map<uint64_t, uint32_t> table_;  // page -> frame; guarded by mu_
  std::vector<uint32_t> free_frames_;             // guarded by mu_
  uint32_t clock_hand_ = 0;                       // guarded by mu_
  uint64_t dirty_count_ = 0;                      // guarded by mu_
  uint64_t fail_grab_in_ = 0;                     // guarded by mu_; fail_frame_grab
  uint64_t running_txn_ = 1;                      // guarded by mu_
  uint64_t durable_txn_ = 0;  // last transaction whose commit succeeded; guarded by mu_
  std::map<uint64_t, uint64_t> journal_pins_;  // txn -> frames pinned to it; guarded by mu_
  // Journal pins of pages freed (and their frames discarded) by the running
  // transaction, and by the closed ones keyed by their id: held until the
  // transaction that freed the page is durable. Until then a crash brings the
  // page back in use with the bytes only the pinned record holds. Guarded by
  // mu_; one entry per discarded frame, so at most a few pools' worth.
  std::map<uint64_t, uint64_t> freed_pins_;                             // pinned txn -> count
  std::map<uint64_t, std::map<uint64_t, uint64_t>> closed_freed_pins_;  // freeing txn ->
  std::vector<uint32_t> txn_frames_;                                    // guarded by mu_
  uint64_t txn_images_ = 0;                                             // guarded by mu_
  // A fresh page of the running transaction went home outside the commit: the
  // commit must flush before its commit record. Guarded by mu_.
  bool fresh_written_ = false;
  bool savepoint_open_ = false;              // guarded by mu_
  bool savepoint_overflow_ = false;          // guarded by mu_
  std::vector<UndoEntry> undo_;              // guarded by mu_; capacity fixed at open
  uint32_t undo_images_used_ = 0;            // guarded by mu_
  std::vector<uint64_t> deferred_discards_;  // guarded by mu_; capacity fixed at open

  std::condition_variable writeback_cv_;
  std::thread writeback_;
  WritebackOptions writeback_options_;
  bool writeback_stop_ = false;  // guarded by mu_
  int write_error_ = 0;          // guarded by mu_

  std::atomic<uint64_t> hits_{0}, misses_{0}, pages_read_{0}, pages_written_{0},
      checksum_errors_{0}, metadata_errors_{0}, writeback_batches_{0}, writeback_requests_{0},
      readahead_pages_{0}, readahead_hits_{0};
};

// Stamps the header of a metadata page buffer: sets the CRC over page_size bytes.
void stamp_meta_page(std::byte* page, uint32_t page_size);
// Checks a metadata page buffer; returns false (and fills `why`) if invalid.
bool verify_meta_page(const std::byte* page, uint32_t page_size, PageNo expected, PageType type,
                      const char** why);

}  // namespace pagefs
