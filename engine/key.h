// Key: the in-memory form of a B+tree key, ordered by (ino, kind, off).
#pragma once

#include <compare>
#include <cstdint>
#include <cstring>

#include "engine/format.h"

namespace pagefs {

struct Key {
  uint64_t ino = 0;
  uint8_t kind = 0;
  uint64_t off = 0;

  constexpr auto operator<=>(const Key&) const = default;

  static constexpr Key min() { return Key{0, 0, 0}; }
  static constexpr Key max() { return Key{UINT64_MAX, UINT8_MAX, UINT64_MAX}; }
  static constexpr Key of(uint64_t ino, KeyKind kind, uint64_t off) {
    return Key{ino, static_cast<uint8_t>(kind), off};
  }

  void store(std::byte* dst) const {
    DiskKey d{ino, kind, off};
    std::memcpy(dst, &d, sizeof d);
  }
  static Key load(const std::byte* src) {
    DiskKey d;
    std::memcpy(&d, src, sizeof d);
    return Key{d.ino, d.kind, d.off};
  }
};

}  // namespace pagefs
