// Small helpers the corrupt-image fuzzer shares: its random source, the bytes
// it writes, and raw access to the pages of an in-memory image.
//
// Everything random in a fuzz run comes from Rng objects seeded from the run
// seed and the image index, so one image can be reproduced alone.
#pragma once

#include <cstddef>
#include <cstdint>
#include <cstring>
#include <random>
#include <string>
#include <vector>

#include "engine/mem_device.h"

namespace pagefs::fuzz {

// A 64-bit mixing function (splitmix64's finalizer over two inputs).
inline uint64_t mix(uint64_t a, uint64_t b) {
  uint64_t x = a * 0x9E3779B97F4A7C15ull ^ (b + 0x632BE59BD9B4E019ull);
  x ^= x >> 31;
  x *= 0xBF58476D1CE4E5B9ull;
  return x ^ (x >> 29);
}

// Deterministic non-zero-ish bytes: the contents of files and xattr values.
inline std::string pattern(uint64_t seed, size_t len) {
  std::string out(len, '\0');
  uint64_t x = mix(seed, len) | 1;
  for (size_t i = 0; i < len; i += 8) {
    x ^= x << 13, x ^= x >> 7, x ^= x << 17;
    std::memcpy(&out[i], &x, std::min<size_t>(8, len - i));
  }
  return out;
}

class Rng {
 public:
  explicit Rng(uint64_t seed) : gen_(seed) {}

  uint64_t next() { return gen_(); }
  // Uniform in [0, n); n > 0.
  uint64_t below(uint64_t n) { return std::uniform_int_distribution<uint64_t>(0, n - 1)(gen_); }
  // Uniform in [lo, hi].
  uint64_t range(uint64_t lo, uint64_t hi) {
    return std::uniform_int_distribution<uint64_t>(lo, hi)(gen_);
  }
  bool chance(double p) { return std::bernoulli_distribution(p)(gen_); }
  template <class T>
  const T& pick(const std::vector<T>& v) {
    return v[below(v.size())];
  }
  // An index drawn with the given weights (not all zero).
  size_t weighted(const std::vector<uint32_t>& weights) {
    return std::discrete_distribution<size_t>(weights.begin(), weights.end())(gen_);
  }

 private:
  std::mt19937_64 gen_;
};

// The bytes of page `page` of an in-memory image.
inline std::byte* page_bytes(MemDevice& dev, uint32_t page_size, uint64_t page) {
  return dev.raw() + page * page_size;
}

inline std::string hex(uint64_t v) {
  char buf[24];
  std::snprintf(buf, sizeof buf, "%#llx", static_cast<unsigned long long>(v));
  return buf;
}

}  // namespace pagefs::fuzz
