// Readahead tests: the queueing of chunks for a sequential reader, with a
// fetch function that records what it is asked for.
#include "engine/readahead.h"

#include <gtest/gtest.h>

#include <algorithm>
#include <chrono>
#include <condition_variable>
#include <map>
#include <mutex>
#include <thread>
#include <utility>
#include <vector>

namespace pagefs {
namespace {

constexpr uint64_t kMiB = 1 << 20;

// A fetch function whose calls wait at a gate and are recorded.
class Recorder {
 public:
  Readahead::Fetch fetch() {
    return [this](InodeNo, uint64_t off, uint64_t len) {
      std::unique_lock lock(mu_);
      in_flight_++;
      cv_.wait(lock, [&] { return open_; });
      ranges_.emplace_back(off, off + len);
      in_flight_--;
    };
  }
  void open() {
    {
      std::lock_guard lock(mu_);
      open_ = true;
    }
    cv_.notify_all();
  }
  int in_flight() {
    std::lock_guard lock(mu_);
    return in_flight_;
  }
  std::vector<std::pair<uint64_t, uint64_t>> ranges() {
    std::lock_guard lock(mu_);
    return ranges_;
  }

 private:
  std::mutex mu_;
  std::condition_variable cv_;
  bool open_ = false;
  int in_flight_ = 0;
  std::vector<std::pair<uint64_t, uint64_t>> ranges_;
};

// Waits until nothing is queued or being fetched. A worker that has just
// taken a chunk off the queue is not yet in the fetch function, so the state
// must also stay quiet for a few milliseconds.
bool drained(const Readahead& ra, Recorder& rec) {
  int quiet = 0;
  size_t seen = rec.ranges().size();
  for (int i = 0; i < 10'000 && quiet < 5; i++) {
    std::this_thread::sleep_for(std::chrono::milliseconds(1));
    size_t now = rec.ranges().size();
    bool idle = ra.queued() == 0 && rec.in_flight() == 0 && now == seen;
    quiet = idle ? quiet + 1 : 0;
    seen = now;
  }
  return quiet >= 5;
}

// The first byte after `from` that no range covers.
uint64_t covered_to(std::vector<std::pair<uint64_t, uint64_t>> ranges, uint64_t from) {
  std::sort(ranges.begin(), ranges.end());
  uint64_t end = from;
  for (const auto& [lo, hi] : ranges) {
    if (lo > end) break;
    end = std::max(end, hi);
  }
  return end;
}

// covered_to(fetched ranges and `reads`, 0), once it reaches `target` or
// after 10 s.
uint64_t coverage_reaching(Recorder& rec, const std::vector<std::pair<uint64_t, uint64_t>>& reads,
                           uint64_t target) {
  uint64_t covered = 0;
  for (int i = 0; i < 10'000; i++) {
    std::vector<std::pair<uint64_t, uint64_t>> all = rec.ranges();
    all.insert(all.end(), reads.begin(), reads.end());
    covered = covered_to(all, 0);
    if (covered >= target) break;
    std::this_thread::sleep_for(std::chrono::milliseconds(1));
  }
  return covered;
}

TEST(Readahead, SequentialReaderGetsItsWindowInChunks) {
  Recorder rec;
  rec.open();
  Readahead ra(rec.fetch(), 8 * kMiB);
  std::vector<std::pair<uint64_t, uint64_t>> reads;
  for (uint64_t pos = 0; pos < 32 * kMiB; pos += kMiB) {
    ra.note_read(InodeNo{7}, pos, kMiB);
    reads.emplace_back(pos, pos + kMiB);
    ASSERT_TRUE(drained(ra, rec));  // as a reader that waits for its data
  }
  std::vector<std::pair<uint64_t, uint64_t>> fetched = rec.ranges();
  ASSERT_FALSE(fetched.empty());
  for (const auto& [lo, hi] : fetched) EXPECT_LE(hi - lo, Readahead::kChunk);
  // Reads and read-ahead together leave no gap, and read-ahead runs past the
  // last read by at least half the largest window.
  EXPECT_GE(coverage_reaching(rec, reads, 36 * kMiB), 36 * kMiB);
}

TEST(Readahead, ChunksThatDidNotFitAreQueuedByTheNextRead) {
  Recorder rec;  // closed: the workers block on their first chunks
  Readahead ra(rec.fetch(), 64 * kMiB);
  std::vector<std::pair<uint64_t, uint64_t>> reads;
  uint64_t pos = 0;
  for (; pos < 12 * kMiB; pos += kMiB) {
    ra.note_read(InodeNo{7}, pos, kMiB);
    reads.emplace_back(pos, pos + kMiB);
  }
  // The window has grown past what the queue and the workers hold.
  ASSERT_EQ(ra.queued(), Readahead::kQueue);
  rec.open();
  ASSERT_TRUE(drained(ra, rec));
  uint64_t before = covered_to(rec.ranges(), pos);
  // One more sequential read queues what was left out, next to what was read
  // ahead before, instead of starting past it.
  ra.note_read(InodeNo{7}, pos, kMiB);
  reads.emplace_back(pos, pos + kMiB);
  EXPECT_GE(coverage_reaching(rec, reads, before + 8 * kMiB), before + 8 * kMiB);
}

}  // namespace
}  // namespace pagefs
