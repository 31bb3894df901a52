// SyncBatch: lets fsyncs from several threads gather before one of them
// closes the running transaction, so that they share one commit.
//
// Commits are written one after another, and an fsync that finds one being
// written waits for it to end before closing the next (FileSystem::fsync).
// When it ends, every fsync it carried returns, and their threads come back
// with their next write and fsync one by one: the first to come back found
// the committer idle and closed at once, taking only its own change, and the
// others waited for that commit. With four writers each commit carried about
// two fsyncs, and the committer sat idle between them.
//
// The gathering, which is what jbd2 does for synchronous handles
// (j_min_batch_time / j_max_batch_time, from the average commit time): the
// first fsync to arrive with the committer idle leads. It waits until as many
// fsyncs have joined as there were files synced by the last two commits, or
// for `patience` at most, whichever comes first; the others wait for it. Then
// all go on to close, and the first to take the filesystem lock closes for
// all. Two commits, because writers that alternate between commits, as above,
// are each seen in one of them. Never more than the most fsyncs that were in
// progress at once meanwhile, though: more files may take turns than the
// daemon has threads to sync them with, and waiting for fsyncs that cannot
// arrive would cost every commit a patience. A single writer expects one and
// never waits;
// a writer that stops syncing costs the others one patience or two, after
// which it is no longer expected. Nothing here is needed for correctness: it
// only decides when to close.
//
// Thread-safety: join() may be called from any thread, without other locks.
#pragma once

#include <chrono>
#include <condition_variable>
#include <cstdint>
#include <mutex>

namespace pagefs {

class SyncBatch {
 public:
  // Waits, as leader or follower, until the batch this fsync joined is
  // gathered. Returns how many fsyncs joined it (for tests and stats).
  uint32_t join(std::chrono::nanoseconds patience);

  // Marks an fsync in progress, from its start to its end.
  class InProgress {
   public:
    explicit InProgress(SyncBatch& batch);
    ~InProgress();
    InProgress(const InProgress&) = delete;
    InProgress& operator=(const InProgress&) = delete;

   private:
    SyncBatch& batch_;
  };

  // Records that an fsync of file `ino` that joined a batch waits for
  // transaction `txn`.
  void synced(uint64_t txn, uint64_t ino);

  // How many fsyncs the next batch waits for: the files synced by the last
  // two transactions, but no more than the most fsyncs in progress at once
  // while they were waited for; at least 1 and at most kMaxExpected.
  uint32_t expected() const;

  static constexpr uint32_t kMaxExpected = 64;

 private:
  struct Synced {
    uint64_t txn = 0;
    uint32_t count = 0;
    uint32_t peak = 0;  // the most fsyncs in progress when one of these was recorded
    uint64_t inos[kMaxExpected];
    bool has(uint64_t ino) const;
  };
  uint32_t expected_locked() const;

  mutable std::mutex mu_;
  std::condition_variable cv_;
  Synced synced_[2];          // [0]: the newest transaction waited for, [1]: the one before
  uint32_t in_progress_ = 0;  // fsyncs between their start and their end
  uint32_t joined_ = 0;       // in the batch now gathering
  uint32_t last_size_ = 0;    // the size of the batch that ended last
  bool leading_ = false;      // a leader is gathering
  uint64_t generation_ = 0;   // batches ended
};

}  // namespace pagefs
