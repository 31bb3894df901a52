// BufferPool and transactions: the pages of the running transaction, the
// hand-over of a closed transaction to the committer, and which committed
// transactions' journal records are still needed because some of their pages
// are not home yet (see "Journal pins" in buffer_pool.h).
#include <algorithm>
#include <cassert>
#include <cstring>

#include "engine/buffer_pool.h"
#include "engine/log.h"

namespace pagefs {

uint64_t BufferPool::txn_images() const {
  std::lock_guard lock(mu_);
  return txn_images_;
}

uint64_t BufferPool::txn_frames() const {
  std::lock_guard lock(mu_);
  return txn_frames_.size();
}

std::vector<TxnPage> BufferPool::begin_commit(uint64_t* txn_id, bool* fresh_written) {
  std::unique_lock lock(mu_);
  assert(undo_.empty());  // a commit point: no operation is half done
  // A fresh page may be under background write-back: let it finish, so the
  // commit's flush covers it.
  for (bool waited = true; waited;) {
    waited = false;
    for (uint32_t f : txn_frames_) {
      if (frames_[f].busy) {
        io_done_.wait(lock);
        waited = true;
        break;
      }
    }
  }
  std::vector<TxnPage> pages;
  pages.reserve(txn_frames_.size());
  for (uint32_t f : txn_frames_) {
    Frame& fr = frames_[f];
    if (!fr.in_use || !fr.dirty || fr.txn != running_txn_) continue;  // cleaned or reused
    // Pins are allowed: a read holds its data pages pinned outside the
    // filesystem lock, under its file's lock, and only reads them. Writers
    // have finished their copies (FileSystem::Impl::wait_for_copies).
    assert(!fr.busy);
    if (fresh(fr)) fr.busy = true;  // written home by the commit; nobody may change it
    fr.usage = std::min<uint8_t>(fr.usage, 1);
    pages.push_back(TxnPage{f, fr.page, fr.meta, fresh(fr), frame_data(f)});
    fr.txn = UINT64_MAX;  // listed; set to the id below
  }
  *txn_id = running_txn_;
  if (!freed_pins_.empty()) closed_freed_pins_[running_txn_].swap(freed_pins_);
  *fresh_written = fresh_written_;
  fresh_written_ = false;
  for (const TxnPage& p : pages) frames_[p.frame].txn = running_txn_;
  running_txn_++;
  txn_frames_.clear();
  txn_images_ = 0;
  return pages;
}

void BufferPool::stamp_lsn(const TxnPage& page, uint64_t lsn) {
  assert(page.meta);
  reinterpret_cast<PageHeader*>(page.data)->lsn = lsn;
  stamp_meta_page(page.data, page_size_);
}

void BufferPool::ordered_writes(const std::vector<TxnPage>& pages, std::vector<iovec>& iov,
                                std::vector<IoRequest>& batch) const {
  std::vector<uint32_t> frames;
  for (const TxnPage& p : pages) {
    if (p.fresh) frames.push_back(p.frame);
  }
  build_batch(frames, iov, batch);
}

// Fresh pages went home with the commit. Every other page's bytes are in the
// record at `lsn` and pinned to it until they are home, also when a later
// transaction changed the frame since (see "Journal pins").
void BufferPool::end_commit(uint64_t txn_id, const std::vector<TxnPage>& pages, bool ok,
                            uint64_t lsn) {
  std::lock_guard lock(mu_);
  for (const TxnPage& p : pages) {
    Frame& f = frames_[p.frame];
    if (p.fresh) {
      f.busy = false;
      if (ok) pages_written_.fetch_add(1, std::memory_order_relaxed);
      if (ok && f.dirty && f.txn == txn_id) {
        f.dirty = false;
        dirty_count_--;
      }
      f.fresh_txn = 0;
    } else if (ok && f.in_use && f.page == p.page && p.page.value >= 2) {
      unpin_journal(f);
      f.home_txn = txn_id;
      journal_pins_[txn_id]++;
      // The LSN of a frame not changed since: the next change stamps its own.
      if (p.meta && f.txn == txn_id) reinterpret_cast<PageHeader*>(frame_data(p.frame))->lsn = lsn;
    }
    if (f.txn == txn_id && ok) f.txn = 0;
  }
  // The pages this transaction freed are free for good (or, after a failed
  // commit, nothing more is checkpointed): their records are needed no more.
  if (auto freed = closed_freed_pins_.find(txn_id); freed != closed_freed_pins_.end()) {
    for (auto [pinned, count] : freed->second) {
      auto it = journal_pins_.find(pinned);
      assert(it != journal_pins_.end() && it->second >= count);
      if ((it->second -= count) == 0) journal_pins_.erase(it);
    }
    closed_freed_pins_.erase(freed);
  }
  if (ok) durable_txn_ = txn_id;
  io_done_.notify_all();
}

uint64_t BufferPool::oldest_pinned_txn() const {
  std::lock_guard lock(mu_);
  return journal_pins_.empty() ? UINT64_MAX : journal_pins_.begin()->first;
}

Status BufferPool::write_home(uint64_t txn) {
  std::unique_lock lock(mu_);
  for (;;) {
    auto it = journal_pins_.begin();
    if (it == journal_pins_.end() || it->first > txn) return ok_status();
    uint64_t before = pages_written_.load(std::memory_order_relaxed);
    PAGEFS_TRY(write_back_batch(lock, 4096, Take::kPinned, txn));
    // Frames changed again since, or under other I/O, wait for their turn.
    if (pages_written_.load(std::memory_order_relaxed) == before) return ok_status();
  }
}

uint64_t BufferPool::running_txn() const {
  std::lock_guard lock(mu_);
  return running_txn_;
}

}  // namespace pagefs
