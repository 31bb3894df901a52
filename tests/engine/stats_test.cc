// engine/stats.h: log2 histograms (buckets, percentiles, intervals) and the
// MeteredDevice that counts a mounted filesystem's device calls.
#include "engine/stats.h"

#include <gtest/gtest.h>
#include <sys/stat.h>

#include <memory>
#include <thread>
#include <vector>

#include "engine/filesystem.h"
#include "engine/formatter.h"
#include "engine/mem_device.h"

namespace pagefs {
namespace {

TEST(HistogramTest, ValuesLandInTheirPowerOfTwoBucket) {
  EXPECT_EQ(Histogram::bucket_of(0), 0u);
  EXPECT_EQ(Histogram::bucket_of(1), 1u);
  EXPECT_EQ(Histogram::bucket_of(2), 2u);
  EXPECT_EQ(Histogram::bucket_of(3), 2u);
  EXPECT_EQ(Histogram::bucket_of(1024), 11u);
  EXPECT_EQ(Histogram::bucket_of(2047), 11u);
  EXPECT_EQ(Histogram::bucket_of(UINT64_MAX), 63u);
}

TEST(HistogramTest, QuantilesInterpolateWithinTheBucket) {
  Histogram h;
  for (int i = 0; i < 90; i++) h.record(1500);  // bucket 11: [1024, 2048)
  for (int i = 0; i < 10; i++) h.record(3000);  // bucket 12: [2048, 4096)
  HistogramSnapshot s = h.snapshot();
  EXPECT_EQ(s.count(), 100u);
  EXPECT_EQ(s.sum, 90u * 1500 + 10u * 3000);
  EXPECT_NEAR(s.quantile(0.5), 1024 + 1024 * 50.0 / 90, 1e-6);  // the worked example in stats.cc
  EXPECT_NEAR(s.quantile(0.99), 2048 + 2048 * 9.0 / 10, 1e-6);
  EXPECT_EQ(HistogramSnapshot{}.quantile(0.5), 0);
}

TEST(HistogramTest, SinceIsWhatWasRecordedInBetween) {
  Histogram h;
  h.record(10);
  HistogramSnapshot before = h.snapshot();
  h.record(100);
  h.record(100);
  HistogramSnapshot d = h.snapshot().since(before);
  EXPECT_EQ(d.count(), 2u);
  EXPECT_EQ(d.sum, 200u);
  EXPECT_EQ(d.counts[Histogram::bucket_of(100)], 2u);
}

TEST(HistogramTest, ConcurrentRecordsAreAllCounted) {
  Histogram h;
  std::vector<std::thread> threads;
  for (int t = 0; t < 4; t++) {
    threads.emplace_back([&h] {
      for (int i = 0; i < 10000; i++) h.record(uint64_t(i));
    });
  }
  for (auto& t : threads) t.join();
  EXPECT_EQ(h.snapshot().count(), 40000u);
}

TEST(StatsReportTest, CountsDeviceCallsCommitsAndFsyncs) {
  auto dev = std::make_unique<MemDevice>(32 << 20);
  std::string msg;
  ASSERT_TRUE(format_device(*dev, FormatOptions{}, &msg).ok()) << msg;
  MemDevice* raw = dev.get();
  const uint64_t mkfs_writes = raw->write_count();
  auto fs = FileSystem::mount(std::move(dev), MountOptions{8 << 20}, &msg);
  ASSERT_TRUE(fs.ok()) << msg;
  const StatsReport before = (*fs)->stats_report();
  auto a = (*fs)->mknod(kRootInode, "a", S_IFREG | 0644, 0, Caller{});
  ASSERT_TRUE(a.ok());
  std::string data(1 << 20, 'x');
  ASSERT_TRUE((*fs)->write(InodeNo{a->ino}, 0, data.data(), data.size()).ok());
  ASSERT_TRUE((*fs)->fsync(InodeNo{a->ino}, false).ok());
  const StatsReport after = (*fs)->stats_report();
  EXPECT_EQ(after.fsync_ns.count() - before.fsync_ns.count(), 1u);
  EXPECT_GE(after.commit_ns.count() - before.commit_ns.count(), 1u);
  EXPECT_GE(after.device_write_bytes - before.device_write_bytes, data.size());
  EXPECT_GE(after.device_flush_ns.count(), 1u);
  EXPECT_EQ(after.device_write_requests, raw->write_count() - mkfs_writes);
  EXPECT_GT(after.journal_bytes, 0u);
  EXPECT_EQ(after.pinned_pages, 0u);
  EXPECT_GT(after.cache_frames, 0u);
  EXPECT_LE(after.cache_frames, (8u << 20) / 4096);  // the undo area comes out of the budget
  ASSERT_TRUE((*fs)->unmount().ok());
}

}  // namespace
}  // namespace pagefs
