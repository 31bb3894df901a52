// XattrItem: the value of an xattr item (ino, kXattr, cookie), decoded and
// encoded (format.h: XattrValue, XattrPages).
//
// A value that fits in the tree cell is stored inline after the name. A larger
// one (up to kMaxXattrValue, Linux's XATTR_SIZE_MAX) lives in data pages; the
// item then holds an XattrPages record naming each page with its CRC32C,
// exactly as an extent names file pages. decode() checks every field against
// the format and the data region, so code that reads an item the tree handed
// out (items.h) may rely on its shape.
//
// Thread-safety: pure functions.
#pragma once

#include <cstddef>
#include <cstdint>
#include <span>
#include <string>
#include <string_view>
#include <vector>

#include "engine/format.h"
#include "engine/items.h"

namespace pagefs {

struct XattrItem {
  std::string_view name;
  bool in_pages = false;
  std::string_view inline_value;  // the value, when !in_pages
  uint32_t value_bytes = 0;       // the value's length, either way
  std::vector<XattrPage> pages;   // when in_pages: the value's pages, in order
  bool has_crc = false;           // kXattrCrc: value_crc is the value's CRC32C
  uint32_t value_crc = 0;

  // Decodes `v` (which it points into); false with the reason in `why` if it
  // breaks the format, lacks (or has) the value's CRC32C against
  // `limits.xattr_crc`, or names pages outside the data region of `limits`.
  // The value itself is checked against value_crc by whoever reads it
  // (matches_crc), so that a damaged value is EIO to read but its item can
  // still be listed and removed.
  static bool decode(std::span<const std::byte> v, const ItemLimits& limits, XattrItem* out,
                     const char** why);
  // `crc`: the filesystem has kIncompatXattrCrc, so the item carries the
  // value's CRC32C (`value_crc` for a value in pages, computed here inline).
  static std::string encode_inline(std::string_view name, std::string_view value, bool crc);
  static std::string encode_in_pages(std::string_view name, uint32_t value_bytes,
                                     const std::vector<XattrPage>& pages, bool crc,
                                     uint32_t value_crc);
  // Whether `value` (read back from the pages) is what the item says.
  bool matches_crc(std::string_view value) const;
};

// The largest value kept inline for a name of `name_len` bytes: larger ones go
// to pages. 987 - name_len with 4 KiB pages, 4 less with the value's CRC32C.
size_t max_inline_xattr_value(uint32_t page_size, size_t name_len, bool crc);

// Data pages a value of `value_bytes` takes when it is not inline.
inline uint32_t xattr_value_pages(uint32_t value_bytes, uint32_t page_size) {
  return (value_bytes + page_size - 1) / page_size;
}

}  // namespace pagefs
