#include "engine/sync_batch.h"

#include <algorithm>

namespace pagefs {

bool SyncBatch::Synced::has(uint64_t ino) const {
  return std::find(inos, inos + count, ino) != inos + count;
}

uint32_t SyncBatch::join(std::chrono::nanoseconds patience) {
  std::unique_lock lock(mu_);
  const uint64_t generation = generation_;
  joined_++;
  if (leading_) {
    if (joined_ >= expected_locked()) cv_.notify_all();
    cv_.wait(lock, [&] { return generation_ != generation; });
    return last_size_;
  }
  leading_ = true;
  if (joined_ < expected_locked()) {
    cv_.wait_for(lock, patience, [&] { return joined_ >= expected_locked(); });
  }
  last_size_ = joined_;
  joined_ = 0;
  leading_ = false;
  generation_++;
  cv_.notify_all();
  return last_size_;
}

SyncBatch::InProgress::InProgress(SyncBatch& batch) : batch_(batch) {
  std::lock_guard lock(batch_.mu_);
  batch_.in_progress_++;
}

SyncBatch::InProgress::~InProgress() {
  std::lock_guard lock(batch_.mu_);
  batch_.in_progress_--;
}

void SyncBatch::synced(uint64_t txn, uint64_t ino) {
  std::lock_guard lock(mu_);
  if (txn > synced_[0].txn) {
    synced_[1] = synced_[0];
    synced_[0].txn = txn;
    synced_[0].count = 0;
    synced_[0].peak = 0;
  }
  for (Synced& s : synced_) {
    if (s.txn != txn) continue;
    if (s.count < kMaxExpected && !s.has(ino)) s.inos[s.count++] = ino;
    s.peak = std::max(s.peak, in_progress_);
  }
}

uint32_t SyncBatch::expected() const {
  std::lock_guard lock(mu_);
  return expected_locked();
}

uint32_t SyncBatch::expected_locked() const {
  uint32_t n = synced_[0].count;
  for (uint32_t i = 0; i < synced_[1].count; i++) n += !synced_[0].has(synced_[1].inos[i]);
  n = std::min(n, std::max(synced_[0].peak, synced_[1].peak));
  return std::clamp<uint32_t>(n, 1, kMaxExpected);
}

}  // namespace pagefs
