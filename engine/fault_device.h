// FaultDevice: a wrapper that injects failures into another device, for tests.
//
// It forwards to an inner Device (not owned, must outlive it) and can, at runtime:
//   - fail reads / writes with EIO, always (p = 1) or with probability p per request;
//   - fail flush() with EIO, or make each flush take a while (a slow disk);
//   - drop every write after the Nth: later writes are acknowledged but not applied,
//     as when power is cut with data still in a volatile cache;
//   - tear the Nth write: only its first K 512-byte sectors reach the inner device
//     (K drawn from the seed, 0 <= K < the write's sector count) and every later write
//     is dropped, since a tear models a crash;
//   - flip one bit on the inner device (flip_bit), or one random bit in the data a read
//     returns, with probability p per request.
//   - fail exactly one chosen read() call or write request with EIO (fail_read_call,
//     fail_write_request), so a test can walk an operation's I/O one step at a time.
// Write requests (not write() calls) are numbered from 1 in the order they are
// acknowledged; a request failed with EIO gets no number and changes nothing.
//
// Record mode (max_events > 0): every acknowledged write (offset and a copy of its
// bytes, including writes that were dropped or torn) and every acknowledged flush is
// logged in order, up to max_events entries, so crash tests can replay a prefix onto a
// fresh device with replay().
//
// All randomness comes from one std::mt19937_64 seeded with `seed`; tests print the
// seed on failure so a run can be repeated.
//
// Invariants: once a write has been dropped or torn, crashed() stays true and nothing
// more reaches the inner device through write() or flush() until clear_faults().
//
// Thread-safety: every method may be called concurrently, except that the reference
// returned by events() may only be used while no I/O runs. Writes are serialized,
// so their numbering is the order in which they reach the inner device.
#pragma once

#include <chrono>
#include <cstddef>
#include <cstdint>
#include <mutex>
#include <optional>
#include <random>
#include <vector>

#include "engine/device.h"

namespace pagefs {

class FaultDevice final : public Device {
 public:
  static constexpr uint64_t kNever = UINT64_MAX;
  static constexpr uint32_t kSectorBytes = 512;

  struct Event {
    enum class Kind : uint8_t { kWrite, kFlush };
    Kind kind = Kind::kWrite;
    uint64_t offset = 0;          // kWrite only
    std::vector<std::byte> data;  // kWrite only: the bytes the caller asked to write
  };

  FaultDevice(Device& inner, uint64_t seed, size_t max_events = 0);

  Status read(std::span<const IoRequest> batch) override;
  Status write(std::span<const IoRequest> batch) override;
  Status flush() override;

  uint64_t size_bytes() const override { return inner_.size_bytes(); }
  uint32_t block_size() const override { return inner_.block_size(); }
  bool read_only() const override { return inner_.read_only(); }

  uint64_t seed() const { return seed_; }

  // Fault controls, effective from the next request. Probabilities are in [0, 1].
  void set_read_error_probability(double p);
  void set_write_error_probability(double p);
  void set_flush_error(bool fail);
  // Each flush() sleeps this long first, without holding up other requests.
  void set_flush_delay(std::chrono::microseconds delay);
  void set_read_bit_flip_probability(double p);
  // Writes numbered n+1, n+2, ... are dropped; drop_writes_after(write_count()) drops
  // everything from now on. kNever turns it off.
  void drop_writes_after(uint64_t n);
  // Write number n is torn and all later writes dropped. kNever turns it off.
  void tear_write(uint64_t n);
  // read() call number n (see read_call_count) fails with EIO, once. kNever: off.
  void fail_read_call(uint64_t n);
  // Write request number n (see write_count) fails with EIO, once, and gets no
  // number: the next request is numbered n again. kNever: off.
  void fail_write_request(uint64_t n);
  // Turns every fault off and clears crashed(); counters and the log are kept.
  void clear_faults();

  // Flips bit `bit` (0..7) of the byte at byte_offset on the inner device, by reading
  // its block and writing it back. Not counted or logged as a write.
  Status flip_bit(uint64_t byte_offset, int bit);

  uint64_t read_call_count() const;  // read() calls, failed ones included
  uint64_t injected_faults() const;  // reads and writes failed by fail_read_call/fail_write_request
  uint64_t write_count() const;      // acknowledged write requests
  uint64_t flush_count() const;      // acknowledged flushes
  uint64_t dropped_write_count() const;  // acknowledged but not applied (torn excluded)
  bool crashed() const;
  std::optional<uint32_t> torn_sectors() const;  // K of the torn write, once torn

  const std::vector<Event>& events() const { return events_; }
  // Events logged so far; safe while I/O runs (a filesystem's commits and
  // checkpoints go on in the background after its calls return).
  size_t event_count() const;
  bool events_overflowed() const;
  // Applies the first event_count logged events (writes and flushes) to target.
  Status replay(Device& target, size_t event_count) const;

 private:
  bool draw(double p);
  Status write_one(const IoRequest& r);
  Status write_torn(const IoRequest& r);
  void record_write(const IoRequest& r);
  void record_flush();
  void flip_random_bit(const IoRequest& r);

  Device& inner_;
  const uint64_t seed_;
  const size_t max_events_;

  // Lock order: taken before the inner device's locks.
  mutable std::mutex mu_;
  std::mt19937_64 rng_;                       // guarded by mu_
  double read_error_p_ = 0;                   // guarded by mu_
  double write_error_p_ = 0;                  // guarded by mu_
  double read_flip_p_ = 0;                    // guarded by mu_
  bool flush_error_ = false;                  // guarded by mu_
  std::chrono::microseconds flush_delay_{0};  // guarded by mu_
  uint64_t drop_after_ = kNever;              // guarded by mu_
  uint64_t fail_read_at_ = kNever;            // guarded by mu_
  uint64_t fail_write_at_ = kNever;           // guarded by mu_
  uint64_t read_calls_ = 0;                   // guarded by mu_
  uint64_t injected_ = 0;                     // guarded by mu_
  uint64_t tear_at_ = kNever;                 // guarded by mu_
  bool crashed_ = false;                      // guarded by mu_
  std::optional<uint32_t> torn_sectors_;      // guarded by mu_
  uint64_t writes_ = 0;                       // guarded by mu_
  uint64_t flushes_ = 0;                      // guarded by mu_
  uint64_t dropped_ = 0;                      // guarded by mu_
  std::vector<Event> events_;                 // guarded by mu_; at most max_events_
  bool events_overflowed_ = false;            // guarded by mu_
};

}  // namespace pagefs
