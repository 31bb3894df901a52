#include "engine/mem_device.h"

#include <cstdio>
#include <cstdlib>
#include <cstring>

namespace pagefs {
namespace {

bool is_power_of_two(uint64_t x) {
  return x != 0 && (x & (x - 1)) == 0;
}

// Always-on check of the caller's (a test's) use of the fake.
void check(bool ok, const char* what) {
  if (ok) return;
  std::fprintf(stderr, "pagefs: MemDevice: %s\n", what);
  std::abort();
}

Status check_request(const IoRequest& r, uint64_t size_bytes, uint32_t block_size) {
  if (r.offset % block_size != 0 || r.offset > size_bytes || r.iov.empty()) return Err{EINVAL};
  uint64_t len = 0;
  for (const iovec& v : r.iov) {
    const auto address = reinterpret_cast<uintptr_t>(v.iov_base);
    if (v.iov_len == 0 || v.iov_len % block_size != 0 || address % block_size != 0) {
      return Err{EINVAL};
    }
    if (v.iov_len > size_bytes - r.offset - len) return Err{EINVAL};
    len += v.iov_len;
  }
  return ok_status();
}

}  // namespace

Status check_io_batch(std::span<const IoRequest> batch, uint64_t size_bytes, uint32_t block_size) {
  for (const IoRequest& r : batch) PAGEFS_TRY(check_request(r, size_bytes, block_size));
  return ok_status();
}

MemDevice::MemDevice(uint64_t size_bytes, uint32_t block_size)
    : size_bytes_(size_bytes), block_size_(block_size), storage_(new std::byte[size_bytes]()) {
  check(is_power_of_two(block_size_), "block size must be a power of two");
  check(size_bytes_ > 0, "size must be positive");
  check(size_bytes_ % block_size_ == 0, "size must be a multiple of the block size");
}

Status MemDevice::read(std::span<const IoRequest> batch) {
  PAGEFS_TRY(check_io_batch(batch, size_bytes_, block_size_));
  std::lock_guard lock(mu_);
  for (const IoRequest& r : batch) {
    uint64_t offset = r.offset;
    for (const iovec& v : r.iov) {
      std::memcpy(v.iov_base, storage_.get() + offset, v.iov_len);
      offset += v.iov_len;
    }
    reads_++;
  }
  return ok_status();
}

Status MemDevice::write(std::span<const IoRequest> batch) {
  PAGEFS_TRY(check_io_batch(batch, size_bytes_, block_size_));
  std::lock_guard lock(mu_);
  if (read_only_) return Err{EROFS};
  for (const IoRequest& r : batch) {
    uint64_t offset = r.offset;
    for (const iovec& v : r.iov) {
      std::memcpy(storage_.get() + offset, v.iov_base, v.iov_len);
      offset += v.iov_len;
    }
    writes_++;
  }
  return ok_status();
}

Status MemDevice::flush() {
  std::lock_guard lock(mu_);
  flushes_++;
  return ok_status();
}

bool MemDevice::read_only() const {
  std::lock_guard lock(mu_);
  return read_only_;
}

void MemDevice::set_read_only(bool read_only) {
  std::lock_guard lock(mu_);
  read_only_ = read_only;
}

uint64_t MemDevice::read_count() const {
  std::lock_guard lock(mu_);
  return reads_;
}

uint64_t MemDevice::write_count() const {
  std::lock_guard lock(mu_);
  return writes_;
}

uint64_t MemDevice::flush_count() const {
  std::lock_guard lock(mu_);
  return flushes_;
}

}  // namespace pagefs
