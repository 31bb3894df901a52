#include "engine/crc32c.h"

#include <isa-l/crc.h>

namespace pagefs {

// ISA-L's crc32_iscsi takes and returns the raw (un-inverted) register, so the
// standard ~ pre- and post-conditioning is applied here.
uint32_t crc32c_extend(uint32_t crc, const void* data, size_t len) {
  auto* bytes = static_cast<unsigned char*>(const_cast<void*>(data));
  return ~crc32_iscsi(bytes, static_cast<int>(len), ~crc);
}

uint32_t crc32c(const void* data, size_t len) {
  return crc32c_extend(0, data, len);
}

}  // namespace pagefs
