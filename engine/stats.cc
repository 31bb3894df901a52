#include "engine/stats.h"

#include <algorithm>
#include <cassert>
#include <mutex>

#include "engine/fs_impl.h"

namespace pagefs {

// ---- histograms ---------------------------------------------------------------

HistogramSnapshot Histogram::snapshot() const {
  HistogramSnapshot s;
  for (size_t i = 0; i < kBuckets; i++) s.counts[i] = counts_[i].load(std::memory_order_relaxed);
  s.sum = sum_.load(std::memory_order_relaxed);
  return s;
}

uint64_t HistogramSnapshot::count() const {
  uint64_t n = 0;
  for (uint64_t c : counts) n += c;
  return n;
}

// Worked example: counts {bucket 11: 90, bucket 12: 10} (90 values in
// [1024, 2048) ns, 10 in [2048, 4096)). q = 0.5: rank 50 falls in bucket 11,
// 50/90 of the way in: 1024 + 1024 * 50/90 = 1593 ns. q = 0.99: rank 99 is the
// 9th of bucket 12's 10: 2048 + 2048 * 9/10 = 3891 ns.
double HistogramSnapshot::quantile(double q) const {
  const uint64_t total = count();
  if (total == 0) return 0;
  const double rank = std::clamp(q, 0.0, 1.0) * double(total);
  uint64_t below = 0;
  for (size_t i = 0; i < kBuckets; i++) {
    if (counts[i] == 0) continue;
    if (double(below + counts[i]) >= rank) {
      const double lo = double(bucket_floor(i)), hi = double(bucket_end(i));
      return lo + (hi - lo) * (rank - double(below)) / double(counts[i]);
    }
    below += counts[i];
  }
  return double(bucket_end(kBuckets - 1));
}

HistogramSnapshot HistogramSnapshot::since(const HistogramSnapshot& earlier) const {
  HistogramSnapshot d;
  for (size_t i = 0; i < kBuckets; i++) {
    d.counts[i] = counts[i] >= earlier.counts[i] ? counts[i] - earlier.counts[i] : 0;
  }
  d.sum = sum >= earlier.sum ? sum - earlier.sum : 0;
  return d;
}

// ---- MeteredDevice --------------------------------------------------------------

namespace {

uint64_t batch_bytes(std::span<const IoRequest> batch) {
  uint64_t bytes = 0;
  for (const IoRequest& r : batch) {
    for (const iovec& v : r.iov) bytes += v.iov_len;
  }
  return bytes;
}

}  // namespace

Status MeteredDevice::read(std::span<const IoRequest> batch) {
  LatencyTimer timer(stats_.read_ns);
  Status st = inner_->read(batch);
  stats_.read_requests.fetch_add(batch.size(), std::memory_order_relaxed);
  stats_.read_bytes.fetch_add(batch_bytes(batch), std::memory_order_relaxed);
  return st;
}

Status MeteredDevice::write(std::span<const IoRequest> batch) {
  LatencyTimer timer(stats_.write_ns);
  Status st = inner_->write(batch);
  const uint64_t bytes = batch_bytes(batch);
  stats_.write_requests.fetch_add(batch.size(), std::memory_order_relaxed);
  stats_.write_bytes.fetch_add(bytes, std::memory_order_relaxed);
  stats_.write_batch_pages.record(bytes / 4096);
  return st;
}

Status MeteredDevice::flush() {
  LatencyTimer timer(stats_.flush_ns);
  return inner_->flush();
}

// ---- the report -----------------------------------------------------------------

StatsReport FileSystem::stats_report() const {
  const FsStats fs = stats();
  const EngineStats& e = impl_->stats_;
  StatsReport r;
  r.page_size = fs.page_size;
  r.total_pages = fs.total_pages;
  r.free_pages = fs.free_pages;
  r.inodes = fs.inodes;
  const PoolStats pool = impl_->pool_->stats();
  r.cache_frames = pool.frames;
  r.cache_hits = pool.hits;
  r.cache_misses = pool.misses;
  r.cache_readahead_pages = pool.readahead_pages;
  r.cache_readahead_hits = pool.readahead_hits;
  r.dirty_pages = pool.dirty;
  r.pinned_pages = impl_->pool_->pinned_frames();
  r.pages_read = pool.pages_read;
  r.pages_written = pool.pages_written;
  r.writeback_batches = pool.writeback_batches;
  r.writeback_requests = pool.writeback_requests;
  r.checksum_errors = pool.checksum_errors;
  r.metadata_errors = pool.metadata_errors;
  {
    std::shared_lock lock(impl_->mu_);
    r.journal_bytes = impl_->journal_->capacity_bytes();
    r.journal_used_bytes = r.journal_bytes - impl_->journal_->free_bytes();
  }
  r.device_read_bytes = e.device.read_bytes.load(std::memory_order_relaxed);
  r.device_read_requests = e.device.read_requests.load(std::memory_order_relaxed);
  r.device_write_bytes = e.device.write_bytes.load(std::memory_order_relaxed);
  r.device_write_requests = e.device.write_requests.load(std::memory_order_relaxed);
  r.device_read_ns = e.device.read_ns.snapshot();
  r.device_write_ns = e.device.write_ns.snapshot();
  r.device_flush_ns = e.device.flush_ns.snapshot();
  r.device_write_batch_pages = e.device.write_batch_pages.snapshot();
  r.commit_ns = e.commit_ns.snapshot();
  r.checkpoint_ns = e.checkpoint_ns.snapshot();
  r.fsync_ns = e.fsync_ns.snapshot();
  r.lock_exclusive_wait_ns = e.fs_lock.exclusive_wait_ns.snapshot();
  r.lock_exclusive_hold_ns = e.fs_lock.exclusive_hold_ns.snapshot();
  r.lock_shared_wait_ns = e.fs_lock.shared_wait_ns.snapshot();
  r.scrub_state = scrub_state_name(fs.scrub_state);
  r.scrub_finished = uint64_t(std::max<int64_t>(fs.scrub_finished, 0));
  r.scrub_pages_checked = fs.scrub_pages_checked;
  r.scrub_errors = fs.scrub_errors;
  r.scrub_repaired = fs.scrub_repaired;
  return r;
}

}  // namespace pagefs
