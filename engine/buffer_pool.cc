#include "engine/buffer_pool.h"

#include <algorithm>
#include <cassert>
#include <cstdarg>
#include <cstdio>
#include <cstdlib>
#include <cstring>
#include <utility>

#include "engine/crc32c.h"
#include "engine/log.h"

namespace pagefs {

// ---- page header helpers ----------------------------------------------------

void stamp_meta_page(std::byte* page, uint32_t page_size) {
  auto* header = reinterpret_cast<PageHeader*>(page);
  header->crc = 0;
  header->crc = crc32c(page, page_size);
}

bool verify_meta_page(const std::byte* page, uint32_t page_size, PageNo expected, PageType type,
                      const char** why) {
  PageHeader header;
  std::memcpy(&header, page, sizeof header);
  if (header.magic != kPageMagic) {
    *why = "bad magic";
    return false;
  }
  if (header.type != static_cast<uint16_t>(type)) {
    *why = "wrong page type";
    return false;
  }
  if (header.page_no != expected.value) {
    *why = "page number mismatch (misdirected write)";
    return false;
  }
  // CRC over the page with the crc field taken as zero.
  uint32_t zero = 0;
  uint32_t crc = crc32c(page, offsetof(PageHeader, crc));
  crc = crc32c_extend(crc, &zero, sizeof zero);
  size_t rest = offsetof(PageHeader, crc) + sizeof(uint32_t);
  crc = crc32c_extend(crc, page + rest, page_size - rest);
  if (crc != header.crc) {
    *why = "checksum mismatch";
    return false;
  }
  return true;
}

// ---- PageRef ----------------------------------------------------------------

PageRef::PageRef(PageRef&& other) noexcept
    : pool_(other.pool_), frame_(other.frame_), page_(other.page_), data_(other.data_) {
  other.pool_ = nullptr;
  other.data_ = nullptr;
}

PageRef& PageRef::operator=(PageRef&& other) noexcept {
  if (this != &other) {
    reset();
    pool_ = other.pool_;
    frame_ = other.frame_;
    page_ = other.page_;
    data_ = other.data_;
    other.pool_ = nullptr;
    other.data_ = nullptr;
  }
  return *this;
}

PageRef::~PageRef() {
  reset();
}

void PageRef::reset() {
  if (pool_) pool_->unpin(frame_);
  pool_ = nullptr;
  data_ = nullptr;
}

void PageRef::mark_dirty() {
  assert(pool_);
  pool_->set_dirty(frame_);
}

void PageRef::change(size_t offset, std::span<const std::byte> bytes) {
  assert(pool_);
  assert(offset <= pool_->page_size() && bytes.size() <= pool_->page_size() - offset);
  pool_->change(frame_, offset, bytes);
}

void PageRef::set_data_crc(uint32_t crc) {
  assert(pool_);
  pool_->set_data_crc(frame_, crc);
}

// ---- BufferPool: set-up -----------------------------------------------------

Result<std::unique_ptr<BufferPool>> BufferPool::open(Device& device, uint32_t page_size,
                                                     uint64_t cache_bytes, bool transactions) {
  uint64_t pages = std::max<uint64_t>(cache_bytes / page_size, kMinFrames);
  // A transactional pool carves its undo area out of the budget: a sixteenth
  // of it, between 16 and 1024 pages (a write chunk dirties about 40).
  uint64_t undo = transactions ? std::clamp<uint64_t>(pages / 16, 16, 1024) : 0;
  uint64_t frames = std::max<uint64_t>(pages - undo, kMinFrames);
  if (frames + undo >= kNoFrame) return Err{EINVAL};
  size_t bytes = size_t(frames + undo) * page_size;
  void* memory = std::aligned_alloc(std::max<uint32_t>(page_size, 4096), bytes);
  if (!memory) return Err{ENOMEM};
  std::memset(memory, 0, bytes);
  return std::unique_ptr<BufferPool>(new BufferPool(device, page_size, uint32_t(frames),
                                                    static_cast<std::byte*>(memory), transactions,
                                                    uint32_t(undo)));
}

BufferPool::BufferPool(Device& device, uint32_t page_size, uint32_t frame_count, std::byte* memory,
                       bool transactions, uint32_t undo_capacity)
    : device_(device),
      page_size_(page_size),
      frame_count_(frame_count),
      transactions_(transactions),
      undo_capacity_(undo_capacity),
      memory_(memory),
      frames_(frame_count) {
  table_.reserve(frame_count * 2);
  free_frames_.reserve(frame_count);
  for (uint32_t f = frame_count; f-- > 0;) free_frames_.push_back(f);
  // Drop entries need no copy, so there may be more entries than images.
  undo_.reserve(4 * size_t(undo_capacity) + 64);
  deferred_discards_.reserve(kMaxDeferredDiscards);
}

BufferPool::~BufferPool() {
  stop_writeback();
  for ([[maybe_unused]] const Frame& f : frames_) assert(f.pins == 0 && !f.busy);
  std::free(memory_);
}

// ---- fetch ------------------------------------------------------------------

Result<PageRef> BufferPool::fetch_meta(PageNo page, PageType type, Validator validate) {
  return fetch(page, true, type, 0, validate);
}

Result<PageRef> BufferPool::fetch_data(PageNo page, uint32_t crc) {
  return fetch(page, false, PageType::kTreeNode, crc);
}

namespace {

thread_local BufferPool::NoDeviceReads* t_no_device_reads = nullptr;

}  // namespace

BufferPool::NoDeviceReads::NoDeviceReads() : outer_(t_no_device_reads) {
  t_no_device_reads = this;
}

BufferPool::NoDeviceReads::~NoDeviceReads() {
  t_no_device_reads = outer_;
}

bool BufferPool::refuse_read(PageNo page, bool meta, PageType type, uint32_t crc,
                             Validator validate) {
  NoDeviceReads* scope = t_no_device_reads;
  if (scope == nullptr) return false;
  if (!scope->missed_) {
    scope->missed_ = Miss{page, meta, type, crc, validate, std::move(scope->prefetch_)};
  }
  return true;
}

void BufferPool::load(const Miss& miss) {
  NoDeviceReads* const scope = std::exchange(t_no_device_reads, nullptr);  // load() reads
  if (!miss.prefetch.empty()) prefetch_data(miss.prefetch);
  bool cached;
  {
    std::unique_lock lock(mu_);
    cached = table_.count(miss.page.value) != 0;
    io_done_.wait(lock, [&] {  // a read in progress (the prefetch's, say) ends first
      auto now = table_.find(miss.page.value);
      return now == table_.end() || !frames_[now->second].busy;
    });
  }
  if (!cached) {
    (void)fetch(miss.page, miss.meta, miss.type, miss.crc, miss.validate, /*report=*/false);
  }
  t_no_device_reads = scope;
}

Result<PageRef> BufferPool::fetch(PageNo page, bool meta, PageType type, uint32_t crc,
                                  Validator validate, bool report) {
  std::unique_lock lock(mu_);
  for (;;) {
    auto it = table_.find(page.value);
    if (it == table_.end()) break;
    Frame& f = frames_[it->second];
    if (f.busy) {
      if (refuse_read(page, meta, type, crc, validate)) return Err{EWOULDBLOCK};
      io_done_.wait(lock);
      continue;
    }
    if (!cached_page_matches(it->second, meta, type, crc, report)) return Err{EIO};
    f.pins++;
    f.usage = std::min<uint8_t>(f.usage + 1, kMaxUsage);
    hits_.fetch_add(1, std::memory_order_relaxed);
    if (f.read_ahead) {
      f.read_ahead = false;
      readahead_hits_.fetch_add(1, std::memory_order_relaxed);
    }
    return PageRef(this, it->second, page, frame_data(it->second));
  }
  if (refuse_read(page, meta, type, crc, validate)) return Err{EWOULDBLOCK};
  misses_.fetch_add(1, std::memory_order_relaxed);
  PAGEFS_ASSIGN(uint32_t frame, grab_frame(lock));
  // Another thread may have loaded the page while grab_frame dropped the lock.
  if (table_.count(page.value)) {
    free_frames_.push_back(frame);
    lock.unlock();
    return fetch(page, meta, type, crc, validate, report);
  }
  insert(frame, page, meta);
  Frame& f = frames_[frame];
  f.busy = true;
  f.pins = 1;
  lock.unlock();

  Status st = device_.read_at(page.value * page_size_, frame_data(frame), page_size_);
  bool good = st.ok() && verify(frame, page, meta, type, crc, report);
  if (good && validate) {
    const char* why = nullptr;
    good = validate(frame_data(frame), page_size_, &why);
    if (!good && report) (void)metadata_error(page, "%s", why);
  }
  pages_read_.fetch_add(1, std::memory_order_relaxed);

  lock.lock();
  f.busy = false;
  io_done_.notify_all();
  if (!good) {
    f.pins = 0;
    release_frame(frame);
    return Err{EIO};
  }
  if (!meta) f.data_crc = crc, f.crc_known = true;
  return PageRef(this, frame, page, frame_data(frame));
}

// A cached page is held to the same check as one just read: a data page must
// match the CRC its extent records (known from the read or the last write, so
// this is a compare, not a checksum), and a metadata page must be of the type
// asked for. An extent or tree pointer aimed at the wrong page finds out here.
// Called with mu_ held on a frame that is not busy.
bool BufferPool::cached_page_matches(uint32_t frame, bool meta, PageType type, uint32_t crc,
                                     bool report) {
  Frame& f = frames_[frame];
  const char* why = nullptr;
  if (meta != f.meta) {
    why = meta ? "holds file data, not metadata" : "holds metadata, not file data";
  } else if (meta) {
    PageHeader h;
    std::memcpy(&h, frame_data(frame), sizeof h);
    if (h.magic != kPageMagic || h.type != static_cast<uint16_t>(type) ||
        h.page_no != f.page.value) {
      why = "is not the metadata page asked for";
    }
  } else {
    if (!f.crc_known) {
      f.data_crc = crc32c(frame_data(frame), page_size_);
      f.crc_known = true;
    }
    if (f.data_crc != crc) why = "does not match the checksum its extent records";
  }
  if (why == nullptr) return true;
  if (!report) return false;
  checksum_errors_.fetch_add(1, std::memory_order_relaxed);
  PAGEFS_LOG_ERROR("cached page %llu %s", static_cast<unsigned long long>(f.page.value), why);
  return false;
}

bool BufferPool::verify(uint32_t frame, PageNo page, bool meta, PageType type, uint32_t crc,
                        bool report) {
  const std::byte* data = frame_data(frame);
  const char* why = nullptr;
  bool good =
      meta ? verify_meta_page(data, page_size_, page, type, &why) : crc32c(data, page_size_) == crc;
  if (!good && report) {
    checksum_errors_.fetch_add(1, std::memory_order_relaxed);
    PAGEFS_LOG_ERROR("%s page %llu failed verification: %s", meta ? "metadata" : "data",
                     static_cast<unsigned long long>(page.value), why ? why : "checksum mismatch");
  }
  return good;
}

void BufferPool::prefetch_data(std::span<const DataPageRequest> pages) {
  if (NoDeviceReads* scope = t_no_device_reads; scope != nullptr) {
    if (!scope->missed_) scope->prefetch_.assign(pages.begin(), pages.end());
    return;
  }
  std::vector<uint32_t> frames;
  std::vector<DataPageRequest> wanted;
  {
    std::unique_lock lock(mu_);
    for (const DataPageRequest& req : pages) {
      if (table_.count(req.page.value)) continue;
      // Only use frames that are free or cheaply reclaimable; never write back.
      uint32_t frame = kNoFrame;
      if (!free_frames_.empty()) {
        frame = free_frames_.back();
        free_frames_.pop_back();
      } else {
        frame = find_victim();
        if (frame == kNoFrame || frames_[frame].dirty) break;
        table_.erase(frames_[frame].page.value);
        frames_[frame] = Frame{};
      }
      insert(frame, req.page, false);
      frames_[frame].busy = true;
      frames_.at(frame).pins = 1;
      frames.push_back(frame);
      wanted.push_back(req);
    }
  }
  if (frames.empty()) return;
  std::vector<iovec> iov(frames.size());
  std::vector<IoRequest> batch;
  for (size_t i = 0; i < frames.size(); i++) {
    iov[i] = iovec{frame_data(frames[i]), page_size_};
    bool extends = i > 0 && wanted[i].page.value == wanted[i - 1].page.value + 1;
    if (extends) {
      batch.back().iov =
          std::span<const iovec>(batch.back().iov.data(), batch.back().iov.size() + 1);
    } else {
      batch.push_back(
          IoRequest{wanted[i].page.value * page_size_, std::span<const iovec>(&iov[i], 1)});
    }
  }
  Status st = device_.read(batch);
  pages_read_.fetch_add(frames.size(), std::memory_order_relaxed);
  // Verify while the frames are still busy: nobody else may see or reuse a
  // frame before its bytes are known good.
  std::vector<bool> good(frames.size(), false);
  for (size_t i = 0; i < frames.size() && st.ok(); i++) {
    // A bad page is only dropped here; fetch_data reads it again and reports it.
    good[i] = verify(frames[i], wanted[i].page, false, PageType::kTreeNode, wanted[i].crc, false);
  }
  std::unique_lock lock(mu_);
  for (size_t i = 0; i < frames.size(); i++) {
    Frame& f = frames_[frames[i]];
    f.busy = false;
    f.pins = 0;
    if (!good[i]) {
      release_frame(frames[i]);
    } else {
      f.data_crc = wanted[i].crc;
      f.crc_known = true;
      f.read_ahead = true;
      readahead_pages_.fetch_add(1, std::memory_order_relaxed);
    }
  }
  io_done_.notify_all();
}

Result<PageRef> BufferPool::create(PageNo page, bool meta, bool fresh, bool zero) {
  std::unique_lock lock(mu_);
  for (;;) {
    auto it = table_.find(page.value);
    if (it == table_.end()) break;
    Frame& f = frames_[it->second];
    if (f.busy) {
      io_done_.wait(lock);
      continue;
    }
    // A freed-and-reused page is never still pinned; a pinned one was handed
    // out while in use, which only a damaged free-space bitmap can do.
    if (f.pins != 0) {
      lock.unlock();
      return metadata_error(page, "allocated while in use: the free-space bitmap is wrong");
    }
    record_undo(it->second);
    f.pins = 1;
    f.meta = meta;
    f.read_ahead = false;
    // A page fresh in the running transaction held nothing live before it,
    // and still does not, however it is rewritten: it stays fresh.
    bool was_fresh = this->fresh(f);
    f.fresh_txn = fresh || was_fresh ? running_txn_ : 0;
    f.usage = 0;
    f.crc_known = false;
    if (zero) std::memset(frame_data(it->second), 0, page_size_);
    return PageRef(this, it->second, page, frame_data(it->second));
  }
  PAGEFS_ASSIGN(uint32_t frame, grab_frame(lock));
  if (table_.count(page.value)) {
    free_frames_.push_back(frame);
    lock.unlock();
    return create(page, meta, fresh, zero);
  }
  insert(frame, page, meta);
  record_undo(frame);
  frames_[frame].pins = 1;
  frames_[frame].fresh_txn = fresh ? running_txn_ : 0;
  if (zero) std::memset(frame_data(frame), 0, page_size_);
  return PageRef(this, frame, page, frame_data(frame));
}

void BufferPool::discard(PageNo page) {
  std::unique_lock lock(mu_);
  if (savepoint_open_) {
    // An undo may still need the frame. A discard that does not fit is
    // skipped: a freed page's frame is harmless, only wasted.
    if (deferred_discards_.size() < kMaxDeferredDiscards) deferred_discards_.push_back(page.value);
    return;
  }
  discard_locked(lock, page);
}

void BufferPool::discard_locked(std::unique_lock<std::mutex>& lock, PageNo page) {
  for (;;) {
    auto it = table_.find(page.value);
    if (it == table_.end()) return;
    Frame& f = frames_[it->second];
    if (f.busy) {
      io_done_.wait(lock);
      continue;
    }
    assert(f.pins == 0);
    release_frame(it->second);
    return;
  }
}

BufferPool::Cached BufferPool::cached_copy(PageNo page, std::byte* out, uint32_t* crc, bool wait) {
  std::unique_lock lock(mu_);
  for (;;) {
    auto it = table_.find(page.value);
    if (it == table_.end()) return Cached::kAbsent;
    const Frame& f = frames_[it->second];
    if (f.busy) {
      if (!wait) return Cached::kBusy;
      io_done_.wait(lock);
      continue;
    }
    const bool changing = f.dirty || f.txn != 0 || f.fresh_txn != 0;
    if (out != nullptr && (f.meta || !changing)) {
      std::memcpy(out, frame_data(it->second), page_size_);
    }
    if (changing) return Cached::kChanging;
    *crc = !f.meta && f.crc_known ? f.data_crc : 0;
    return Cached::kClean;
  }
}

void BufferPool::drop_clean() {
  std::lock_guard lock(mu_);
  for (uint32_t f = 0; f < frame_count_; f++) {
    const Frame& fr = frames_[f];
    if (fr.in_use && !fr.dirty && fr.pins == 0 && !fr.busy && !fr.savepoint) release_frame(f);
  }
}

// ---- frames -----------------------------------------------------------------

void BufferPool::insert(uint32_t frame, PageNo page, bool meta) {
  Frame& f = frames_[frame];
  assert(!f.in_use && f.pins == 0);
  f = Frame{};
  f.page = page;
  f.in_use = true;
  f.meta = meta;
  table_.emplace(page.value, frame);
}

void BufferPool::release_frame(uint32_t frame) {
  Frame& f = frames_[frame];
  assert(f.in_use && f.pins == 0 && !f.busy);
  // A discarded page's bytes are needed by nobody once the transaction that
  // freed it is durable: its pin waits for that commit (end_commit).
  if (f.home_txn != 0 && transactions_) {
    freed_pins_[f.home_txn]++;
    f.home_txn = 0;
  }
  unpin_journal(f);
  table_.erase(f.page.value);
  if (f.dirty) dirty_count_--;
  f = Frame{};
  free_frames_.push_back(frame);
}

void BufferPool::unpin(uint32_t frame) {
  std::lock_guard lock(mu_);
  assert(frames_[frame].pins > 0);
  frames_[frame].pins--;
}

void BufferPool::set_dirty(uint32_t frame) {
  std::lock_guard lock(mu_);
  set_dirty_locked(frame);
}

void BufferPool::change(uint32_t frame, size_t offset, std::span<const std::byte> bytes) {
  std::lock_guard lock(mu_);
  set_dirty_locked(frame);
  std::memcpy(frame_data(frame) + offset, bytes.data(), bytes.size());
}

void BufferPool::set_dirty_locked(uint32_t frame) {
  Frame& f = frames_[frame];
  assert(f.pins > 0 && !f.busy);
  record_undo(frame);
  f.crc_known = false;  // the caller is about to change the bytes
  if (!f.dirty) {
    dirty_count_++;
    if (dirty_count_ * 100 > uint64_t(frame_count_) * writeback_options_.dirty_high_pct) {
      writeback_cv_.notify_one();
    }
  }
  f.dirty = true;
  if (transactions_ && f.txn != running_txn_) {
    f.txn = running_txn_;
    txn_frames_.push_back(frame);
    if (!fresh(f)) txn_images_++;
  }
}

void BufferPool::set_data_crc(uint32_t frame, uint32_t crc) {
  std::lock_guard lock(mu_);
  Frame& f = frames_[frame];
  assert(f.pins > 0 && !f.meta);
  f.data_crc = crc;
  f.crc_known = true;
}

// A dirty frame may go home when no uncommitted change is in it, or when it
// is a fresh page of the running transaction (ordered data).
bool BufferPool::writable(const Frame& f) const {
  if (!f.in_use || !f.dirty || f.pins > 0 || f.busy || f.savepoint) return false;
  return f.txn == 0 || (fresh(f) && f.txn == running_txn_);
}

bool BufferPool::takes(const Frame& f, Take take, uint64_t pinned_up_to) const {
  if (!writable(f)) return false;
  switch (take) {
    case Take::kAll:
      return true;
    case Take::kNoSuperblock:
      return f.page.value >= 2;
    case Take::kPinned:
      return f.page.value >= 2 && f.home_txn != 0 && f.home_txn <= pinned_up_to;
  }
  return false;
}

void BufferPool::unpin_journal(Frame& f) {
  if (f.home_txn == 0) return;
  auto it = journal_pins_.find(f.home_txn);
  assert(it != journal_pins_.end() && it->second > 0);
  if (--it->second == 0) journal_pins_.erase(it);
  f.home_txn = 0;
}

// Two sweeps of the clock: the first lowers usage counts, the second finds
// a frame at zero. Pinned and busy frames are skipped. Returns kNoFrame if
// every frame is pinned or busy.
uint32_t BufferPool::find_victim() {
  uint32_t fallback = kNoFrame;
  for (uint32_t step = 0; step < frame_count_ * (kMaxUsage + 1); step++) {
    uint32_t f = clock_hand_;
    clock_hand_ = (clock_hand_ + 1) % frame_count_;
    Frame& fr = frames_[f];
    if (!fr.in_use || fr.pins > 0 || fr.busy || fr.savepoint) continue;
    if (fr.usage > 0) {
      fr.usage--;
      continue;
    }
    if (!fr.dirty) return f;
    if (fallback == kNoFrame && takes(fr, Take::kNoSuperblock, 0)) fallback = f;
  }
  return fallback;
}

void BufferPool::fail_frame_grab(uint64_t n) {
  std::lock_guard lock(mu_);
  fail_grab_in_ = n;
}

Result<uint32_t> BufferPool::grab_frame(std::unique_lock<std::mutex>& lock) {
  if (fail_grab_in_ != 0 && --fail_grab_in_ == 0) return Err{ENOMEM};
  for (int attempt = 0; attempt < 64; attempt++) {
    if (!free_frames_.empty()) {
      uint32_t f = free_frames_.back();
      free_frames_.pop_back();
      return f;
    }
    uint32_t victim = find_victim();
    if (victim == kNoFrame) {
      // Everything pinned or under I/O: wait for some I/O to finish.
      io_done_.wait_for(lock, std::chrono::milliseconds(10));
      continue;
    }
    if (!frames_[victim].dirty) {
      table_.erase(frames_[victim].page.value);
      frames_[victim] = Frame{};
      return victim;
    }
    PAGEFS_TRY(write_back_batch(lock, kWritebackBatch));
  }
  PAGEFS_LOG_ERROR("buffer pool exhausted: all %u frames pinned", frame_count_);
  return Err{ENOMEM};
}

Err BufferPool::metadata_error(PageNo page, const char* why, ...) {
  char text[256];
  va_list args;
  va_start(args, why);
  std::vsnprintf(text, sizeof text, why, args);
  va_end(args);
  metadata_errors_.fetch_add(1, std::memory_order_relaxed);
  PAGEFS_LOG_ERROR("metadata damage at page %llu: %s", (unsigned long long)page.value, text);
  return Err{EIO};
}

Err BufferPool::inode_metadata_error(uint64_t ino, const char* why, ...) {
  char text[256];
  va_list args;
  va_start(args, why);
  std::vsnprintf(text, sizeof text, why, args);
  va_end(args);
  metadata_errors_.fetch_add(1, std::memory_order_relaxed);
  PAGEFS_LOG_ERROR("metadata damage in inode %llu: %s", (unsigned long long)ino, text);
  return Err{EIO};
}

PoolStats BufferPool::stats() const {
  PoolStats s;
  s.frames = frame_count_;
  s.hits = hits_.load();
  s.misses = misses_.load();
  s.readahead_pages = readahead_pages_.load();
  s.readahead_hits = readahead_hits_.load();
  s.pages_read = pages_read_.load();
  s.pages_written = pages_written_.load();
  s.checksum_errors = checksum_errors_.load();
  s.metadata_errors = metadata_errors_.load();
  s.writeback_batches = writeback_batches_.load();
  s.writeback_requests = writeback_requests_.load();
  std::lock_guard lock(mu_);
  s.dirty = dirty_count_;
  return s;
}

uint64_t BufferPool::pinned_frames() const {
  std::lock_guard lock(mu_);
  return std::count_if(frames_.begin(), frames_.end(), [](const Frame& f) { return f.pins > 0; });
}

void BufferPool::check_invariants() const {
  std::lock_guard lock(mu_);
  uint64_t dirty = 0, used = 0;
  for (uint32_t f = 0; f < frame_count_; f++) {
    const Frame& fr = frames_[f];
    if (!fr.in_use) continue;
    used++;
    dirty += fr.dirty;
    auto it = table_.find(fr.page.value);
    assert(it != table_.end() && it->second == f);
  }
  assert(dirty == dirty_count_);
  assert(used == table_.size());
  assert(used + free_frames_.size() == frame_count_);
  (void)dirty;
  (void)used;
}

}  // namespace pagefs
