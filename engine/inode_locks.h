// InodeLocks: a reader/writer lock per file's data, as the VFS's i_rwsem.
//
// A write copies file bytes into cache pages after the filesystem lock is
// released (file_write.cc); these locks keep everything else that touches
// the same file's data out meanwhile: reads take their file's lock shared;
// writes, truncates, fallocate, attribute flags and the free of an unlinked
// file take it exclusively. The locks are a fixed
// array of stripes, indexed by inode number: two files that share a stripe
// only take turns, they are never confused.
//
// Lock order: an inode lock before the filesystem lock; when a call needs two
// (copy_file_range takes them one after the other, never both).
// Thread-safety: every method may be called from any thread.
#pragma once

#include <array>
#include <cstddef>
#include <shared_mutex>

#include "engine/types.h"

namespace pagefs {

class InodeLocks {
 public:
  static constexpr size_t kStripes = 1024;

  std::shared_mutex& of(InodeNo ino) { return stripes_[ino.value % kStripes].mu; }

 private:
  struct alignas(64) Stripe {  // one per cache line: no false sharing
    std::shared_mutex mu;
  };
  std::array<Stripe, kStripes> stripes_;
};

}  // namespace pagefs
