// Readahead: detects sequential readers and reads ahead of them in the
// background, so the next read finds its pages in the pool.
//
// A small fixed table remembers, per inode (hashed), where the last read
// ended. A read that starts there is sequential: the window doubles from
// kMinWindow up to a maximum, and the range past the read, up to the window,
// is queued in chunks of kChunk bytes for kWorkers threads, each fetching its
// chunk in one merged batch. Several chunks are in flight at once, and a
// reader waits only for the chunk it needs, not for the whole window. The
// queue is bounded; chunks that do not fit wait for a later read to queue
// them (readahead is only a hint). A read elsewhere resets the inode's window.
//
// Thread-safety: note_read() may be called from any thread.
#pragma once

#include <array>
#include <condition_variable>
#include <cstdint>
#include <functional>
#include <mutex>
#include <thread>

#include "engine/types.h"

namespace pagefs {

class Readahead {
 public:
  // Fetches [off, off+len) of `ino` into the pool.
  using Fetch = std::function<void(InodeNo ino, uint64_t off, uint64_t len)>;

  static constexpr uint64_t kMinWindow = 256 << 10;
  static constexpr uint64_t kChunk = 1 << 20;
  // Worker threads; each may have one device read in flight.
  static constexpr unsigned kWorkers = 4;
  // Chunks the queue holds.
  static constexpr size_t kQueue = 32;

  Readahead(Fetch fetch, uint64_t max_window_bytes);
  ~Readahead();
  Readahead(const Readahead&) = delete;
  Readahead& operator=(const Readahead&) = delete;

  // Records a read of [off, off+len) and queues readahead if it is sequential.
  void note_read(InodeNo ino, uint64_t off, uint64_t len);
  // Chunks waiting for a worker.
  size_t queued() const;

 private:
  struct Slot {
    uint64_t ino = 0;
    uint64_t next_off = 0;   // where a sequential read would start
    uint64_t window = 0;     // current readahead window in bytes
    uint64_t ahead_end = 0;  // end of the range already queued
  };
  struct Request {
    uint64_t ino, off, len;
  };
  static constexpr size_t kSlots = 64;

  void loop();

  Fetch fetch_;
  const uint64_t max_window_;
  mutable std::mutex mu_;
  std::condition_variable cv_;
  std::array<Slot, kSlots> slots_{};     // guarded by mu_
  std::array<Request, kQueue> queue_{};  // ring buffer; guarded by mu_
  size_t head_ = 0, size_ = 0;           // guarded by mu_
  bool stop_ = false;                    // guarded by mu_
  std::array<std::thread, kWorkers> workers_;
};

}  // namespace pagefs
