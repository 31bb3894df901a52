// PageSet: one bit per device page, the in-memory picture of page usage.
//
// fsck keeps two: the bitmap as loaded from the device, and the set of pages it
// found referenced (reserved regions, tree nodes, extents). Bits are stored in
// 64-bit words in the same order as the on-disk bitmap (page 8j+i is bit i of
// byte j), so a bitmap page's payload can be copied in with load_bytes().
//
// Invariant: the set covers exactly size() pages; bits past size() stay zero.
// Thread-safety: none; single owner.
#pragma once

#include <bit>
#include <cassert>
#include <cstdint>
#include <cstring>
#include <vector>

namespace pagefs::fsck {

class PageSet {
 public:
  PageSet() = default;
  explicit PageSet(uint64_t pages) : pages_(pages), words_((pages + 63) / 64, 0) {}

  uint64_t size() const { return pages_; }
  bool test(uint64_t page) const {
    assert(page < pages_);
    return (words_[page / 64] >> (page % 64)) & 1;
  }
  void set(uint64_t page) {
    assert(page < pages_);
    words_[page / 64] |= uint64_t{1} << (page % 64);
  }
  // Copies on-disk bitmap bytes covering pages [first_page, first_page + 8*len).
  // first_page must be a multiple of 64 and the range inside the set.
  void load_bytes(uint64_t first_page, const uint8_t* bytes, size_t len) {
    assert(first_page % 64 == 0 && len % 8 == 0);
    assert(first_page + 8 * len <= words_.size() * 64);
    memcpy(&words_[first_page / 64], bytes, len);
  }
  // Bits of pages [64*i, 64*i + 64).
  uint64_t word(size_t i) const { return i < words_.size() ? words_[i] : 0; }
  uint64_t count() const {
    uint64_t n = 0;
    for (uint64_t w : words_) n += std::popcount(w);
    return n;
  }

 private:
  uint64_t pages_ = 0;
  std::vector<uint64_t> words_;
};

}  // namespace pagefs::fsck
