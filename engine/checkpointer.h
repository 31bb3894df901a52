// Checkpointer: moves the journal's tail forward, incrementally and on its
// own thread, so that no operation waits for a whole-pool write-back.
//
// One checkpoint:
//   1. Write home, in sorted, merged batches, the frames pinned to durable
//      transactions (BufferPool::write_home); a frame changed again since
//      keeps its pin until its next commit.
//   2. Note the last durable transaction, then the oldest one still pinned
//      (in this order: a transaction is pinned before it is noted), then
//      flush the device: every page of the transactions before the oldest
//      pinned, up to the last noted, is now durable at home. A transaction
//      that became durable meanwhile stays ahead of the tail.
//   3. Write the superblock with the new tail (the image the last durable
//      transaction carried, so it describes a committed state) to page 0,
//      flush, then to page 1, flush: one copy is always whole.
//   4. Move the journal's tail (Journal::set_tail) and publish the last
//      retired transaction: pages it or earlier ones freed may be reused.
// It runs when the committer finds the journal more than half full, when an
// operation waits for room (wait_for_room), and every few seconds when a
// quarter of the journal is in use. Full checkpoints (mount, unmount, a filesystem short of
// space) run under the filesystem lock and take mutex() to keep this one out.
//
// Thread-safety: every public method may be called from any thread. The
// checkpoint mutex is taken after the filesystem lock; the thread itself
// never takes the filesystem lock.
#pragma once

#include <atomic>
#include <condition_variable>
#include <cstdint>
#include <functional>
#include <mutex>
#include <thread>

#include "engine/buffer_pool.h"
#include "engine/committer.h"
#include "engine/device.h"
#include "engine/journal.h"
#include "engine/result.h"
#include "engine/stats.h"

namespace pagefs {

class Checkpointer {
 public:
  using FailureHandler = Committer::FailureHandler;

  // `checkpoint_ns` (may be null) records the time of each background checkpoint.
  Checkpointer(BufferPool& pool, Journal& journal, Committer& committer, Device& device,
               uint32_t page_size, FailureHandler on_failure, Histogram* checkpoint_ns);
  ~Checkpointer();
  Checkpointer(const Checkpointer&) = delete;
  Checkpointer& operator=(const Checkpointer&) = delete;

  // Asks the thread for a checkpoint soon.
  void kick();
  // Waits until the journal has `bytes` that no closed transaction was
  // promised; EIO if the filesystem failed or no checkpoint can make room.
  Status wait_for_room(uint64_t bytes);
  // Transactions up to this one are behind the tail: their frees may be reused.
  uint64_t retired_txn() const { return retired_.load(); }
  // A full checkpoint moved the tail to the head, retiring everything up to `txn`.
  void note_full_checkpoint(uint64_t txn);
  // Serializes checkpoints; full checkpoints take it around their work.
  std::mutex& mutex() { return run_mu_; }

  void stop();

 private:
  void loop();
  // One checkpoint (steps 1-4); true if the tail moved.
  Result<bool> run();
  Status write_superblocks(std::byte* image, uint64_t generation, uint64_t tail, uint64_t sequence);

  BufferPool& pool_;
  Journal& journal_;
  Committer& committer_;
  Device& device_;
  const uint32_t page_size_;
  FailureHandler on_failure_;
  std::unique_ptr<std::byte, void (*)(void*)> buffer_;  // one page, aligned
  std::atomic<uint64_t> retired_{0};
  Histogram* const checkpoint_ns_;

  std::mutex run_mu_;  // lock order: after the filesystem lock, before mu_
  // Guarded by run_mu_: the generation of the image the last tail move wrote
  // (its transaction's), and how many tail moves wrote it.
  uint64_t image_generation_ = 0;
  uint64_t image_moves_ = 0;
  std::mutex mu_;  // guards the fields below
  std::condition_variable cv_;
  bool kicked_ = false;
  bool stop_ = false;
  uint64_t runs_ = 0;  // checkpoints finished, for waiters
  bool failed_ = false;
  std::thread thread_;
};

}  // namespace pagefs
