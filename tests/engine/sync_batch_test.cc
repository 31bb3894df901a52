// SyncBatch: how many fsyncs a batch waits for, and how long.
#include "engine/sync_batch.h"

#include <gtest/gtest.h>

#include <chrono>
#include <memory>
#include <thread>
#include <vector>

namespace pagefs {
namespace {

using std::chrono::milliseconds;
using Clock = std::chrono::steady_clock;

constexpr auto kLong = std::chrono::seconds(20);  // a patience no test should run out of

// `n` fsyncs in progress for as long as it lives.
struct InProgress {
  InProgress(SyncBatch& batch, int n) {
    for (int i = 0; i < n; i++) scopes.push_back(std::make_unique<SyncBatch::InProgress>(batch));
  }
  std::vector<std::unique_ptr<SyncBatch::InProgress>> scopes;
};

TEST(SyncBatch, ALoneSyncerNeverWaits) {
  SyncBatch batch;
  for (uint64_t txn = 1; txn <= 3; txn++) {
    const auto start = Clock::now();
    EXPECT_EQ(batch.join(kLong), 1u);
    EXPECT_LT(Clock::now() - start, std::chrono::seconds(5));
    batch.synced(txn, 7);
    EXPECT_EQ(batch.expected(), 1u);
  }
}

TEST(SyncBatch, ExpectsTheFilesOfTheLastTwoTransactions) {
  SyncBatch batch;
  InProgress eight(batch, 8);
  batch.synced(10, 1);
  batch.synced(10, 2);
  batch.synced(10, 2);  // the same file twice counts once
  EXPECT_EQ(batch.expected(), 2u);
  batch.synced(11, 3);
  batch.synced(11, 4);
  EXPECT_EQ(batch.expected(), 4u);  // two groups that take turns are both expected
  batch.synced(12, 1);
  EXPECT_EQ(batch.expected(), 3u);  // {1} and {3, 4}: 2 was in neither
  batch.synced(11, 5);              // a late fsync of the one before still counts
  EXPECT_EQ(batch.expected(), 4u);
  batch.synced(13, 1);
  batch.synced(14, 1);
  EXPECT_EQ(batch.expected(), 1u);
}

TEST(SyncBatch, TheLeaderGoesOnceTheExpectedHaveJoined) {
  SyncBatch batch;
  {
    InProgress four(batch, 4);
    for (uint64_t ino = 1; ino <= 4; ino++) batch.synced(1, ino);
  }
  ASSERT_EQ(batch.expected(), 4u);
  const auto start = Clock::now();
  std::vector<uint32_t> sizes(4);
  std::vector<std::thread> syncers;
  for (int t = 0; t < 4; t++) syncers.emplace_back([&, t] { sizes[t] = batch.join(kLong); });
  for (std::thread& t : syncers) t.join();
  EXPECT_LT(Clock::now() - start, std::chrono::seconds(10)) << "the leader waited out its patience";
  for (uint32_t size : sizes) EXPECT_EQ(size, 4u);
}

TEST(SyncBatch, TheLeaderWaitsNoLongerThanItsPatience) {
  SyncBatch batch;
  {
    InProgress four(batch, 4);
    for (uint64_t ino = 1; ino <= 4; ino++) batch.synced(1, ino);
  }
  const auto start = Clock::now();
  EXPECT_EQ(batch.join(milliseconds(50)), 1u);
  const auto waited = Clock::now() - start;
  EXPECT_GE(waited, milliseconds(50));
  EXPECT_LT(waited, std::chrono::seconds(10));
}

// Whichever of the two leads, the other joins its batch and ends the
// gathering: both see a batch of two, long before the patience runs out.
TEST(SyncBatch, AFollowerIsCountedInItsLeadersBatch) {
  SyncBatch batch;
  {
    InProgress two(batch, 2);
    batch.synced(1, 1);
    batch.synced(1, 2);
  }
  uint32_t first = 0, second = 0;
  const auto start = Clock::now();
  std::thread leader([&] { first = batch.join(kLong); });
  std::this_thread::sleep_for(milliseconds(20));
  std::thread follower([&] { second = batch.join(kLong); });
  leader.join();
  follower.join();
  EXPECT_LT(Clock::now() - start, std::chrono::seconds(10));
  EXPECT_EQ(first, 2u);
  EXPECT_EQ(second, 2u);
}

// More files take turns than fsyncs can be in progress at once (the daemon
// has 16 threads; 32 writers): a batch expects no more than were ever in
// progress together, or every leader would wait out its patience.
TEST(SyncBatch, ExpectsNoMoreThanWereInProgressAtOnce) {
  SyncBatch batch;
  for (uint64_t ino = 1; ino <= 8; ino++) {
    InProgress three(batch, 3);
    batch.synced(1, ino);
  }
  EXPECT_EQ(batch.expected(), 3u);
  {
    InProgress five(batch, 5);
    batch.synced(2, 100);
  }
  EXPECT_EQ(batch.expected(), 5u);  // 9 files; at most 5 in progress
  for (uint64_t txn = 3; txn <= 4; txn++) {
    InProgress one(batch, 1);
    batch.synced(txn, 7);
  }
  EXPECT_EQ(batch.expected(), 1u);
}

}  // namespace
}  // namespace pagefs
