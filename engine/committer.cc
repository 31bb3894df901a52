#include "engine/committer.h"

#include <cassert>
#include <cstdlib>
#include <cstring>

#include "engine/log.h"
#include "engine/threads.h"

namespace pagefs {

Committer::Committer(BufferPool& pool, Journal& journal, uint32_t page_size, uint64_t max_images,
                     FailureHandler on_failure, Histogram* commit_ns, int nice)
    : pool_(pool),
      journal_(journal),
      page_size_(page_size),
      slot_images_(max_images + std::min<uint64_t>(max_images, 256)),
      on_failure_(std::move(on_failure)),
      commit_ns_(commit_ns),
      image_memory_(static_cast<std::byte*>(std::aligned_alloc(4096, 2 * slot_images_ * page_size)),
                    &std::free) {
  for (int i = 0; i < 2; i++) {
    slots_[i].images = image_memory_.get() + size_t(i) * slot_images_ * page_size;
    slots_[i].image_pages.reserve(slot_images_);
  }
  thread_ = std::thread([this, nice] {
    name_this_thread("pagefs-commit");
    if (nice != 0) {
      if (int error = set_this_thread_nice(nice); error != 0) {
        PAGEFS_LOG_WARN(
            "commit_nice=%d: the commit thread keeps its priority (%s); a lower "
            "nice value needs root or CAP_SYS_NICE",
            nice, strerror(error));
      }
    }
    loop();
  });
}

Committer::~Committer() {
  stop();
}

Committer::Slot* Committer::acquire_slot() {
  std::unique_lock lock(mu_);
  cv_.wait(lock, [&] { return failed_ || free_[0] || free_[1]; });
  if (failed_) return nullptr;
  int i = free_[0] ? 0 : 1;
  free_[i] = false;
  return &slots_[i];
}

// Called with the filesystem lock held exclusively: nobody changes a frame
// while its bytes are copied. Fresh pages are not copied: they go home from
// their frames, which stay busy until the commit ends.
Status Committer::fill(Slot& slot, uint64_t txn, std::vector<TxnPage> pages, bool fresh_written) {
  slot.txn = txn;
  slot.pages = std::move(pages);
  slot.fresh_written = fresh_written;
  slot.image_pages.clear();
  slot.image_count = 0;
  uint64_t images = 0;
  for (const TxnPage& p : slot.pages) images += !p.fresh;
  if (images > slot_images_) {
    PAGEFS_LOG_ERROR("a transaction of %llu page images outgrew its commit slot (%llu)",
                     (unsigned long long)images, (unsigned long long)slot_images_);
    return Err{E2BIG};
  }
  for (uint32_t i = 0; i < slot.pages.size(); i++) {
    const TxnPage& p = slot.pages[i];
    if (p.fresh) continue;
    std::memcpy(slot.images + size_t(slot.image_count) * page_size_, p.data, page_size_);
    slot.image_pages.push_back(i);
    slot.image_count++;
  }
  slot.reserved_bytes = journal_.record_bound(slot.image_count);
  journal_.reserve(slot.reserved_bytes);
  return ok_status();
}

void Committer::abandon(Slot& slot) {
  pool_.end_commit(slot.txn, slot.pages, /*ok=*/false, 0);
  slot.pages.clear();
  std::lock_guard lock(mu_);
  free_[&slot == &slots_[0] ? 0 : 1] = true;
  failed_ = true;
  cv_.notify_all();
}

void Committer::submit(Slot& slot) {
  {
    std::lock_guard lock(mu_);
    assert(queue_.size() < 2);
    queue_.push_back(&slot);
    closed_ = slot.txn;
  }
  cv_.notify_all();
}

bool Committer::slot_free() const {
  std::lock_guard lock(mu_);
  return free_[0] || free_[1];
}

void Committer::wait_slot_free() {
  std::unique_lock lock(mu_);
  cv_.wait(lock, [&] { return failed_ || free_[0] || free_[1]; });
}

bool Committer::idle() const {
  std::lock_guard lock(mu_);
  return queue_.empty();
}

void Committer::wait_submitted() {
  std::unique_lock lock(mu_);
  const uint64_t submitted = closed_;
  cv_.wait(lock, [&] { return failed_ || durable_ >= submitted; });
}

Status Committer::wait_durable(uint64_t txn) {
  std::unique_lock lock(mu_);
  cv_.wait(lock, [&] { return failed_ || durable_ >= txn; });
  if (durable_ >= txn) return ok_status();
  return Err{EIO};
}

uint64_t Committer::durable_txn() const {
  std::lock_guard lock(mu_);
  return durable_;
}

uint64_t Committer::closed_txn() const {
  std::lock_guard lock(mu_);
  return closed_;
}

void Committer::stop() {
  {
    std::lock_guard lock(mu_);
    stop_ = true;
  }
  cv_.notify_all();
  if (thread_.joinable()) thread_.join();
}

void Committer::loop() {
  std::unique_lock lock(mu_);
  for (;;) {
    cv_.wait(lock, [&] { return stop_ || !queue_.empty(); });
    if (queue_.empty()) return;  // stopped with nothing left to write
    Slot* slot = queue_.front();
    lock.unlock();
    write(*slot);
    lock.lock();
    queue_.erase(queue_.begin());
    free_[slot == &slots_[0] ? 0 : 1] = true;
    cv_.notify_all();
  }
}

// Steps 2 and 3 of the protocol, on the committer thread. After a failure
// nothing more is written: the slot only gives its frames back.
void Committer::write(Slot& slot) {
  const auto start = std::chrono::steady_clock::now();
  bool failed;
  {
    std::lock_guard lock(mu_);
    failed = failed_;
  }
  const uint64_t lsn = journal_.head();
  const std::byte* superblock = nullptr;
  Status st = failed ? Status(Err{EIO}) : ok_status();
  for (uint32_t k = 0; k < slot.image_count && st.ok(); k++) {
    const TxnPage& p = slot.pages[slot.image_pages[k]];
    std::byte* copy = slot.images + size_t(k) * page_size_;
    if (p.meta) {
      reinterpret_cast<PageHeader*>(copy)->lsn = lsn;
      stamp_meta_page(copy, page_size_);
    }
    if (p.page.value == 0) superblock = copy;
    st = journal_.add_image(p.page, copy);
  }
  if (st.ok()) {
    std::vector<iovec> iov;
    std::vector<IoRequest> ordered;
    pool_.ordered_writes(slot.pages, iov, ordered);
    st = journal_.commit(ordered, slot.fresh_written);
  }
  pool_.end_commit(slot.txn, slot.pages, st.ok(), lsn);
  journal_.unreserve(slot.reserved_bytes);
  if (st.ok() && superblock != nullptr) {
    journal_.note_durable(slot.txn, lsn, journal_.next_sequence() - 1, superblock);
  }
  slot.pages.clear();
  if (!st.ok() && !failed) on_failure_("journal commit", st.error());
  const uint64_t took =
      uint64_t(std::chrono::nanoseconds(std::chrono::steady_clock::now() - start).count());
  if (commit_ns_ != nullptr) commit_ns_->record(took);
  const uint64_t average = average_ns_.load(std::memory_order_relaxed);
  average_ns_.store(average == 0 ? took : (7 * average + took) / 8, std::memory_order_relaxed);
  {
    std::lock_guard lock(mu_);
    if (st.ok()) {
      durable_ = slot.txn;
    } else {
      failed_ = true;
    }
  }
  if (st.ok() && after_commit_) after_commit_();
}

}  // namespace pagefs
