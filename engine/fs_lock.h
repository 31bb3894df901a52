// FsLock: the filesystem lock (FileSystem::Impl::mu_), a reader/writer lock
// that prefers writers and times itself.
//
// Writers first: a thread asking for the lock exclusively is served before
// readers that ask after it, so a stream of overlapping readers (getattr,
// lookups, read-ahead collecting extents) never keeps a writer, or the close
// of a transaction an fsync waits for, out indefinitely. The price, as with
// any writer-preferring lock: a thread that holds it shared must never ask
// for it shared again (a waiting writer would block the second request and
// the first would never be released). Nothing in the engine does.
//
// Timing: every exclusive acquisition records how long it waited and how
// long it was held; every shared one how long it waited (0 when it got the
// lock at once, without reading the clock). The exclusive hold time over an
// interval is the engine's serial section: `pagefs stats` reports it as a
// share of wall time, the bound it sets on what more cores can add.
//
// Thread-safety: a lock; meets the standard Lockable and SharedLockable
// requirements (std::unique_lock, std::shared_lock).
#pragma once

#include <pthread.h>

#include <chrono>

#include "engine/stats.h"

namespace pagefs {

class FsLock {
 public:
  explicit FsLock(FsLockStats& stats);
  ~FsLock();
  FsLock(const FsLock&) = delete;
  FsLock& operator=(const FsLock&) = delete;

  void lock();
  bool try_lock();
  void unlock();
  void lock_shared();
  bool try_lock_shared();
  void unlock_shared();

 private:
  using Clock = std::chrono::steady_clock;
  static uint64_t ns_between(Clock::time_point a, Clock::time_point b) {
    return static_cast<uint64_t>(
        std::chrono::duration_cast<std::chrono::nanoseconds>(b - a).count());
  }

  pthread_rwlock_t rw_;
  FsLockStats& stats_;
  Clock::time_point held_since_;  // written and read only by the exclusive holder
};

}  // namespace pagefs
