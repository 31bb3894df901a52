// RequestStats: what the kernel asks of the daemon, by FUSE request type.
//
// Every request read from /dev/fuse and every reply written to it passes
// through the adapter's custom I/O hooks (fs/fuse_adapter.cc), which call
// note_request() and note_reply() here. A request is counted by its opcode;
// its latency is the time from the read to the reply written by the same
// session thread (libfuse's threads answer the request they read), recorded
// in that opcode's histogram. Requests that get no reply (FORGET,
// BATCH_FORGET, INTERRUPT) are counted without a latency. WRITE's payload
// and the bytes of successful READ replies are the bytes applications wrote
// and read.
//
// Cost per request: two steady_clock reads and a few relaxed atomic adds.
//
// Thread-safety: every method may be called from any session thread.
#pragma once

#include <sys/uio.h>

#include <atomic>
#include <cstddef>
#include <cstdint>
#include <string_view>

#include "engine/stats.h"

namespace pagefs {

class RequestStats {
 public:
  static constexpr size_t kOpcodes = 64;  // FUSE opcodes are below this; others count as 0

  void note_request(const void* buf, size_t len);
  void note_reply(const iovec* iov, int count);

  uint64_t requests(size_t opcode) const {
    return requests_[opcode].load(std::memory_order_relaxed);
  }
  HistogramSnapshot latency(size_t opcode) const { return latency_ns_[opcode].snapshot(); }
  uint64_t app_read_bytes() const { return app_read_bytes_.load(std::memory_order_relaxed); }
  uint64_t app_write_bytes() const { return app_write_bytes_.load(std::memory_order_relaxed); }

  // "lookup", "write", ... for a FUSE opcode; "other" for one we do not name.
  static std::string_view opcode_name(size_t opcode);

 private:
  std::atomic<uint64_t> requests_[kOpcodes] = {};
  Histogram latency_ns_[kOpcodes];
  std::atomic<uint64_t> app_read_bytes_{0};
  std::atomic<uint64_t> app_write_bytes_{0};
};

}  // namespace pagefs
