// Group commit: fsyncs that arrive while a commit is being written wait for
// it and then share the next one, as jbd2's do, instead of each writing a
// commit of its own. On a device whose flushes are slow, many threads that
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

TEST(GroupCommit, ConcurrentFsyncsShareCommits) {
  MemDevice dev(64ull << 20);
  std::string msg;
  ASSERT_TRUE(format_device(dev, FormatOptions{}, &msg).ok()) << msg;
  FaultDevice* device = nullptr;
  std::unique_ptr<FileSystem> fs = test::mount_faultable(
      dev, {.cache_bytes = 16 << 20, .commit_interval_s = test::crash::kNoTimedCommit_s}, &device);
  ASSERT_TRUE(fs);

  std::vector<InodeNo> files;
  for (int t = 0; t < kThreads; t++) {
    auto a = fs->mknod(kRootInode, "f" + std::to_string(t), S_IFREG | 0644, 0, Caller{});
    ASSERT_TRUE(a.ok()) << std::strerror(a.error());
    files.push_back(InodeNo{a->ino});
  }
  ASSERT_TRUE(fs->fsync(kRootInode, false).ok());

  device->set_flush_delay(std::chrono::milliseconds(3));
  FileSystem::Impl& impl = fs->internals_for_testing();
  const uint64_t commits_before = impl.committer_->closed_txn();
  std::atomic<int> failures{0};
  std::vector<std::thread> threads;
  for (int t = 0; t < kThreads; t++) {
    threads.emplace_back([&, t] {
      std::string block(kBlock, char('a' + t));
      for (int i = 0; i < kFsyncsPerThread; i++) {
        auto n = fs->write(files[t], i * kBlock, block.data(), block.size());
        if (!n.ok() || *n != block.size() || !fs->fsync(files[t], true).ok()) failures++;
      }
    });
  }
  for (std::thread& t : threads) t.join();
  const uint64_t commits = impl.committer_->closed_txn() - commits_before;
  device->set_flush_delay(std::chrono::microseconds{0});
  ASSERT_EQ(failures.load(), 0);

  const uint64_t fsyncs = kThreads * kFsyncsPerThread;
  std::printf("%llu fsyncs in %llu commits\n", (unsigned long long)fsyncs,
              (unsigned long long)commits);
  EXPECT_GE(commits, 1u);
  EXPECT_LE(commits * 2, fsyncs) << "concurrent fsyncs did not share commits";

  // Each fsync covered its write: every file is whole after a crash now.
  device->drop_writes_after(device->write_count());
  auto image = std::make_unique<MemDevice>(dev.size_bytes());
  std::memcpy(image->raw(), dev.raw(), dev.size_bytes());
  fs.reset();
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

}  // namespace
}  // namespace pagefs
