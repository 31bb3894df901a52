// Journal: the circular region of page images that makes transactions durable.
//
// The protocol (xv6's log, jbd2's checksummed commit), for one transaction:
//
//   1. The filesystem gathers the pages the transaction changed. Pages that
//      held nothing live before it (freshly allocated data pages) are written
//      home directly ("ordered" writes); every other page is an image.
//   2. Each image is zstd-compressed into the staging buffer, fixed at mount.
//   3. The TxnRecord (header, image table, images) is written at the head.
//   4. THE COMMIT: the commit record, one page whose checksum covers the whole
//      TxnRecord, is written after it. When there are ordered writes, steps 1
//      and 3 are flushed first and the commit is written after that flush, so
//      a durable commit never points at data that is not on the device.
//      Without ordered writes, record and commit go in one batch: a torn
//      record cannot match the commit's checksum, so it is never replayed.
//   5. Flush. The transaction is durable; fsync may return.
//   6. Later, a checkpoint writes the pages home and moves the tail past the
//      transaction (the superblock records the tail).
//
// Recovery (replay) reads transactions from the tail while each one is whole:
// valid headers, the expected sequence number and LSN, a matching checksum.
// It writes their images home in order and stops at the first that is not
// whole, so half a transaction is never applied. Replaying twice is harmless.
//
// Thread-safety: records are built and written by one thread at a time (the
// committer: add_image, commit). The positions (head, tail, sequence numbers),
// the reservations and the list of durable transactions may be read and
// changed from any thread.
#pragma once

#include <atomic>
#include <cstdint>
#include <deque>
#include <functional>
#include <memory>
#include <mutex>
#include <optional>
#include <vector>

#include "engine/device.h"
#include "engine/format.h"
#include "engine/result.h"
#include "engine/types.h"

namespace pagefs {

struct RecoveryResult {
  uint64_t head_lsn = 0;       // LSN after the last whole transaction
  uint64_t next_sequence = 0;  // sequence number the next transaction gets
  uint64_t transactions = 0;   // whole transactions found
  uint64_t pages = 0;          // page images in them
  // Page 0 as the last whole transaction that journaled it left it: a valid
  // superblock of the same geometry (scan checks that before replaying it).
  std::optional<Superblock> superblock;
};

class Journal {
 public:
  // Called for every image of every whole transaction, oldest first.
  using ImageVisitor = std::function<Status(PageNo page, const std::byte* image)>;

  // Opens the journal with its head at `head_lsn` (after recovery) and the
  // tail from the superblock.
  static Result<std::unique_ptr<Journal>> open(Device& device, const Superblock& sb,
                                               uint64_t head_lsn, uint64_t next_sequence);
  ~Journal();
  Journal(const Journal&) = delete;
  Journal& operator=(const Journal&) = delete;

  // Reads whole transactions from the superblock's tail, calling `visit`.
  // Stops at the first transaction that is not whole; fails only if the
  // device does.
  static Result<RecoveryResult> scan(Device& device, const Superblock& sb,
                                     const ImageVisitor& visit);
  // scan() that writes every image home, then flushes.
  static Result<RecoveryResult> replay(Device& device, const Superblock& sb);

  // Called for every image of every whole transaction found by scan_region:
  // `lsn` is the LSN of the transaction's record.
  using RegionVisitor = std::function<Status(uint64_t lsn, PageNo page, const std::byte* image)>;
  // Finds every whole transaction anywhere in the journal region, whatever
  // its sequence number: transactions already written home stay there until
  // the journal wraps over them, so their images are older copies of pages
  // (for fsck's salvage and the scrub's repairs of damaged metadata). A
  // record counts if its header lies where its LSN says and it is whole in
  // every respect recovery checks. Returns how many were found; fails only
  // if the device does, or with ECANCELED if `after_read` (called after each
  // read of a stretch of the region, with its pages: a scrub paces itself
  // there) returns false.
  using ReadHook = std::function<bool(uint64_t pages)>;
  static Result<uint64_t> scan_region(Device& device, const Superblock& sb,
                                      const RegionVisitor& visit,
                                      const ReadHook& after_read = nullptr);

  // ---- positions (any thread) ----
  // LSN the next transaction's record will have; pages in it carry this LSN.
  uint64_t head() const { return head_.load(); }
  uint64_t tail() const { return tail_.load(); }
  uint64_t next_sequence() const { return sequence_.load(); }
  uint64_t capacity_bytes() const { return capacity_; }
  uint64_t free_bytes() const { return capacity_ - (head() - tail()); }
  // Room not yet promised to closed transactions waiting to be written.
  uint64_t available_bytes() const;
  // The most bytes a record of `images` page images takes, commit page included.
  uint64_t record_bound(uint64_t images) const;
  // Promises (and later releases) room to a closed transaction.
  void reserve(uint64_t bytes);
  void unreserve(uint64_t bytes);

  // ---- durable transactions (any thread) ----
  // The committer notes each transaction once its pages are pinned to it
  // (BufferPool::end_commit), with the superblock image it carried.
  void note_durable(uint64_t txn, uint64_t lsn, uint64_t sequence, const std::byte* superblock);
  // The last transaction noted (0: none since mount).
  uint64_t last_noted_txn() const;
  // Where the tail may move once every page pinned to a transaction before
  // `oldest_pinned` is home: the record of the first noted transaction from
  // `oldest_pinned` on, or after `last_txn`, or the end of the last noted
  // one. `last_txn` is last_noted_txn() as read before `oldest_pinned`: a
  // transaction noted later may have pinned pages that `oldest_pinned` does
  // not know of (the committer pins, then notes). `retired` is the last
  // transaction before that position; `superblock` receives the image of the
  // last noted transaction (page_size bytes), to be written with the new
  // tail. False if nothing up to `last_txn` was noted since the tail last
  // moved.
  struct TailMove {
    uint64_t lsn = 0;
    uint64_t sequence = 0;
    uint64_t retired = 0;
  };
  bool tail_move(uint64_t oldest_pinned, uint64_t last_txn, TailMove* move,
                 std::byte* superblock) const;

  // ---- building a transaction (the committer) ----
  // Bytes the staging buffer holds: the most one transaction may need.
  uint64_t staging_bytes() const { return staging_bytes_; }
  // Images that always fit in one transaction, whatever they compress to.
  uint64_t max_images() const { return staging_bytes_ / (2 * (page_size_ + sizeof(JournalImage))); }

  // Compresses one page image into the staging buffer.
  Status add_image(PageNo page, const std::byte* data);
  size_t staged_images() const { return table_.size(); }
  // Writes `ordered` (home writes of fresh pages), the record and the commit,
  // and flushes (steps 3-5). On success the head moves past the transaction.
  // An empty transaction with no ordered writes does nothing.
  // `barrier`: fresh pages went home earlier by write-back and are not
  // flushed yet, so flush before the commit record even without `ordered`.
  Status commit(std::span<const IoRequest> ordered, bool barrier = false);
  // A checkpoint made every page up to `lsn` durable at home; noted
  // transactions before it are forgotten.
  void set_tail(uint64_t lsn, uint64_t sequence);
  uint64_t tail_sequence() const { return tail_sequence_.load(); }

 private:
  Journal(Device& device, const Superblock& sb, uint64_t head, uint64_t sequence);
  uint64_t physical(uint64_t lsn) const;
  void split(uint64_t lsn, std::byte* data, uint64_t bytes, std::vector<iovec>& iov,
             std::vector<IoRequest>& out) const;
  void reset_staging();

  Device& device_;
  const uint32_t page_size_;
  const uint64_t region_offset_;  // byte offset of the region on the device
  const uint64_t capacity_;       // bytes in the region
  std::atomic<uint64_t> head_;
  std::atomic<uint64_t> tail_;
  std::atomic<uint64_t> sequence_;       // of the next transaction
  std::atomic<uint64_t> tail_sequence_;  // of the transaction at the tail
  std::atomic<uint64_t> reserved_{0};    // promised to closed transactions
  uint64_t staging_bytes_ = 0;

  struct Noted {
    uint64_t txn;
    uint64_t lsn;
    uint64_t sequence;
  };
  // Lock order: a leaf.
  mutable std::mutex noted_mu_;
  std::deque<Noted> noted_;           // guarded by noted_mu_; bounded by the region's records
  uint64_t noted_end_ = 0;            // guarded by noted_mu_: LSN after the last noted record
  uint64_t noted_next_sequence_ = 0;  // guarded by noted_mu_
  uint64_t noted_last_txn_ = 0;       // guarded by noted_mu_
  std::unique_ptr<std::byte[]> noted_superblock_;  // guarded by noted_mu_; page_size bytes

  std::byte* staging_ = nullptr;  // images, compressed; staging_bytes_
  std::byte* record_ = nullptr;   // assembled record + commit page; staging_bytes_ + 2 pages
  size_t staged_bytes_ = 0;
  std::vector<JournalImage> table_;  // reserved at open for max_images()
  void* zstd_ = nullptr;             // ZSTD_CCtx, created once
};

}  // namespace pagefs
