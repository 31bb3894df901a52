// Device: the narrow interface between the engine and its backing store.
//
// A device is an array of bytes addressed in units of its logical block size.
// Every request names a byte offset and one or more buffers (a vectored request);
// offsets, lengths and buffer addresses must all be multiples of block_size(),
// because the real device uses O_DIRECT. Requests are submitted in batches so an
// implementation may have many in flight at once.
//
// Implementations:
//   FileDevice  - a regular file or block device, O_DIRECT, every I/O through io_uring
//   MemDevice   - a strict in-memory fake for tests (rejects unaligned I/O)
//   FaultDevice - a wrapper that injects failures, torn writes and bit flips
//
// Thread-safety: all methods may be called concurrently from any thread.
// Durability: a completed write is only guaranteed durable after a later flush()
// has completed.
#pragma once

#include <sys/uio.h>

#include <cstdint>
#include <span>

#include "engine/result.h"

namespace pagefs {

struct IoRequest {
  uint64_t offset = 0;         // byte offset on the device, block aligned
  std::span<const iovec> iov;  // buffers, each block aligned in address and length
};

class Device {
 public:
  virtual ~Device() = default;
  Device() = default;
  Device(const Device&) = delete;
  Device& operator=(const Device&) = delete;

  // Reads every request fully. EIO (or the device's errno) if any part failed;
  // a short read past the end of the device is EIO.
  virtual Status read(std::span<const IoRequest> batch) = 0;
  // Writes every request fully. On error some requests may have been written.
  virtual Status write(std::span<const IoRequest> batch) = 0;
  // Makes every completed write durable.
  virtual Status flush() = 0;

  virtual uint64_t size_bytes() const = 0;
  virtual uint32_t block_size() const = 0;
  virtual bool read_only() const = 0;

  // Convenience single-buffer forms.
  Status read_at(uint64_t offset, void* buf, size_t len);
  Status write_at(uint64_t offset, const void* buf, size_t len);
};

}  // namespace pagefs
