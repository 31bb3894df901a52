// format_device: writes an empty pagefs onto a device (the work of mkfs.pagefs).
//
// Lays out the superblocks, the journal region (zeroed), the free-space bitmap
// and a B+tree holding the root directory, all through the buffer pool, then
// flushes. See format.h for the layout.
#pragma once

#include <cstdint>
#include <string>

#include "engine/device.h"
#include "engine/format.h"
#include "engine/result.h"

namespace pagefs {

struct FormatOptions {
  uint32_t page_size = kDefaultPageSize;
  uint64_t journal_bytes = 0;  // 0: a default fitted to the device size
  std::string label;
  uint32_t root_uid = 0;
  uint32_t root_gid = 0;
  // The largest size `pagefs resize` may grow the filesystem to: mkfs keeps
  // room for the bitmap of that size between the bitmap and the data region.
  // 0: kDefaultGrowFactor times the device. At most the device size: no room.
  uint64_t grow_limit_bytes = 0;
  // Every xattr item carries its value's CRC32C (kIncompatXattrCrc). Off
  // only to make images as versions before it did, for tests.
  bool xattr_crc = true;
};

inline constexpr uint64_t kDefaultGrowFactor = 16;

// Smallest device format_device accepts, for a given page size.
uint64_t min_device_bytes(uint32_t page_size);

// Pages between the end of the journal and the data region that the bitmap
// of a filesystem of `page_count` pages may grow into, for a grow limit of
// `limit_pages` pages (engine/resize.h explains the two slots).
uint64_t bitmap_area_pages(uint64_t page_count, uint64_t limit_pages, uint32_t page_size);

// `message` receives one line for the user on failure.
Status format_device(Device& device, const FormatOptions& options, std::string* message);

// Reads the superblock copies; true if the device holds a pagefs of any
// version (used by mkfs to refuse overwriting without -f).
bool has_pagefs_signature(Device& device);

}  // namespace pagefs
