// FsLock: writers are served before readers that come after them, and every
// acquisition is timed.
#include "engine/fs_lock.h"

#include <gtest/gtest.h>

#include <atomic>
#include <chrono>
#include <mutex>
#include <shared_mutex>
#include <thread>
#include <vector>

namespace pagefs {
namespace {

using namespace std::chrono_literals;
using Clock = std::chrono::steady_clock;

// Four readers hold the lock shared in turns that overlap, so from the moment
// they start it is never free. A lock that lets readers in while a writer
// waits keeps that writer out until the readers stop (here: 5 s); FsLock lets
// it in as soon as the readers holding the lock now are done.
TEST(FsLock, AWriterIsNotKeptOutByReadersThatOverlap) {
  FsLockStats stats;
  FsLock lock(stats);
  std::atomic<bool> stop{false};
  std::atomic<int> holding{0};
  const auto readers_until = Clock::now() + 5s;
  std::vector<std::thread> readers;
  for (int r = 0; r < 4; r++) {
    readers.emplace_back([&, r] {
      std::this_thread::sleep_for(r * 200us);
      while (!stop && Clock::now() < readers_until) {
        std::shared_lock shared(lock);
        holding++;
        std::this_thread::sleep_for(800us);
        holding--;
      }
    });
  }
  while (holding == 0) std::this_thread::sleep_for(100us);
  std::this_thread::sleep_for(20ms);
  const auto asked = Clock::now();
  {
    std::unique_lock exclusive(lock);
    EXPECT_EQ(holding.load(), 0);  // no reader inside with the writer
  }
  const auto waited = Clock::now() - asked;
  stop = true;
  for (std::thread& t : readers) t.join();
  EXPECT_LT(waited, 2s) << "the writer waited until the readers stopped";
}

TEST(FsLock, RecordsWaitsAndHolds) {
  FsLockStats stats;
  FsLock lock(stats);
  {
    std::unique_lock exclusive(lock);
    std::this_thread::sleep_for(2ms);
  }
  { std::shared_lock shared(lock); }
  { std::shared_lock shared(lock); }
  ASSERT_TRUE(lock.try_lock());
  lock.unlock();
  HistogramSnapshot hold = stats.exclusive_hold_ns.snapshot();
  EXPECT_EQ(hold.count(), 2u);
  EXPECT_GE(hold.sum, uint64_t{2'000'000});  // the 2 ms hold
  EXPECT_EQ(stats.exclusive_wait_ns.snapshot().count(), 2u);
  EXPECT_EQ(stats.shared_wait_ns.snapshot().count(), 2u);
}

// A writer waiting behind a reader is timed from its request to its grant.
TEST(FsLock, RecordsHowLongAWriterWaited) {
  FsLockStats stats;
  FsLock lock(stats);
  std::shared_lock shared(lock);
  std::thread writer([&] { std::unique_lock exclusive(lock); });
  std::this_thread::sleep_for(20ms);
  shared.unlock();
  writer.join();
  HistogramSnapshot wait = stats.exclusive_wait_ns.snapshot();
  ASSERT_EQ(wait.count(), 1u);
  EXPECT_GE(wait.sum, uint64_t{10'000'000});
}

}  // namespace
}  // namespace pagefs
