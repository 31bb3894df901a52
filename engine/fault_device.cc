#include "engine/fault_device.h"

#include <algorithm>
#include <cstdlib>
#include <cstring>
#include <memory>
#include <thread>

#include "engine/mem_device.h"

namespace pagefs {
namespace {

struct FreeDeleter {
  void operator()(std::byte* p) const { std::free(p); }
};
using AlignedBuffer = std::unique_ptr<std::byte, FreeDeleter>;

// len must be a multiple of alignment (true for block-aligned I/O).
AlignedBuffer aligned_buffer(size_t alignment, size_t len) {
  auto* p = static_cast<std::byte*>(std::aligned_alloc(alignment, len));
  if (p == nullptr) std::abort();  // test-only device: out of memory is fatal
  return AlignedBuffer(p);
}

uint64_t request_bytes(const IoRequest& r) {
  uint64_t len = 0;
  for (const iovec& v : r.iov) len += v.iov_len;
  return len;
}

// Copies the first max_bytes of the request's buffers to dst.
void gather(const IoRequest& r, std::byte* dst, uint64_t max_bytes) {
  for (const iovec& v : r.iov) {
    if (max_bytes == 0) return;
    const size_t n = std::min<uint64_t>(v.iov_len, max_bytes);
    std::memcpy(dst, v.iov_base, n);
    dst += n;
    max_bytes -= n;
  }
}

}  // namespace

FaultDevice::FaultDevice(Device& inner, uint64_t seed, size_t max_events)
    : inner_(inner), seed_(seed), max_events_(max_events), rng_(seed) {}

bool FaultDevice::draw(double p) {
  if (p <= 0) return false;
  if (p >= 1) return true;
  return std::bernoulli_distribution(p)(rng_);
}

Status FaultDevice::read(std::span<const IoRequest> batch) {
  {
    std::lock_guard lock(mu_);
    if (++read_calls_ == fail_read_at_) {
      fail_read_at_ = kNever;
      injected_++;
      return Err{EIO};
    }
    for (size_t i = 0; i < batch.size(); i++) {
      if (draw(read_error_p_)) return Err{EIO};
    }
  }
  PAGEFS_TRY(inner_.read(batch));
  std::lock_guard lock(mu_);
  for (const IoRequest& r : batch) {
    if (draw(read_flip_p_)) flip_random_bit(r);
  }
  return ok_status();
}

void FaultDevice::flip_random_bit(const IoRequest& r) {
  const uint64_t len = request_bytes(r);
  if (len == 0) return;
  uint64_t index = std::uniform_int_distribution<uint64_t>(0, len - 1)(rng_);
  const int bit = std::uniform_int_distribution<int>(0, 7)(rng_);
  for (const iovec& v : r.iov) {
    if (index < v.iov_len) {
      static_cast<unsigned char*>(v.iov_base)[index] ^= static_cast<unsigned char>(1u << bit);
      return;
    }
    index -= v.iov_len;
  }
}

Status FaultDevice::write(std::span<const IoRequest> batch) {
  // Strict like MemDevice, so that dropped writes still catch unaligned I/O.
  PAGEFS_TRY(check_io_batch(batch, size_bytes(), block_size()));
  std::lock_guard lock(mu_);
  for (const IoRequest& r : batch) PAGEFS_TRY(write_one(r));
  return ok_status();
}

Status FaultDevice::write_one(const IoRequest& r) {
  if (draw(write_error_p_)) return Err{EIO};
  const uint64_t number = writes_ + 1;
  if (number == fail_write_at_) {
    fail_write_at_ = kNever;
    injected_++;
    return Err{EIO};
  }
  if (crashed_ || number > drop_after_ || number > tear_at_) {
    crashed_ = true;
    dropped_++;
  } else if (number == tear_at_) {
    PAGEFS_TRY(write_torn(r));
  } else {
    PAGEFS_TRY(inner_.write(std::span<const IoRequest>(&r, 1)));
  }
  writes_ = number;
  record_write(r);
  return ok_status();
}

// Applies the first K sectors of r: reads the old range, overlays the prefix of the new
// data and writes the range back, so the inner device only ever sees aligned I/O.
Status FaultDevice::write_torn(const IoRequest& r) {
  const uint64_t len = request_bytes(r);
  const uint64_t sectors = len / kSectorBytes;
  if (sectors == 0) return Err{EINVAL};  // unreachable: requests are block aligned
  const auto kept =
      static_cast<uint32_t>(std::uniform_int_distribution<uint64_t>(0, sectors - 1)(rng_));
  AlignedBuffer buf = aligned_buffer(block_size(), len);
  PAGEFS_TRY(inner_.read_at(r.offset, buf.get(), len));
  gather(r, buf.get(), uint64_t{kept} * kSectorBytes);
  PAGEFS_TRY(inner_.write_at(r.offset, buf.get(), len));
  torn_sectors_ = kept;
  crashed_ = true;
  return ok_status();
}

Status FaultDevice::flush() {
  std::unique_lock lock(mu_);
  if (flush_error_) return Err{EIO};
  if (flush_delay_.count() > 0) {
    // A slow cache flush, as a disk gives: other requests go on meanwhile.
    const auto delay = flush_delay_;
    lock.unlock();
    std::this_thread::sleep_for(delay);
    lock.lock();
  }
  if (!crashed_) PAGEFS_TRY(inner_.flush());
  flushes_++;
  record_flush();
  return ok_status();
}

void FaultDevice::record_write(const IoRequest& r) {
  if (max_events_ == 0) return;
  if (events_.size() >= max_events_) {
    events_overflowed_ = true;
    return;
  }
  Event e{Event::Kind::kWrite, r.offset, std::vector<std::byte>(request_bytes(r))};
  gather(r, e.data.data(), e.data.size());
  events_.push_back(std::move(e));
}

void FaultDevice::record_flush() {
  if (max_events_ == 0) return;
  if (events_.size() >= max_events_) {
    events_overflowed_ = true;
    return;
  }
  events_.push_back(Event{Event::Kind::kFlush, 0, {}});
}

Status FaultDevice::replay(Device& target, size_t event_count) const {
  std::lock_guard lock(mu_);
  const size_t n = std::min(event_count, events_.size());
  for (size_t i = 0; i < n; i++) {
    const Event& e = events_[i];
    if (e.kind == Event::Kind::kFlush) {
      PAGEFS_TRY(target.flush());
      continue;
    }
    AlignedBuffer buf = aligned_buffer(target.block_size(), e.data.size());
    std::memcpy(buf.get(), e.data.data(), e.data.size());
    PAGEFS_TRY(target.write_at(e.offset, buf.get(), e.data.size()));
  }
  return ok_status();
}

Status FaultDevice::flip_bit(uint64_t byte_offset, int bit) {
  if (bit < 0 || bit > 7 || byte_offset >= size_bytes()) return Err{EINVAL};
  const uint32_t bs = block_size();
  const uint64_t block_start = byte_offset - byte_offset % bs;
  AlignedBuffer buf = aligned_buffer(bs, bs);
  std::lock_guard lock(mu_);
  PAGEFS_TRY(inner_.read_at(block_start, buf.get(), bs));
  buf.get()[byte_offset - block_start] ^= static_cast<std::byte>(1u << bit);
  return inner_.write_at(block_start, buf.get(), bs);
}

void FaultDevice::set_read_error_probability(double p) {
  std::lock_guard lock(mu_);
  read_error_p_ = p;
}

void FaultDevice::set_write_error_probability(double p) {
  std::lock_guard lock(mu_);
  write_error_p_ = p;
}

void FaultDevice::set_flush_error(bool fail) {
  std::lock_guard lock(mu_);
  flush_error_ = fail;
}

void FaultDevice::set_flush_delay(std::chrono::microseconds delay) {
  std::lock_guard lock(mu_);
  flush_delay_ = delay;
}

void FaultDevice::set_read_bit_flip_probability(double p) {
  std::lock_guard lock(mu_);
  read_flip_p_ = p;
}

void FaultDevice::drop_writes_after(uint64_t n) {
  std::lock_guard lock(mu_);
  drop_after_ = n;
}

void FaultDevice::tear_write(uint64_t n) {
  std::lock_guard lock(mu_);
  tear_at_ = n;
}

void FaultDevice::fail_read_call(uint64_t n) {
  std::lock_guard lock(mu_);
  fail_read_at_ = n;
}

void FaultDevice::fail_write_request(uint64_t n) {
  std::lock_guard lock(mu_);
  fail_write_at_ = n;
}

uint64_t FaultDevice::injected_faults() const {
  std::lock_guard lock(mu_);
  return injected_;
}

uint64_t FaultDevice::read_call_count() const {
  std::lock_guard lock(mu_);
  return read_calls_;
}

void FaultDevice::clear_faults() {
  std::lock_guard lock(mu_);
  fail_read_at_ = fail_write_at_ = kNever;
  read_error_p_ = write_error_p_ = read_flip_p_ = 0;
  flush_error_ = false;
  flush_delay_ = std::chrono::microseconds{0};
  drop_after_ = tear_at_ = kNever;
  crashed_ = false;
  torn_sectors_.reset();
}

uint64_t FaultDevice::write_count() const {
  std::lock_guard lock(mu_);
  return writes_;
}

uint64_t FaultDevice::flush_count() const {
  std::lock_guard lock(mu_);
  return flushes_;
}

uint64_t FaultDevice::dropped_write_count() const {
  std::lock_guard lock(mu_);
  return dropped_;
}

bool FaultDevice::crashed() const {
  std::lock_guard lock(mu_);
  return crashed_;
}

std::optional<uint32_t> FaultDevice::torn_sectors() const {
  std::lock_guard lock(mu_);
  return torn_sectors_;
}

size_t FaultDevice::event_count() const {
  std::lock_guard lock(mu_);
  return events_.size();
}

bool FaultDevice::events_overflowed() const {
  std::lock_guard lock(mu_);
  return events_overflowed_;
}

}  // namespace pagefs
