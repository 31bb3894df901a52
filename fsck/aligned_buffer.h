// AlignedBuffer: a heap buffer aligned for O_DIRECT device I/O.
//
// The device rejects buffers whose address or length is not a multiple of its
// block size, so every buffer fsck reads into comes from here. The alignment is
// kIoAlignment (4096) or the device block size if that is larger; the length is
// whatever the caller asks for, which must itself be a multiple of the alignment.
//
// Invariant: data() is non-null and aligned for the buffer's whole lifetime.
// Thread-safety: none needed; each buffer has one owner.
#pragma once

#include <cassert>
#include <cstddef>
#include <cstdint>
#include <cstdlib>
#include <new>

namespace pagefs::fsck {

inline constexpr size_t kIoAlignment = 4096;

class AlignedBuffer {
 public:
  AlignedBuffer(size_t size_bytes, size_t alignment = kIoAlignment) : size_(size_bytes) {
    assert(size_bytes > 0 && size_bytes % alignment == 0);
    void* p = nullptr;
    if (posix_memalign(&p, alignment, size_bytes) != 0) throw std::bad_alloc();
    data_ = static_cast<uint8_t*>(p);
  }
  ~AlignedBuffer() { free(data_); }
  AlignedBuffer(const AlignedBuffer&) = delete;
  AlignedBuffer& operator=(const AlignedBuffer&) = delete;

  uint8_t* data() { return data_; }
  const uint8_t* data() const { return data_; }
  size_t size() const { return size_; }

 private:
  uint8_t* data_ = nullptr;
  size_t size_;
};

}  // namespace pagefs::fsck
