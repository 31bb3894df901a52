// BufferPool and the device: dirty frames written home in sorted, merged
// batches (for a frame that is needed, a checkpoint, a flush of the whole
// pool), the background write-back thread and its throttle, and a single
// page written through.
#include <algorithm>
#include <cassert>
#include <chrono>
#include <cstring>
#include <thread>
#include <vector>

#include "engine/buffer_pool.h"
#include "engine/log.h"
#include "engine/threads.h"

namespace pagefs {

// Writes back up to max_pages dirty, unpinned frames (sorted, merged). Called
// with mu_ held; drops it during the I/O.
Status BufferPool::write_back_batch(std::unique_lock<std::mutex>& lock, uint32_t max_pages,
                                    Take take, uint64_t pinned_up_to) {
  std::vector<uint32_t> batch;
  batch.reserve(max_pages);
  for (uint32_t i = 0; i < frame_count_ && batch.size() < max_pages; i++) {
    uint32_t f = (clock_hand_ + i) % frame_count_;
    Frame& fr = frames_[f];
    if (takes(fr, take, pinned_up_to)) {
      fr.busy = true;
      batch.push_back(f);
    }
  }
  if (batch.empty()) return ok_status();
  lock.unlock();
  Status st = write_frames(batch);
  lock.lock();
  if (!st.ok() && write_error_ == 0) write_error_ = st.error();
  for (uint32_t f : batch) {
    Frame& fr = frames_[f];
    fr.busy = false;
    if (fresh(fr)) fresh_written_ = true;
    if (st.ok() && fr.dirty) {
      fr.dirty = false;
      dirty_count_--;
      if (fr.txn != running_txn_) fr.txn = 0;
      unpin_journal(fr);
    }
  }
  io_done_.notify_all();
  return st;
}

void BufferPool::stamp(uint32_t frame) {
  stamp_meta_page(frame_data(frame), page_size_);
}

// Sorts frames by page number and builds one request per run of adjacent
// pages (at most 256 pages each). Metadata frames are stamped. The frames
// must be busy or otherwise stable.
void BufferPool::build_batch(std::vector<uint32_t>& frames, std::vector<iovec>& iov,
                             std::vector<IoRequest>& batch) const {
  std::sort(frames.begin(), frames.end(),
            [&](uint32_t a, uint32_t b) { return frames_[a].page < frames_[b].page; });
  iov.resize(frames.size());
  batch.clear();
  for (size_t i = 0; i < frames.size(); i++) {
    if (frames_[frames[i]].meta) stamp_meta_page(frame_data(frames[i]), page_size_);
    iov[i] = iovec{frame_data(frames[i]), page_size_};
    PageNo page = frames_[frames[i]].page;
    bool extends = i > 0 && page.value == frames_[frames[i - 1]].page.value + 1 &&
                   batch.back().iov.size() < 256;
    if (extends) {
      batch.back().iov =
          std::span<const iovec>(batch.back().iov.data(), batch.back().iov.size() + 1);
    } else {
      batch.push_back(IoRequest{page.value * page_size_, std::span<const iovec>(&iov[i], 1)});
    }
  }
}

// Writes the given frames home in one device call.
Status BufferPool::write_frames(std::vector<uint32_t>& frames) {
  std::vector<iovec> iov;
  std::vector<IoRequest> batch;
  build_batch(frames, iov, batch);
  Status st = device_.write(batch);
  if (!st.ok()) {
    PAGEFS_LOG_ERROR("write-back of %zu pages failed: %s", frames.size(), strerror(st.error()));
  }
  pages_written_.fetch_add(frames.size(), std::memory_order_relaxed);
  writeback_batches_.fetch_add(1, std::memory_order_relaxed);
  writeback_requests_.fetch_add(batch.size(), std::memory_order_relaxed);
  return st;
}

Status BufferPool::flush_all(bool superblocks) {
  const Take take = superblocks ? Take::kAll : Take::kNoSuperblock;
  std::unique_lock lock(mu_);
  // Dirty frames this flush must write (superblocks aside, when asked).
  auto left = [&] {
    uint64_t n = 0;
    for (const Frame& f : frames_) n += f.in_use && f.dirty && (superblocks || f.page.value >= 2);
    return n;
  };
  // A reader replying from a page lets go of it within a reply's time.
  const auto pins_deadline = std::chrono::steady_clock::now() + std::chrono::seconds(10);
  for (uint64_t dirty = left(); dirty > 0; dirty = left()) {
    PAGEFS_TRY(write_back_batch(lock, 4096, take));
    if (left() < dirty) continue;
    // Pages under background write-back come home shortly, and so do pages
    // a read pins while it replies from them without the filesystem lock
    // (the caller holds no pins): wait for them.
    bool in_flight = false, pinned = false;
    for (const Frame& f : frames_) {
      in_flight |= f.dirty && f.busy;
      pinned |= f.dirty && f.pins > 0;
    }
    if (in_flight || (pinned && std::chrono::steady_clock::now() < pins_deadline)) {
      io_done_.wait_for(lock, std::chrono::milliseconds(10));
      continue;
    }
    // Only pinned or uncommitted pages remain; callers commit first and
    // flush with no pins held.
    PAGEFS_LOG_ERROR("flush: %llu dirty pages cannot be written yet",
                     static_cast<unsigned long long>(dirty));
    return Err{EBUSY};
  }
  lock.unlock();
  return device_.flush();
}

// ---- background write-back ---------------------------------------------------

void BufferPool::start_writeback(const WritebackOptions& options) {
  std::lock_guard lock(mu_);
  assert(!writeback_.joinable());
  writeback_options_ = options;
  writeback_stop_ = false;
  writeback_ = std::thread([this] {
    name_this_thread("pagefs-wback");
    writeback_loop();
  });
}

void BufferPool::stop_writeback() {
  {
    std::lock_guard lock(mu_);
    writeback_stop_ = true;
  }
  writeback_cv_.notify_all();
  if (writeback_.joinable()) writeback_.join();
}

int BufferPool::write_error() const {
  std::lock_guard lock(mu_);
  return write_error_;
}

void BufferPool::writeback_loop() {
  const WritebackOptions& o = writeback_options_;
  const uint64_t high = uint64_t(frame_count_) * o.dirty_high_pct / 100;
  const uint64_t low = uint64_t(frame_count_) * o.dirty_low_pct / 100;
  std::unique_lock lock(mu_);
  while (!writeback_stop_) {
    // After a write error nothing more is written back (the filesystem has
    // failed): the thread only waits to be stopped, without holding mu_.
    writeback_cv_.wait_for(lock, std::chrono::seconds(1), [&] {
      return writeback_stop_ || (dirty_count_ > high && write_error_ == 0);
    });
    while (!writeback_stop_ && dirty_count_ > low && write_error_ == 0) {
      uint64_t before = dirty_count_;
      uint64_t written_before = pages_written_.load(std::memory_order_relaxed);
      auto start = std::chrono::steady_clock::now();
      Status st = write_back_batch(lock, o.batch_pages);
      if (!st.ok()) break;
      if (dirty_count_ >= before) {
        // Nothing may go home until a commit: let it happen, then look again.
        writeback_cv_.wait_for(lock, std::chrono::milliseconds(10));
        break;
      }
      uint64_t pages = pages_written_.load(std::memory_order_relaxed) - written_before;
      lock.unlock();
      throttle(pages, pages * page_size_, start);
      lock.lock();
    }
  }
}

// Sleeps so that the write-back stays under the configured rates. A merged
// write counts as one request per 256 pages, as it is submitted.
void BufferPool::throttle(uint64_t pages, uint64_t bytes,
                          std::chrono::steady_clock::time_point start) {
  const WritebackOptions& o = writeback_options_;
  double seconds = 0;
  if (o.max_write_iops) seconds = std::max(seconds, double((pages + 255) / 256) / o.max_write_iops);
  if (o.max_write_mbps) seconds = std::max(seconds, double(bytes) / (o.max_write_mbps * 1e6));
  auto due = start + std::chrono::duration_cast<std::chrono::steady_clock::duration>(
                         std::chrono::duration<double>(seconds));
  std::this_thread::sleep_until(due);
}

Status BufferPool::write_through(PageRef& ref) {
  assert(ref.valid());
  std::vector<uint32_t> one{ref.frame_};
  {
    std::lock_guard lock(mu_);
    assert(frames_[ref.frame_].txn == 0 || frames_[ref.frame_].txn != running_txn_ ||
           !frames_[ref.frame_].dirty);
  }
  PAGEFS_TRY(write_frames(one));
  PAGEFS_TRY(device_.flush());
  std::lock_guard lock(mu_);
  Frame& f = frames_[ref.frame_];
  if (f.dirty) dirty_count_--;
  f.dirty = false;
  f.txn = 0;
  unpin_journal(f);
  return ok_status();
}

}  // namespace pagefs
