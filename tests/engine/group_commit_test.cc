// Group commit: fsyncs that arrive while a commit is being written wait for
// it and then share the next one, as jbd2's do, instead of each writing a
// commit of its own; fsyncs from threads that came back from the last commit
// gather before the next closes. On a device whose flushes are slow, many threads that
// write and fsync their own files must need far fewer commits than fsyncs,
// and every fsync must still cover its own write.
#include <gtest/gtest.h>
#include <sys/stat.h>

#include <atomic>
#include <chrono>
#include <cstring>
#include <memory>
#include <string>
#include <thread>
#include <vector>

#include "engine/fault_device.h"
#include "engine/filesystem.h"
#include "engine/formatter.h"
#include "engine/fs_impl.h"
#include "engine/mem_device.h"
#include "tests/engine/crash_harness.h"
#include "tests/engine/fs_fixture.h"

namespace pagefs {
namespace {

constexpr int kThreads = 8;
constexpr int kFsyncsPerThread = 12;
constexpr size_t kBlock = 4096;

// A new filesystem on `dev`, mounted through a FaultDevice, with no timed
// commits: only fsyncs close transactions.
std::unique_ptr<FileSystem> format_and_mount(MemDevice& dev, FaultDevice** device) {
  std::string msg;
  if (!format_device(dev, FormatOptions{}, &msg).ok()) {
    ADD_FAILURE() << msg;
    return nullptr;
  }
  return test::mount_faultable(
      dev, {.cache_bytes = 16 << 20, .commit_interval_s = test::crash::kNoTimedCommit_s}, device);
}

// Creates `threads` files; then each thread writes block after block of its
// own file, fsyncing each, on a device whose flushes take 3 ms. Returns the
// number of commits that took.
uint64_t commits_for_syncers(FileSystem& fs, FaultDevice& device, int threads, int per_thread,
                             std::vector<InodeNo>* files) {
  for (int t = 0; t < threads; t++) {
    auto a = fs.mknod(kRootInode, "f" + std::to_string(t), S_IFREG | 0644, 0, Caller{});
    EXPECT_TRUE(a.ok()) << std::strerror(a.error());
    if (!a.ok()) return 0;
    files->push_back(InodeNo{a->ino});
  }
  EXPECT_TRUE(fs.fsync(kRootInode, false).ok());
  device.set_flush_delay(std::chrono::milliseconds(3));
  FileSystem::Impl& impl = fs.internals_for_testing();
  const uint64_t commits_before = impl.committer_->closed_txn();
  std::atomic<int> failures{0};
  std::vector<std::thread> workers;
  for (int t = 0; t < threads; t++) {
    workers.emplace_back([&, t] {
      std::string block(kBlock, char('a' + t));
      for (int i = 0; i < per_thread; i++) {
        auto n = fs.write((*files)[t], i * kBlock, block.data(), block.size());
        if (!n.ok() || *n != block.size() || !fs.fsync((*files)[t], true).ok()) failures++;
      }
    });
  }
  for (std::thread& t : workers) t.join();
  const uint64_t commits = impl.committer_->closed_txn() - commits_before;
  device.set_flush_delay(std::chrono::microseconds{0});
  EXPECT_EQ(failures.load(), 0);
  std::printf("%d fsyncs in %llu commits\n", threads * per_thread, (unsigned long long)commits);
  return commits;
}

TEST(GroupCommit, ConcurrentFsyncsShareCommits) {
  MemDevice dev(64ull << 20);
  FaultDevice* device = nullptr;
  std::unique_ptr<FileSystem> fs = format_and_mount(dev, &device);
  ASSERT_TRUE(fs);
  std::vector<InodeNo> files;
  const uint64_t commits = commits_for_syncers(*fs, *device, kThreads, kFsyncsPerThread, &files);
  const uint64_t fsyncs = kThreads * kFsyncsPerThread;
  EXPECT_GE(commits, 1u);
  EXPECT_LE(commits * 2, fsyncs) << "concurrent fsyncs did not share commits";

  // Each fsync covered its write: every file is whole after a crash now.
  device->drop_writes_after(device->write_count());
  auto image = std::make_unique<MemDevice>(dev.size_bytes());
  std::memcpy(image->raw(), dev.raw(), dev.size_bytes());
  fs.reset();
  std::string msg;
  auto recovered = FileSystem::mount(std::make_unique<FaultDevice>(*image, 2),
                                     MountOptions{.cache_bytes = 16 << 20}, &msg);
  ASSERT_TRUE(recovered.ok()) << msg;
  for (int t = 0; t < kThreads; t++) {
    std::string got(kFsyncsPerThread * kBlock + 1, '\0');
    auto n = (*recovered)->read(files[t], 0, got.size(), got.data());
    ASSERT_TRUE(n.ok());
    got.resize(*n);
    EXPECT_EQ(got, std::string(kFsyncsPerThread * kBlock, char('a' + t))) << "file " << t;
  }
  EXPECT_TRUE((*recovered)->unmount().ok());
  test::crash::FsckOutcome fsck = test::crash::run_fsck_overlay(*image);
  EXPECT_EQ(fsck.code, 0) << fsck.text;
}

// Writers that each write and fsync in a loop come back from one commit one
// after another. Closing as soon as the first of them is back split them in
// two groups that took turns, two fsyncs a commit for four writers; gathered
// (sync_batch.h), each commit carries all four.
TEST(GroupCommit, WritersThatSyncInALoopShareEachCommit) {
  MemDevice dev(64ull << 20);
  FaultDevice* device = nullptr;
  std::unique_ptr<FileSystem> fs = format_and_mount(dev, &device);
  ASSERT_TRUE(fs);
  std::vector<InodeNo> files;
  constexpr int kWriters = 4, kRounds = 24;
  const uint64_t commits = commits_for_syncers(*fs, *device, kWriters, kRounds, &files);
  EXPECT_LE(commits * 3, uint64_t(kWriters * kRounds)) << "fewer than 3 fsyncs a commit";
  test::unmount_and_expect_clean(fs, dev);
}

}  // namespace
}  // namespace pagefs
