// Overwrites in place (engine/file_overwrite.cc): a write into pages a file
// already has allocated runs with the filesystem lock held shared, and must
// leave exactly what the exclusive way would: the bytes, the extents' CRCs
// (read back after a remount, so from the device), the size and times, and
// a clean fsck. Writes that allocate (past the end, into a hole) still take
// the lock exclusively.
#include <fcntl.h>
#include <gtest/gtest.h>
#include <sys/stat.h>

#include <atomic>
#include <chrono>
#include <cstring>
#include <random>
#include <string>
#include <thread>
#include <vector>

#include "engine/fault_device.h"
#include "engine/formatter.h"
#include "engine/fs_impl.h"
#include "engine/mem_device.h"
#include "tests/engine/crash_harness.h"
#include "tests/engine/fs_fixture.h"

namespace pagefs {
namespace {

constexpr size_t kPage = 4096;

class OverwriteTest : public test::EngineFsTest {
 protected:
  void SetUp() override {
    test::EngineFsTest::SetUp();
    // No timed commits: every exclusive hold below is the test's own.
    ASSERT_TRUE(fs_->unmount().ok());
    fs_.reset();
    mount(
        MountOptions{.cache_bytes = 16 << 20, .commit_interval_s = test::crash::kNoTimedCommit_s});
  }

  uint64_t exclusive_holds() {
    return fs_->internals_for_testing().stats_.fs_lock.exclusive_hold_ns.snapshot().count();
  }

  InodeNo file_with(const std::string& name, const std::string& data) {
    InodeNo ino = create(kRootInode, name);
    auto n = fs_->write(ino, 0, data.data(), data.size());
    EXPECT_TRUE(n.ok() && *n == data.size());
    EXPECT_TRUE(fs_->fsync(ino, false).ok());
    return ino;
  }

  std::string read_all(InodeNo ino, size_t size) {
    std::string got(size + 1, '\0');
    auto n = fs_->read(ino, 0, got.size(), got.data());
    EXPECT_TRUE(n.ok()) << std::strerror(n.error());
    got.resize(n.ok() ? *n : 0);
    return got;
  }

  // The exclusive holds a write of `data` at `off` took.
  uint64_t holds_of_write(InodeNo ino, uint64_t off, const std::string& data) {
    const uint64_t before = exclusive_holds();
    auto n = fs_->write(ino, off, data.data(), data.size());
    EXPECT_TRUE(n.ok() && *n == data.size());
    return exclusive_holds() - before;
  }
};

TEST_F(OverwriteTest, PagesTheFileHasAreRewrittenWithoutTheExclusiveLock) {
  std::string want = test::crash::pattern(1, 40 * kPage);
  InodeNo ino = file_with("f", want);
  auto before = fs_->getattr(ino);
  ASSERT_TRUE(before.ok());
  // One page, then a run that spans two extents' worth of a chunk.
  std::string one = test::crash::pattern(2, kPage);
  EXPECT_EQ(holds_of_write(ino, 5 * kPage, one), 0u);
  want.replace(5 * kPage, kPage, one);
  std::string run = test::crash::pattern(3, 34 * kPage);
  EXPECT_EQ(holds_of_write(ino, 3 * kPage, run), 0u);
  want.replace(3 * kPage, run.size(), run);
  // Parts of pages: one inside a page, one across two, and the first and
  // last bytes of the file.
  for (auto [off, n] : {std::pair<size_t, size_t>{kPage + 100, 200},
                        {2 * kPage - 16, 4000},
                        {0, 1},
                        {want.size() - 1, 1}}) {
    std::string part = test::crash::pattern(off + n, n);
    EXPECT_EQ(holds_of_write(ino, off, part), 0u) << off << "+" << n;
    want.replace(off, n, part);
  }
  EXPECT_EQ(read_all(ino, want.size()), want);
  auto after = fs_->getattr(ino);
  ASSERT_TRUE(after.ok());
  EXPECT_EQ(after->size, want.size());
  EXPECT_EQ(after->blocks_512, before->blocks_512);
  EXPECT_TRUE(after->mtime.tv_sec > before->mtime.tv_sec ||
              (after->mtime.tv_sec == before->mtime.tv_sec &&
               after->mtime.tv_nsec > before->mtime.tv_nsec));
  EXPECT_EQ(after->ctime.tv_sec, after->mtime.tv_sec);
  EXPECT_EQ(after->ctime.tv_nsec, after->mtime.tv_nsec);
  // From the device: the extents' CRCs match the new bytes.
  remount();
  EXPECT_EQ(read_all(ino, want.size()), want);
  EXPECT_EQ(fs_->stats().checksum_errors, 0u);
}

TEST_F(OverwriteTest, WritesThatChangeTheFilesShapeTakeTheExclusiveLock) {
  std::string want = test::crash::pattern(4, 4 * kPage);
  InodeNo ino = file_with("f", want);
  std::string page = test::crash::pattern(5, kPage);
  EXPECT_GT(holds_of_write(ino, 4 * kPage, page), 0u) << "past the end";
  want += page;
  EXPECT_GT(holds_of_write(ino, 8 * kPage, page), 0u) << "after a hole";
  want.resize(8 * kPage, '\0');
  want += page;
  SetAttr grow;
  grow.set_size = true;
  grow.size = 12 * kPage;
  ASSERT_TRUE(fs_->setattr(ino, grow).ok());
  want.resize(grow.size, '\0');
  EXPECT_GT(holds_of_write(ino, 10 * kPage, page), 0u) << "inside the size, in a hole";
  want.replace(10 * kPage, kPage, page);
  EXPECT_EQ(read_all(ino, want.size()), want);
  remount();
  EXPECT_EQ(read_all(ino, want.size()), want);
}

// Space reserved with fallocate is allocated: writing into it, inside the
// size or past it (FALLOC_FL_KEEP_SIZE), is an overwrite in place that clears
// the pages' unwritten bits and grows the size; a page written in part reads
// as zeros around what was written.
TEST_F(OverwriteTest, WritesIntoFallocatedSpaceNeedNoExclusiveLock) {
  InodeNo ino = create(kRootInode, "f");
  ASSERT_TRUE(fs_->fallocate(ino, 0, 0, 16 * kPage).ok());
  ASSERT_TRUE(fs_->fallocate(ino, FALLOC_FL_KEEP_SIZE, 16 * kPage, 8 * kPage).ok());
  ASSERT_TRUE(fs_->fsync(ino, false).ok());
  auto before = fs_->getattr(ino);
  ASSERT_TRUE(before.ok());
  std::string want(16 * kPage, '\0');
  std::string inside = test::crash::pattern(12, 4 * kPage);
  EXPECT_EQ(holds_of_write(ino, 6 * kPage, inside), 0u);
  want.replace(6 * kPage, inside.size(), inside);
  std::string past = test::crash::pattern(13, 2 * kPage);
  EXPECT_EQ(holds_of_write(ino, 20 * kPage, past), 0u);
  want.resize(20 * kPage, '\0');
  want += past;
  std::string tail = test::crash::pattern(14, 1000);  // part of a page, past the end
  EXPECT_EQ(holds_of_write(ino, 22 * kPage + 500, tail), 0u);
  want.resize(22 * kPage + 500, '\0');
  want += tail;
  auto after = fs_->getattr(ino);
  ASSERT_TRUE(after.ok());
  EXPECT_EQ(after->size, 22 * kPage + 1500);
  EXPECT_EQ(after->blocks_512, before->blocks_512);
  EXPECT_EQ(read_all(ino, want.size()), want);
  remount();
  EXPECT_EQ(read_all(ino, want.size()), want);
  EXPECT_EQ(fs_->stats().checksum_errors, 0u);
}

// A write that must drop setuid changes the mode: it takes the exclusive way,
// and the bit goes.
TEST_F(OverwriteTest, AWriteThatDropsSetuidTakesTheExclusiveLock) {
  InodeNo ino = file_with("f", test::crash::pattern(6, 2 * kPage));
  SetAttr mode;
  mode.set_mode = true;
  mode.mode = S_IFREG | 04755;
  ASSERT_TRUE(fs_->setattr(ino, mode).ok());
  std::string page = test::crash::pattern(7, kPage);
  const uint64_t before = exclusive_holds();
  auto n = fs_->write(ino, 0, page.data(), page.size(), /*drop_setid=*/true);
  ASSERT_TRUE(n.ok() && *n == kPage);
  EXPECT_GT(exclusive_holds() - before, 0u);
  auto a = fs_->getattr(ino);
  ASSERT_TRUE(a.ok());
  EXPECT_EQ(a->mode & 07777, 0755u);
}

// An fsync that finds every change in a closed transaction (another fsync
// closed it) needs the lock only shared, so overwriters go on beside it; one
// that has an overwrite to cover closes the transaction, exclusively.
TEST_F(OverwriteTest, AnFsyncWithNothingToCloseLeavesOverwritersAlone) {
  InodeNo ino = file_with("f", test::crash::pattern(40, 4 * kPage));
  uint64_t before = exclusive_holds();
  ASSERT_TRUE(fs_->fsync(ino, true).ok());
  EXPECT_EQ(exclusive_holds() - before, 0u);
  std::string page = test::crash::pattern(41, kPage);
  ASSERT_EQ(holds_of_write(ino, kPage, page), 0u);
  before = exclusive_holds();
  ASSERT_TRUE(fs_->fsync(ino, true).ok());
  EXPECT_EQ(exclusive_holds() - before, 1u);
}

// What an overwrite leaves is what a crash keeps: the fsync'd rewrite after
// recovery, and the old bytes for a rewrite that was never committed.
TEST_F(OverwriteTest, ACrashKeepsFsyncedOverwritesAndDropsTheOthers) {
  std::string a = test::crash::pattern(8, 8 * kPage), b = test::crash::pattern(9, 8 * kPage);
  InodeNo fa = file_with("a", a), fb = file_with("b", b);
  std::string new_a = test::crash::pattern(10, 8 * kPage);
  std::string new_b = test::crash::pattern(11, 8 * kPage);
  ASSERT_EQ(holds_of_write(fa, 0, new_a), 0u);
  ASSERT_TRUE(fs_->fsync(fa, true).ok());
  ASSERT_EQ(holds_of_write(fb, 0, new_b), 0u);  // in the running transaction only

  auto image = std::make_unique<MemDevice>(dev_->size_bytes());
  std::memcpy(image->raw(), dev_->raw(), dev_->size_bytes());
  std::string msg;
  auto crashed = FileSystem::mount(std::make_unique<FaultDevice>(*image, 2),
                                   MountOptions{.cache_bytes = 16 << 20}, &msg);
  ASSERT_TRUE(crashed.ok()) << msg;
  for (auto [ino, want] : {std::pair{fa, new_a}, std::pair{fb, b}}) {
    std::string got(want.size(), '\0');
    auto n = (*crashed)->read(ino, 0, got.size(), got.data());
    ASSERT_TRUE(n.ok()) << std::strerror(n.error());
    EXPECT_EQ(got, want) << "inode " << ino.value;
  }
  ASSERT_TRUE((*crashed)->unmount().ok());
  crashed->reset();
  test::crash::FsckOutcome fsck = test::crash::run_fsck_overlay(*image);
  EXPECT_EQ(fsck.code, 0) << fsck.text;
}

// Four overwriters of their own files, readers and stat callers of the same
// files, and fsyncs, all at once: every file ends as its writer left it.
TEST_F(OverwriteTest, ParallelOverwritersReadersAndFsyncsAgree) {
  constexpr int kWriters = 4, kFilePages = 64, kRounds = 300;
  std::vector<InodeNo> files;
  std::vector<std::string> want;
  for (int t = 0; t < kWriters; t++) {
    want.push_back(test::crash::pattern(20 + t, kFilePages * kPage));
    files.push_back(file_with("f" + std::to_string(t), want.back()));
  }
  std::atomic<bool> stop{false};
  std::atomic<int> failures{0};
  std::vector<std::thread> threads;
  for (int t = 0; t < kWriters; t++) {
    threads.emplace_back([&, t] {
      std::mt19937_64 rng(t);
      for (int i = 0; i < kRounds; i++) {
        const size_t pages = 1 + rng() % 8, first = rng() % (kFilePages - pages + 1);
        std::string data = test::crash::pattern(rng(), pages * kPage);
        auto n = fs_->write(files[t], first * kPage, data.data(), data.size());
        if (!n.ok() || *n != data.size()) failures++;
        want[t].replace(first * kPage, data.size(), data);
        if (i % 50 == 0 && !fs_->fsync(files[t], true).ok()) failures++;
      }
    });
  }
  threads.emplace_back([&] {  // stat and read every file, whatever its state
    std::string buf(kFilePages * kPage, '\0');
    for (int i = 0; !stop; i++) {
      InodeNo ino = files[i % kWriters];
      if (!fs_->getattr(ino).ok()) failures++;
      auto n = fs_->read(ino, (i % kFilePages) * kPage, 4 * kPage, buf.data());
      if (!n.ok()) failures++;
    }
  });
  for (int t = 0; t < kWriters; t++) threads[t].join();
  stop = true;
  threads.back().join();
  EXPECT_EQ(failures.load(), 0);
  for (int t = 0; t < kWriters; t++) EXPECT_EQ(read_all(files[t], want[t].size()), want[t]);
  remount();
  for (int t = 0; t < kWriters; t++) EXPECT_EQ(read_all(files[t], want[t].size()), want[t]);
  EXPECT_EQ(fs_->stats().checksum_errors, 0u);
}

// From its first change on, an overwrite can fail only for want of a frame
// between two pages. It then keeps the pages before (a short write, as POSIX
// allows) with their CRCs, and nothing after. A write that allocates and
// finds no frame is undone whole.
TEST_F(OverwriteTest, AWriteThatRunsOutOfFramesIsShortOrUndone) {
  std::string want = test::crash::pattern(9, 10 * kPage);
  InodeNo ino = file_with("f", want);
  remount();  // nothing of the file's data cached: each page needs a frame
  ASSERT_TRUE(fs_->getattr(ino).ok());  // its leaf is cached
  FileSystem::Impl& impl = fs_->internals_for_testing();

  std::string run = test::crash::pattern(10, 8 * kPage);
  impl.pool_->fail_frame_grab(3);
  const uint64_t holds = exclusive_holds();
  auto n = fs_->write(ino, kPage, run.data(), run.size());
  ASSERT_TRUE(n.ok()) << std::strerror(n.error());
  EXPECT_EQ(*n, 2 * kPage) << "the pages before the one without a frame";
  EXPECT_EQ(exclusive_holds(), holds) << "not an overwrite in place";
  want.replace(kPage, 2 * kPage, run.substr(0, 2 * kPage));
  EXPECT_EQ(read_all(ino, want.size()), want);

  std::string tail = test::crash::pattern(11, 3 * kPage);
  impl.pool_->fail_frame_grab(1);
  auto past_end = fs_->write(ino, want.size(), tail.data(), tail.size());
  EXPECT_EQ(past_end.error(), ENOMEM);
  auto attr = fs_->getattr(ino);
  ASSERT_TRUE(attr.ok());
  EXPECT_EQ(attr->size, want.size());
  EXPECT_EQ(read_all(ino, want.size()), want);

  ASSERT_TRUE(fs_->fsync(ino, false).ok());
  remount();
  EXPECT_EQ(read_all(ino, want.size()), want);
  EXPECT_EQ(fs_->stats().checksum_errors, 0u);
}

// An overwrite that finds the journal full waits for room without the
// filesystem lock: on a device whose flushes take 100 ms, a small journal
// fills and the overwriter waits for checkpoints, but no exclusive hold
// lasts as long as one flush, and a stat beside it is never kept waiting
// for one. (Waiting the exclusive way holds the lock across the checkpoint's
// flushes.)
TEST(OverwriteRoom, AnOverwriteWaitingForJournalRoomHoldsNoLockExclusively) {
  using namespace std::chrono_literals;
  using Clock = std::chrono::steady_clock;
  MemDevice dev(64ull << 20);
  std::string msg;
  ASSERT_TRUE(format_device(dev, FormatOptions{.journal_bytes = 1 << 20}, &msg).ok()) << msg;
  FaultDevice* device = nullptr;
  std::unique_ptr<FileSystem> fs = test::mount_faultable(
      dev, {.cache_bytes = 16 << 20, .commit_interval_s = test::crash::kNoTimedCommit_s}, &device);
  ASSERT_TRUE(fs);
  auto a = fs->mknod(kRootInode, "f", S_IFREG | 0644, 0, Caller{});
  ASSERT_TRUE(a.ok());
  const InodeNo ino{a->ino};
  // A chunk of 8 pages fits the transactions of this journal (31 images).
  const size_t file_bytes = 512 * kPage, chunk = 8 * kPage;
  std::string want = test::crash::pattern(30, file_bytes);
  ASSERT_TRUE(fs->write(ino, 0, want.data(), want.size()).ok());
  ASSERT_TRUE(fs->fsync(ino, false).ok());

  FileSystem::Impl& impl = fs->internals_for_testing();
  const HistogramSnapshot holds_before = impl.stats_.fs_lock.exclusive_hold_ns.snapshot();
  device->set_flush_delay(100ms);
  std::atomic<bool> done{false};
  Clock::duration longest_write{};
  std::thread writer([&] {
    for (size_t i = 0; i < 40; i++) {
      const size_t off = (i * chunk) % file_bytes;
      std::string data = test::crash::pattern(100 + i, chunk);
      const auto start = Clock::now();
      auto n = fs->write(ino, off, data.data(), data.size());
      longest_write = std::max(longest_write, Clock::now() - start);
      ASSERT_TRUE(n.ok() && *n == chunk);
      want.replace(off, chunk, data);
    }
    done = true;
  });
  Clock::duration longest_stat{};
  while (!done) {
    const auto start = Clock::now();
    ASSERT_TRUE(fs->getattr(ino).ok());
    longest_stat = std::max(longest_stat, Clock::now() - start);
    std::this_thread::sleep_for(1ms);
  }
  writer.join();
  const HistogramSnapshot holds =
      impl.stats_.fs_lock.exclusive_hold_ns.snapshot().since(holds_before);
  device->set_flush_delay(0us);

  EXPECT_GE(longest_write, 80ms) << "the overwrites never waited for a commit or journal room";
  uint64_t long_holds = 0;  // 67 ms or more: bucket 27 on
  for (size_t b = 27; b < HistogramSnapshot::kBuckets; b++) long_holds += holds.counts[b];
  EXPECT_EQ(long_holds, 0u) << "the lock was held exclusively across a flush";
  EXPECT_LT(longest_stat, 80ms);
  std::string got(file_bytes, '\0');
  auto n = fs->read(ino, 0, got.size(), got.data());
  ASSERT_TRUE(n.ok() && *n == file_bytes);
  EXPECT_EQ(got, want);
  test::unmount_and_expect_clean(fs, dev);
}

}  // namespace
}  // namespace pagefs
