// Committer: writes closed transactions to the journal on its own thread, so
// that no filesystem lock is held across compression, journal writes and
// device flushes (jbd2's commit thread).
//
// The protocol, for one transaction (journal.h has the record format):
//   1. Closing, under the filesystem lock held exclusively (FileSystem::Impl::
//      close_txn_locked): the running transaction ends (BufferPool::
//      begin_commit), the bytes of every page it journals are copied into a
//      free slot, and the slot is submitted. The next transaction starts at
//      once; the lock is released.
//   2. Writing, on the committer thread, slot by slot in closing order: each
//      metadata copy gets the record's LSN and its checksum, every copy is
//      compressed into the record, the fresh pages go home from their frames
//      (busy until the end), then the record, the commit, the flushes
//      (Journal::commit).
//   3. Ending: the pool releases the frames and pins their pages to the
//      transaction (BufferPool::end_commit), the journal notes it for the
//      checkpointer, and waiters on the transaction wake (wait_durable).
// A failure in 2 is sticky: `on_failure` turns the filesystem read-only, and
// every waiter on that or a later transaction gets EIO.
//
// Memory: two slots, each with room for the copies of the most images a
// transaction may hold, allocated once. With both slots taken, closing waits
// for the oldest to be written (the committer never needs the filesystem
// lock, so waiting for it with the lock held is safe).
//
// Thread-safety: every public method may be called from any thread.
#pragma once

#include <atomic>
#include <chrono>
#include <condition_variable>
#include <cstdint>
#include <functional>
#include <memory>
#include <mutex>
#include <thread>
#include <vector>

#include "engine/buffer_pool.h"
#include "engine/journal.h"
#include "engine/result.h"
#include "engine/stats.h"

namespace pagefs {

class Committer {
 public:
  // One closed transaction on its way to the journal.
  struct Slot {
    uint64_t txn = 0;
    std::vector<TxnPage> pages;         // from BufferPool::begin_commit
    bool fresh_written = false;         // fresh pages went home earlier, unflushed
    std::vector<uint32_t> image_pages;  // index into `pages` of each copy
    std::byte* images = nullptr;        // the copies, page_size bytes each
    uint32_t image_count = 0;
    uint64_t reserved_bytes = 0;  // journal room promised to it
  };

  using FailureHandler = std::function<void(const char* what, int error)>;

  // `max_images`: the page images one transaction should journal at most
  // (Journal::max_images; the journal itself takes twice as many).
  // `commit_ns` (may be null) records the time each commit takes to write.
  // `nice`: the commit thread's nice value (MountOptions::commit_nice).
  Committer(BufferPool& pool, Journal& journal, uint32_t page_size, uint64_t max_images,
            FailureHandler on_failure, Histogram* commit_ns, int nice = 0);
  ~Committer();
  Committer(const Committer&) = delete;
  Committer& operator=(const Committer&) = delete;

  // ---- closing (the caller holds the filesystem lock exclusively) ----
  // Waits for a free slot and returns it, or nullptr after a failure.
  Slot* acquire_slot();
  // Copies the journaled pages of a closed transaction into `slot`. E2BIG,
  // with nothing copied, if it has more than slot_images() of them.
  Status fill(Slot& slot, uint64_t txn, std::vector<TxnPage> pages, bool fresh_written);
  // Page images a slot holds: the journal's soft limit per transaction plus
  // room for operations that change more pages than they declared.
  uint64_t slot_images() const { return slot_images_; }
  // Gives back a filled slot that will not be submitted: its frames are
  // released as after a failed commit.
  void abandon(Slot& slot);
  // Hands the filled slot to the committer thread.
  void submit(Slot& slot);

  // ---- waiting (any thread, no lock needed) ----
  // True if a slot is free now.
  bool slot_free() const;
  // Waits until a slot is free (or the committer failed).
  void wait_slot_free();
  // True if no submitted transaction is waiting to be written or being written.
  bool idle() const;
  // Waits until every transaction submitted so far is durable (or the
  // committer failed). Unlike waiting for idle(), this ends for every waiter
  // when that commit ends, even if one of them submits the next at once.
  void wait_submitted();
  // Waits until transaction `txn` and all before it are durable; EIO if a
  // commit failed.
  Status wait_durable(uint64_t txn);
  uint64_t durable_txn() const;
  // The last transaction closed (0: none since mount).
  uint64_t closed_txn() const;
  // A moving average of the time recent commits took to write (0 before the
  // first): how long waiting for more fsyncs to share one may sensibly last.
  std::chrono::nanoseconds average_commit() const {
    return std::chrono::nanoseconds(average_ns_.load(std::memory_order_relaxed));
  }

  // Called on the committer thread after each durable commit.
  void set_after_commit(std::function<void()> hook) { after_commit_ = std::move(hook); }

  // Writes what was submitted, then stops the thread.
  void stop();

 private:
  void loop();
  void write(Slot& slot);

  BufferPool& pool_;
  Journal& journal_;
  const uint32_t page_size_;
  const uint64_t slot_images_;
  FailureHandler on_failure_;
  std::function<void()> after_commit_;  // set before the first commit
  Histogram* const commit_ns_;
  std::atomic<uint64_t> average_ns_{0};  // written by the committer thread only
  std::unique_ptr<std::byte, void (*)(void*)> image_memory_;
  Slot slots_[2];

  // Lock order: after the filesystem lock, before the pool's and journal's.
  mutable std::mutex mu_;
  std::condition_variable cv_;
  bool free_[2] = {true, true};  // guarded by mu_
  std::vector<Slot*> queue_;     // guarded by mu_; submitted, in order (at most 2)
  uint64_t closed_ = 0;          // guarded by mu_
  uint64_t durable_ = 0;         // guarded by mu_
  bool failed_ = false;          // guarded by mu_
  bool stop_ = false;            // guarded by mu_
  std::thread thread_;
};

}  // namespace pagefs
