#include "engine/readahead.h"

#include <algorithm>

#include "engine/threads.h"

namespace pagefs {

Readahead::Readahead(Fetch fetch, uint64_t max_window_bytes)
    : fetch_(std::move(fetch)), max_window_(std::max<uint64_t>(max_window_bytes, kMinWindow)) {
  for (std::thread& worker : workers_) {
    worker = std::thread([this] {
      name_this_thread("pagefs-rahead");
      loop();
    });
  }
}

Readahead::~Readahead() {
  {
    std::lock_guard lock(mu_);
    stop_ = true;
  }
  cv_.notify_all();
  for (std::thread& worker : workers_) worker.join();
}

void Readahead::note_read(InodeNo ino, uint64_t off, uint64_t len) {
  if (len == 0) return;
  std::lock_guard lock(mu_);
  Slot& s = slots_[ino.value % kSlots];
  uint64_t end = off + len;
  if (s.ino != ino.value || off != s.next_off) {
    s = Slot{ino.value, end, 0, end};
    return;
  }
  s.next_off = end;
  s.window = s.window == 0 ? kMinWindow : std::min(s.window * 2, max_window_);
  uint64_t want_end = end + s.window;
  uint64_t from = std::max(s.ahead_end, end);
  // Queue only in worthwhile steps: at least half a window at a time.
  if (want_end <= from || want_end - from < s.window / 2) return;
  // Chunks that do not fit in the queue are left for a later read to queue:
  // ahead_end covers only what was queued.
  for (uint64_t at = from; at < want_end && size_ < kQueue; at += kChunk) {
    uint64_t chunk = std::min(kChunk, want_end - at);
    queue_[(head_ + size_) % kQueue] = Request{ino.value, at, chunk};
    size_++;
    s.ahead_end = at + chunk;
    cv_.notify_one();
  }
}

size_t Readahead::queued() const {
  std::lock_guard lock(mu_);
  return size_;
}

void Readahead::loop() {
  std::unique_lock lock(mu_);
  for (;;) {
    cv_.wait(lock, [&] { return stop_ || size_ > 0; });
    if (stop_) return;
    Request r = queue_[head_];
    head_ = (head_ + 1) % kQueue;
    size_--;
    lock.unlock();
    fetch_(InodeNo{r.ino}, r.off, r.len);
    lock.lock();
  }
}

}  // namespace pagefs
