// Allocation streams: files written side by side each stay contiguous on the
// device, and the cursors behind that stay bounded.
#include "engine/alloc_streams.h"

#include <gtest/gtest.h>
#include <sys/stat.h>

#include <shared_mutex>
#include <string>
#include <thread>
#include <vector>

#include "engine/filesystem.h"
#include "engine/formatter.h"
#include "engine/fs_impl.h"
#include "engine/mem_device.h"
#include "tests/engine/fs_fixture.h"

namespace pagefs {
namespace {

constexpr uint64_t kBig = AllocStreams::kMinFilePage;  // a file page that has a stream

TEST(AllocStreams, SmallFilesAndFirstPagesAllocateAsBefore) {
  AllocStreams s;
  EXPECT_EQ(s.hint(7, 0, 123), 123u);
  s.allocated(7, kBig - 1, 500);
  EXPECT_EQ(s.hint(7, kBig - 1, 501), 501u);
  EXPECT_EQ(s.foreign_window_end(501, 0), 0u) << "no window for a small file";
}

TEST(AllocStreams, AWriterGoesOnInItsWindowAndOthersOpenPastIt) {
  AllocStreams s;
  s.allocated(7, kBig, 1000);
  EXPECT_EQ(s.hint(7, kBig + 1, 0), 1001u);
  const uint64_t end = 1000 + AllocStreams::kMinWindow;
  EXPECT_EQ(s.foreign_window_end(1001, 8), end);
  EXPECT_EQ(s.foreign_window_end(1001, 7), 0u) << "its own window is not foreign";
  EXPECT_EQ(s.foreign_window_end(1000, 8), 0u) << "pages it has are not in the window";
  // A second writer opens its window at the frontier.
  EXPECT_EQ(s.hint(8, kBig, 77), end);
  s.allocated(8, kBig, end);
  // The first, out of window, opens a new one past both; larger, as its file is.
  s.allocated(7, 4 * AllocStreams::kMinWindow, end - 1);  // the last page of its window
  EXPECT_EQ(s.hint(7, 4 * AllocStreams::kMinWindow + 1, 0), 2 * end - 1000);
  s.allocated(7, 4 * AllocStreams::kMinWindow + 1, 2 * end - 1000);
  EXPECT_EQ(s.foreign_window_end(2 * end - 999, 0),
            2 * end - 1000 + 4 * AllocStreams::kMinWindow + 1);
}

TEST(AllocStreams, CursorsAreBoundedAndForgotten) {
  AllocStreams s;
  for (uint64_t ino = 1; ino <= AllocStreams::kStreams + 5; ino++) {
    s.allocated(ino, kBig, ino * 100000);
  }
  // The oldest gave way: inode 1 has no window, the newest has.
  EXPECT_EQ(s.foreign_window_end(100001, 0), 0u);
  const uint64_t newest = (AllocStreams::kStreams + 5) * 100000;
  EXPECT_NE(s.foreign_window_end(newest + 1, 0), 0u);
  s.forget(AllocStreams::kStreams + 5);
  EXPECT_EQ(s.foreign_window_end(newest + 1, 0), 0u);
}

// Device runs of a file: extents that do not continue where the last ended.
size_t device_runs(FileSystem& fs, InodeNo ino) {
  FileSystem::Impl& impl = fs.internals_for_testing();
  std::vector<Extent> extents;
  std::shared_lock lock(impl.mu_);
  EXPECT_TRUE(impl.collect_extents(ino, 0, UINT64_MAX, &extents).ok());
  size_t runs = extents.empty() ? 0 : 1;
  for (size_t i = 1; i < extents.size(); i++) {
    runs += extents[i].phys != extents[i - 1].phys + extents[i - 1].pages;
  }
  return runs;
}

// Four files written at once, 1 MiB at a time: the writers take turns a
// chunk (128 KiB) each, and each used to take the pages right after the last
// chunk of another, which cut every file into about a hundred runs.
TEST(AllocStreams, FilesWrittenSideBySideStayContiguous) {
  constexpr int kWriters = 4, kMiB = 16;
  MemDevice dev(256ull << 20);
  std::string msg;
  ASSERT_TRUE(format_device(dev, FormatOptions{}, &msg).ok()) << msg;
  std::unique_ptr<FileSystem> fs = test::mount_faultable(dev, {.cache_bytes = 64 << 20});
  ASSERT_TRUE(fs);
  std::vector<InodeNo> files;
  for (int t = 0; t < kWriters; t++) {
    auto a = fs->mknod(kRootInode, "f" + std::to_string(t), S_IFREG | 0644, 0, Caller{});
    ASSERT_TRUE(a.ok());
    files.push_back(InodeNo{a->ino});
  }
  std::vector<std::thread> writers;
  std::vector<int> failures(kWriters, 0);
  for (int t = 0; t < kWriters; t++) {
    writers.emplace_back([&, t] {
      std::string block(1 << 20, char('a' + t));
      for (int i = 0; i < kMiB; i++) {
        auto n = fs->write(files[t], uint64_t(i) << 20, block.data(), block.size());
        failures[t] += !n.ok() || *n != block.size();
      }
    });
  }
  for (std::thread& w : writers) w.join();
  for (int t = 0; t < kWriters; t++) {
    EXPECT_EQ(failures[t], 0);
    const size_t runs = device_runs(*fs, files[t]);
    std::printf("file %d: %zu device runs\n", t, runs);
    // The first 256 KiB, then windows of 1, 1.25, 2.5, 5 and 10 MiB: a run
    // each at most, and a tree page now and then.
    EXPECT_LE(runs, 12u) << "file " << t;
  }
  test::unmount_and_expect_clean(fs, dev);
}

}  // namespace
}  // namespace pagefs
