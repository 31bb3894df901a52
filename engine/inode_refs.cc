#include "engine/inode_refs.h"

#include <cstdlib>

#include "engine/log.h"
#include "engine/types.h"

namespace pagefs {

void InodeRefs::add(uint64_t ino) {
  if (ino == kRootInode.value) return;
  std::lock_guard lock(mu_);
  ++counts_[ino];
}

bool InodeRefs::forget(uint64_t ino, uint64_t n) {
  if (ino == kRootInode.value || n == 0) return false;
  std::lock_guard lock(mu_);
  auto it = counts_.find(ino);
  uint64_t have = it == counts_.end() ? 0 : it->second;
  if (n > have) {
    PAGEFS_LOG_ERROR("forget of %llu references to inode %llu, which has %llu",
                     static_cast<unsigned long long>(n), static_cast<unsigned long long>(ino),
                     static_cast<unsigned long long>(have));
    std::abort();
  }
  it->second -= n;
  if (it->second > 0) return false;
  counts_.erase(it);
  return true;
}

std::vector<uint64_t> InodeRefs::drain() {
  std::lock_guard lock(mu_);
  std::vector<uint64_t> inodes;
  inodes.reserve(counts_.size());
  for (const auto& [ino, n] : counts_) inodes.push_back(ino);
  counts_.clear();
  return inodes;
}

uint64_t InodeRefs::count(uint64_t ino) const {
  std::lock_guard lock(mu_);
  auto it = counts_.find(ino);
  return it == counts_.end() ? 0 : it->second;
}

}  // namespace pagefs
