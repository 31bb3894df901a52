// DeviceRef: a Device that forwards every call to another one the test keeps
// (not owned), so that a FileSystem can mount a device the test goes on
// inspecting and damaging after the unmount. Tests that need to step into one
// call (a hook before a flush, say) derive from it and override that call.
//
// Thread-safety: that of the device it forwards to.
#pragma once

#include "engine/device.h"

namespace pagefs::test {

class DeviceRef : public Device {
 public:
  explicit DeviceRef(Device& d) : d_(d) {}
  Status read(std::span<const IoRequest> b) override { return d_.read(b); }
  Status write(std::span<const IoRequest> b) override { return d_.write(b); }
  Status flush() override { return d_.flush(); }
  uint64_t size_bytes() const override { return d_.size_bytes(); }
  uint32_t block_size() const override { return d_.block_size(); }
  bool read_only() const override { return d_.read_only(); }

 private:
  Device& d_;
};

}  // namespace pagefs::test
