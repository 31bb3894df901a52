#include "engine/device.h"

namespace pagefs {

Status Device::read_at(uint64_t offset, void* buf, size_t len) {
  iovec v{buf, len};
  IoRequest r{offset, std::span<const iovec>(&v, 1)};
  return read(std::span<const IoRequest>(&r, 1));
}

Status Device::write_at(uint64_t offset, const void* buf, size_t len) {
  iovec v{const_cast<void*>(buf), len};
  IoRequest r{offset, std::span<const iovec>(&v, 1)};
  return write(std::span<const IoRequest>(&r, 1));
}

}  // namespace pagefs
