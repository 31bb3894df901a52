// BufferPool savepoints: the page half of an all-or-nothing operation (see
// "Savepoints" in buffer_pool.h). The filesystem opens one per operation
// segment; the space map and the in-memory superblock keep their own undo.
#include <cassert>
#include <cstring>

#include "engine/buffer_pool.h"
#include "engine/log.h"

namespace pagefs {

void BufferPool::begin_savepoint() {
  std::lock_guard lock(mu_);
  assert(!savepoint_open_ && undo_.empty() && deferred_discards_.empty());
  savepoint_open_ = true;
  savepoint_overflow_ = false;
  undo_images_used_ = 0;
}

bool BufferPool::savepoint_open() const {
  std::lock_guard lock(mu_);
  return savepoint_open_;
}

// Called with mu_ held, before the frame changes. A dirty frame's bytes exist
// only here, so they are copied; a clean one can be read again from the
// device (or never existed), so dropping it undoes the change.
void BufferPool::record_undo(uint32_t frame) {
  Frame& f = frames_[frame];
  if (!savepoint_open_ || f.savepoint || savepoint_overflow_) return;
  if (undo_.size() == undo_.capacity()) {
    savepoint_overflow_ = true;
    return;
  }
  UndoEntry entry{frame, kNoImage, f};
  if (f.dirty) {
    if (undo_images_used_ == undo_capacity_) {
      savepoint_overflow_ = true;
      return;
    }
    entry.image = undo_images_used_++;
    std::memcpy(undo_image(entry.image), frame_data(frame), page_size_);
  }
  undo_.push_back(entry);
  f.savepoint = true;
}

void BufferPool::release_savepoint() {
  std::unique_lock lock(mu_);
  assert(savepoint_open_);
  for (const UndoEntry& e : undo_) frames_[e.frame].savepoint = false;
  undo_.clear();
  savepoint_open_ = false;
  // The discards waited for this: nothing can undo the frees now.
  std::vector<uint64_t> discards;
  discards.swap(deferred_discards_);
  for (uint64_t page : discards) discard_locked(lock, PageNo{page});
  discards.clear();
  discards.swap(deferred_discards_);  // keep the reserved capacity
}

// Restores one frame. Frames under a savepoint are never evicted, written
// back or handed to another page, and the operation has unpinned them all.
void BufferPool::undo(const UndoEntry& e) {
  Frame& f = frames_[e.frame];
  assert(f.in_use && f.savepoint && f.pins == 0 && !f.busy);
  f.savepoint = false;
  if (e.image == kNoImage) {
    release_frame(e.frame);
    return;
  }
  std::memcpy(frame_data(e.frame), undo_image(e.image), page_size_);
  if (f.dirty != e.saved.dirty) {
    if (e.saved.dirty) {
      dirty_count_++;
    } else {
      dirty_count_--;
    }
  }
  f.dirty = e.saved.dirty;
  f.meta = e.saved.meta;
  f.fresh_txn = e.saved.fresh_txn;
  // The frame was in a transaction being committed when the operation took
  // it; if that commit has succeeded since, the bytes put back are committed
  // and pinned to it (end_commit saw to the pin), and may go home. After a
  // failed commit they may never go home: the frame keeps that transaction.
  f.txn = e.saved.txn != 0 && e.saved.txn <= durable_txn_ ? 0 : e.saved.txn;
  f.usage = e.saved.usage;
  f.crc_known = e.saved.crc_known;
  f.data_crc = e.saved.data_crc;
}

bool BufferPool::rollback_savepoint() {
  std::lock_guard lock(mu_);
  assert(savepoint_open_);
  if (savepoint_overflow_) {
    // Some changes have no undo entry: undoing the others would mix states.
    PAGEFS_LOG_ERROR("an operation changed more pages than the undo area holds (%u)",
                     undo_capacity_);
    for (const UndoEntry& e : undo_) frames_[e.frame].savepoint = false;
    undo_.clear();
    deferred_discards_.clear();
    savepoint_open_ = false;
    return false;
  }
  // Newest first, though no frame has two entries.
  for (auto it = undo_.rbegin(); it != undo_.rend(); ++it) undo(*it);
  undo_.clear();
  deferred_discards_.clear();
  savepoint_open_ = false;
  io_done_.notify_all();
  return true;
}

}  // namespace pagefs
