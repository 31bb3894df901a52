// Statistics of a mounted filesystem: counters and latency histograms kept
// by the engine while it runs, cheap enough to stay on (`pagefs stats`).
//
// A Histogram is 64 fixed log2 buckets of relaxed atomic counters: bucket 0
// holds the value 0, bucket i (1..62) the values in [2^(i-1), 2^i), bucket 63
// everything from 2^62 on. Recording
// is two relaxed atomic adds, no lock and no allocation; durations are in
// nanoseconds, so bucket 11 is [1.0, 2.0) µs and bucket 31 is [1.07, 2.1) s.
// Percentiles are read from a snapshot, interpolated linearly inside the
// bucket: within a factor of two of the truth, which is what a latency
// percentile on a noisy machine can tell anyway.
//
// EngineStats gathers what the engine records: per call of the device (a
// batch of requests) its bytes, requests and latency (MeteredDevice); commit,
// checkpoint and fsync latencies (their counts are the histograms' counts);
// the filesystem lock's waits and holds (FsLock).
// StatsReport is a snapshot of those plus the gauges of the moment (cache,
// dirty and pinned pages, journal use), FileSystem::stats_report() fills it.
//
// Thread-safety: recording and snapshots may run concurrently from any
// thread; a snapshot is not atomic across counters (each one is exact).
#pragma once

#include <algorithm>
#include <array>
#include <atomic>
#include <chrono>
#include <cstdint>
#include <memory>

#include "engine/device.h"

namespace pagefs {

struct HistogramSnapshot {
  static constexpr size_t kBuckets = 64;
  std::array<uint64_t, kBuckets> counts{};
  uint64_t sum = 0;

  uint64_t count() const;
  // The value below which a fraction `q` (0..1) of the recorded values lie,
  // interpolated within its bucket; 0 when empty.
  double quantile(double q) const;
  // What was recorded after `earlier` (a snapshot of the same histogram).
  HistogramSnapshot since(const HistogramSnapshot& earlier) const;
  // The lowest value bucket `i` holds, and the lowest the next one holds.
  static uint64_t bucket_floor(size_t i) { return i == 0 ? 0 : uint64_t{1} << (i - 1); }
  static uint64_t bucket_end(size_t i) {
    return i == 0 ? 1 : i >= 64 ? UINT64_MAX : uint64_t{1} << i;
  }
};

class Histogram {
 public:
  static constexpr size_t kBuckets = HistogramSnapshot::kBuckets;

  void record(uint64_t value) {
    counts_[bucket_of(value)].fetch_add(1, std::memory_order_relaxed);
    sum_.fetch_add(value, std::memory_order_relaxed);
  }
  HistogramSnapshot snapshot() const;
  static size_t bucket_of(uint64_t value) {
    if (value == 0) return 0;
    return std::min<size_t>(kBuckets - 1, 64 - static_cast<size_t>(__builtin_clzll(value)));
  }

 private:
  std::array<std::atomic<uint64_t>, kBuckets> counts_{};
  std::atomic<uint64_t> sum_{0};
};

// Records the nanoseconds from construction to stop() or destruction.
class LatencyTimer {
 public:
  explicit LatencyTimer(Histogram& histogram)
      : histogram_(&histogram), start_(std::chrono::steady_clock::now()) {}
  ~LatencyTimer() { stop(); }
  LatencyTimer(const LatencyTimer&) = delete;
  LatencyTimer& operator=(const LatencyTimer&) = delete;
  void stop() {
    if (histogram_ == nullptr) return;
    auto elapsed = std::chrono::steady_clock::now() - start_;
    histogram_->record(static_cast<uint64_t>(
        std::chrono::duration_cast<std::chrono::nanoseconds>(elapsed).count()));
    histogram_ = nullptr;
  }

 private:
  Histogram* histogram_;
  std::chrono::steady_clock::time_point start_;
};

struct DeviceStats {
  std::atomic<uint64_t> read_bytes{0}, read_requests{0};
  std::atomic<uint64_t> write_bytes{0}, write_requests{0};
  Histogram read_ns, write_ns, flush_ns;  // per call
  Histogram write_batch_pages;            // 4 KiB units written per write call
};

// The filesystem lock's waits and holds (engine/fs_lock.h).
struct FsLockStats {
  Histogram exclusive_wait_ns;  // per exclusive acquisition
  Histogram exclusive_hold_ns;  // per exclusive acquisition, acquire to release
  Histogram shared_wait_ns;     // per shared acquisition
};

struct EngineStats {
  DeviceStats device;
  FsLockStats fs_lock;
  Histogram commit_ns;      // a journal commit: gathering, compressing, writing, flushing
  Histogram checkpoint_ns;  // a checkpoint, its commit included
  Histogram fsync_ns;       // fsync and fdatasync, waiting for the lock included
};

// Everything `pagefs stats` reports from the engine, at one moment.
struct StatsReport {
  uint64_t page_size = 0;
  uint64_t total_pages = 0;  // the data region
  uint64_t free_pages = 0;   // as statfs reports them
  uint64_t inodes = 0;
  uint64_t cache_frames = 0, cache_hits = 0, cache_misses = 0;
  uint64_t cache_readahead_pages = 0, cache_readahead_hits = 0;
  uint64_t dirty_pages = 0, pinned_pages = 0;
  uint64_t pages_read = 0, pages_written = 0;  // through the cache
  uint64_t writeback_batches = 0, writeback_requests = 0;
  uint64_t checksum_errors = 0, metadata_errors = 0;
  uint64_t journal_bytes = 0, journal_used_bytes = 0;
  uint64_t device_read_bytes = 0, device_read_requests = 0;
  uint64_t device_write_bytes = 0, device_write_requests = 0;
  HistogramSnapshot device_read_ns, device_write_ns, device_flush_ns, device_write_batch_pages;
  HistogramSnapshot commit_ns, checkpoint_ns, fsync_ns;
  // The filesystem lock: exclusive waits and holds, shared waits.
  HistogramSnapshot lock_exclusive_wait_ns, lock_exclusive_hold_ns, lock_shared_wait_ns;
  // The running or last scrub (engine/scrub.h) since the mount.
  const char* scrub_state = "never";  // scrub_state_name()
  uint64_t scrub_finished = 0;        // seconds since the epoch; 0: running or never
  uint64_t scrub_pages_checked = 0, scrub_errors = 0, scrub_repaired = 0;
};

// A device that counts and times every call of the device it owns into
// `stats`, which must outlive it.
class MeteredDevice final : public Device {
 public:
  MeteredDevice(std::unique_ptr<Device> inner, DeviceStats& stats)
      : inner_(std::move(inner)), stats_(stats) {}

  Status read(std::span<const IoRequest> batch) override;
  Status write(std::span<const IoRequest> batch) override;
  Status flush() override;
  uint64_t size_bytes() const override { return inner_->size_bytes(); }
  uint32_t block_size() const override { return inner_->block_size(); }
  bool read_only() const override { return inner_->read_only(); }

 private:
  std::unique_ptr<Device> inner_;
  DeviceStats& stats_;
};

}  // namespace pagefs
