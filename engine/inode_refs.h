// InodeRefs: how many references the kernel holds on each inode.
//
// The FUSE protocol counts references: every reply that hands the kernel an
// inode (lookup, create, mknod, mkdir, symlink, link, each readdirplus entry)
// adds one, and FORGET gives back a number of them. When an inode's count
// drops to zero the kernel has no reference left and the engine may free it
// if it is unlinked. The filesystem adds references while it holds its lock
// (the inode cannot go away in between) and frees an inode only if its count
// is still zero under its lock held exclusively, so a FORGET racing with a
// new LOOKUP of the same inode never frees what the kernel holds.
//
// Invariants: every stored count is > 0; a forget larger than the count is a
// bug in our bookkeeping or the kernel's and aborts the daemon rather than
// freeing an inode that is still in use. The root inode is never counted: the
// kernel holds it for the life of the mount without a lookup.
//
// Thread-safety: all methods may be called concurrently.
#pragma once

#include <cstdint>
#include <mutex>
#include <unordered_map>
#include <vector>

namespace pagefs {

class InodeRefs {
 public:
  InodeRefs() = default;
  InodeRefs(const InodeRefs&) = delete;
  InodeRefs& operator=(const InodeRefs&) = delete;

  // Adds one reference to `ino`.
  void add(uint64_t ino);

  // Takes `n` references away. Returns true if that was the last one: the
  // inode may now be freed. Aborts if the count would go negative.
  [[nodiscard]] bool forget(uint64_t ino, uint64_t n);

  // Empties the table and returns the inodes that still had references (used
  // at unmount, when the kernel sends no more forgets).
  std::vector<uint64_t> drain();

  // Current count of `ino` (0 if none); for tests and assertions.
  uint64_t count(uint64_t ino) const;

 private:
  // Lock order: after the filesystem lock; nothing is taken while it is held.
  mutable std::mutex mu_;
  std::unordered_map<uint64_t, uint64_t> counts_;  // guarded by mu_
};

}  // namespace pagefs
