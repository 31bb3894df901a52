// CRC32C (Castagnoli), the checksum of every page on the device.
//
// Backed by ISA-L's crc32_iscsi, which uses the SSE4.2 crc32 instruction and runs
// at several GB/s. Seed and final XOR follow the usual convention, so
// crc32c("123456789") == 0xE3069283.
#pragma once

#include <cstddef>
#include <cstdint>

namespace pagefs {

uint32_t crc32c(const void* data, size_t len);
// Continues a running CRC over more bytes: crc32c_extend(crc32c(a), b) == crc32c(a||b).
uint32_t crc32c_extend(uint32_t crc, const void* data, size_t len);

}  // namespace pagefs
