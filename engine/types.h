// Strong integer types for the engine's identifiers, so that a page number, an
// inode number and an LSN can never be mixed up by accident.
#pragma once

#include <compare>
#include <cstdint>
#include <functional>

namespace pagefs {

template <class Tag>
struct StrongId {
  uint64_t value = 0;

  constexpr StrongId() = default;
  constexpr explicit StrongId(uint64_t v) : value(v) {}
  constexpr auto operator<=>(const StrongId&) const = default;
};

struct PageNoTag {};
struct InodeNoTag {};
struct LsnTag {};

// Index of a page on the device: byte offset = value * page_size. Page 0 holds the
// primary superblock, so 0 is never a valid page number for anything else.
using PageNo = StrongId<PageNoTag>;
// Inode number as the kernel sees it. 1 is the root directory; 0 is never valid.
using InodeNo = StrongId<InodeNoTag>;
// Log sequence number of the journal; 0 means "never logged".
using Lsn = StrongId<LsnTag>;

inline constexpr PageNo kNoPage{0};
inline constexpr InodeNo kRootInode{1};

}  // namespace pagefs

template <class Tag>
struct std::hash<pagefs::StrongId<Tag>> {
  size_t operator()(const pagefs::StrongId<Tag>& id) const noexcept {
    return std::hash<uint64_t>()(id.value);
  }
};
