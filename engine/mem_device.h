// MemDevice: a strict in-memory fake of a device, for tests.
//
// It holds size_bytes of zeroed storage, allocated once in the constructor. It is
// stricter than the real FileDevice on purpose, to catch engine bugs early: every
// request must have a block-aligned offset, non-empty buffers whose addresses and
// lengths are multiples of block_size(), and lie inside the device; otherwise the
// whole batch is refused with EINVAL before any byte moves. Writes on a device made
// read-only with set_read_only(true) are EROFS.
//
// Invariants: size_bytes is a multiple of block_size, which is a power of two; the
// storage never moves, so raw() stays valid for the object's lifetime.
//
// Thread-safety: every method may be called concurrently; one mutex serializes I/O.
// raw() gives unsynchronized access: use it only while no I/O is running.
#pragma once

#include <cstddef>
#include <cstdint>
#include <memory>
#include <mutex>

#include "engine/device.h"

namespace pagefs {

// The strict request rules, shared by the test devices: every request has a
// block-aligned offset, at least one buffer, every buffer non-empty with address and
// length multiples of block_size, and lies inside [0, size_bytes). EINVAL otherwise.
Status check_io_batch(std::span<const IoRequest> batch, uint64_t size_bytes, uint32_t block_size);

class MemDevice final : public Device {
 public:
  // size_bytes must be a positive multiple of block_size, a power of two.
  explicit MemDevice(uint64_t size_bytes, uint32_t block_size = 4096);

  Status read(std::span<const IoRequest> batch) override;
  Status write(std::span<const IoRequest> batch) override;
  Status flush() override;

  uint64_t size_bytes() const override { return size_bytes_; }
  uint32_t block_size() const override { return block_size_; }
  bool read_only() const override;
  void set_read_only(bool read_only);

  // The stored bytes, for tests that inspect or corrupt the device directly.
  std::byte* raw() { return storage_.get(); }
  const std::byte* raw() const { return storage_.get(); }

  // Completed requests (not calls) and flush calls since construction.
  uint64_t read_count() const;
  uint64_t write_count() const;
  uint64_t flush_count() const;

 private:
  const uint64_t size_bytes_;
  const uint32_t block_size_;
  const std::unique_ptr<std::byte[]> storage_;

  // Lock order: leaf.
  mutable std::mutex mu_;
  bool read_only_ = false;  // guarded by mu_
  uint64_t reads_ = 0;      // guarded by mu_
  uint64_t writes_ = 0;     // guarded by mu_
  uint64_t flushes_ = 0;    // guarded by mu_
};

}  // namespace pagefs
